"""``adjustment_path``: NCO drift and the observed effect over the iterations of the persona-augmentation
loop (methods.md section 4.1), per model and adjustment path.

The heavy work reuses the project's verbs on the whole log at once: :func:`~driftstats.nco.nco_test`
and :func:`~driftstats.nco.equivalence_test` grouped by ``(study, model, run_id, iteration)`` and
:func:`~driftstats.effects.effect` on the unit table grouped the same way. A run is one group, so
the base run (iteration 0, shared by every path of a model) is computed once and its rows are
joined to each path that starts from it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import stats

from driftstats._args import (
    DEFAULT_N_BOOT,
    DEFAULT_N_PERM,
    DEFAULT_SEED,
    SeedLike,
    as_columns,
    check_choice,
    check_conf_level,
    check_margin,
    check_positive_int,
    rng_from,
    seed_value,
)
from driftstats._provenance import provenance
from driftstats._result import Result, Summary
from driftstats._units import order_unknown_message, unit_data
from driftstats.adjust._findings import audit_line, path_findings, path_lines
from driftstats.adjust._tables import (
    RUN_KEYS,
    distributions,
    resample_runs,
    spec_sets,
)
from driftstats.errors import InsufficientDataError, InvalidArgumentError, MonteCarloErrorWarning
from driftstats.log.simlog import SimLog, Source, as_log

__all__ = ["ADJUSTMENT_ASSUMPTIONS", "AdjustmentResult", "adjustment_path"]

Mode = Literal["sample", "dist"]
PlotKind = Literal["drift", "effect", "distributions", "outcome"]

ADJUSTMENT_ASSUMPTIONS: tuple[str, ...] = (
    "Diagnostic NCOs are disjoint from the adjusted attributes: once an attribute is in the persona spec its TVD goes "
    "to about 0 trivially and its item is a fidelity check, not a diagnostic. NCO rows whose item is in an "
    "iteration's spec are kept in the drift frame with diagnostic = false and take no part in the findings.",
    "N1 (exclusion) for every diagnostic NCO: the intervention changes its report only through who the simulated user "
    "is. NCO-TVD is a lower bound on latent drift: drift that vanishes on the NCOs need not have vanished on what "
    "drives the outcome.",
    "Non-monotone bias is expected: adding weakly relevant attributes can raise bias (bias amplification; offsetting "
    "biases that a partial adjustment stops cancelling). Every iteration is reported; convergence is not assumed.",
    "The estimand changes with the persona spec: after adjustment the effect refers to the population in which the "
    "added attributes follow their design distribution (values_from), set identically across arms, not to the "
    "implied population of iteration 0.",
    "The reference path (the full-information spec, every attribute the population holds stated) is a reference, not "
    "ground truth: it need not state every attribute that drives the outcome.",
    "Changes across iterations compare runs as independent samples (standard errors from bootstrap draws that "
    "resample personas, or read off the valid intervals); this is conservative when the runs share personas.",
)

DRIFT_COLUMNS = ["model", "path", "iteration", "nco", "arm", "reference", "measure", "estimate", "excess",
                 "excess_low", "excess_high", "conf_low", "conf_high", "null_mean", "null_q95", "statistic", "p_value",
                 "p_value_fwer", "n_1", "n_0", "equivalent", "upper_bound", "diagnostic", "note"]
EFFECT_COLUMNS = ["model", "path", "iteration", "arm", "reference", "outcome", "estimate", "std_error", "conf_low",
                  "conf_high", "statistic", "p_value", "df", "n_1", "n_0", "vs_reference", "vs_reference_low", "vs_reference_high",
                  "note"]
_FRAMES = ("drift", "effects", "spec", "stops", "distributions", "truth", "paths")


@dataclass(frozen=True, slots=True, repr=False)
class AdjustmentResult(Result):
    """Drift and effect per model x adjustment path x iteration of a persona-augmentation study.

    ``tidy()``: the drift rows (``term`` = NCO, ``measure`` ``tvd``/``ks``) and the effect rows
    (``term`` = outcome, ``measure`` ``mean_diff``), grouped by ``model``, ``path``, ``iteration``.
    The frames (each a copy): :attr:`drift`, :attr:`effects`, :attr:`spec`, :attr:`stops`,
    :attr:`distributions`, :attr:`truth` and :attr:`paths` (the findings per model x path x arm);
    :attr:`lines` holds the sentences the summary and the audit print.
    """

    TITLE: ClassVar[str] = "Adjustment path: NCO drift and observed effect over iterations"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "measure", "estimate", "excess", "conf_low", "conf_high", "p_value",
                                          "p_value_fwer", "note")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = (
        "arm", "reference", "measure", "n_1", "n_0", "null_mean", "null_q95", "excess", "p_value_fwer", "margin",
        "upper_bound", "equivalent", "df", "note",
    )
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_perm", "n_boot", "n_tests", "strata")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = ADJUSTMENT_ASSUMPTIONS

    frames: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    lines: tuple[str, ...] = ()
    outcome: str | None = None

    def _frame(self, name: str) -> pd.DataFrame:
        return self.frames[name].copy()

    @property
    def drift(self) -> pd.DataFrame:
        """Per model, path, iteration, NCO and arm: ``estimate`` (plug-in TVD, KS D for numeric NCOs),
        ``excess`` with ``excess_low``/``excess_high`` (the valid interval minus the null mean, floored at
        0), ``conf_low``/``conf_high`` (valid interval), ``null_mean``, ``null_q95``, ``p_value``,
        ``p_value_fwer``, ``n_1``, ``n_0``, ``equivalent``/``upper_bound`` (projection equivalence at the
        margin), ``diagnostic`` (false when the NCO's item is in the iteration's spec: a fidelity check
        there, left out of the findings) and ``note`` (why a row carries no test)."""
        return self._frame("drift")

    @property
    def effects(self) -> pd.DataFrame:
        """Per model, path, iteration and arm: the difference in mean outcome codes with its interval,
        and ``vs_reference`` (minus the reference path's effect, with an interval treating the runs as
        independent; NaN on the reference path itself and where there is no reference path)."""
        return self._frame("effects")

    @property
    def spec(self) -> pd.DataFrame:
        """The ``adjustments`` rows of the study: every attribute of each spec or candidate, with why."""
        return self._frame("spec")

    @property
    def stops(self) -> pd.DataFrame:
        """The ``iterations`` rows of the study, plus ``added`` (JSON array of the attributes added there)."""
        return self._frame("stops")

    @property
    def distributions(self) -> pd.DataFrame:
        """Answer shares per model, path, iteration, arm, item (with its ``role``) and option."""
        return self._frame("distributions")

    @property
    def truth(self) -> pd.DataFrame:
        """Each arm's NCO answers against the personas' latent true values (TVD to truth per arm)."""
        return self._frame("truth")

    @property
    def paths(self) -> pd.DataFrame:
        """The findings per model x path x arm that the sentences are written from."""
        return self._frame("paths")

    def summary(self) -> Summary:
        """A :class:`~driftstats._result.Summary`: the tidy rows, the findings, then the diagnostics."""
        s = Result.summary(self)
        return Summary(title=s.title, table=s.table, info=s.info, assumptions=s.assumptions,
                       diagnostics=(*self.lines, *self.diagnostics))

    def audit_line(self) -> str:
        """One sentence for the audit's top verdict."""
        return audit_line(self.frames["paths"])

    def plot(self, kind: PlotKind = "drift", **kwargs: Any) -> Any:
        """Paper figures: ``drift`` (Fig. 3), ``effect`` (Fig. 4), ``distributions`` (Figs. 5/8), ``outcome``
        (Fig. 6); needs ``[plot]``."""
        check_choice("kind", kind, PlotKind)
        from driftstats.plot import adjustment as figs

        fn = {"drift": figs.plot_adjustment_drift, "effect": figs.plot_adjustment_effect,
              "distributions": figs.plot_adjustment_distributions, "outcome": figs.plot_adjustment_outcome}[kind]
        return fn(self, **kwargs)


