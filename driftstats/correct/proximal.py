"""Categorical proximal identification (Miao, Geng & Tchetgen Tchetgen 2018; methods.md 4.3).

With W (NCO proxy) and Z (NCE proxy) categorical with the same number of levels and
``M_t[i, j] = P(w_i | T=t, z_j)`` invertible: ``P(Y=y | do(T=t)) = r_{y,t} M_t^{-1} p_W`` where
``r_{y,t}[j] = P(y | T=t, z_j)`` and ``p_W[i] = P(w_i)`` pooled over arms. Here the mean
outcome is used, ``E[Y | do(t)] = rbar_t M_t^{-1} p_W`` with ``rbar_t[j] = E[Y | T=t, z_j]``. With
covariates X the formula is applied within X strata and averaged over P(X).
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
    DEFAULT_N_BOOT,
    DEFAULT_SEED,
    as_columns,
    check_choice,
    check_conf_level,
    check_positive_int,
    rng_from,
    seed_value,
)
from driftstats._provenance import provenance
from driftstats._result import Result
from driftstats._units import unit_data
from driftstats.correct._pairs import Cluster, boot_counts, pairing
from driftstats.correct.p2sls import _default_treated
from driftstats.errors import InsufficientDataError, InvalidArgumentError, MonteCarloErrorWarning

__all__ = ["ProximalResult", "proximal_discrete", "proximal_means"]

_COND_MAX = 1e10
_CHUNK = 256


@dataclass(frozen=True, slots=True, repr=False)
class ProximalResult(Result):
    """``E[Y | do(t)]`` per arm (``measure = "mean_do"``) and their difference (``"ate"``)."""

    TITLE: ClassVar[str] = "Categorical proximal identification"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "estimate", "std_error", "conf_low", "conf_high",
                                          "note")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "note")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_boot", "strata")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        "Z independent of Y given (T, U, X); W independent of (T, Z) given (U, X) (negative control roles).",
        "Completeness: |W| = |Z| levels and M_t = P(W | T=t, Z) invertible in every stratum.",
        "The estimand is E[Y(t)] in the pooled implied population (tau(pbar), methods 4.3).",
    )


def _means_batch(w: np.ndarray, y: np.ndarray, t: np.ndarray, wi: np.ndarray, zi: np.ndarray, stratum: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``E[Y|do(1)]``, ``E[Y|do(0)]`` and a singular flag for each row of row weights ``w`` (B, n).

    ``w = weights[None, :]`` gives the estimate on the data; bootstrap rows are resampling
    multiplicities times the row weights. A row is singular when, in some stratum, an arm has no
    weight, a Z level has no weight within an arm, or ``M_t`` has condition number above 1e10.
    """
    b = w.shape[0]
    out = np.zeros((b, 2))
    singular = np.zeros(b, dtype=bool)
    total = w.sum(axis=1)
    eye_w = np.eye(k)[wi]  # (n, k)
    eye_z = np.eye(k)[zi]
    cell = np.eye(k * k)[wi * k + zi]  # (n, k*k)
    for s in np.unique(stratum):
        rows = stratum == s
        ws = w[:, rows]
        mass = ws.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            px = mass / total
            p_w = (ws @ eye_w[rows]) / mass[:, None]
        for ti, tval in enumerate((0.0, 1.0)):
            m = rows & (t == tval)
            wm = w[:, m]
            joint = (wm @ cell[m]).reshape(b, k, k)  # [b, w level, z level]
            pz = joint.sum(axis=1)
            ysum = wm @ (eye_z[m] * y[m][:, None])
            bad = (pz <= 0).any(axis=1) | ~(mass > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mt = joint / np.where(pz > 0, pz, 1.0)[:, None, :]
                rbar = ysum / np.where(pz > 0, pz, 1.0)
            safe = np.where(bad[:, None, None], np.eye(k)[None], mt)
            cond = np.linalg.cond(safe)
            bad |= ~np.isfinite(cond) | (cond > _COND_MAX)
            safe = np.where(bad[:, None, None], np.eye(k)[None], mt)
            sol = np.linalg.solve(safe, np.where(bad[:, None], 1.0, np.nan_to_num(p_w))[:, :, None])[:, :, 0]
            out[:, ti] += np.where(bad, np.nan, px * np.sum(rbar * sol, axis=1))
            singular |= bad
    out[singular] = np.nan
    return out[:, 1], out[:, 0], singular


def _levels(frame: pd.DataFrame, column: str, arg: str) -> np.ndarray:
    """The sorted levels of a proxy or covariate column (a named error when its values cannot be ordered)."""
    try:
        return np.unique(frame[column].to_numpy())
    except TypeError:
        kinds = sorted({type(v).__name__ for v in frame[column]})
        raise InvalidArgumentError(
            f"{arg} {column!r} mixes values of types {kinds}; its levels must be of one type (codes or labels). "
            "Fix: recode the column.") from None


def _codes(frame: pd.DataFrame, w: str, z: str, x: Sequence[str], w_levels: np.ndarray, z_levels: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    wi = np.searchsorted(w_levels, frame[w].to_numpy())
    zi = np.searchsorted(z_levels, frame[z].to_numpy())
    stratum = np.zeros(len(frame), dtype=np.int64) if not x else frame.groupby(list(x), sort=True).ngroup().to_numpy()
    return wi, zi, stratum


def proximal_means(frame: pd.DataFrame, y: str, t: str, w: str, z: str, x: Sequence[str], weight: str | None,
                   w_levels: np.ndarray, z_levels: np.ndarray) -> tuple[float, float]:
    """``(E[Y|do(1)], E[Y|do(0)])`` from (weighted) unit rows.

    Raises
    ------
    InsufficientDataError
        A covariate stratum lacks an arm or a Z level within an arm, or ``M_t`` is singular
        (completeness fails).
    """
    wt = frame[weight].to_numpy(float) if weight else np.ones(len(frame))
    wi, zi, stratum = _codes(frame, w, z, x, w_levels, z_levels)
    m1, m0, singular = _means_batch(wt[None, :], frame[y].to_numpy(float), frame[t].to_numpy(float), wi, zi, stratum,
                                    w_levels.size)
    if singular[0]:
        raise InsufficientDataError(
            f"M_t = P(W | T, Z) is singular or not estimable in some covariate stratum (an arm or a Z level without "
            f"units, or condition number above {_COND_MAX:.0e}): the proxies do not identify the effect "
            "(completeness fails)."
        )
    return float(m1[0]), float(m0[0])


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
    cluster: Cluster = "auto",
    n_boot: int = DEFAULT_N_BOOT,
    max_singular: float = 0.1,
    conf_level: float = 0.95,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
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
    cluster
        ``"auto"`` (default): in a paired design (a ``persona_id`` with units in both arms) the
        bootstrap resamples personas with all their units; otherwise units within arms.
        ``"persona"`` forces it; ``"unit"`` / ``"none"`` resample units.
    n_boot
        Bootstrap resamples for percentile intervals (default 2000; 0: none).
    max_singular
        Resamples in which ``M_t`` is singular (or a Z level is empty) are dropped and counted
        (``glance()["n_dropped"]``, a :class:`~driftstats.errors.MonteCarloErrorWarning`); when
        more than this share of them is dropped (default 0.1), no interval is reported (the
        surviving resamples are not representative).
    seed
        Seed of the bootstrap. Default 0: results are reproducible; ``seed=None`` draws fresh entropy.

    Returns
    -------
    ProximalResult
        Rows ``mean_do`` per arm and ``ate``; ``std_error`` the bootstrap SD, ``conf_low`` /
        ``conf_high`` percentile bounds (no test: ``statistic`` and ``p_value`` are NaN).

    Raises
    ------
    InvalidArgumentError
        ``|W| != |Z|``, fewer than 2 levels, a treatment column that is not 0/1.
    InsufficientDataError
        ``M_t`` singular in the data themselves.

    References
    ----------
    Miao, Geng & Tchetgen Tchetgen (2018), Biometrika 105(4):987-993, doi:10.1093/biomet/asy038.

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
    check_choice("cluster", cluster, Cluster)
    if not (isinstance(max_singular, (int, float)) and 0 <= max_singular < 1):
        raise InvalidArgumentError(f"max_singular must be a share in [0, 1); got {max_singular!r}.")
    rng = rng_from(seed)
    xs = list(as_columns("covariates", covariates))
    is_arm = treatment == "arm"
    ud = unit_data(data, [outcome, nco, nce, *xs], arm="arm" if is_arm else treatment, mode=mode)
    frame = ud.frame.copy()
    arm1, arm0 = "1", "0"
    arms_used: list[str] | None = None
    if is_arm and ud.log is not None:
        ref = ud.reference(reference)
        treated = arm or _default_treated(ud, ref)
        frame = frame[frame["arm"].isin([treated, ref])]
        frame = frame.assign(__t=(frame["arm"] == treated).astype(float))
        tcol, arm1, arm0 = "__t", str(treated), str(ref)
        arms_used = [str(treated), str(ref)]
    else:
        tcol = treatment
    needed = [outcome, nco, nce, tcol, *xs, *([weight] if weight else [])]
    ud.require([c for c in needed if c != "__t"], "columns")
    n_all = len(frame)
    frame = frame.dropna(subset=needed).reset_index(drop=True)
    if frame.empty:
        raise InsufficientDataError(f"no unit has all of {[c for c in needed if c != '__t']}.")
    tv = pd.to_numeric(frame[tcol], errors="coerce")
    if not set(np.unique(tv.dropna())) <= {0.0, 1.0} or tv.isna().any():
        raise InvalidArgumentError(f"treatment column {treatment!r} must be 0/1 (or use a log with treatment='arm').")
    for c in (outcome, *([weight] if weight else [])):
        if not pd.api.types.is_numeric_dtype(frame[c]) or not np.isfinite(frame[c].to_numpy(float)).all():
            raise InvalidArgumentError(f"column {c!r} must be numeric and finite.")
        if np.abs(frame[c].to_numpy(float)).max() > 1e150:
            raise InvalidArgumentError(f"column {c!r} holds values beyond 1e150 in magnitude, which overflow the "
                                       "bootstrap; rescale it.")
    w_levels = _levels(frame, nco, "nco")
    z_levels = _levels(frame, nce, "nce")
    for c in xs:
        _levels(frame, c, "covariate")
    if w_levels.size != z_levels.size:
        raise InvalidArgumentError(
            f"the categorical formula needs |W| = |Z|; nco {nco!r} has {w_levels.size} observed levels and nce "
            f"{nce!r} has {z_levels.size}. Merge levels so that they match."
        )
    if w_levels.size < 2:
        raise InvalidArgumentError(
            f"nco {nco!r} and nce {nce!r} take a single value: proxies with one level carry no information about the "
            "confounder; the categorical formula needs at least 2 levels each."
        )
    y = frame[outcome].to_numpy(float)
    t = tv.to_numpy(float)
    wt = frame[weight].to_numpy(float) if weight else np.ones(len(frame))
    wi, zi, stratum = _codes(frame, nco, nce, xs, w_levels, z_levels)
    k = w_levels.size
    m1a, m0a, sing = _means_batch(wt[None, :], y, t, wi, zi, stratum, k)
    if sing[0]:
        raise InsufficientDataError(
            f"M_t = P(W | T, Z) is singular or not estimable in some covariate stratum (an arm or a Z level without "
            f"units, or condition number above {_COND_MAX:.0e}): the proxies do not identify the effect "
            "(completeness fails)."
        )
    m1, m0 = float(m1a[0]), float(m0a[0])
    diag: list[str] = []
    if n_all > len(frame):
        diag.append(f"{n_all - len(frame)} unit(s) with a missing value left out")
    pair = pairing(frame, tcol, cluster, log=ud.log if is_arm else None, arms=arms_used)
    if pair.sentence:
        diag.append(pair.sentence)
    n_singular = 0
    boots = np.empty((0, 2))
    if n_boot:
        parts = []
        done = 0
        while done < n_boot:
            b = min(_CHUNK, n_boot - done)
            cnt = boot_counts(rng, b, t, pair.clusters) * wt[None, :]
            b1, b0, bad = _means_batch(cnt, y, t, wi, zi, stratum, k)
            parts.append(np.column_stack([b1, b0])[~bad])
            n_singular += int(bad.sum())
            done += b
        boots = np.concatenate(parts)
    lo, hi = 0.5 - conf_level / 2, 0.5 + conf_level / 2
    too_many = bool(n_boot) and n_singular > max_singular * n_boot
    note = None
    if not n_boot:
        note = "no interval: n_boot = 0"
    elif too_many or boots.shape[0] < 2:
        note = (f"no interval: {n_singular} of {n_boot} bootstrap resamples had a singular M_t (more than "
                f"max_singular = {max_singular:g} of them); the surviving resamples are not representative")
    rows = []

    def interval(draws: np.ndarray, est: float) -> dict[str, Any]:
        if note is not None:
            return {"note": note}
        with np.errstate(all="ignore"):
            sd = float(draws.std(ddof=1))
        low, high = float(np.quantile(draws, lo)), float(np.quantile(draws, hi))
        if not low <= est <= high:
            # the estimate sits outside the central mass of its own bootstrap distribution: the
            # resamples do not describe its sampling error (a near-singular M_t, a small sample)
            off_centre.append(1)
            return {"std_error": sd, "note": (
                f"no interval: the estimate {est:.4g} lies outside the central {conf_level:.0%} of its bootstrap "
                f"distribution [{low:.4g}, {high:.4g}]; the bootstrap does not describe its sampling error here "
                "(M_t near singular or too few units)")}
        out: dict[str, Any] = {"std_error": sd, "conf_low": low, "conf_high": high, "note": None}
        if not sd > 0:
            out["note"] = "no spread: every bootstrap resample gives the same estimate"
        return out

    off_centre: list[int] = []
    for name, est, col in ((arm1, m1, 0), (arm0, m0, 1)):
        rows.append({"term": outcome, "arm": name, "measure": "mean_do", "estimate": est,
                     **interval(boots[:, col] if note is None else boots[:0, 0], est)})
    rows.append({"term": outcome, "arm": arm1, "reference": arm0, "measure": "ate", "estimate": m1 - m0,
                 **interval(boots[:, 0] - boots[:, 1] if note is None else boots[:0, 0], m1 - m0)})
    if off_centre:
        diag.append(f"{len(off_centre)} interval(s) not reported: the estimate lies outside the central "
                    f"{conf_level:.0%} of its bootstrap distribution")
    if n_singular:
        msg = (f"{n_singular} of {n_boot} bootstrap resample(s) had a singular M_t (or an empty Z level) and were "
               "dropped" + ("; no interval is reported" if too_many else
                            "; the intervals are conditional on M_t being invertible"))
        warnings.warn(msg, MonteCarloErrorWarning, stacklevel=2)
        diag.append(msg)
    info = {"method": "categorical proximal formula (Miao et al. 2018)", "n_obs": len(frame),
            "n_groups": 1 if not xs else int(frame.groupby(xs).ngroups), "conf_level": conf_level,
            "alternative": "two-sided", "seed": seed_value(seed), "n_boot": n_boot,
            "n_dropped": n_singular if n_boot else None, "strata": pair.strata}
    if not math.isfinite(m1 - m0):
        raise InsufficientDataError("the categorical proximal estimate is not finite.")
    return ProximalResult.build(rows, info, diagnostics=diag, provenance=provenance("proximal_discrete", data, seed=seed))
