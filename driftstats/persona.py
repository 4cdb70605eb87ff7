"""Persona fidelity: are the specified persona attributes still reported after the intervention?

For unit i with specified attributes P_i, re-elicited by items of role ``fidelity``:
``fid_i = (1/m_i) sum_j 1[reported_ij = specified_ij]`` (methods.md section 3.4). In
distribution mode the indicator is replaced by the probability of the specified option.
A fidelity difference across arms means drift has reached even the specified attributes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from driftstats._args import (
    as_columns,
    check_choice,
    check_conf_level,
    check_positive_int,
)
from driftstats._groups import plain, resolve_by
from driftstats._kernels.proportions import EXACT_BELOW, paired_2x2, score_2indep
from driftstats._kernels.wald import wald
from driftstats._provenance import provenance
from driftstats._result import Result
from driftstats.errors import (
    InsufficientDataError,
    InvalidAnswersWarning,
    InvalidArgumentError,
    PersonaValueWarning,
)
from driftstats.log.query.design import PAIRING_COLUMN, count_answers, paired_design
from driftstats.log.query.fidelity import fidelity_answers
from driftstats.log.simlog import SimLog, Source, as_log
from driftstats.nco._data import Pairs, resolve_pairs

__all__ = ["MIN_UNITS", "FidelityResult", "fidelity"]

#: Fewest personas per arm (matched pairs when paired) for a fidelity test.
MIN_UNITS = 5

#: The test of each kind of row (``measure``).
MEASURES = {
    ("independent", True): "score test",
    ("paired", True): "McNemar",
    ("independent", False): "Welch t",
    ("paired", False): "paired t",
}


@dataclass(frozen=True, slots=True, repr=False)
class FidelityResult(Result):
    """Fidelity per attribute (and ``overall``) x arm pair x group: one test per row.

    ``share_1``/``share_0``: fidelity in ``arm`` / ``reference`` (mean over personas of the
    share of their answers that report the specified value); ``estimate``: their difference;
    ``n_1``/``n_0``: personas (the analysis units) per arm, matched pairs when paired.
    ``measure`` names the row's test; statistic, ``df``, p-value and interval come from it:

    * ``score test``: independent arms, one answer per persona: Miettinen-Nurminen score test
      (``statistic`` = z) and the score interval that inverts it;
    * ``McNemar`` / ``McNemar exact``: paired arms, one answer per persona and arm: McNemar's
      chi-square (``df`` = 1) or, with fewer than 25 discordant pairs, the exact binomial test
      (``statistic`` = pairs in which only ``arm`` reports the specified value), with Tango's
      score interval for the paired difference;
    * ``Welch t`` / ``paired t``: fractional scores (replicates, several units per persona,
      distribution mode, and always the ``overall`` row): Welch's t (Welch-Satterthwaite
      ``df``) or the paired t (``df`` = pairs - 1), interval clipped to [-1, 1].

    A row without a test (too few personas, no variation, no discordant pairs) has NaN
    statistic and p-value and a ``note`` saying why.
    """

    TITLE: ClassVar[str] = "Persona fidelity (specified attributes re-asked after the intervention)"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "share_1", "share_0", "estimate",
                                          "conf_low", "conf_high", "p_value", "note")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "n_1", "n_0", "share_1", "share_0", "df",
                                              "note")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_tests", "strata")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        "The fidelity item's options use the same labels as the persona table's values (units whose specified "
        "value is not an option are left out and counted in the diagnostics).",
        "Personas are independent of each other; a persona's units within an arm are averaged (the persona is "
        "the unit of analysis), and matched personas are compared within persona.",
        "Score and t tests are asymptotic: each row needs at least min_units personas (pairs) per arm.",
    )

    def shares(self) -> pd.DataFrame:
        """Fidelity share per arm, attribute and group (long format, for plots)."""
        t = self.table
        keep = ["term", *self.by]
        a = t[[*keep, "arm", "share_1", "n_1"]].rename(columns={"share_1": "share", "n_1": "n"})
        r = t[[*keep, "reference", "share_0", "n_0"]].rename(columns={"reference": "arm", "share_0": "share", "n_0": "n"})
        return pd.concat([r, a], ignore_index=True).drop_duplicates(subset=[*keep, "arm"]).reset_index(drop=True)

    def plot(self, **kwargs: Any) -> Any:
        """Fidelity by attribute and arm (paper Fig. 7); needs ``[plot]``."""
        from driftstats.plot import plot_fidelity

        return plot_fidelity(self, **kwargs)


# ----------------------------------------------------------------------------------- the tests
def _persona_table(scores: pd.DataFrame, group_cols: Sequence[str]) -> pd.DataFrame:
    """Per group x term x arm x persona: the mean of its units' scores, its units and its answers.

    ``scores`` has one row per unit x attribute; the ``overall`` term is the unit's mean over
    attributes. A unit without ``persona_id`` is its own persona. Personas are integer codes.
    """
    overall = (scores.groupby([*group_cols, "arm", "unit_id", "persona_id"], dropna=False, sort=False)
               .agg(score=("score", "mean"), n_answers=("n_answers", "sum")).reset_index()
               .assign(attribute="overall"))
    both = pd.concat([scores[[*group_cols, "arm", "unit_id", "persona_id", "attribute", "score", "n_answers"]],
                      overall], ignore_index=True)
    pid = both["persona_id"].astype(object)
    key = pid.where(pid.notna(), "\x00unit:" + both["unit_id"].astype(object))
    both["persona"] = pd.factorize(key)[0]
    both["arm"] = both["arm"].astype(object)
    both["attribute"] = both["attribute"].astype(object)
    return (both.groupby([*group_cols, "attribute", "arm", "persona"], dropna=False, sort=True)
            .agg(score=("score", "mean"), units=("score", "size"), answers=("n_answers", "sum")).reset_index())


def _t_row(d1: np.ndarray, d0: np.ndarray | None, conf_level: float) -> dict[str, Any]:
    """Welch (``d0`` given) or paired t (``d1`` holds the differences) through :func:`wald`."""
    if d0 is None:
        m = d1.size
        est, se, df = float(d1.mean()), float(d1.std(ddof=1) / math.sqrt(m)), m - 1.0
    else:
        v1, v0 = d1.var(ddof=1) / d1.size, d0.var(ddof=1) / d0.size
        est = float(d1.mean() - d0.mean())
        se = math.sqrt(v1 + v0)
        den = v1**2 / (d1.size - 1) + v0**2 / (d0.size - 1)
        df = (v1 + v0) ** 2 / den if den > 0 else math.nan
    row = dict(wald(est, se, conf_level, df=df, bounds=(-1.0, 1.0)))
    row["df"] = df if math.isfinite(row["p_value"]) else math.nan
    return row


def _compare(s1: tuple[np.ndarray, np.ndarray], s0: tuple[np.ndarray, np.ndarray], *, paired: bool, binary: bool,
             conf_level: float, min_units: int) -> dict[str, Any]:
    """One row: the test that fits the design (see :class:`FidelityResult`); ``s1``/``s0`` are
    (persona codes, persona scores) of ``arm`` / ``reference``."""
    kind = "paired" if paired else "independent"
    measure = MEASURES[(kind, binary)]
    (p1, x1), (p0, x0) = s1, s0
    x1, x0 = np.asarray(x1, float), np.asarray(x0, float)
    if paired:
        _, i1, i0 = np.intersect1d(p1, p0, assume_unique=True, return_indices=True)
        x1, x0 = x1[i1], x0[i0]
    n1, n0 = x1.size, x0.size
    share_1 = float(x1.mean()) if n1 else math.nan
    share_0 = float(x0.mean()) if n0 else math.nan
    row: dict[str, Any] = {"measure": measure, "n_1": n1, "n_0": n0, "share_1": share_1, "share_0": share_0,
                           "estimate": share_1 - share_0}
    if min(n1, n0) < min_units:
        what = "matched pair(s)" if paired else "persona(s) in an arm"
        row["note"] = f"not testable: {min(n1, n0)} {what}; the minimum is min_units = {min_units}"
        return row
    allx = np.r_[x1, x0]
    if np.ptp(allx) == 0:
        row["estimate"] = 0.0
        row["note"] = f"not testable: every persona in both arms has fidelity {allx[0]:g} (no variation)"
    if binary and paired:
        b = int(np.sum((x1 == 1) & (x0 == 0)))
        c = int(np.sum((x1 == 0) & (x0 == 1)))
        res = paired_2x2(b, c, n1, conf_level)
        if b + c and b + c < EXACT_BELOW:
            row["measure"] = "McNemar exact"
        if b + c == 0 and "note" not in row:
            row["note"] = "not testable: no discordant pairs (every persona reports the same in both arms)"
        row.update(res)
    elif binary:
        row.update(score_2indep(int(x1.sum()), n1, int(x0.sum()), n0, conf_level))
    else:
        row.update(_t_row(x1 - x0, None, conf_level) if paired else _t_row(x1, x0, conf_level))
        if "note" not in row and not math.isfinite(row["p_value"]):
            row["note"] = ("not testable: every pair has the same difference (no variation)" if paired
                           else "not testable: no variation within either arm")
    return row


def _unmatched_message(fa: Any) -> list[str]:
    out = []
    for r in fa.not_option.itertuples():
        out.append(f"{r.units} unit(s) have a specified {r.attribute!r} that is not an option of fidelity item "
                   f"{r.item!r} (e.g. {r.example_value!r}; options {r.options}): they can never report it, so their "
                   f"{r.answers} answer(s) are left out of the fidelity share (not counted as failures)")
    for r in fa.no_spec.itertuples():
        out.append(f"{r.units} unit(s) answered fidelity item {r.item!r} but have no specified {r.attribute!r} "
                   f"in the personas table: their {r.answers} answer(s) are left out")
    return out


def fidelity(
    log: SimLog | Source,
    *,
    items: str | Sequence[str] | None = None,
    by: str | Sequence[str] | None = "auto",
    reference: str | None = None,
    pairs: Pairs = "reference",
    paired: bool | None = None,
    mode: Literal["sample", "dist"] = "sample",
    conf_level: float = 0.95,
    min_units: int = MIN_UNITS,
) -> FidelityResult:
    """Share of specified persona attributes reported correctly, per arm, and arm differences.

    Parameters
    ----------
    log
        A log (or a path / DataFrame read as one) with a personas table of specified values.
    items
        Fidelity items; default: every item with role ``fidelity``. Each item's ``attribute``
        names the persona attribute it re-asks.
    by
        Grouping columns. Default ``"auto"``: one group per run of the study (``iteration``, plus
        ``study``, ``model`` and ``run_id`` where the log holds several), so answers of different
        models, adjustment paths and iterations are never pooled; ``by=()`` pools everything. An
        unknown column is an error.
    reference, pairs
        The arms compared: each arm against ``reference`` (default: the control arm), or
        ``pairs="all"``.
    paired
        ``None`` (default): the project rule (:func:`~driftstats.log.query.design.paired_design`):
        paired tests when some persona has units in both compared arms; ``True`` requires it;
        ``False`` compares the arms as independent samples.
    mode
        ``"sample"`` (sampled answers) or ``"dist"`` (the probability of the specified option).
    conf_level
        Confidence level of the intervals.
    min_units
        Fewest personas per arm (matched pairs when paired) for a test (default 5); rows below
        it carry the shares and a ``note`` but no test.

    Returns
    -------
    FidelityResult
        One row per attribute (and ``overall``: the per-unit fidelity score averaged over
        attributes) x arm pair x group; see :class:`FidelityResult` for the test of each row.

    Raises
    ------
    InvalidArgumentError
        No fidelity items, an item without ``attribute``, an unknown ``by`` column, or
        ``paired=True`` in a design without matched personas.
    InsufficientDataError
        No fidelity answer can be matched to a specified persona value.

    Warns
    -----
    InvalidAnswersWarning
        Invalid answers of the fidelity items were left out (count in the message).
    PersonaValueWarning
        Units whose specified value is not an option of the item (or that have no specified
        value) were left out (counts in the message and the diagnostics).

    Notes
    -----
    The unit of analysis is the persona: a persona's units within an arm are averaged (so
    several units or replicates per persona never count as independent evidence, and a paired
    comparison matches one persona mean per arm, never units x units). Binary rows (one
    sampled answer per persona and arm) use the proportion tests; fractional scores use t
    tests. The score test's largest size over the common fidelity rate is 6.2% at 5 personas
    per arm, 5.3% at 8 and 4.2% at 10 (exact enumeration); McNemar's exact test never exceeds
    the nominal level. Tango's interval inverts the asymptotic McNemar test, so with few
    discordant pairs it can exclude 0 while the exact p-value is above 1 - conf_level.

    References
    ----------
    Miettinen O, Nurminen M (1985). Comparative analysis of two rates. *Statistics in Medicine*
    4:213-226. doi:10.1002/sim.4780040211.
    Tango T (1998). Equivalence test and confidence interval for the difference in proportions
    for the paired-sample design. *Statistics in Medicine* 17:891-908.
    McNemar Q (1947). *Psychometrika* 12:153-157. doi:10.1007/BF02295996.

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_fidelity_log(n_per_arm=80, fidelity=(0.9, 0.7), seed=3)
    >>> res = ds.fidelity(log)
    >>> res.tidy()[["term", "measure"]].values.tolist()
    [['age', 'McNemar'], ['party', 'McNemar exact'], ['overall', 'paired t']]
    """
    conf_level = check_conf_level(conf_level)
    check_choice("mode", mode, Literal["sample", "dist"])
    min_units = check_positive_int("min_units", min_units, minimum=2)
    if paired not in (None, True, False):
        raise InvalidArgumentError(f"paired must be None, True or False; got {paired!r}.")
    sl = as_log(log)
    names = as_columns("items", items) or sl.item_names("fidelity")
    if not names:
        raise InvalidArgumentError(
            "this log has no fidelity items (role 'fidelity'); pass items=[...] naming the items that "
            "re-ask persona attributes."
        )
    infos = [sl.item(n) for n in names]
    missing = [i.item for i in infos if i.attribute is None]
    if missing:
        raise InvalidArgumentError(
            f"fidelity items {missing} do not name the persona attribute they re-ask (items.attribute). "
            "Fix: set the attribute column of the items table."
        )
    by_cols = list(resolve_by(by, log=sl, columns=sl.columns()))
    diagnostics: list[str] = []
    n_invalid = count_answers(sl, names, mode, valid=False)
    if n_invalid:
        msg = f"{n_invalid} invalid answer row(s) (valid = false) of the fidelity items were left out"
        warnings.warn(msg, InvalidAnswersWarning, stacklevel=2)
        diagnostics.append(msg)
    fa = fidelity_answers(sl, names, by_cols, mode)
    unmatched = _unmatched_message(fa)
    if unmatched:
        warnings.warn("; ".join(unmatched), PersonaValueWarning, stacklevel=2)
        diagnostics += unmatched
    rows_in = fa.rows
    if rows_in.empty:
        raise InsufficientDataError(
            "no fidelity answers could be matched to specified persona values (personas table, "
            "specified = true, same attribute as items.attribute, a value among the item's options)."
        )
    # unit x attribute scores (several items may re-ask one attribute), then persona means per arm
    group_cols = [f"g_{b}" for b in by_cols]
    scores = (rows_in.groupby([*group_cols, "arm", "unit_id", "persona_id", "attribute"], dropna=False, sort=False)
              .agg(hits=("hits", "sum"), weight=("weight", "sum"), n_answers=("n_answers", "sum")).reset_index())
    scores["score"] = scores["hits"] / scores["weight"]
    per = _persona_table(scores, group_cols)
    arm_pairs = resolve_pairs(sl, "arm", reference, pairs)
    design = {p: paired_design(sl, list(p)) for p in arm_pairs}
    if paired is True and not any(design.values()):
        raise InvalidArgumentError(
            "paired=True, but no persona_id has units in both compared arms. Fix: paired=None (the default "
            "detects matched personas) or paired=False.")
    use_pair = {p: design[p] if paired is None else (paired and design[p]) for p in arm_pairs}
    terms = [*dict.fromkeys(i.attribute for i in infos), "overall"]
    rows: list[dict[str, Any]] = []
    dropped_unpaired: dict[tuple[str, str], set[int]] = {}
    several = int(per.loc[(per["attribute"] == "overall") & (per["units"] > 1), "persona"].nunique())
    index = per.groupby([*group_cols, "attribute"], dropna=False, sort=True).indices
    arm_v = per["arm"].to_numpy(dtype=object)
    cols = {c: per[c].to_numpy() for c in ("persona", "score", "units", "answers")}
    groups = list(dict.fromkeys(k[:-1] if isinstance(k, tuple) else () for k in index))
    for gkey in groups:
        group = {b: plain(v) for b, v in zip(by_cols, gkey, strict=True)}
        for arm1, arm0 in arm_pairs:
            for term in terms:
                idx = index.get((*gkey, term) if group_cols else term)
                if idx is None:
                    continue
                arms_here = arm_v[idx]
                i1, i0 = idx[arms_here == arm1], idx[arms_here == arm0]
                if not i1.size and not i0.size:
                    continue
                is_paired = use_pair[(arm1, arm0)]
                if is_paired:
                    lone = set(cols["persona"][i1]) ^ set(cols["persona"][i0])
                    dropped_unpaired.setdefault((arm1, arm0), set()).update(lone)
                both = np.r_[i1, i0]
                binary = (mode == "sample" and term != "overall" and bool((cols["units"][both] == 1).all())
                          and bool((cols["answers"][both] == 1).all()))
                row = _compare((cols["persona"][i1], cols["score"][i1]), (cols["persona"][i0], cols["score"][i0]),
                               paired=is_paired, binary=binary, conf_level=conf_level, min_units=min_units)
                rows.append({**group, "term": term, "arm": arm1, "reference": arm0, **row})
    strata = PAIRING_COLUMN if any(use_pair.values()) else None
    for (a1, a0), p in use_pair.items():
        if p:
            diagnostics.append(
                f"paired design detected (persona_id shared across arms {a1!r} and {a0!r}): fidelity is compared "
                "within persona (McNemar / paired t); pass paired=False for an unpaired analysis")
        elif design[(a1, a0)]:
            diagnostics.append(f"paired=False: arms {a1!r} and {a0!r} share personas but are compared as "
                               "independent samples")
    for (a1, a0), lone in dropped_unpaired.items():
        if lone:
            diagnostics.append(f"{len(lone)} persona(s) have units in only one of {a1!r} / {a0!r}: they are left out "
                               "of the paired comparisons")
    if several:
        diagnostics.append(f"{several} persona(s) have several units in an arm: their units' fidelity scores are "
                           "averaged within the arm (the persona is the unit of analysis)")
    n_left = int(fa.not_option["answers"].sum() + fa.no_spec["answers"].sum()) if len(unmatched) else 0
    info = {"method": "persona fidelity", "n_obs": int(rows_in["n_answers"].sum()),
            "n_groups": int(rows_in["persona_id"].fillna(rows_in["unit_id"]).nunique()),
            "conf_level": conf_level, "alternative": "two-sided", "n_dropped": n_invalid + n_left,
            "n_tests": sum(1 for r in rows if math.isfinite(r.get("p_value", math.nan))), "strata": strata}
    return FidelityResult.build(rows, info, by=by_cols, diagnostics=diagnostics,
                                provenance=provenance("fidelity", sl))
