"""Claiming *no* drift: equivalence tests for the NCO TVD (methods.md section 3.3)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from driftstats._args import check_choice, check_conf_level, check_margin
from driftstats._groups import resolve_by
from driftstats._kernels.equiv import iut_tost, projection_equivalence
from driftstats._kernels.perm import layout
from driftstats._kernels.tvd_ci import EventStats, event_stats, method_name
from driftstats._provenance import provenance
from driftstats._result import Result
from driftstats.errors import InvalidAnswersWarning, InvalidArgumentError
from driftstats.log.query.design import count_answers, resolve_strata
from driftstats.log.simlog import SimLog, Source, as_log
from driftstats.nco._data import PairData, Pairs, extract, resolve_items, resolve_pairs

__all__ = ["EquivMethod", "EquivalenceResult", "equivalence_test", "unit_shares"]

EquivMethod = Literal["iut", "projection"]


@dataclass(frozen=True, slots=True, repr=False)
class EquivalenceResult(Result):
    """Equivalence tests of H0: TV >= margin against H1: TV < margin, per NCO, arm pair and group.

    ``measure`` is ``tvd_iut`` (per-level score TOST, intersection-union) or ``tvd_projection``
    (the valid upper confidence bound of the TVD below the margin); ``p_value_equiv`` is the
    p-value of H0 and ``equivalent`` whether it is rejected at ``1 - conf_level`` (NA on rows
    that cannot be tested, whose ``note`` says why); ``statistic`` is the binding one-sided
    score statistic; ``upper_bound`` is the one-sided ``conf_level`` upper bound of the TVD,
    i.e. the upper end of the valid two-sided ``1 - 2 (1 - conf_level)`` interval that
    :func:`~driftstats._kernels.tvd_ci.tvd_conf_int` (and so ``nco_test``) reports on the same data.
    """

    TITLE: ClassVar[str] = "NCO equivalence test (no drift beyond the margin)"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "estimate", "margin", "upper_bound",
                                          "p_value_equiv", "equivalent")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "n_1", "n_0", "n_levels", "margin",
                                              "upper_bound", "p_value_equiv", "equivalent", "note")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_tests", "strata")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        "Units are independent draws within each arm (or independent matched pairs); the score statistics "
        "are approximately normal (continuity-corrected, variance at the hypothesised value, so empty or "
        "rare levels do not make the test liberal). Units that are not one-hot (distribution mode, "
        "replicates) use an effective sample size estimated from the data and Student t critical values.",
        "Equivalence on the NCOs is not equivalence of the implied populations: NCO-TVD is a lower bound "
        "on latent drift (methods 2.4).",
    )


def unit_shares(pdata: PairData, j: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(x1, x0, paired)``: the share vectors of categorical NCO ``j`` of the units that answered it.

    When the arms are matched 1:1 by the strata (``persona_id`` in a paired design), rows are the
    complete pairs, ``x1[i]`` and ``x0[i]`` one pair; otherwise the two arms' units.
    """
    lay = layout(pdata.arm1_mask, pdata.strata)
    h = pdata.H[:, pdata.blocks.slices[j]].astype(np.float64)
    present = pdata.P[:, j] > 0
    if lay.kind == "pairs":
        ok = present[lay.pair1] & present[lay.pair0]
        return h[lay.pair1[ok]], h[lay.pair0[ok]], True
    return h[lay.arm1 & present], h[~lay.arm1 & present], False


