"""Distances, intervals and multiplicity for categorical and numeric NCOs (numpy/scipy only).

Notation (methods.md section 3): arm shares ``q1``, ``q0`` over K levels;
``TV = 1/2 sum_k |q1k - q0k|``.

Permutation p-values treat the observed labelling as one of the ``B + 1`` equally likely
configurations (the observed one and ``B`` random relabellings): a configuration's p-value is
its rank in its column among all ``B + 1``, so the single-step min-p adjustment (Westfall & Young
1993) ranks the observed and the permuted configurations the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

__all__ = [
    "TIE_RTOL",
    "Blocks",
    "bh_adjust",
    "block_tvd",
    "exceedance_counts",
    "holm_adjust",
    "minp_fwer",
    "perm_pvalue",
    "projection_interval",
    "tvd",
]

#: Relative tolerance under which two statistics count as tied (SciPy's ``permutation_test`` rule:
#: 100 machine epsilons). Integer (count) data are computed exactly, so their ties are exact anyway;
#: the tolerance only absorbs summation-order rounding of real-valued (``mode='dist'``) data.
TIE_RTOL = 100 * np.finfo(np.float64).eps


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


def block_tvd(
    s1: np.ndarray, n1: np.ndarray, s0: np.ndarray, n0: np.ndarray, blocks: Blocks,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """TVD of every block from arm sums.

    ``s1``, ``s0``: ``(c, D)`` sums of unit vectors per arm; ``n1``, ``n0``: ``(c, J)``
    numbers of units per arm that answered each block; ``scale``: ``(J,)`` factor by which the
    unit vectors of each block were multiplied (``s = scale * sum of shares``), default 1.
    Returns ``(c, J)``; NaN where an arm has no answer to a block.

    Computed as ``sum_k |s1k n0 - s0k n1| / (2 scale n1 n0)``: when the sums are integers (one-hot
    answers, or replicate counts scaled to a common denominator) every step before the one
    division is exact in float64 (below 2**53), so two labellings with the same TVD get the same
    float, bit for bit, and ties between permutations are exact.
    """
    owner = blocks.owner
    with np.errstate(invalid="ignore", divide="ignore"):
        num = np.add.reduceat(np.abs(s1 * n0[:, owner] - s0 * n1[:, owner]), blocks.starts, axis=1)
        den = 2.0 * n1 * n0
        if scale is not None:
            den = den * np.asarray(scale, dtype=np.float64)[None, :]
        out = num / den
    return np.where((n1 > 0) & (n0 > 0), out, np.nan)


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


def _ranked(x: np.ndarray) -> np.ndarray:
    """Statistics with NaN (undefined, e.g. an arm left without answers) ranked below every value."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isnan(x), -np.inf, x)


