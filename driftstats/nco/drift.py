"""``nco_test``: does the distribution of negative control outcomes differ across arms?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from driftstats._args import (
    as_columns,
    check_choice,
    check_conf_level,
    check_positive_int,
    rng_from,
    seed_value,
)
from driftstats._kernels.tvd import minp_fwer
from driftstats._result import Provenance, Result
from driftstats.errors import InvalidArgumentError
from driftstats.log.simlog import SimLog, Source, as_log
from driftstats.nco._data import (
    Pairs,
    extract,
    extract_wide,
    resolve_items,
    resolve_pairs,
    wide_eligible,
)
from driftstats.nco._engine import analyse_pair
from driftstats.nco._engine_counts import analyse_counts

__all__ = ["NcoTestResult", "nco_test"]

Mode = Literal["sample", "dist"]
Engine = Literal["auto", "exact", "counts"]

#: ``engine="auto"`` switches to the count-table engine above about this many unit-permutations
COUNTS_THRESHOLD = 2e8

NCO_ASSUMPTIONS = (
    "N1 (exclusion): the intervention changes an NCO's report only through who the simulated user "
    "is (N is independent of T given U and the persona spec). Ask NCOs in forked branches, not after the outcome.",
    "A small NCO TVD does not bound the bias of the effect: NCO-TVD is a lower bound on latent drift "
    "(data-processing inequality), never an upper bound, unless the NCOs capture everything about U that drives Y.",
    "The permutation test has exact size under H0: P(N | arm) identical across the two arms, with units "
    "(or, with strata, units within strata) exchangeable.",
)


@dataclass(frozen=True, slots=True, repr=False)
class NcoTestResult(Result):
    """Drift tests per NCO x arm pair x group.

    ``tidy()``: ``estimate`` = plug-in TVD (KS D for numeric NCOs); ``p_value`` = permutation
    p-value; ``conf_low``/``conf_high`` = the *valid* (conservative) projection interval;
    ``conf_low_approx``/``conf_high_approx`` = basic-bootstrap interval, **approximate**
    (it under-covers near TV = 0); ``null_mean``/``null_q95`` = permutation null;
    ``excess`` = max(estimate - null_mean, 0); ``estimate_bc`` = bootstrap bias-corrected;
    ``p_value_fwer`` = min-p family-wise p on the same permutations, ``p_value_holm``,
    ``p_value_bh`` within each family (NCOs of one arm pair in one group); ``mean_shift``
    with a Welch (paired t with pairs) interval for ordinal and numeric NCOs.
    """

    TITLE: ClassVar[str] = "NCO drift test (permutation TVD)"
    DISPLAY: ClassVar[tuple[str, ...]] = (
        "arm", "reference", "measure", "estimate", "excess", "p_value", "p_value_fwer", "conf_low", "conf_high",
    )
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = (
        "arm", "reference", "measure", "n_1", "n_0", "n_levels", "null_mean", "null_q95", "excess",
        "estimate_bc", "conf_low_approx", "conf_high_approx", "p_value_fwer", "p_value_holm", "p_value_bh",
        "mean_shift", "mean_shift_low", "mean_shift_high",
    )
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_perm", "n_boot", "n_tests")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = NCO_ASSUMPTIONS

    distributions: pd.DataFrame = field(default_factory=pd.DataFrame)

    def drifted(self, *, level: float = 0.05, adjust: Literal["fwer", "holm", "bh", "none"] = "fwer") -> pd.DataFrame:
        """Rows whose (adjusted) p-value is below ``level``."""
        col = {"fwer": "p_value_fwer", "holm": "p_value_holm", "bh": "p_value_bh", "none": "p_value"}[adjust]
        t = self.table
        return t[t[col] < level].reset_index(drop=True)

    def plot(self, kind: Literal["forest", "iterations", "distributions"] = "forest", **kwargs: Any) -> Any:
        """Forest plot of excess TVD, TVD over iterations, or NCO distributions (needs ``[plot]``)."""
        from driftstats.plot import plot_nco

        return plot_nco(self, kind=kind, **kwargs)


def nco_test(
    log: SimLog | Source,
    *,
    nco: str | Sequence[str] | None = None,
    arm: str = "arm",
    by: str | Sequence[str] = ("iteration",),
    strata: str | None = None,
    reference: str | None = None,
    pairs: Pairs = "reference",
    mode: Mode = "sample",
    n_perm: int = 2000,
    n_boot: int = 2000,
    conf_level: float = 0.95,
    seed: int | np.random.Generator | None = None,
    engine: Engine = "auto",
) -> NcoTestResult:
    """Test every NCO for drift between arms, with valid inference.

    For each NCO x arm pair x group in ``by``: the plug-in TVD, its permutation null
    (units relabelled; within ``strata`` when given), the permutation p-value, the excess
    over the null mean, a valid projection interval, an approximate basic-bootstrap
    interval and a bias-corrected estimate; ordinal NCOs also get the mean shift, numeric
    NCOs the KS distance and a Welch mean difference. Across the NCOs of one arm pair and
    group: min-p family-wise p-values on the same permutations, Holm and BH.

    Parameters
    ----------
    log
        A :class:`~driftstats.SimLog`, a DataFrame or a path (read with :func:`read_log`).
    nco
        NCO items; default: every item with role ``nco``.
    by
        Grouping columns; default ``("iteration",)`` (adjustment rounds are never pooled).
    strata
        Permute within strata, e.g. ``"persona_id"`` for paired designs (the same persona in
        every arm); a column of the answers or a persona attribute.
    reference, pairs
        ``pairs="reference"`` compares every arm with ``reference`` (default: the control arm);
        ``"all"`` compares every pair of arms.
    mode
        ``"sample"`` (sampled answers) or ``"dist"`` (option probabilities; each unit
        contributes its probability vector).
    n_perm, n_boot
        Permutations and bootstrap resamples (``n_boot=0`` skips the bootstrap).
    conf_level
        Level of every interval.
    seed
        Seed or ``numpy.random.Generator``.
    engine
        ``"exact"``: unit-level permutations shared by all NCOs (any design). ``"counts"``:
        count tables for large logs of sampled answers without strata: exact per-NCO nulls from
        hypergeometric draws, family-wise p-values from the Gaussian limit of the joint
        permutation law. ``"auto"`` (default) uses ``"counts"`` when it applies and the log has
        more than about ``COUNTS_THRESHOLD / n_perm`` units, ``"exact"`` otherwise.

    Returns
    -------
    NcoTestResult
        See the class docstring for the columns of ``tidy()``.

    Notes
    -----
    The plug-in TVD is biased upward (methods 3.1): compare NCOs, iterations and models by
    ``excess``, not by ``estimate``. The projection interval is valid but conservative; the
    bootstrap interval is approximate: the bootstrap is inconsistent for the TVD at points of
    non-differentiability (Fang & Santos 2019) and under-covers near TV = 0.

    References
    ----------
    Lin et al. (2026), arXiv:2605.20767. Westfall & Young (1993), resampling-based multiple
    testing. Fang & Santos (2019), doi:10.1093/restud/rdy049.

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_nco_log(n_per_arm=60, tvd=0.0, n_nco=2, seed=1)
    >>> res = ds.nco_test(log, n_perm=199, n_boot=0, seed=1)
    >>> list(res.tidy()["term"])
    ['nco_1', 'nco_2']
    """
    conf_level = check_conf_level(conf_level)
    n_perm = check_positive_int("n_perm", n_perm, minimum=19)
    n_boot = check_positive_int("n_boot", n_boot, minimum=0)
    check_choice("mode", mode, Mode)
    by_cols = as_columns("by", by)
    rng = rng_from(seed)
    sl = as_log(log)
    items = resolve_items(sl, nco, role="nco", arg="nco")
    arm_pairs = resolve_pairs(sl, arm, reference, pairs)
    check_choice("engine", engine, Engine)
    why_not = wide_eligible(sl, items, mode, strata) if engine != "exact" else "not requested"
    if engine == "counts" and why_not:
        raise InvalidArgumentError(f"engine='counts' cannot be used here: {why_not}. Use engine='exact'.")
    if engine == "auto" and why_not is None:
        answered = sl.con.execute(
            f"SELECT count(*) FROM answers WHERE mode = 'sample' AND item IN ({', '.join('?' for _ in items)})",
            [i.item for i in items]).fetchall()[0][0]
        if answered / len(items) * n_perm < COUNTS_THRESHOLD:
            why_not = "small log"
    rows: list[dict[str, Any]] = []
    dists: list[dict[str, Any]] = []
    diagnostics: list[str] = []
    layouts: set[str] = set()
    if why_not is None:
        n_groups = _run_counts(sl, items, arm_pairs, by_cols, n_perm=n_perm, n_boot=n_boot, conf_level=conf_level,
                               rng=rng, rows=rows, dists=dists)
        diagnostics.append(
            "count-table engine: exact per-NCO permutation nulls (hypergeometric); family-wise p-values from the "
            "Gaussian limit of the joint permutation law (exact covariance), accurate for the large n it is used for")
        datasets: list[Any] = [None] * n_groups
    else:
        datasets = extract(sl, items, arm_pairs, by=by_cols, strata=strata, mode=mode)
    for pdata in [d for d in datasets if d is not None]:
        if pdata.n_units == 0:
            diagnostics.append(f"{pdata.group} {pdata.arm1} vs {pdata.arm0}: skipped ({'; '.join(pdata.notes)})")
            continue
        out = analyse_pair(pdata, n_perm=n_perm, n_boot=n_boot, conf_level=conf_level, rng=rng)
        layouts.add(out.layout_kind)
        p = np.array([r["p_value"] for r in out.rows])
        fwer = minp_fwer(out.null, out.observed)
        ok = ~np.isnan(p)
        holm = np.full(p.shape, np.nan)
        bh = np.full(p.shape, np.nan)
        if ok.any():
            holm[ok] = multipletests(p[ok], method="holm")[1]
            bh[ok] = multipletests(p[ok], method="fdr_bh")[1]
        for r, f, h, b in zip(out.rows, fwer, holm, bh, strict=True):
            rows.append({**pdata.group, **r, "p_value_fwer": f, "p_value_holm": h, "p_value_bh": b})
        dists.extend(out.distributions)
        for note in pdata.notes:
            if note not in diagnostics:
                diagnostics.append(note)
    if "pairs" in layouts:
        diagnostics.append(f"permutations within matched pairs ({strata!r}); paired Wald SEs in the projection interval")
    elif "strata" in layouts:
        diagnostics.append(f"permutations within strata ({strata!r})")
    elif strata is None and _looks_paired(sl):
        diagnostics.append(
            "units share persona_id across arms (a paired design): strata='persona_id' gives a "
            "more powerful paired test"
        )
    diagnostics.append(f"Monte Carlo: the smallest attainable p-value is 1/(n_perm+1) = {1 / (n_perm + 1):.2g}")
    n_dropped = sl.con.execute(
        "SELECT count(*) FROM answers WHERE NOT valid AND mode = ? AND item IN (SELECT unnest(?))",
        [mode, [i.item for i in items]],
    ).fetchall()[0][0]
    n_obs = sl.con.execute(
        "SELECT count(*) FROM answers WHERE valid AND mode = ? AND item IN (SELECT unnest(?))",
        [mode, [i.item for i in items]],
    ).fetchall()[0][0]
    info = {
        "method": "permutation TVD (projection CI)", "n_obs": n_obs, "n_groups": len(datasets),
        "conf_level": conf_level, "alternative": "greater", "seed": seed_value(seed),
        "converged": None, "n_dropped": n_dropped, "n_perm": n_perm, "n_boot": n_boot, "n_tests": len(rows),
    }
    return NcoTestResult.build(
        rows, info, by=by_cols, diagnostics=diagnostics,
        provenance=Provenance(call="nco_test", seed=seed_value(seed), data=_hashes(sl)),
        distributions=pd.DataFrame(dists),
    )


def _run_counts(sl: SimLog, items: list[Any], arm_pairs: list[tuple[str, str]], by_cols: tuple[str, ...], *,
                n_perm: int, n_boot: int, conf_level: float, rng: np.random.Generator,
                rows: list[dict[str, Any]], dists: list[dict[str, Any]]) -> int:
    arms = sorted({a for p in arm_pairs for a in p})
    wide = extract_wide(sl, items, arms, by=by_cols)
    code_cols = [f"c_{j}" for j in range(len(items))]
    grouped = wide.groupby(list(by_cols), sort=True) if by_cols else [((), wide)]
    n = 0
    for key, g in grouped:
        key = key if isinstance(key, tuple) else (key,)
        group = {b: (v.item() if hasattr(v, "item") else v) for b, v in zip(by_cols, key, strict=True)}
        for a1, a0 in arm_pairs:
            sub = g[g["arm"].isin([a1, a0])]
            mask = (sub["arm"] == a1).to_numpy()
            if mask.all() or not mask.any():
                continue
            codes = sub[code_cols].fillna(-1).to_numpy(dtype=np.int64)
            out = analyse_counts(codes, mask, items, group, (a1, a0), n_perm=n_perm, n_boot=n_boot,
                                 conf_level=conf_level, rng=rng)
            p = np.array([r["p_value"] for r in out.rows])
            holm = multipletests(p, method="holm")[1]
            bh = multipletests(p, method="fdr_bh")[1]
            for r, h, b in zip(out.rows, holm, bh, strict=True):
                rows.append({**group, **r, "p_value_holm": h, "p_value_bh": b})
            dists.extend(out.distributions)
            n += 1
    return n


def _looks_paired(sl: SimLog) -> bool:
    r = sl.con.execute(
        "SELECT count(*) FROM (SELECT persona_id FROM answers WHERE persona_id IS NOT NULL "
        "GROUP BY persona_id HAVING count(DISTINCT arm) > 1)"
    ).fetchall()[0][0]
    return bool(r)


def _hashes(sl: SimLog) -> tuple[tuple[str, str], ...]:
    r = sl.con.execute(
        "SELECT string_agg(DISTINCT model_sha256, ','), string_agg(DISTINCT prompt_sha256, ',') FROM answers"
    ).fetchall()[0]
    out = []
    if r[0]:
        out.append(("model_sha256", r[0]))
    if r[1]:
        out.append(("n_prompt_sha256", str(len(r[1].split(",")))))
    return tuple(out)