def _no_iterations_message(log: SimLog) -> str:
    return (f"adjustment_path needs the log's iterations table (one row per model, adjustment path and iteration: "
            f"its persona spec and the run_id of its answers); this log ({log.source}) has no iterations rows, so it "
            "is not a log of an adjustment study. Fix: run the study with `driftstats simulate` and an [adjustment] "
            "section in the study file (the collector writes the iterations and adjustments tables), or pass them to "
            "read_log({'answers': ..., 'iterations': ..., 'adjustments': ...}). For the plain iterations of another "
            "log use nco_test(log) and effect(log), which report every iteration and run on its own.")


def _pick_study(iters: pd.DataFrame, study: str | None) -> str:
    studies = sorted(iters["study"].astype(str).unique())
    if study is None:
        if len(studies) > 1:
            raise InvalidArgumentError(f"study=None, but the log's iterations hold {len(studies)} studies: {studies}. "
                                       "Fix: pass study=<one of them>.")
        return studies[0]
    if study not in studies:
        raise InvalidArgumentError(f"study={study!r} has no iterations rows; studies: {studies}.")
    return study


def _outcome(log: SimLog, outcome: str | None) -> str:
    if outcome is not None:
        log.item(outcome)  # names the item or raises with the list of items
        return outcome
    prim = log.item_names("primary")
    if len(prim) != 1:
        raise InvalidArgumentError(f"outcome= is needed: the log has primary items {list(prim)} (expected exactly one).")
    return prim[0]