def exceedance_counts(pool: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``#{pool_b >= v - tol(v)}`` per column for every row of ``values`` (integers).

    ``pool``: ``(M, J)``; ``values``: ``(V, J)``. Ties within ``TIE_RTOL`` (relative) count as
    ``>=``; NaN in ``pool`` ranks below every value (it never exceeds), NaN in ``values`` gives a
    count of ``M`` (every configuration is at least as extreme as an undefined one).
    """
    pool = _ranked(np.atleast_2d(pool))
    values = _ranked(np.atleast_2d(values))
    m, j = pool.shape
    out = np.empty(values.shape, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        thresh = values - TIE_RTOL * np.where(np.isfinite(values), np.abs(values), 0.0)
    for col in range(j):
        srt = np.sort(pool[:, col])
        out[:, col] = m - np.searchsorted(srt, thresh[:, col], side="left")
    return out


def perm_pvalue(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``(1 + #{T_b >= T_obs}) / (B + 1)`` per column (exact-size permutation p-value).

    ``null``: ``(B, J)`` statistics of B random relabellings; ``observed``: ``(J,)``. Ties within
    ``TIE_RTOL`` count as ``>=`` (as in :func:`scipy.stats.permutation_test`); a permuted
    statistic that is undefined (NaN) counts as less extreme. A NaN observed statistic has no
    test: its p-value is NaN.

    Examples
    --------
    >>> perm_pvalue(np.array([[0.1], [0.3], [0.2]]), np.array([0.2]))
    array([0.75])
    """
    null = np.atleast_2d(null)
    observed = np.asarray(observed, dtype=np.float64)
    ge = exceedance_counts(null, observed[None, :])[0]
    p = (1.0 + ge) / (null.shape[0] + 1.0)
    return np.where(np.isnan(observed), np.nan, p)


def minp_fwer(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Westfall-Young single-step min-p adjusted p-values on the same permutations.

    ``null``: ``(B, J)`` statistics of J tests on B joint relabellings; ``observed``: ``(J,)``.
    The observed labelling is one of ``B + 1`` equally likely configurations. For every
    configuration ``b`` (observed included) and test ``j``, ``p_bj`` is its permutation p-value,
    its rank among all ``B + 1`` configurations in column ``j``:
    ``p_bj = #{b' : T_b'j >= T_bj} / (B + 1)`` (``p_0j`` is :func:`perm_pvalue`). With
    ``m_b = min_j p_bj`` over the testable columns,
    ``p_fwer_j = #{b : m_b <= p_0j} / (B + 1)``.

    Columns whose observed statistic is NaN (not testable) take no part in the minimum and get
    NaN. Under the complete null the adjusted p-values are exactly valid:
    ``P(min_j p_fwer_j <= a) <= a`` for every ``a``, because ``m_0`` is exchangeable with
    ``m_1, ..., m_B``.

    References
    ----------
    Westfall, P. H. & Young, S. S. (1993). Resampling-Based Multiple Testing. Wiley. Section 2.6.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> null = rng.random((199, 10))
    >>> obs = rng.random(10)
    >>> obs[0] = 2.0  # far beyond every permuted value
    >>> float(minp_fwer(null, obs)[0])  # the min over 10 tests reaches 1/200 about 10 times in 200
    0.05
    """
    null = np.atleast_2d(null)
    observed = np.asarray(observed, dtype=np.float64)
    b, j = null.shape
    out = np.full(j, np.nan)
    keep = ~np.isnan(observed)
    if not keep.any():
        return out
    configs = np.vstack([observed[None, keep], np.asarray(null, dtype=np.float64)[:, keep]])  # (B + 1, J')
    counts = exceedance_counts(configs, configs)  # p_bj * (B + 1), integers
    min_counts = counts.min(axis=1)
    adj = (min_counts[None, :] <= counts[0][:, None]).sum(axis=1) / (b + 1.0)
    out[keep] = adj
    return out


def holm_adjust(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries (untested rows) stay NaN and are not counted.

    ``p_(i) -> max_{k <= i} min((m - k + 1) p_(k), 1)`` over the m non-missing p-values in
    increasing order (Holm 1979), as ``statsmodels.stats.multitest.multipletests(method="holm")``.

    Examples
    --------
    >>> holm_adjust(np.array([0.01, 0.04, np.nan, 0.03]))
    array([0.03, 0.06,  nan, 0.06])
    """
    return _step(p, lambda ps, m: np.maximum.accumulate(np.minimum((m - np.arange(m)) * ps, 1.0)))


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values; NaN entries stay NaN and are not counted.

    ``p_(i) -> min_{k >= i} min(m p_(k) / k, 1)`` (Benjamini & Hochberg 1995), as
    ``multipletests(method="fdr_bh")``.

    Examples
    --------
    >>> bh_adjust(np.array([0.01, 0.04, 0.03]))
    array([0.03, 0.04, 0.04])
    """
    return _step(p, lambda ps, m: np.minimum(np.minimum.accumulate((ps * m / np.arange(1, m + 1))[::-1])[::-1], 1.0))


def _step(p: np.ndarray, adjust: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Apply a step-wise adjustment ``adjust(sorted p, m)`` to the non-NaN entries of ``p``, in their order."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv, kind="stable")
    adj = np.empty(m)
    adj[order] = adjust(pv[order], m)
    out[ok] = adj
    return out


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
