"""Distances, intervals and multiplicity for categorical and numeric NCOs (numpy/scipy only).

Notation (methods.md section 3): arm shares ``q1``, ``q0`` over K levels;
``TV = 1/2 sum_k |q1k - q0k|``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = [
    "Blocks",
    "block_tvd",
    "minp_fwer",
    "perm_pvalue",
    "projection_interval",
    "tvd",
]


def tvd(q1: np.ndarray, q0: np.ndarray) -> np.ndarray:
    """Total variation distance along the last axis."""
    return 0.5 * np.abs(np.asarray(q1) - np.asarray(q0)).sum(axis=-1)


class Blocks:
    """Column layout of the unit x feature matrix: NCO j owns columns ``slices[j]``."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = np.asarray(sizes, dtype=int)
        ends = np.cumsum(self.sizes)
        self.starts = ends - self.sizes
        self.slices = [slice(s, e) for s, e in zip(self.starts, ends, strict=True)]
        # column -> block index, for vectorised reductions
        self.owner = np.repeat(np.arange(self.sizes.size), self.sizes)

    @property
    def n_blocks(self) -> int:
        return int(self.sizes.size)


def block_tvd(s1: np.ndarray, n1: np.ndarray, s0: np.ndarray, n0: np.ndarray, blocks: Blocks) -> np.ndarray:
    """TVD of every block from arm sums.

    ``s1``, ``s0``: ``(c, D)`` sums of unit vectors per arm; ``n1``, ``n0``: ``(c, J)``
    numbers of units per arm that answered each block. Returns ``(c, J)``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        q1 = s1 / n1[:, blocks.owner]
        q0 = s0 / n0[:, blocks.owner]
    return 0.5 * np.add.reduceat(np.abs(q1 - q0), blocks.starts, axis=1)


def projection_interval(
    d: np.ndarray, se: np.ndarray, conf_level: float
) -> tuple[float, float]:
    """Valid (conservative) interval for TV from simultaneous Wald intervals of the d_k.

    Each ``d_k = q1k - q0k`` gets a Wald interval at level ``1 - alpha/K`` (Bonferroni);
    then ``TV in [1/2 sum dist(0, [l_k, u_k]), 1/2 sum max(|l_k|, |u_k|)]`` (methods 3.2a).
    """
    d = np.asarray(d, dtype=float)
    se = np.asarray(se, dtype=float)
    k = d.size
    z = stats.norm.ppf(1 - (1 - conf_level) / (2 * k))
    lo, hi = d - z * se, d + z * se
    dist0 = np.where(lo > 0, lo, np.where(hi < 0, -hi, 0.0))
    low = 0.5 * dist0.sum()
    high = 0.5 * np.maximum(np.abs(lo), np.abs(hi)).sum()
    return float(min(low, 1.0)), float(min(high, 1.0))


def perm_pvalue(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``(1 + #{T_b >= T_obs}) / (B + 1)`` per column (exact-size permutation p-value)."""
    null = np.atleast_2d(null)
    tol = 1e-9 * np.maximum(1.0, np.abs(observed))
    return (1.0 + (null >= observed - tol).sum(axis=0)) / (null.shape[0] + 1.0)


def minp_fwer(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Westfall-Young single-step min-p adjusted p-values on the same permutations.

    ``null``: ``(B, J)`` statistics of J tests on B joint permutations; ``observed``: ``(J,)``.
    Each permutation's statistics are turned into permutation p-values within their column,
    the minimum over columns is taken, and ``p_fwer_j = (1 + #{min_b <= p_j}) / (B + 1)``.
    """
    null = np.atleast_2d(null)
    b, j = null.shape
    p_obs = perm_pvalue(null, observed)
    p_null = np.empty_like(null, dtype=float)
    for col in range(j):
        srt = np.sort(null[:, col])
        tol = 1e-12 * np.maximum(1.0, np.abs(null[:, col]))
        ge = b - np.searchsorted(srt, null[:, col] - tol, side="left")
        p_null[:, col] = (1.0 + ge) / (b + 1.0)
    valid = ~np.isnan(observed)
    min_p = np.nanmin(np.where(valid[None, :], p_null, np.inf), axis=1)
    adj = (1.0 + (min_p[:, None] <= p_obs[None, :] + 1e-15).sum(axis=0)) / (b + 1.0)
    return np.maximum(adj, p_obs)


def _observed_expected(table: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Observed and expected counts of an arms x levels table (empty levels dropped); None if degenerate."""
    t = np.asarray(table, float)
    t = t[:, t.sum(axis=0) > 0]
    if t.shape[1] < 2 or (t.sum(axis=1) == 0).any():
        return None
    return t, t.sum(axis=1, keepdims=True) * t.sum(axis=0, keepdims=True) / t.sum()


def pearson_chi2(table: np.ndarray) -> float:
    """Pearson chi-square of an arms x levels table (levels with no observations dropped)."""
    oe = _observed_expected(table)
    if oe is None:
        return float("nan")
    t, e = oe
    return float(((t - e) ** 2 / e).sum())


def g_statistic(table: np.ndarray) -> float:
    """Likelihood-ratio (G) statistic of an arms x levels table."""
    oe = _observed_expected(table)
    if oe is None:
        return float("nan")
    t, e = oe
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(t > 0, t * np.log(t / e), 0.0)
    return float(2 * terms.sum())
