"""NCO difference-in-differences (methods.md section 4.2; Sofer et al. 2016).

Under **additive equi-confounding** [ASSUMPTION]
``E[Y(0) | T=1] - E[Y(0) | T=0] = E[N | T=1] - E[N | T=0]`` (with N1, the NCO exclusion),
``tau_ATT = (Ybar_1 - Ybar_0) - (Nbar_1 - Nbar_0)``; inference regresses ``D_i = Y_i - N_i``
on ``T_i`` with robust standard errors (this handles the within-user covariance of Y and N).
Equi-confounding holds iff ``sum_u [mu_0(u) - nu(u)] (p_1 - p_0)(u) = 0``; a sufficient
condition is ``mu_0(u) = nu(u) + c``.

Y and N must be on the same scale for the additive version. Two scale-free variants map N
onto Y's scale first [PROPOSAL; OPEN: to be checked against Sofer et al.]:
``location_scale``: bias = (sd(Y | T=0) / sd(N | T=0)) (Nbar_1 - Nbar_0);
``qq``: N -> F^-1_{Y|T=0}(F_{N|T=0}(N)) (control-arm quantile-quantile map, mid-distribution
for discrete N). Their standard errors come from a bootstrap that resamples units within arms,
or, in paired designs, personas with all their units (pairs resampled as pairs).

With several NCOs, each gives its own corrected estimate; they agree (up to sampling error)
when every NCO satisfies equi-confounding. A Wald test of their equality (using their joint
covariance: the estimates share the units and the outcome) and a bounded-violation
sensitivity interval make the assumption's failure visible [PROPOSAL].
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import stats

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
from driftstats._groups import iter_groups, resolve_by
from driftstats._kernels.wald import wald
from driftstats._provenance import provenance
from driftstats._result import Result
from driftstats._units import unit_data
from driftstats.correct._pairs import Cluster, boot_counts, pairing
from driftstats.effects import mean_contrast
from driftstats.errors import InsufficientDataError, InvalidArgumentError, MonteCarloErrorWarning

__all__ = ["DidResult", "did_nco"]

Scale = Literal["additive", "location_scale", "qq"]

DID_ASSUMPTIONS = (
    "N1 (exclusion): the intervention changes the NCO only through who the simulated user is.",
    "Additive equi-confounding: E[Y(0)|T=1] - E[Y(0)|T=0] = E[N|T=1] - E[N|T=0] on the scale used "
    "(the raw codes for 'additive'; after mapping N onto Y's scale for 'location_scale' and 'qq').",
    "The estimand is the effect in the treated arm's implied population (ATT, tau(p_1)).",
    "With several NCOs, the heterogeneity test detects violations that differ across NCOs; a violation "
    "shared by all NCOs is not detectable from the data (the sensitivity interval's violation= bounds it).",
)

_CHUNK = 256


@dataclass(frozen=True, slots=True, repr=False)
class DidResult(Result):
    """NCO-DiD: rows ``naive`` (observed contrast), per NCO ``bias`` (NCO contrast on Y's scale) and
    ``did_<scale>``; with several NCOs also ``heterogeneity`` (test of equal corrected estimates) and
    ``sensitivity`` (bounded-violation interval)."""

    TITLE: ClassVar[str] = "NCO difference-in-differences"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "nco", "estimate", "std_error", "conf_low",
                                          "conf_high", "p_value", "note")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "n_1", "n_0", "df", "bias", "note",
                                              "nco")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_boot", "n_tests", "vcov", "strata")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = DID_ASSUMPTIONS


# ----------------------------------------------------------------------------- estimation kernels
def _count_quantile(ys: np.ndarray, cnt: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``np.quantile`` (linear) of the multiset holding ``ys[i]`` ``cnt[b, i]`` times, per row b, at ``u[b, :]``.

    ``ys`` is sorted. Equivalent to expanding each resample and calling ``np.quantile``, without
    expanding: positions are found in the cumulative counts (all rows at once).
    """
    b, n0 = cnt.shape
    m = cnt.sum(axis=1)
    k = np.cumsum(cnt, axis=1)
    h = np.clip(u, 0.0, 1.0) * (m[:, None] - 1)
    lo = np.floor(h).astype(np.int64)
    frac = h - lo
    hi = np.minimum(lo + 1, m[:, None] - 1)
    span = int(m.max()) + 1
    off = (np.arange(b, dtype=np.int64) * span)[:, None]
    flat = (k + off).ravel()
    base = np.repeat(np.arange(b, dtype=np.int64) * n0, u.shape[1]).reshape(u.shape)

    def at(j: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(flat, (j + off).ravel(), side="right").reshape(j.shape)
        return ys[np.clip(pos - base, 0, n0 - 1)]

    v_lo = at(lo)
    return v_lo + frac * (at(hi) - v_lo)


def _weighted_stats(w: np.ndarray, y: np.ndarray, nm: np.ndarray, t: np.ndarray, scale: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Naive contrast (B,) and bias on Y's scale (B, K) for resampling multiplicities ``w`` (B, n).

    ``w = ones((1, n))`` gives the estimates on the data themselves (one code path for both).
    Resamples where a statistic is undefined (an arm with < 2 units, a constant NCO in the
    reference arm for ``location_scale``) give NaN.
    """
    w = w.astype(float)
    w1, w0 = w * t, w * (1 - t)
    m1, m0 = w1.sum(axis=1), w0.sum(axis=1)
    yc = y - y.mean()
    nc = nm - nm.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        naive = (w1 @ yc) / m1 - (w0 @ yc) / m0
        naive = np.where((m1 >= 1) & (m0 >= 1), naive, np.nan)
        if scale == "additive":
            bias = (w1 @ nc) / m1[:, None] - (w0 @ nc) / m0[:, None]
        elif scale == "location_scale":
            my0 = (w0 @ yc) / m0
            vy0 = (w0 @ yc**2 - m0 * my0**2) / (m0 - 1)
            mn0 = (w0 @ nc) / m0[:, None]
            vn0 = (w0 @ nc**2 - m0[:, None] * mn0**2) / (m0 - 1)[:, None]
            tol = 1e-12 * np.maximum(nc.var(axis=0), 1e-300)[None, :]
            ratio = np.sqrt(np.maximum(vy0, 0.0))[:, None] / np.sqrt(np.where(vn0 > tol, vn0, np.nan))
            bias = ratio * ((w1 @ nc) / m1[:, None] - mn0)
        else:
            bias = np.column_stack([_qq_bias(w1, w0, m1, m0, y, nm[:, j], t) for j in range(nm.shape[1])])
        bad = (m1 < 2) | (m0 < 2)
    return np.where(bad, np.nan, naive), np.where(bad[:, None], np.nan, bias)


def _qq_bias(w1: np.ndarray, w0: np.ndarray, m1: np.ndarray, m0: np.ndarray, y: np.ndarray, n: np.ndarray,
             t: np.ndarray) -> np.ndarray:
    """Bias of the control-arm quantile-quantile map of N onto Y's scale, per resample."""
    ctrl = t == 0
    levels, code = np.unique(n, return_inverse=True)
    n0, y0 = n[ctrl], y[ctrl]
    order = np.argsort(y0, kind="stable")
    ys = y0[order]
    w0c = w0[:, ctrl]
    less = w0c @ (n0[:, None] < levels[None, :]).astype(float)
    leq = w0c @ (n0[:, None] <= levels[None, :]).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (less + leq) / (2.0 * m0[:, None])
    ok = m0 >= 1
    q = np.full(u.shape, np.nan)
    if ok.any():
        q[ok] = _count_quantile(ys, np.rint(w0c[ok][:, order]).astype(np.int64), np.nan_to_num(u[ok]))
    onehot = np.zeros((n.size, levels.size))
    onehot[np.arange(n.size), code] = 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (w1 @ onehot) / m1[:, None] - (w0 @ onehot) / m0[:, None]
    return np.sum(q * share, axis=1)


def _joint_additive_cov(y: np.ndarray, nm: np.ndarray, t: np.ndarray, clusters: np.ndarray | None) -> np.ndarray:
    """Correlation structure of the K additive DiD estimates (influence functions, summed per cluster)."""
    d = y[:, None] - nm
    n1, n0 = t.sum(), (1 - t).sum()
    dm1 = d[t == 1].mean(axis=0)
    dm0 = d[t == 0].mean(axis=0)
    inf = np.where(t[:, None] == 1, (d - dm1) / n1, -(d - dm0) / n0)
    if clusters is not None:
        g = np.zeros((int(clusters.max()) + 1, d.shape[1]))
        np.add.at(g, clusters, inf)
        inf = g
    return inf.T @ inf


def _heterogeneity(est: np.ndarray, cov: np.ndarray) -> tuple[float, float, float]:
    """Wald chi-square test that all entries of ``est`` are equal: (statistic, df, p)."""
    k = est.size
    c = np.hstack([np.eye(k - 1), -np.ones((k - 1, 1))])
    diff = c @ est
    m = c @ cov @ c.T
    if not (np.isfinite(m).all() and np.isfinite(diff).all()):
        return math.nan, math.nan, math.nan
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    keep = vals > 1e-10 * max(float(np.abs(vals).max()), 1e-300)
    if not keep.any():
        return math.nan, math.nan, math.nan
    proj = vecs[:, keep].T @ diff
    stat = float(np.sum(proj**2 / vals[keep]))
    df = float(keep.sum())
    return stat, df, float(stats.chi2.sf(stat, df))


def _row(est: float, se: float, conf_level: float, note: str | None, why_untestable: str) -> dict[str, Any]:
    r = dict(wald(est, se, conf_level))
    if note is None and not math.isfinite(r["p_value"]):
        note = why_untestable if math.isfinite(est) else "not testable: the estimate is undefined"
    return {**r, "note": note}


def did_nco(
    data: Any,
    *,
    outcome: str,
    nco: str | Sequence[str],
    arm: str = "arm",
    by: str | Sequence[str] | None = "auto",
    reference: str | None = None,
    scale: Scale = "additive",
    mode: Literal["sample", "dist"] = "sample",
    cluster: Cluster = "auto",
    n_boot: int = DEFAULT_N_BOOT,
    violation: float = 0.0,
    conf_level: float = 0.95,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
) -> DidResult:
    """Correct the observed contrast with one or several negative control outcomes.

    Parameters
    ----------
    data
        A log (items named by ``outcome`` and ``nco``) or a unit-level DataFrame (columns).
    outcome
        The outcome item or column Y.
    nco
        One NCO N, or several: each gives its own corrected estimate, and their agreement is tested.
    by
        Grouping columns. Default ``"auto"``: one group per run of the study (``iteration``, plus
        ``study``, ``model`` and ``run_id`` where the log holds several), so answers of different
        models, adjustment paths and iterations are never pooled; ``by=()`` pools everything. An
        unknown column is an error.
    scale
        ``"additive"`` (default; regression of ``Y - N`` on the arm with robust SEs),
        ``"location_scale"`` or ``"qq"`` (bootstrap standard errors).
    cluster
        ``"auto"`` (default): in a paired design (a ``persona_id`` with units in both arms) SEs
        cluster on ``persona_id`` and the bootstrap resamples personas with all their units;
        otherwise HC1 SEs and a bootstrap within arms. ``"persona"`` forces clustering,
        ``"unit"`` / ``"none"`` treat units as independent.
    n_boot
        Bootstrap resamples for the scale-free versions (default 2000; 0: estimates only).
    violation
        The largest equi-confounding violation ``M`` (on Y's scale) the sensitivity interval
        allows (default 0).
    conf_level
        Confidence level of the intervals.
    seed
        Seed of the bootstrap. Default 0: results are reproducible; ``seed=None`` draws fresh entropy.

    Returns
    -------
    DidResult
        Per group and arm: ``naive`` (the observed contrast); per NCO (column ``nco``) ``bias``
        (the NCO contrast on Y's scale) and ``did_<scale>`` (the corrected estimate, with ``bias``
        repeated in the ``bias`` column). With several NCOs (or ``violation > 0``) also:
        ``heterogeneity`` (Wald chi-square test that the corrected estimates are equal, using
        their joint covariance; ``statistic``, ``df``, ``p_value``; ``estimate`` = their range)
        and ``sensitivity`` (``conf_low``/``conf_high``: the union of the per-NCO intervals
        widened by ``violation``). Rows that cannot be tested carry NaN and a ``note``.

    Raises
    ------
    InvalidArgumentError
        Unknown ``by`` column, ``outcome`` among the NCOs, negative ``violation``.
    InsufficientDataError
        No unit with both the outcome and the NCOs.

    Warns
    -----
    MonteCarloErrorWarning
        Bootstrap resamples in which a statistic was undefined (dropped and counted).

    Notes
    -----
    The estimate is unbiased for ``tau(p_1)`` exactly when equi-confounding holds; otherwise its
    bias is ``sum_u [mu_0(u) - nu(u)] (p_1 - p_0)(u)`` (methods 4.2), which the simulation tests check.
    Wald rows (``statistic``, ``p_value``, interval) use the normal reference with the robust or
    bootstrap standard error. [PROPOSAL] Heterogeneity: with corrected estimates ``d_k`` and joint
    covariance ``V`` (influence functions for ``additive``, the joint bootstrap otherwise),
    ``X^2 = (C d)' (C V C')^- (C d)`` on ``K - 1`` df, ``C`` the successive differences; a rejection
    says that at most all but one NCO can satisfy equi-confounding. Sensitivity interval:
    ``[min_k low_k - M, max_k high_k + M]`` covers ``tau`` with probability at least ``conf_level``
    whenever at least one NCO's violation is at most ``M`` in absolute value.

    References
    ----------
    Sofer, Richardson, Colicino, Schwartz & Tchetgen Tchetgen (2016), Statistical Science 31(3):348-361,
    doi:10.1214/16-STS558.

    Examples
    --------
    >>> import driftstats as ds
    >>> units = ds.simulate_latent_world(equi_confounding=True, seed=3).sample_units(500, seed=4)
    >>> res = ds.did_nco(units, outcome="y", nco="n", arm="t", n_boot=0)
    >>> res.tidy()["measure"].tolist()
    ['naive', 'bias', 'did_additive']
    """
    conf_level = check_conf_level(conf_level)
    check_choice("scale", scale, Scale)
    check_choice("cluster", cluster, Cluster)
    n_boot = check_positive_int("n_boot", n_boot, minimum=0)
    ncos = list(dict.fromkeys(as_columns("nco", nco)))
    if not ncos:
        raise InvalidArgumentError("nco must name at least one negative control outcome; got none.")
    if outcome in ncos:
        raise InvalidArgumentError(f"nco={ncos!r} includes the outcome {outcome!r}; an NCO must be another item.")
    try:
        violation = float(violation)
    except (TypeError, ValueError):
        violation = math.nan
    if not (violation >= 0 and math.isfinite(violation)):
        raise InvalidArgumentError(f"violation must be a finite number >= 0 (a bound on Y's scale); got {violation!r}.")
    rng = rng_from(seed)
    ud = unit_data(data, [outcome, *ncos], arm=arm, mode=mode)
    ud.require([outcome, *ncos], "outcome/nco")
    ref = ud.reference(reference)
    by_cols = resolve_by(by, log=ud.log, columns=ud.frame.columns, frame=ud.frame)
    n_all = len(ud.frame)
    frame = ud.frame.dropna(subset=[outcome, *ncos])
    for c in (outcome, *ncos):
        if not pd.api.types.is_numeric_dtype(frame[c]):
            raise InvalidArgumentError(f"column {c!r} is not numeric; did_nco needs numeric outcome and NCO values.")
    if frame.empty:
        raise InsufficientDataError(f"no unit has both {outcome!r} and {ncos!r}.")
    rows: list[dict[str, Any]] = []
    diagnostics: list[str] = []
    if n_all > len(frame):
        diagnostics.append(f"{n_all - len(frame)} unit(s) without a valid {outcome!r} or NCO answer left out")
    vcov_used: set[str] = set()
    strata_used: set[str] = set()
    dropped_boot = 0
    boot_total = 0
    multi = len(ncos) > 1 or violation > 0
    for group, g in iter_groups(frame, by_cols):
        arms_here = [a for a in pd.unique(g[ud.arm]) if a != ref]
        for a1 in arms_here:
            sub = g[g[ud.arm].isin([a1, ref])]
            t = (sub[ud.arm] == a1).to_numpy(dtype=float)
            base = {**group, "term": outcome, "arm": str(a1), "reference": str(ref),
                    "n_1": int(t.sum()), "n_0": int((1 - t).sum())}
            if t.sum() < 2 or (1 - t).sum() < 2:
                note = (f"not testable: arm {a1!r} or {ref!r} has fewer than 2 units with both {outcome!r} and the "
                        "NCO(s)")
                rows.append({**base, "measure": "naive", "note": note})
                for k in ncos:
                    rows.append({**base, "measure": "bias", "nco": k, "note": note})
                    rows.append({**base, "measure": f"did_{scale}", "nco": k, "note": note})
                continue
            pair = pairing(sub, ud.arm, cluster, log=ud.log, arms=[a1, ref])
            if pair.strata:
                strata_used.add(pair.strata)
                if pair.sentence and pair.sentence not in diagnostics:
                    diagnostics.append(pair.sentence)
            groups = pair.clusters
            vcov_used.add("cluster(persona_id)" if groups is not None else "HC1")
            y = sub[outcome].to_numpy(float)
            nm = sub[ncos].to_numpy(float)
            if not (np.isfinite(y).all() and np.isfinite(nm).all()) or max(np.abs(y).max(), np.abs(nm).max()) > 1e150:
                note = "not testable: values are not finite or too large to compute with (rescale them)"
                rows.append({**base, "measure": "naive", "note": note})
                for k in ncos:
                    rows.append({**base, "measure": "bias", "nco": k, "note": note})
                    rows.append({**base, "measure": f"did_{scale}", "nco": k, "note": note})
                continue
            _naive_arr, bias_arr = _weighted_stats(np.ones((1, t.size)), y, nm, t, scale)
            naive_est = float(y[t == 1].mean() - y[t == 0].mean())
            bias_est = bias_arr[0]
            did_est = naive_est - bias_est
            with np.errstate(all="ignore"):
                naive_se = float(mean_contrast(y, t, groups, conf_level)["std_error"])
            const_y = float(np.ptp(y)) == 0.0
            rows.append({**base, "measure": "naive",
                         **_row(naive_est, naive_se, conf_level, None,
                                "not testable: the outcome is constant in both arms" if const_y
                                else "not testable: zero variance")})
            undefined = [f"not testable: NCO {k!r} is constant in the reference arm {ref!r} (the location-scale "
                         "map onto Y's scale is undefined)" if not math.isfinite(float(b)) else None
                         for k, b in zip(ncos, bias_est, strict=True)]
            did_cov: np.ndarray | None = None
            if scale == "additive":
                ses_bias, ses_did = [], []
                with np.errstate(all="ignore"):
                    for j in range(len(ncos)):
                        ses_bias.append(float(mean_contrast(nm[:, j], t, groups, conf_level)["std_error"]))
                        ses_did.append(float(mean_contrast(y - nm[:, j], t, groups, conf_level)["std_error"]))
                    raw = _joint_additive_cov(y, nm, t, groups)
                    sd_raw = np.sqrt(np.diag(raw))
                    corr = raw / np.outer(sd_raw, sd_raw)
                    sd = np.asarray(ses_did)
                    did_cov = np.where(np.isfinite(corr), corr, 0.0) * np.outer(sd, sd)
                bias_se = np.asarray(ses_bias)
                did_se = np.asarray(ses_did)
            elif n_boot and np.isfinite(bias_est).any():
                defined = np.isfinite(bias_est)  # NCOs whose estimate is undefined on the data are not resampled
                naive_b, bias_b = _bootstrap(rng, n_boot, y, nm[:, defined], t, groups, scale)
                did_b = naive_b[:, None] - bias_b
                ok = np.isfinite(did_b).all(axis=1)
                dropped_boot += int((~ok).sum())
                boot_total += n_boot
                kept = did_b[ok]
                bias_se = np.full(len(ncos), math.nan)
                did_se = np.full(len(ncos), math.nan)
                if kept.shape[0] >= 2:
                    bias_se[defined] = bias_b[ok].std(axis=0, ddof=1)
                    did_se[defined] = kept.std(axis=0, ddof=1)
                    if defined.all():
                        did_cov = np.cov(kept, rowvar=False).reshape(len(ncos), len(ncos))
            else:
                bias_se = did_se = np.full(len(ncos), math.nan)
            no_boot = "no interval: n_boot = 0 (this scale's standard errors come from the bootstrap)"
            for j, k in enumerate(ncos):
                why = undefined[j]
                if scale != "additive" and not n_boot and why is None:
                    why = no_boot
                elif why is None and not math.isfinite(float(did_se[j])):
                    why = "not testable: too few bootstrap resamples with a defined estimate"
                b_est = float(bias_est[j])
                const_n = float(np.ptp(nm[:, j])) == 0.0
                rows.append({**base, "measure": "bias", "nco": k,
                             **_row(b_est, float(bias_se[j]), conf_level, why,
                                    f"not testable: NCO {k!r} is constant in both arms" if const_n
                                    else "not testable: zero variance")})
                const_d = float(np.ptp(y - nm[:, j])) == 0.0
                rows.append({**base, "measure": f"did_{scale}", "nco": k, "bias": b_est,
                             **_row(float(did_est[j]), float(did_se[j]), conf_level, why,
                                    f"not testable: Y - N is constant for NCO {k!r}" if const_d
                                    else "not testable: zero variance")})
            if multi:
                rows += _multi_rows(base, rows[-2 * len(ncos):], ncos, did_est, did_cov, violation, conf_level,
                                    diagnostics, group)
    if dropped_boot:
        msg = (f"{dropped_boot} of {boot_total} bootstrap resample(s) had an undefined statistic (an arm with fewer "
               "than 2 units, or an NCO constant in the reference arm) and were dropped; the standard errors are "
               "conditional on the statistic being defined")
        warnings.warn(msg, MonteCarloErrorWarning, stacklevel=2)
        diagnostics.append(msg)
    if not rows:
        raise InsufficientDataError(f"no arm besides {ref!r} has units with both {outcome!r} and {ncos!r}.")
    boot = scale != "additive"
    vcov = ("bootstrap (personas)" if "cluster(persona_id)" in vcov_used else "bootstrap") if boot else (
        "cluster(persona_id)" if "cluster(persona_id)" in vcov_used else "HC1")
    info = {"method": f"NCO difference-in-differences ({scale})", "n_obs": len(frame), "conf_level": conf_level,
            "alternative": "two-sided", "seed": seed_value(seed), "n_dropped": n_all - len(frame),
            "n_boot": n_boot if boot else None, "vcov": vcov,
            "n_tests": int(sum(1 for r in rows if isinstance(r.get("p_value"), float) and math.isfinite(r["p_value"]))),
            "strata": next(iter(strata_used)) if strata_used else None}
    return DidResult.build(rows, info, by=by_cols, diagnostics=diagnostics,
                           provenance=provenance("did_nco", data, seed=seed))


def _bootstrap(rng: np.random.Generator, n_boot: int, y: np.ndarray, nm: np.ndarray, t: np.ndarray,
               clusters: np.ndarray | None, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap distribution of (naive, bias) in chunks of resamples (vectorised)."""
    naive, bias = [], []
    done = 0
    while done < n_boot:
        b = min(_CHUNK, n_boot - done)
        w = boot_counts(rng, b, t, clusters)
        nv, bs = _weighted_stats(w, y, nm, t, scale)
        naive.append(nv)
        bias.append(bs)
        done += b
    return np.concatenate(naive), np.concatenate(bias)


def _multi_rows(base: dict[str, Any], nco_rows: list[dict[str, Any]], ncos: list[str], did_est: np.ndarray,
                did_cov: np.ndarray | None, violation: float, conf_level: float, diagnostics: list[str],
                group: dict[str, Any]) -> list[dict[str, Any]]:
    """The heterogeneity test and the sensitivity interval across NCOs (one arm, one group)."""
    out = []
    did_rows = [r for r in nco_rows if str(r["measure"]).startswith("did_")]
    where = (", ".join(f"{k}={v}" for k, v in group.items()) + ": ") if group else ""
    if len(ncos) > 1:
        finite = np.isfinite(did_est)
        if did_cov is None or not finite.all():
            out.append({**base, "measure": "heterogeneity", "note": "not testable: a per-NCO estimate or the joint "
                        "covariance is undefined"})
        else:
            stat, df, p = _heterogeneity(did_est, did_cov)
            note = None if math.isfinite(stat) else "not testable: the per-NCO estimates have a singular joint covariance"
            out.append({**base, "measure": "heterogeneity", "estimate": float(did_est.max() - did_est.min()),
                        "statistic": stat, "df": df, "p_value": p, "note": note})
            if math.isfinite(p) and p < 1 - conf_level:
                diagnostics.append(f"{where}the {len(ncos)} NCOs give different corrected estimates for {base['arm']!r} "
                                   f"(chi-square {stat:.3g} on {df:g} df, p = {p:.3g}): equi-confounding fails for at "
                                   "least one of them; see the sensitivity interval")
    lows = [r.get("conf_low", math.nan) for r in did_rows]
    highs = [r.get("conf_high", math.nan) for r in did_rows]
    if all(isinstance(v, float) and math.isfinite(v) for v in (*lows, *highs)):
        out.append({**base, "measure": "sensitivity", "conf_low": min(lows) - violation,
                    "conf_high": max(highs) + violation,
                    "note": f"no test: union of the per-NCO intervals widened by violation={violation:g}; covers the "
                            "effect at >= conf_level when at least one NCO's violation is at most that"})
    else:
        out.append({**base, "measure": "sensitivity", "note": "not testable: a per-NCO interval is undefined"})
    return out
