"""The count-table drift engine for large logs (one sampled answer per unit and NCO, no strata).

Every categorical statistic depends only on counts per (group, arm, level). Per NCO the
permutation null is exact: relabelling units with the arm sizes fixed makes the arm-1
count vector multivariate hypergeometric, drawn with ``Generator.hypergeometric`` level by
level and vectorised over permutations (when some units skipped the NCO, the number of
arm-1 units among those who answered is itself hypergeometric). Cost: O(B x K) per NCO,
whatever the number of rows.

The family-wise (min-p) adjustment needs the *joint* permutation law of all NCOs. For the
large samples this engine is used for, that law is Gaussian with the exact finite-population
covariance ``n1 n0 / (n (n - 1)) sum_u (h_u - hbar)(h_u - hbar)'`` of the units' one-hot
vectors (with presence indicators), so the family-wise p-values use Gaussian draws with
that covariance; the result's diagnostics say so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from driftstats._kernels.means import MeanDiff, welch_from_stats
from driftstats._kernels.tvd import (
    Blocks,
    block_tvd,
    minp_fwer,
    pearson_chi2,
    perm_pvalue,
    projection_interval,
)
from driftstats.nco._engine import PairOutcome

__all__ = ["analyse_counts"]


def _mvhg(rng: np.random.Generator, totals: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Multivariate hypergeometric counts for each entry of ``draws`` (vectorised over draws)."""
    out = np.zeros((draws.size, totals.size), dtype=np.int64)
    left_total = int(totals.sum())
    left = draws.astype(np.int64).copy()
    for k in range(totals.size - 1):
        good = int(totals[k])
        bad = left_total - good
        x = rng.hypergeometric(good, bad, left) if good and bad else (left if not bad else np.zeros_like(left))
        out[:, k] = x
        left -= x
        left_total = bad
    out[:, -1] = left
    return out


def analyse_counts(
    codes: np.ndarray,
    arm1: np.ndarray,
    items: list[Any],
    group: dict[str, Any],
    names: tuple[str, str],
    *,
    n_perm: int,
    n_boot: int,
    conf_level: float,
    rng: np.random.Generator,
) -> PairOutcome:
    """``codes``: (n, J) response codes (-1: no answer); ``arm1``: (n,) bool."""
    n = arm1.size
    n1_all = int(arm1.sum())
    n0_all = n - n1_all
    blocks = Blocks([it.n_levels for it in items])
    J = len(items)
    present = codes >= 0
    # one-hot sums per arm, and the joint second moments for the Gaussian family-wise law
    cnt1 = [np.bincount(codes[arm1 & present[:, j], j], minlength=items[j].n_levels) for j in range(J)]
    cnt0 = [np.bincount(codes[~arm1 & present[:, j], j], minlength=items[j].n_levels) for j in range(J)]
    observed = np.empty(J)
    null = np.empty((n_perm, J))
    boot = np.empty((n_boot, J)) if n_boot else np.empty((0, J))
    for j in range(J):
        c1, c0 = cnt1[j].astype(float), cnt0[j].astype(float)
        m1, m0 = c1.sum(), c0.sum()
        observed[j] = 0.5 * np.abs(c1 / m1 - c0 / m0).sum()
        tot = (cnt1[j] + cnt0[j]).astype(np.int64)
        m = int(tot.sum())
        draws = rng.hypergeometric(n1_all, n0_all, np.full(n_perm, m)) if m < n else np.full(n_perm, n1_all)
        x1 = _mvhg(rng, tot, draws).astype(float)
        x0 = tot[None, :] - x1
        with np.errstate(invalid="ignore", divide="ignore"):
            null[:, j] = 0.5 * np.abs(x1 / x1.sum(1, keepdims=True) - x0 / x0.sum(1, keepdims=True)).sum(1)
        if n_boot:
            b1 = rng.multinomial(int(m1), c1 / m1, size=n_boot) / m1
            b0 = rng.multinomial(int(m0), c0 / m0, size=n_boot) / m0
            boot[:, j] = 0.5 * np.abs(b1 - b0).sum(1)
    p_perm = perm_pvalue(null, observed)

    # Gaussian joint law of the arm-1 sums (one-hot + presence), for the family-wise min-p
    D = int(blocks.sizes.sum())
    h = np.zeros((n, D + J), dtype=np.float64)
    rows, cols = np.nonzero(present)
    h[rows, blocks.starts[cols] + codes[rows, cols]] = 1.0
    h[:, D:] = present
    hbar = h.mean(axis=0)
    hc = h - hbar
    cov = (n1_all * n0_all / (n * (n - 1.0))) * (hc.T @ hc)
    w, v = np.linalg.eigh(cov)
    z = rng.standard_normal((n_perm, w.size)) * np.sqrt(np.clip(w, 0, None))
    s1 = n1_all * hbar + z @ v.T
    stot = h.sum(axis=0)
    g_null = block_tvd(s1[:, :D], s1[:, D:], stot[None, :D] - s1[:, :D], stot[None, D:] - s1[:, D:], blocks)
    fwer = np.maximum(minp_fwer(g_null, observed), p_perm)

    rows_out = []
    dists = []
    alpha = 1 - conf_level
    for j, item in enumerate(items):
        c1, c0 = cnt1[j].astype(float), cnt0[j].astype(float)
        m1, m0 = c1.sum(), c0.sum()
        q1, q0 = c1 / m1, c0 / m0
        se = np.sqrt(q1 * (1 - q1) / m1 + q0 * (1 - q0) / m0)
        low, high = projection_interval(q1 - q0, se, conf_level)
        est = float(observed[j])
        if n_boot:
            qlo, qhi = np.quantile(boot[:, j], [alpha / 2, 1 - alpha / 2])
            b_low, b_high = max(2 * est - qhi, 0.0), min(max(2 * est - qlo, 0.0), 1.0)
            bc = max(2 * est - float(boot[:, j].mean()), 0.0)
        else:
            b_low = b_high = bc = math.nan
        if item.scale == "ordinal":
            k = np.arange(c1.size, dtype=float)
            mu1, mu0 = q1 @ k, q0 @ k
            md = welch_from_stats(mu1, q1 @ (k - mu1) ** 2 * m1 / (m1 - 1), int(m1),
                                  mu0, q0 @ (k - mu0) ** 2 * m0 / (m0 - 1), int(m0), conf_level)
        else:
            md = MeanDiff(*(math.nan,) * 7)
        rows_out.append({
            "term": item.item, "arm": names[0], "reference": names[1], "measure": "tvd",
            "n_1": int(m1), "n_0": int(m0), "n_levels": c1.size, "estimate": est,
            "statistic": pearson_chi2(np.vstack([c1, c0])), "p_value": float(p_perm[j]),
            "conf_low": low, "conf_high": high, "null_mean": float(null[:, j].mean()),
            "null_q95": float(np.quantile(null[:, j], 0.95)), "excess": max(est - float(null[:, j].mean()), 0.0),
            "estimate_bc": bc, "conf_low_approx": b_low, "conf_high_approx": b_high,
            "mean_shift": md.estimate, "mean_shift_low": md.conf_low, "mean_shift_high": md.conf_high,
            "p_value_fwer": float(fwer[j]),
        })
        for arm_name, q, cnt in ((names[0], q1, m1), (names[1], q0, m0)):
            for kk, level in enumerate(item.options or ()):
                dists.append({**group, "item": item.item, "arm": arm_name, "level": level, "position": kk,
                              "share": float(q[kk]), "n": int(cnt)})
    return PairOutcome(rows=rows_out, null=null, observed=observed, layout_kind="counts", distributions=dists)
