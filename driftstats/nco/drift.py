"""``nco_test``: does the distribution of negative control outcomes differ across arms?"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from driftstats._args import (
    DEFAULT_N_BOOT,
    DEFAULT_N_PERM,
    DEFAULT_SEED,
    check_choice,
    check_conf_level,
    check_positive_int,
    rng_from,
    seed_value,
)
from driftstats._groups import resolve_by
from driftstats._kernels.tvd import bh_adjust, holm_adjust
from driftstats._provenance import provenance
from driftstats._result import Result
from driftstats.errors import (
    InsufficientDataError,
    InvalidAnswersWarning,
    InvalidArgumentError,
    MonteCarloErrorWarning,
)
from driftstats.log.query import nco as q
from driftstats.log.query.design import paired_design, resolve_strata
from driftstats.log.simlog import SimLog, Source, as_log
from driftstats.nco._data import (
    CountData,
    PairData,
    Pairs,
    counts_eligible,
    extract,
    extract_counts,
    resolve_items,
    resolve_pairs,
)
from driftstats.nco._engine import PairOutcome, analyse_pair
from driftstats.nco._engine_counts import analyse_count_data

__all__ = ["NcoTestResult", "nco_test"]

Mode = Literal["sample", "dist"]
Engine = Literal["auto", "exact", "counts"]
Adjust = Literal["fwer", "holm", "bh", "none"]

#: ``engine="auto"`` switches to the count-table engine above about this many unit-permutations
COUNTS_THRESHOLD = 2e8
#: A permutation p-value within this many Monte Carlo standard errors of the decision level
#: raises :class:`~driftstats.errors.MonteCarloErrorWarning` (see :func:`nco_test`, Notes).
MC_SE_BAND = 2.0

NCO_ASSUMPTIONS = (
    "N1 (exclusion): the intervention changes an NCO's report only through who the simulated user "
    "is (N is independent of T given U and the persona spec). Ask NCOs in forked branches, not after the outcome.",
    "A small NCO TVD does not bound the bias of the effect: NCO-TVD is a lower bound on latent drift "
    "(data-processing inequality), never an upper bound, unless the NCOs capture everything about U that drives Y.",
    "The permutation test has exact size under H0: P(N | arm) identical across the two arms, with units "
    "(or, with strata, units within strata) exchangeable.",
    "Family-wise p-values (min-p) control the family-wise error under the complete null of the family (no NCO "
    "drifts); the count-table engine takes the joint law of the NCOs from its Gaussian limit (large n).",
)


@dataclass(frozen=True, slots=True, repr=False)
class NcoTestResult(Result):
    """Drift tests per NCO x arm pair x group.

    ``tidy()``: ``estimate`` = plug-in TVD (KS D for numeric NCOs); ``p_value`` = permutation
    p-value; ``conf_low``/``conf_high`` = the *valid* interval of
    :mod:`driftstats._kernels.tvd_ci` (paired when units are matched 1:1);
    ``conf_low_approx``/``conf_high_approx`` = basic-bootstrap interval, **approximate**
    (it under-covers near TV = 0); ``null_mean``/``null_q95`` = permutation null;
    ``excess`` = max(estimate - null_mean, 0); ``estimate_bc`` = bootstrap bias-corrected;
    ``p_value_fwer`` = min-p family-wise p on the same permutations, ``p_value_holm``,
    ``p_value_bh`` within each family (NCOs of one arm pair in one group); ``mean_shift``
    with a Welch (paired t with pairs) interval for ordinal and numeric NCOs; ``note`` =
    why a row carries no test ("not testable: ..."; such rows take no part in any adjustment
    and are never listed by :meth:`drifted`).
    """

    TITLE: ClassVar[str] = "NCO drift test (permutation TVD)"
    DISPLAY: ClassVar[tuple[str, ...]] = (
        "arm", "reference", "measure", "estimate", "excess", "p_value", "p_value_fwer", "conf_low", "conf_high",
    )
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = (
        "arm", "reference", "measure", "n_1", "n_0", "n_levels", "null_mean", "null_q95", "excess",
        "estimate_bc", "conf_low_approx", "conf_high_approx", "p_value_fwer", "p_value_holm", "p_value_bh",
        "mean_shift", "mean_shift_low", "mean_shift_high", "note",
    )
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_perm", "n_boot", "n_tests", "strata")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = NCO_ASSUMPTIONS

    distributions: pd.DataFrame = field(default_factory=pd.DataFrame)

    def drifted(self, *, level: float = 0.05, adjust: Adjust = "fwer") -> pd.DataFrame:
        """Rows whose (adjusted) p-value is below ``level``; rows that are not testable never are."""
        check_choice("adjust", adjust, Adjust)
        col = {"fwer": "p_value_fwer", "holm": "p_value_holm", "bh": "p_value_bh", "none": "p_value"}[adjust]
        t = self.table
        return t[(t[col] < level).fillna(False) & t["note"].isna()].reset_index(drop=True)

    def plot(self, kind: Literal["forest", "iterations", "distributions"] = "forest", **kwargs: Any) -> Any:
        """Forest plot of excess TVD, TVD over iterations, or NCO distributions (needs ``[plot]``)."""
        from driftstats.plot import plot_nco

        return plot_nco(self, kind=kind, **kwargs)


def nco_test(
    log: SimLog | Source,
    *,
    nco: str | Sequence[str] | None = None,
    arm: str = "arm",
    by: str | Sequence[str] | None = "auto",
    strata: str | Literal["auto"] | None = "auto",
    reference: str | None = None,
    pairs: Pairs = "reference",
    mode: Mode = "sample",
    n_perm: int = DEFAULT_N_PERM,
    n_boot: int = DEFAULT_N_BOOT,
    conf_level: float = 0.95,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
    engine: Engine = "auto",
) -> NcoTestResult:
    """Test every NCO for drift between arms, with valid inference.

    For each NCO x arm pair x group in ``by``: the plug-in TVD, its permutation null
    (units relabelled; within ``strata`` when given), the permutation p-value, the excess
    over the null mean, the valid interval (score band over events), an approximate basic-bootstrap interval and a
    bias-corrected estimate; ordinal NCOs also get the mean shift, numeric NCOs the KS
    distance and a Welch mean difference. Across the NCOs of one arm pair and group: min-p
    family-wise p-values on the same permutations, Holm and BH.

    Parameters
    ----------
    log
        A :class:`~driftstats.SimLog`, a DataFrame or a path (read with :func:`read_log`).
    nco
        NCO items; default: every item with role ``nco``.
    arm
        The arm column (must be ``"arm"``, the schema column).
    by
        Grouping columns. Default ``"auto"``: one group per run of the study (``iteration``, plus
        ``study``, ``model`` and ``run_id`` where the log holds several), so answers of different
        models, adjustment paths and iterations are never pooled; ``by=()`` pools everything. An
        unknown column is an error.
    strata
        ``"auto"`` (default): permute within persona (``persona_id``) when the design is paired
        (a persona has units in several arms; diagnostics and ``glance()["strata"]`` say so),
        without strata otherwise. A column of the answers or a persona attribute permutes
        within its values; ``None`` opts out of pairing.
    reference, pairs
        ``pairs="reference"`` compares every arm with ``reference`` (default: the control arm);
        ``"all"`` compares every pair of arms.
    mode
        ``"sample"`` (sampled answers) or ``"dist"`` (option probabilities; each unit
        contributes its probability vector).
    n_perm, n_boot
        Permutations and bootstrap resamples (``n_boot=0`` skips the bootstrap); defaults
        ``DEFAULT_N_PERM`` and ``DEFAULT_N_BOOT`` (2000), as in every verb.
    conf_level
        Level of every interval; ``1 - conf_level`` is the level of the decisions checked for
        Monte Carlo error (Notes).
    seed
        Seed or ``numpy.random.Generator``; default 0: results are reproducible; seed=None draws
        fresh entropy. Recorded in ``glance()["seed"]`` and the provenance.
    engine
        ``"exact"``: unit-level permutations shared by all NCOs (any design). ``"counts"``:
        count tables of sampled answers (replicates included), without strata or within matched
        pairs: exact per-NCO nulls from hypergeometric (binomial, with pairs) draws over answer
        patterns, family-wise p-values from the Gaussian limit of the joint permutation law.
        ``"auto"`` (default) uses ``"counts"`` when it applies and the log has more than about
        ``COUNTS_THRESHOLD / n_perm`` units, ``"exact"`` otherwise.

    Returns
    -------
    NcoTestResult
        ``tidy()``: one row per NCO x arm pair x group with ``term``, the ``by`` columns,
        ``estimate`` (TVD, or KS D), ``statistic`` (Pearson chi-square, or D), ``p_value``,
        ``conf_low``/``conf_high`` (valid interval), ``arm``, ``reference``, ``measure``,
        ``n_1``, ``n_0``, ``n_levels``, ``null_mean``, ``null_q95``, ``excess``,
        ``estimate_bc``, ``conf_low_approx``/``conf_high_approx`` (approximate), ``p_value_fwer``,
        ``p_value_holm``, ``p_value_bh``, ``mean_shift`` (with its interval) and ``note``.
        ``glance()``: ``n_perm``, ``n_boot``, ``n_tests`` (rows carrying a test), ``strata``,
        ``seed`` and the core fields.

    Raises
    ------
    InvalidArgumentError
        An argument is not allowed (unknown ``by`` column, strata, reference, engine, ...).
    InsufficientDataError
        No answers at all in ``mode``, or not a single row can be tested.

    Warns
    -----
    InvalidAnswersWarning
        Invalid answer rows (``valid = false``) were left out (with their count).
    MonteCarloErrorWarning
        A family-wise decision at level ``1 - conf_level`` is within Monte Carlo error, or
        ``n_perm`` (or the design) cannot reach that level at all.

    Notes
    -----
    A permutation p-value is ``(1 + #{T_b >= T_obs}) / (B + 1)``: the observed labelling is one
    of the ``B + 1`` equally likely configurations, and the min-p family-wise adjustment ranks
    every configuration, the observed included, the same way (Westfall & Young 1993). Ties are
    exact: sampled answers are integer counts and every TVD is one division of exact integers.

    A row is *not testable* when its NCO has no valid answer in one of the two arms (or a whole
    arm is missing from a group): its statistic, p-values and intervals are NaN, ``note`` says
    why, and it takes no part in the family-wise, Holm or BH adjustments. When no row at all
    is testable, :class:`~driftstats.errors.InsufficientDataError` is raised.

    Monte Carlo rule: the reported decision is the family-wise one (:meth:`NcoTestResult.drifted`
    and the audit's verdict use ``p_value_fwer < a``, ``a = 1 - conf_level``). A ``p_value_fwer``
    within ``MC_SE_BAND`` (2) Monte Carlo standard errors ``sqrt(p (1 - p) / B)`` of ``a`` raises
    :class:`~driftstats.errors.MonteCarloErrorWarning` (another seed could flip the decision),
    with the ``n_perm`` that would settle it, as does ``1 / (B + 1) >= a`` (no p-value can fall
    below ``a``) or a design with fewer than ``1 / a`` distinct relabellings. The warning and
    its counts go to the diagnostics.

    The plug-in TVD is biased upward (methods 3.1): compare NCOs, iterations and models by
    ``excess``, not by ``estimate``. The valid interval (a continuity-corrected score band over
    events, :mod:`driftstats._kernels.tvd_ci`) covers at least ``conf_level``, also with empty or
    rare levels; it is wider than the plug-in's sampling spread (about 1.1x for K = 2, 1.5x for
    K = 5, 1.8x for K = 10; ``bench/results/interval_coverage.txt``) because the TVD is not
    differentiable where levels tie. The bootstrap interval is approximate: the bootstrap is inconsistent for the TVD at points of
    non-differentiability (Fang & Santos 2019) and under-covers near TV = 0.

    References
    ----------
    Lin et al. (2026), arXiv:2605.20767. Westfall, P. H. & Young, S. S. (1993), Resampling-Based
    Multiple Testing, Wiley. Holm (1979), Scand. J. Statist. 6:65-70. Benjamini & Hochberg
    (1995), doi:10.1111/j.2517-6161.1995.tb02031.x. Fang & Santos (2019), doi:10.1093/restud/rdy049.

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_nco_log(n_per_arm=60, tvd=0.0, n_nco=2, seed=1)
    >>> res = ds.nco_test(log, n_perm=199, n_boot=0)
    >>> list(res.tidy()["term"])
    ['nco_1', 'nco_2']
    >>> int(res.glance()["seed"].iloc[0])
    0
    """
    conf_level = check_conf_level(conf_level)
    n_perm = check_positive_int("n_perm", n_perm, minimum=19)
    n_boot = check_positive_int("n_boot", n_boot, minimum=0)
    check_choice("mode", mode, Mode)
    check_choice("engine", engine, Engine)
    rng = rng_from(seed)
    sl = as_log(log)
    by_cols = resolve_by(by, log=sl, columns=sl.columns())
    items = resolve_items(sl, nco, role="nco", arg="nco")
    arm_pairs = resolve_pairs(sl, arm, reference, pairs)
    arms = sorted({a for p in arm_pairs for a in p})
    names = [i.item for i in items]
    strata_used, strata_why = resolve_strata(sl, strata)
    diagnostics: list[str] = []
    if strata_why:
        diagnostics.append(strata_why)

    n_obs, n_dropped, replicates = q.answer_counts(sl, names, arms, mode)
    if n_dropped:
        warnings.warn(f"nco_test: {n_dropped} invalid answer row(s) (valid = false) of {n_dropped + n_obs} in mode "
                      f"{mode!r} were left out of the drift tests.", InvalidAnswersWarning, stacklevel=2)

    comparisons: list[PairData | CountData] | None = None
    why_not: str | None = "not requested"
    if engine != "exact":
        why_not, base = counts_eligible(items, mode, replicates)
        if engine == "counts" and why_not:
            raise InvalidArgumentError(f"engine='counts' cannot be used here: {why_not}. Use engine='exact'.")
        n_units = n_obs / (len(items) * max(replicates, 1))  # about (units answer most NCOs)
        if engine == "auto" and why_not is None and n_units * n_perm < COUNTS_THRESHOLD:
            why_not = "small log"
        if why_not is None:
            comparisons = extract_counts(sl, items, arm_pairs, by=by_cols, strata=strata_used, base=base)
            if comparisons is None and engine == "counts":
                raise InvalidArgumentError(
                    f"engine='counts' cannot be used here: with strata={strata_used!r} it needs matched pairs (one unit "
                    "of each arm per stratum). Use engine='exact', which permutes within strata of any size.")
            if comparisons is not None:
                diagnostics.append(
                    "count-table engine: exact per-NCO permutation nulls (hypergeometric over answer patterns"
                    + (", binomial within pairs" if strata_used else "") + "); family-wise p-values from the "
                    "Gaussian limit of the joint permutation law (exact covariance), accurate for the large n it is "
                    "used for")
    if comparisons is None:
        comparisons = list(extract(sl, items, arm_pairs, by=by_cols, strata=strata_used, mode=mode))

    rows: list[dict[str, Any]] = []
    dists: list[dict[str, Any]] = []
    layouts: set[str] = set()
    min_log_relabel = math.inf
    for cd in comparisons:
        group = cd.group
        if cd.n_units == 0 or (cd.notes and isinstance(cd, CountData)):
            why = cd.notes[0] if cd.notes else "no valid answers in this group"
            rows.extend(_untestable_rows(cd, items, group, f"not testable: {why}"))
            continue
        out: PairOutcome
        if isinstance(cd, CountData):
            out = analyse_count_data(cd, n_perm=n_perm, n_boot=n_boot, conf_level=conf_level, rng=rng)
        else:
            out = analyse_pair(cd, n_perm=n_perm, n_boot=n_boot, conf_level=conf_level, rng=rng)
        layouts.add(out.layout_kind)
        min_log_relabel = min(min_log_relabel, out.log_n_relabellings)
        p = np.array([r["p_value"] for r in out.rows], dtype=float)
        holm, bh = holm_adjust(p), bh_adjust(p)
        for r, h, b in zip(out.rows, holm, bh, strict=True):
            rows.append({**group, **r, "p_value_holm": h, "p_value_bh": b})
        dists.extend(out.distributions)
        for note in out.notes:
            if note not in diagnostics:
                diagnostics.append(note)
    testable = [r for r in rows if r.get("note") is None]
    if not testable:
        reasons = sorted({str(r["note"]) for r in rows})
        raise InsufficientDataError(
            f"no NCO can be tested in mode {mode!r} ({len(rows)} row(s)): {'; '.join(reasons)}. "
            "Check that every arm answered the NCOs in this mode (see the log's summary).")

    if "pairs" in layouts:
        diagnostics.append(f"permutations within matched pairs ({strata_used!r}); paired intervals")
    elif "strata" in layouts:
        diagnostics.append(f"permutations within strata ({strata_used!r})")
    elif strata_used is None and strata is None and paired_design(sl, arms):
        diagnostics.append(
            "units share persona_id across arms (a paired design) but strata=None: the test is unpaired; "
            "strata='auto' (the default) gives the more powerful paired test")
    n_untestable = len(rows) - len(testable)
    if n_untestable:
        diagnostics.append(f"{n_untestable} row(s) not testable (see the note column): no p-value, and no part in "
                           "the family-wise, Holm or BH adjustments")
    if n_dropped and f"{n_dropped} invalid answer row(s) left out" not in diagnostics:
        diagnostics.append(f"{n_dropped} invalid answer row(s) left out")
    diagnostics.append(f"Monte Carlo: the smallest attainable p-value is 1/(n_perm+1) = {1 / (n_perm + 1):.2g}")
    for msg in _monte_carlo_issues(testable, n_perm, 1 - conf_level, min_log_relabel):
        diagnostics.append(msg)
        warnings.warn(msg, MonteCarloErrorWarning, stacklevel=2)
    info = {
        "method": "permutation TVD (valid score-band CI)", "n_obs": n_obs, "n_groups": len(comparisons),
        "conf_level": conf_level, "alternative": "greater", "seed": seed_value(seed),
        "converged": None, "n_dropped": n_dropped, "n_perm": n_perm, "n_boot": n_boot, "n_tests": len(testable),
        "strata": strata_used,
    }
    return NcoTestResult.build(
        rows, info, by=by_cols, diagnostics=diagnostics,
        provenance=provenance("nco_test", sl, seed=seed, extra=q.answer_hashes(sl)),
        distributions=pd.DataFrame(dists),
    )


def _untestable_rows(cd: PairData | CountData, items: list[Any], group: dict[str, Any], note: str) -> list[dict[str, Any]]:
    """One row per NCO of a comparison that cannot be tested at all (an arm is missing from the group)."""
    out = []
    for j, it in enumerate(items):
        numeric = it.scale == "numeric"
        answered = cd.codes[:, j] >= 0 if isinstance(cd, CountData) else np.zeros(cd.n_units, dtype=bool)
        out.append({**group, "term": it.item, "arm": cd.arm1, "reference": cd.arm0, "measure": "ks" if numeric else "tvd",
                    "n_1": int((answered & cd.arm1_mask).sum()), "n_0": int((answered & ~cd.arm1_mask).sum()),
                    "n_levels": None if numeric else it.n_levels, "note": note})
    return out


def _monte_carlo_issues(rows: list[dict[str, Any]], n_perm: int, level: float, log_relabel: float) -> list[str]:
    """Sentences for :class:`MonteCarloErrorWarning` (empty when every decision at ``level`` is clear)."""
    out = []
    if 1.0 / (n_perm + 1) >= level:
        out.append(f"n_perm={n_perm} cannot reach the level {level:g}: the smallest permutation p-value is "
                   f"1/(n_perm+1) = {1 / (n_perm + 1):.3g}; use n_perm >= {math.ceil(1 / level)}")
    if math.isfinite(log_relabel) and log_relabel < math.log(1.0 / level):
        out.append(f"the design allows only {math.exp(log_relabel):.0f} distinct relabellings, so no permutation "
                   f"p-value can fall below the level {level:g}; more units (or pairs) are needed")
    close = []
    for r in rows:
        p = r.get("p_value_fwer")
        if p is None or not math.isfinite(p):
            continue
        se = math.sqrt(p * (1 - p) / n_perm)
        if abs(p - level) < MC_SE_BAND * se:
            close.append((r["term"], "p_value_fwer", p, se))
    if close:
        term, col, p, se = close[0]
        need = max(math.ceil(MC_SE_BAND**2 * p * (1 - p) / max(abs(p - level), 1e-4) ** 2), n_perm + 1)
        out.append(f"{len(close)} row(s) have a permutation p-value within {MC_SE_BAND:g} Monte Carlo SEs of the "
                   f"level {level:g} (e.g. {term} {col} = {p:.3g}, SE {se:.2g} at n_perm={n_perm}): the decision "
                   f"p < {level:g} could flip with another seed; n_perm >= {need} would settle it")
    return out