def _ncos(log: SimLog, nco: str | Sequence[str] | None) -> list[str]:
    names = list(as_columns("nco", nco)) or list(log.item_names("nco"))
    if not names:
        raise InsufficientDataError(
            "adjustment_path needs diagnostic NCOs (items of role 'nco') to measure drift at each iteration; this log "
            f"declares none (items: {sorted(log.item_names())}). Fix: declare their role in the items table, or pass "
            "nco=[...].")
    for n in names:
        log.item(n)
    return names


def _join_runs(rows: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    rows = rows.copy()
    for c in ("study", "model", "run_id"):
        rows[c] = rows[c].astype(str)
    rows["iteration"] = rows["iteration"].astype("int64")
    return runs.merge(rows, on=list(RUN_KEYS), how="inner")


def _drift(sl: SimLog, ncos: list[str], runs: pd.DataFrame, specs: Mapping[tuple[str, str, int], frozenset[str]],
           adjusted: Mapping[tuple[str, str, int], frozenset[str]], *, margin: float, strata: Any, mode: Mode,
           n_perm: int, conf_level: float, seed: SeedLike) -> tuple[pd.DataFrame, Any, list[str]]:
    from driftstats.nco import equivalence_test, nco_test

    notes: list[str] = []
    with warnings.catch_warnings():
        # the Monte Carlo sentences are in the result's diagnostics; the findings name their own level
        warnings.simplefilter("ignore", MonteCarloErrorWarning)
        res = nco_test(sl, nco=ncos, by=RUN_KEYS, strata=strata, mode=mode, n_perm=n_perm, n_boot=0,
                       conf_level=conf_level, seed=seed)
    t = res.tidy().rename(columns={"term": "nco"})
    cat = [n for n in ncos if sl.item(n).options is not None]
    if cat:
        eq = equivalence_test(sl, margin=margin, nco=cat, method="projection", by=RUN_KEYS, strata=strata, mode=mode,
                              conf_level=conf_level).tidy()
        eq = eq.rename(columns={"term": "nco"})[["nco", "arm", "reference", *RUN_KEYS, "equivalent", "upper_bound"]]
        t = t.merge(eq, on=["nco", "arm", "reference", *RUN_KEYS], how="left")
    else:
        t = t.assign(equivalent=pd.NA, upper_bound=np.nan)
    d = _join_runs(t, runs)
    diag = []
    bad: set[tuple[str, str]] = set()
    for r in d[["model", "path", "iteration", "nco"]].itertuples(index=False):
        key = (str(r.model), str(r.path), int(r.iteration))
        in_spec = r.nco in specs.get(key, frozenset()) or r.nco in adjusted.get(key, frozenset())
        diag.append(not in_spec)
        if in_spec:
            bad.add((str(r.nco), f"{r.model}/{r.path}/{r.iteration}"))
    d["diagnostic"] = pd.array(diag, dtype="boolean")
    d["note"] = d["note"].astype("string")
    d["excess_low"] = np.maximum(d["conf_low"] - d["null_mean"], 0.0)
    d["excess_high"] = np.maximum(d["conf_high"] - d["null_mean"], 0.0)
    if bad:
        names = sorted({n for n, _ in bad})
        notes.append(f"NCOs {names} are in the persona spec at {len(bad)} model/path/iteration(s) (e.g. "
                     f"{sorted(bad)[0][1]}): there they are fidelity checks, not diagnostics (drift rows with diagnostic "
                     "= false), and take no part in the findings. Keep diagnostic NCOs disjoint from the adjusted "
                     "attributes.")
    d["equivalent"] = d["equivalent"].astype("boolean")
    return d[DRIFT_COLUMNS], res, notes


def _effects(sl: SimLog, outcome: str, runs: pd.DataFrame, *, mode: Mode, conf_level: float,
             min_units: int) -> tuple[pd.DataFrame, list[str]]:
    from driftstats.effects import effect

    info = sl.item(outcome)
    ref = sl.reference_arm
    if info.scale == "nominal" and (info.n_levels or 0) > 2:
        why = order_unknown_message(outcome, info.options, use="a mean (mean_diff)")
        rows = [{**r, "arm": a, "reference": ref, "note": f"not testable: {outcome!r} has no known option order"}
                for r in runs.to_dict("records") for a in sl.arm_names if a != ref]
        return pd.DataFrame(rows), [why]
    ud = unit_data(sl, [outcome], mode=mode, persona=False)
    frame = ud.frame.copy()  # its design columns carry each unit's run (study, model, run_id, iteration)
    for c in ("study", "model", "run_id"):
        frame[c] = frame[c].astype(str)
    frame["iteration"] = frame["iteration"].astype("int64")
    keep = runs[list(RUN_KEYS)].drop_duplicates()
    frame = frame.merge(keep, on=list(RUN_KEYS), how="inner")
    frame = frame[["unit_id", "arm", "persona_id", *RUN_KEYS, outcome]]
    if frame[outcome].notna().sum() == 0:
        raise InsufficientDataError(f"no unit of the adjustment runs has a valid answer to {outcome!r} in mode {mode!r}.")
    eff = effect(frame, outcome=outcome, by=RUN_KEYS, reference=ref, tvd=False, conf_level=conf_level,
                 min_units=min_units)
    t = eff.tidy()
    t = t[t["measure"] == "mean_diff"].rename(columns={"term": "outcome"})
    return _join_runs(t, runs), [d for d in eff.diagnostics if "paired design" not in d]


def _vs_reference(e: pd.DataFrame, z: float) -> pd.DataFrame:
    e = e.copy()
    e["vs_reference"] = np.nan
    e["vs_reference_low"] = np.nan
    e["vs_reference_high"] = np.nan
    ref = e[e["path"] == "reference"]
    if ref.empty:
        return e
    ref = ref.sort_values("iteration").groupby(["model", "arm"], sort=False).tail(1)
    ref = ref[["model", "arm", "estimate", "std_error"]].rename(columns={"estimate": "_re", "std_error": "_rs"})
    e = e.merge(ref, on=["model", "arm"], how="left")
    own = e["path"] != "reference"
    diff = e["estimate"] - e["_re"]
    half = z * np.sqrt(e["std_error"] ** 2 + e["_rs"] ** 2)
    e.loc[own, "vs_reference"] = diff[own]
    e.loc[own, "vs_reference_low"] = (diff - half)[own]
    e.loc[own, "vs_reference_high"] = (diff + half)[own]
    return e.drop(columns=["_re", "_rs"])


def _path_order(paths: Sequence[str]) -> dict[str, int]:
    ordered = sorted((p for p in set(paths) if p != "reference"), key=str) + (["reference"] if "reference" in paths
                                                                              else [])
    return {p: i for i, p in enumerate(ordered)}


def _sort(frame: pd.DataFrame, order: Mapping[str, int], cols: Sequence[str]) -> pd.DataFrame:
    if frame.empty:
        return frame.reset_index(drop=True)
    key = frame["path"].map(order)
    return frame.assign(_o=key).sort_values(["model", "_o", *cols], kind="stable").drop(columns="_o") \
        .reset_index(drop=True)


def _stops(iters: pd.DataFrame, adjs: pd.DataFrame, specs: Mapping[tuple[str, str, int], frozenset[str]]) -> pd.DataFrame:
    st = iters.copy()
    added = []
    for r in st.itertuples(index=False):
        key = (str(r.model), str(r.path), int(r.iteration))
        a = adjs[(adjs["model"] == r.model) & (adjs["path"] == r.path) & (adjs["iteration"] == r.iteration)
                 & (adjs["status"] == "added")] if len(adjs) else adjs
        if len(a):
            added.append(json.dumps(sorted(map(str, a["attribute"]))))
            continue
        prev = [k for k in specs if k[0] == key[0] and k[1] == key[1] and k[2] < key[2]]
        before = specs[max(prev, key=lambda k: k[2])] if prev else frozenset()
        added.append(json.dumps(sorted(specs.get(key, frozenset()) - before)) if prev else "[]")
    st["added"] = pd.array(added, dtype="string")
    return st


def adjustment_path(
    log: SimLog | Source,
    *,
    outcome: str | None = None,
    nco: str | Sequence[str] | None = None,
    margin: float = 0.05,
    mode: Mode = "sample",
    strata: str | Literal["auto"] | None = "auto",
    study: str | None = None,
    n_perm: int = DEFAULT_N_PERM,
    n_boot: int = DEFAULT_N_BOOT,
    conf_level: float = 0.95,
    min_units: int = 5,
    seed: SeedLike = DEFAULT_SEED,
) -> AdjustmentResult:
    """Drift on the diagnostic NCOs and the observed effect at every iteration of every adjustment path.

    For each model x path x iteration of the log's ``iterations`` table (the runs of the
    persona-augmentation loop, methods 4.1): (a) the drift of each diagnostic NCO between each
    non-control arm and the control arm (plug-in TVD, excess over the permutation null with the valid
    interval, null mean and 95th percentile, permutation and family-wise p-values, projection
    equivalence at ``margin``); (b) the observed effect on ``outcome`` (difference in mean codes,
    cluster-robust by persona in paired designs); (c) the attributes added and the stopping rules (from
    the ``iterations`` and ``adjustments`` tables); (d) where a ``reference`` path exists (the
    full-information spec), each effect minus the reference's; (e) where the personas table holds
    latent true values of an NCO's attribute, each arm's answers against those true values.

    Parameters
    ----------
    log
        A :class:`~driftstats.SimLog` (or what :func:`~driftstats.read_log` reads) of an adjustment
        study: with ``iterations`` rows (and usually ``adjustments`` rows).
    outcome
        The outcome item (default: the log's single primary item).
    nco
        The diagnostic NCOs (default: every item of role ``nco``). Confounder probes (role
        ``confounder``) are never diagnostics.
    margin
        The equivalence margin on the TVD scale ("no drift beyond margin").
    mode
        ``"sample"`` (sampled answers) or ``"dist"`` (option probabilities).
    strata
        Permutation strata of the drift tests (``"auto"``: within persona in paired designs).
    study
        The study whose iterations to analyse (default: the log's only one).
    n_perm
        Permutations per drift test (default 2000).
    n_boot
        Bootstrap resamples of the approximate intervals of the TVD to the personas' true values
        (``truth``; 0 skips them). The drift intervals are the valid score bands, not bootstrap ones.
    conf_level
        Level of every interval; ``1 - conf_level`` is the level of every decision in the findings.
    min_units
        Fewest units per arm for an effect test.
    seed
        Seed of the permutations and the bootstrap (default 0: reproducible).

    Returns
    -------
    AdjustmentResult
        ``tidy()``: drift rows (``term`` = NCO) and effect rows (``term`` = outcome) grouped by
        ``model``, ``path``, ``iteration``. Frames: ``drift`` (model, path, iteration, nco, arm,
        reference, measure, estimate, excess, excess_low, excess_high, conf_low, conf_high, null_mean,
        null_q95, p_value, p_value_fwer, n_1, n_0, equivalent, upper_bound, diagnostic, note);
        ``effects`` (model, path, iteration, arm, reference, outcome, estimate, std_error, conf_low,
        conf_high, p_value, df, n_1, n_0, vs_reference, vs_reference_low, vs_reference_high, note);
        ``spec`` (the adjustments rows); ``stops`` (the iterations rows plus ``added``);
        ``distributions`` (model, path, iteration, arm, item, role, option, position, share, n);
        ``truth`` (model, path, iteration, arm, nco, estimate, conf_low_approx, conf_high_approx,
        agreement, n, vs_reference, closest); ``paths`` (the findings per model x path x arm).
        ``lines``: the findings as sentences (also in ``summary()``).

    Raises
    ------
    InvalidArgumentError
        The log has no ``iterations`` rows (not an adjustment study: the message says how to make
        one), several studies without ``study=``, an unknown outcome or NCO, an argument out of range.
    InsufficientDataError
        No diagnostic NCO, or no answers of the runs the iterations name.

    Notes
    -----
    Drift *fell* on a path when the mean excess TVD over the NCOs that are diagnostic at every
    iteration drops from the first to the last iteration by more than its noise,
    ``z sqrt(s_first^2 + s_last^2)``, with ``s`` read off the valid intervals as
    ``(conf_high - conf_low) / (2 z)`` (conservative: the valid interval is wider than the plug-in's
    spread). The effect *moved* when its change exceeds ``z sqrt(se_first^2 + se_last^2)``. A path is
    *non-monotone* when two steps change beyond their noise in opposite directions. Runs are treated as
    independent samples (conservative when they share personas). Monte Carlo warnings of the
    permutation tests are not raised; their sentences are in the diagnostics.

    The estimand changes with the spec: at the last iteration the effect refers to the population in
    which the added attributes follow their design distribution (methods 4.1); ``paths["estimand"]``
    says which. The ``reference`` path is a reference, not ground truth.

    References
    ----------
    Lin et al. (2026), The Illusion of Intervention, arXiv:2605.20767. Bias amplification under partial
    adjustment: PMC6095678.

    Examples
    --------
    >>> import driftstats as ds
    >>> log, truth = ds.simulate_adjustment_log(n_personas=150, seed=1)
    >>> res = ds.adjustment_path(log, n_perm=199, n_boot=200)
    >>> res.paths.set_index("path")["drift_fell"].to_dict()
    {'targeted': True, 'untargeted': False}
    """
    conf_level = check_conf_level(conf_level)
    margin = check_margin(margin)
    check_choice("mode", mode, Mode)
    n_perm = check_positive_int("n_perm", n_perm, minimum=19)
    n_boot = check_positive_int("n_boot", n_boot, minimum=0)
    min_units = check_positive_int("min_units", min_units, minimum=2)
    rng = rng_from(seed)
    sl = as_log(log)
    iters = sl.iterations
    if iters.empty:
        raise InvalidArgumentError(_no_iterations_message(sl))
    if mode not in sl.modes:
        raise InvalidArgumentError(f"mode={mode!r}: the log has no answers in that mode; modes: {list(sl.modes)}.")
    study = _pick_study(iters, study)
    iters = iters[iters["study"].astype(str) == study].reset_index(drop=True)
    adjs = sl.adjustments
    adjs = adjs[adjs["study"].astype(str) == study].reset_index(drop=True)
    outcome = _outcome(sl, outcome)
    ncos = _ncos(sl, nco)
    if outcome in ncos:
        raise InvalidArgumentError(f"the outcome {outcome!r} is also listed as an NCO; an NCO must not be the outcome.")
    specs = spec_sets(iters)
    adjusted: dict[tuple[str, str, int], frozenset[str]] = {}
    for r in adjs.itertuples(index=False):
        if r.status in ("specified", "added"):
            key = (str(r.model), str(r.path), int(r.iteration))
            names = {str(r.attribute)} | ({str(r.item)} if pd.notna(r.item) else set())
            adjusted[key] = adjusted.get(key, frozenset()) | frozenset(names)
    runs = iters[[*RUN_KEYS, "path"]].copy()
    for c in ("study", "model", "run_id", "path"):
        runs[c] = runs[c].astype(str)
    runs["iteration"] = runs["iteration"].astype("int64")
    order = _path_order(list(runs["path"]))
    z = float(stats.norm.ppf(1 - (1 - conf_level) / 2))
    diagnostics: list[str] = []

    drift, nres, notes = _drift(sl, ncos, runs, specs, adjusted, margin=margin, strata=strata, mode=mode,
                                n_perm=n_perm, conf_level=conf_level, seed=rng)
    if drift.empty:
        raise InsufficientDataError(
            "no answers of the runs that the iterations table names (study, model, run_id, iteration) reach the NCOs "
            f"{ncos}; check that answers.run_id matches iterations.run_id.")
    diagnostics += notes
    diagnostics += [d for d in nres.diagnostics if d not in diagnostics]
    eff, notes = _effects(sl, outcome, runs, mode=mode, conf_level=conf_level, min_units=min_units)
    diagnostics += [n for n in notes if n not in diagnostics]
    eff = _vs_reference(eff, z)
    for c in EFFECT_COLUMNS:
        if c not in eff:
            eff[c] = np.nan
    eff["outcome"] = outcome
    eff = eff[EFFECT_COLUMNS]
    clustered = nres.glance()["strata"].iloc[0] == "persona_id"
    draws, truth, notes = resample_runs(sl, iters, ncos, mode=mode, reference=sl.reference_arm,
                                        clustered=bool(clustered), n_boot=n_boot, conf_level=conf_level, rng=rng)
    diagnostics += notes
    stops = _stops(iters, adjs, specs)
    dist = distributions(sl, iters, mode=mode)

    drift = _sort(drift, order, ["iteration", "arm", "nco"])
    eff = _sort(eff, order, ["iteration", "arm"])
    truth = _sort(truth, order, ["iteration", "nco", "arm"])
    dist = _sort(dist, order, ["iteration", "item", "arm", "position"])
    stops = _sort(stops, order, ["iteration"])
    adjs = _sort(adjs, order, ["iteration", "attribute"])
    missing = runs.merge(drift[["model", "path", "iteration"]].drop_duplicates(), how="left",
                         on=["model", "path", "iteration"], indicator=True)
    missing = missing[missing["_merge"] == "left_only"]
    if len(missing):
        diagnostics.append(f"{len(missing)} iterations row(s) have no NCO answers (e.g. model {missing['model'].iloc[0]}, "
                           f"path {missing['path'].iloc[0]}, iteration {missing['iteration'].iloc[0]})")
    level = 1.0 - conf_level
    boot = {(str(r.model), str(r.path), int(r.iteration), arm): v for r in runs.itertuples(index=False)
            for (m, run, k, arm), v in draws.items() if (m, run, k) == (r.model, r.run_id, r.iteration)}
    paths = path_findings(drift, eff, stops, adjs, truth, boot, level=level, conf_level=conf_level)
    lines = path_lines(paths, level=level, margin=margin, n_arms=max(drift["arm"].nunique(), 1),
                       n_models=runs["model"].nunique(), reference_paths=bool((runs["path"] == "reference").any()))
    if (runs["path"] == "reference").any():
        diagnostics.append("path 'reference' is the full-information reference spec: a reference, not ground truth")
    diagnostics.append("iteration 0 is one run per model, shared by every path that starts from it: its rows are "
                       "computed once and repeated under each path")

    tidy_rows = pd.concat([
        drift.rename(columns={"nco": "term"}).drop(columns=["excess_low", "excess_high", "diagnostic"])
        .assign(margin=margin),
        eff.rename(columns={"outcome": "term"}).drop(columns=["vs_reference", "vs_reference_low", "vs_reference_high"])
        .assign(measure="mean_diff"),
    ], ignore_index=True)
    tidy_rows = _sort(tidy_rows, order, ["iteration", "measure", "arm", "term"])
    for c in ("equivalent", "note", "n_1", "n_0"):  # typed NA -> None for the tidy builder
        tidy_rows[c] = tidy_rows[c].astype(object).where(tidy_rows[c].notna(), None)
    n_tests = int(np.isfinite(pd.to_numeric(tidy_rows["p_value"], errors="coerce")).sum())
    g = nres.glance().iloc[0]
    info = {"method": "adjustment path: permutation TVD on the NCOs and difference in means per iteration",
            "n_obs": int(g["n_obs"]), "n_groups": len(runs), "conf_level": conf_level, "alternative": None,
            "seed": seed_value(seed), "converged": None, "n_dropped": int(g["n_dropped"]), "n_perm": n_perm,
            "n_boot": n_boot, "n_tests": n_tests, "strata": g["strata"] if pd.notna(g["strata"]) else None}
    frames = {"drift": drift, "effects": eff, "spec": adjs, "stops": stops, "distributions": dist, "truth": truth,
              "paths": paths}
    return AdjustmentResult.build(tidy_rows, info, by=("model", "path", "iteration"), diagnostics=diagnostics,
                                  provenance=provenance("adjustment_path", sl, seed=seed), frames=frames,
                                  lines=tuple(lines), outcome=outcome)
