"""Categorical proximal identification (Miao, Geng & Tchetgen Tchetgen 2018; methods.md 4.3).

With W (NCO proxy) and Z (NCE proxy) categorical with the same number of levels and
``M_t[i, j] = P(w_i | T=t, z_j)`` invertible: ``P(Y=y | do(T=t)) = r_{y,t} M_t^{-1} p_W`` where
``r_{y,t}[j] = P(y | T=t, z_j)`` and ``p_W[i] = P(w_i)`` pooled over arms. Here the mean
outcome is used, ``E[Y | do(t)] = rbar_t M_t^{-1} p_W`` with ``rbar_t[j] = E[Y | T=t, z_j]``. With
covariates X the formula is applied within X strata and averaged over P(X).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from driftstats._args import as_columns, check_conf_level, check_positive_int, rng_from, seed_value
from driftstats._result import Provenance, Result
from driftstats._units import unit_data
from driftstats.correct.p2sls import _default_treated
from driftstats.errors import InsufficientDataError, InvalidArgumentError

__all__ = ["ProximalResult", "proximal_discrete", "proximal_means"]


@dataclass(frozen=True, slots=True, repr=False)
class ProximalResult(Result):
    """``E[Y | do(t)]`` per arm (``measure = "mean_do"``) and their difference (``"ate"``)."""

    TITLE: ClassVar[str] = "Categorical proximal identification"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "estimate", "std_error", "conf_low", "conf_high")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_boot",)
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        "Z independent of Y given (T, U, X); W independent of (T, Z) given (U, X) (negative control roles).",
        "Completeness: |W| = |Z| levels and M_t = P(W | T=t, Z) invertible in every stratum.",
        "The estimand is E[Y(t)] in the pooled implied population (tau(pbar), methods 4.3).",
    )


def proximal_means(frame: pd.DataFrame, y: str, t: str, w: str, z: str, x: Sequence[str], weight: str | None,
                   w_levels: np.ndarray, z_levels: np.ndarray) -> tuple[float, float]:
    """``(E[Y|do(1)], E[Y|do(0)])`` from (weighted) unit rows."""
    wt = frame[weight].to_numpy(float) if weight else np.ones(len(frame))
    strata = [((), frame.index)] if not x else list(frame.groupby(list(x), sort=True).groups.items())
    total = wt.sum()
    out = np.zeros(2)
    k = w_levels.size
    for _, idx in strata:
        sub = frame.loc[idx]
        sw = wt[frame.index.get_indexer(idx)]
        px = sw.sum() / total
        wi = np.searchsorted(w_levels, sub[w].to_numpy())
        zi = np.searchsorted(z_levels, sub[z].to_numpy())
        p_w = np.bincount(wi, weights=sw, minlength=k) / sw.sum()
        for ti, tval in enumerate((0.0, 1.0)):
            m = sub[t].to_numpy(float) == tval
            if not m.any():
                raise InsufficientDataError(f"a covariate stratum has no units with {t} = {int(tval)}.")
            joint = np.zeros((k, k))
            np.add.at(joint, (wi[m], zi[m]), sw[m])
            pz = joint.sum(axis=0)
            if (pz == 0).any():
                raise InsufficientDataError(f"some Z level has no units with {t} = {int(tval)} (within a stratum).")
            mt = joint / pz  # P(w_i | t, z_j)
            ysum = np.bincount(zi[m], weights=sw[m] * sub[y].to_numpy(float)[m], minlength=k)
            rbar = ysum / pz
            cond = np.linalg.cond(mt)
            if not np.isfinite(cond) or cond > 1e10:
                raise InsufficientDataError(
                    f"M_t = P(W | T={int(tval)}, Z) is singular (condition number {cond:.3g}): the proxies do not "
                    "identify the effect (completeness fails)."
                )
            out[ti] += px * float(rbar @ np.linalg.solve(mt, p_w))
    return float(out[1]), float(out[0])


def proximal_discrete(
    data: Any,
    *,
    outcome: str,
    nco: str,
    nce: str,
    treatment: str = "arm",
    covariates: str | Sequence[str] = (),
    arm: str | None = None,
    reference: str | None = None,
    weight: str | None = None,
    mode: Literal["sample", "dist"] = "sample",
    n_boot: int = 1000,
    conf_level: float = 0.95,
    seed: int | np.random.Generator | None = None,
) -> ProximalResult:
    """``E[Y | do(t)]`` and the ATE by the categorical proximal formula, with bootstrap intervals.

    Parameters
    ----------
    data
        A log (items ``outcome``, ``nco`` (W), ``nce`` (Z); ``treatment="arm"``) or a unit-level
        DataFrame (``treatment`` a 0/1 column); ``weight`` optionally weights rows (e.g. an exact
        population table, where the formula is exact and ``n_boot=0``).
    covariates
        Discrete covariates X (persona attributes): the formula is applied within strata.
    n_boot
        Unit bootstrap resamples for percentile intervals (0: none).

    Examples
    --------
    >>> import driftstats as ds
    >>> world = ds.simulate_latent_world(n_types=3, nco_levels=3, seed=5)
    >>> res = ds.proximal_discrete(world.population_table(), outcome="y", nco="w", nce="z", treatment="t",
    ...                            weight="weight", n_boot=0)
    >>> truth = world.tau(world.p_pooled)
    >>> bool(abs(res.tidy().query("measure == 'ate'")["estimate"].iloc[0] - truth) < 1e-9)
    True
    """
    conf_level = check_conf_level(conf_level)
    n_boot = check_positive_int("n_boot", n_boot, minimum=0)
    rng = rng_from(seed)
    xs = list(as_columns("covariates", covariates))
    is_arm = treatment == "arm"
    ud = unit_data(data, [outcome, nco, nce, *xs], arm="arm" if is_arm else treatment, mode=mode)
    frame = ud.frame.copy()
    arm1, arm0 = "1", "0"
    if is_arm and ud.log is not None:
        ref = ud.reference(reference)
        treated = arm or _default_treated(ud, ref)
        frame = frame[frame["arm"].isin([treated, ref])]
        frame = frame.assign(__t=(frame["arm"] == treated).astype(float))
        tcol, arm1, arm0 = "__t", str(treated), str(ref)
    else:
        tcol = treatment
    needed = [outcome, nco, nce, tcol, *xs, *([weight] if weight else [])]
    ud.require([c for c in needed if c != "__t"], "columns")
    frame = frame.dropna(subset=needed).reset_index(drop=True)
    if not set(np.unique(frame[tcol])) <= {0.0, 1.0}:
        raise InvalidArgumentError(f"treatment column {treatment!r} must be 0/1 (or use a log with treatment='arm').")
    w_levels = np.unique(frame[nco])
    z_levels = np.unique(frame[nce])
    if w_levels.size != z_levels.size:
        raise InvalidArgumentError(
            f"the categorical formula needs |W| = |Z|; nco {nco!r} has {w_levels.size} observed levels and nce "
            f"{nce!r} has {z_levels.size}. Merge levels so that they match."
        )
    m1, m0 = proximal_means(frame, outcome, tcol, nco, nce, xs, weight, w_levels, z_levels)
    boots = []
    if n_boot:
        i1 = np.flatnonzero(frame[tcol].to_numpy() == 1)
        i0 = np.flatnonzero(frame[tcol].to_numpy() == 0)
        fails = 0
        for _ in range(n_boot):
            idx = np.r_[rng.choice(i1, i1.size), rng.choice(i0, i0.size)]
            try:
                boots.append(proximal_means(frame.iloc[idx].reset_index(drop=True), outcome, tcol, nco, nce, xs,
                                            weight, w_levels, z_levels))
            except InsufficientDataError:
                fails += 1
    b = np.asarray(boots) if boots else np.empty((0, 2))
    lo, hi = 0.5 - conf_level / 2, 0.5 + conf_level / 2
    rows = []
    for name, est, col, measure in ((arm1, m1, 0, "mean_do"), (arm0, m0, 1, "mean_do")):
        r = {"term": outcome, "arm": name, "measure": measure, "estimate": est}
        if b.size:
            r.update(std_error=float(b[:, col].std(ddof=1)), conf_low=float(np.quantile(b[:, col], lo)),
                     conf_high=float(np.quantile(b[:, col], hi)))
        rows.append(r)
    ate = {"term": outcome, "arm": arm1, "reference": arm0, "measure": "ate", "estimate": m1 - m0}
    if b.size:
        d = b[:, 0] - b[:, 1]
        ate.update(std_error=float(d.std(ddof=1)), conf_low=float(np.quantile(d, lo)), conf_high=float(np.quantile(d, hi)))
    rows.append(ate)
    diag = []
    if n_boot and len(boots) < n_boot:
        diag.append(f"{n_boot - len(boots)} bootstrap resample(s) had a singular M_t and were skipped")
    info = {"method": "categorical proximal formula (Miao et al. 2018)", "n_obs": len(frame),
            "n_groups": 1 if not xs else int(frame.groupby(xs).ngroups), "conf_level": conf_level,
            "alternative": "two-sided", "seed": seed_value(seed), "n_boot": n_boot}
    return ProximalResult.build(rows, info, diagnostics=diag, provenance=Provenance(call="proximal_discrete"))