def equivalence_test(
    log: SimLog | Source,
    *,
    margin: float,
    nco: str | Sequence[str] | None = None,
    method: EquivMethod | Sequence[EquivMethod] = ("iut", "projection"),
    by: str | Sequence[str] | None = "auto",
    strata: str | Literal["auto"] | None = "auto",
    reference: str | None = None,
    pairs: Pairs = "reference",
    mode: Literal["sample", "dist"] = "sample",
    conf_level: float = 0.95,
) -> EquivalenceResult:
    """Test "no drift beyond ``margin``" for every NCO: H0: TV >= margin vs H1: TV < margin.

    Non-significance in :func:`nco_test` is not evidence of no drift; this is.

    Parameters
    ----------
    log
        A :class:`~driftstats.SimLog`, a DataFrame or a path.
    margin
        The equivalence margin delta on the TVD scale (e.g. 0.05).
    nco
        NCO items (default: every categorical item with role ``nco``).
    method
        ``"iut"``: per-level TOST of ``|q1k - q0k| >= 2 * margin / K`` with score statistics,
        combined by intersection-union (Berger 1982; no multiplicity correction needed).
        ``"projection"``: the valid one-sided ``conf_level`` upper bound of the TVD is below
        ``margin``; equivalently the intersection-union test of ``Q1(A) - Q0(A) >= margin`` over
        all events ``A`` (with more than 10 levels: a per-level Bonferroni bound). Both are
        level-``1 - conf_level`` tests; the projection test is usually the more powerful for
        ``K > 2`` (they coincide for ``K = 2``). Default: both.
    by
        Grouping columns. Default ``"auto"``: one group per run of the study (``iteration``, plus
        ``study``, ``model`` and ``run_id`` where the log holds several), so answers of different
        models, adjustment paths and iterations are never pooled; ``by=()`` pools everything. An
        unknown column is an error.
    strata
        ``"auto"`` (default): in a paired design (a ``persona_id`` with units in several arms)
        the arms are compared within persona (Tango score statistics on matched pairs); the
        diagnostics and ``glance()["strata"]`` say so. ``None``: independent arms. A column
        name: pairs on that column when it matches the arms 1:1.
    reference, pairs
        ``pairs="reference"`` compares every arm with ``reference`` (default: the control arm);
        ``"all"`` compares every pair of arms.
    mode
        ``"sample"`` (sampled answers) or ``"dist"`` (each unit's option probabilities).
    conf_level
        ``1 - alpha`` of the tests.

    Returns
    -------
    EquivalenceResult
        ``tidy()``: one row per NCO, arm pair, group and method: ``estimate`` (plug-in TVD),
        ``statistic``, ``p_value_equiv``, ``equivalent``, ``upper_bound``, ``margin``, ``n_1``,
        ``n_0``, ``n_levels``, ``note``. Answers flagged invalid are left out (with an
        :class:`~driftstats.errors.InvalidAnswersWarning`); ``glance()["n_dropped"]``
        and the diagnostics count them.

    Raises
    ------
    InvalidArgumentError
        A margin outside (0, 1), an unknown method, ``by`` column or strata, or no categorical NCO.

    Notes
    -----
    Both tests use score statistics (Miettinen-Nurminen for independent arms, Tango for pairs),
    continuity-corrected, with the variance at the hypothesised value: a Wald standard error
    collapses at an empty level and lets a handful of units "prove" equivalence. The upper
    bound is the one of :func:`driftstats._kernels.tvd_ci.tvd_conf_int` at two-sided level
    ``1 - 2 alpha`` (the TOST convention), so the drift interval and this bound agree on the
    same data. "No drift" claims need thousands of simulated users per arm; see
    :func:`nco_power` and :func:`nco_sample_size` before running a study.

    References
    ----------
    Berger (1982), doi:10.1080/00401706.1982.10487759. Miettinen & Nurminen (1985),
    doi:10.1002/sim.4780040211. Tango (1998), doi:10.1002/(SICI)1097-0258(19980430)17:8<891::AID-SIM780>3.0.CO;2-B.

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_nco_log(n_per_arm=3000, tvd=0.0, n_nco=1, n_levels=3, seed=2)
    >>> ds.equivalence_test(log, margin=0.1).tidy()["equivalent"].tolist()
    [True, True]
    """
    margin = check_margin(margin)
    conf_level = check_conf_level(conf_level)
    methods = (method,) if isinstance(method, str) else tuple(method)
    for m in methods:
        check_choice("method", m, EquivMethod)
    check_choice("mode", mode, Literal["sample", "dist"])
    sl = as_log(log)
    by_cols = resolve_by(by, log=sl, columns=sl.columns())
    items = [i for i in resolve_items(sl, nco, role="nco", arg="nco") if i.scale != "numeric"]
    if not items:
        raise InvalidArgumentError("equivalence tests need categorical NCOs; the NCOs given are all numeric.")
    strata_used, why = resolve_strata(sl, strata)
    diagnostics: list[str] = [why] if why else []
    datasets = extract(sl, items, resolve_pairs(sl, "arm", reference, pairs), by=by_cols, strata=strata_used,
                       mode=mode)
    n_invalid = count_answers(sl, [i.item for i in items], mode, valid=False)
    if n_invalid:
        msg = f"{n_invalid} answer row(s) flagged invalid were left out of the equivalence tests"
        warnings.warn(f"equivalence_test: {msg}.", InvalidAnswersWarning, stacklevel=2)
        diagnostics.append(msg)
    alpha = 1 - conf_level
    rows: list[dict[str, Any]] = []
    n_paired = n_unpaired = 0
    for pdata in datasets:
        for j, item in enumerate(pdata.cat_items):
            common = {**pdata.group, "term": item.item, "arm": pdata.arm1, "reference": pdata.arm0,
                      "n_levels": pdata.blocks.sizes[j], "margin": margin}
            x1, x0, paired = unit_shares(pdata, j) if pdata.n_units else (np.zeros((0, 1)),) * 2 + (False,)
            note = _untestable(pdata, x1, x0)
            if note:
                for m in methods:
                    rows.append({**common, "measure": f"tvd_{m}", "n_1": len(x1), "n_0": len(x0),
                                 "equivalent": None, "note": note})
                continue
            n_paired += paired
            n_unpaired += not paired
            st = event_stats(x1, x0, paired=paired)
            common.update(n_1=len(x1), n_0=len(x0), estimate=0.5 * float(np.abs(x1.mean(0) - x0.mean(0)).sum()),
                          upper_bound=float(projection_equivalence(st, margin, conf_level)[0]))
            for m in methods:
                p, z = _test(st, m, margin, conf_level)
                rows.append({**common, "measure": f"tvd_{m}", "statistic": z, "p_value_equiv": p,
                             "equivalent": bool(p < alpha)})
    if strata_used is not None and n_unpaired:
        diagnostics.append(f"strata={strata_used!r} does not match the arms 1:1 in {n_unpaired} comparison(s): "
                           "those arms were analysed as independent samples")
    if n_paired:
        diagnostics.append(f"{n_paired} comparison(s) on matched pairs ({strata_used!r}): Tango score statistics")
    k_max = max((int(s) for p in datasets for s in p.blocks.sizes), default=2)
    diagnostics.append(f"upper bound: {method_name(k_max)}; one-sided at conf_level (the upper end of the "
                       f"valid {1 - 2 * alpha:.0%} interval)")
    for pdata in datasets:
        for note in pdata.notes:
            if note not in diagnostics and "invalid answer" not in note:
                diagnostics.append(note)
    info = {"method": "equivalence (score statistics): " + " + ".join(methods),
            "n_obs": int(sum(p.n_units for p in datasets)), "n_groups": len(datasets), "conf_level": conf_level,
            "alternative": "less", "n_dropped": n_invalid,
            "n_tests": sum(r.get("p_value_equiv") is not None for r in rows), "strata": strata_used}
    return EquivalenceResult.build(rows, info, by=by_cols, diagnostics=diagnostics,
                                   provenance=provenance("equivalence_test", sl))


def _untestable(pdata: PairData, x1: np.ndarray, x0: np.ndarray) -> str | None:
    if pdata.n_units == 0:
        return "not testable: " + ("; ".join(pdata.notes) or "no units")
    if len(x1) == 0 or len(x0) == 0:
        arm = pdata.arm1 if len(x1) == 0 else pdata.arm0
        return f"not testable: arm {arm!r} has no valid answers to this NCO"
    return None


def _test(st: EventStats, method: str, margin: float, conf_level: float) -> tuple[float, float]:
    if method == "iut":
        p, z = iut_tost(st, margin)
    else:
        _, p, z = projection_equivalence(st, margin, conf_level)
    return float(p), float(z)
