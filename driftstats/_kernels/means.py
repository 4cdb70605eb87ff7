"""Mean differences with Welch and paired t intervals (numpy/scipy only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["MeanDiff", "paired_t", "welch_from_stats", "welch_t"]


@dataclass(frozen=True, slots=True)
class MeanDiff:
    estimate: float
    std_error: float
    statistic: float
    df: float
    p_value: float
    conf_low: float
    conf_high: float


_NAN = MeanDiff(*(math.nan,) * 7)


def _finish(est: float, se: float, df: float, conf_level: float) -> MeanDiff:
    if not np.isfinite(se) or not np.isfinite(df) or df <= 0:
        return _NAN
    if se == 0:
        return MeanDiff(est, 0.0, math.nan, df, math.nan, est, est)
    t = est / se
    q = stats.t.ppf(0.5 + conf_level / 2, df)
    return MeanDiff(est, se, t, df, float(2 * stats.t.sf(abs(t), df)), est - q * se, est + q * se)


def welch_from_stats(m1: float, var1: float, n1: int, m0: float, var0: float, n0: int,
                     conf_level: float) -> MeanDiff:
    """Welch t from summary statistics (means, sample variances with ddof=1, sizes)."""
    if n1 < 2 or n0 < 2:
        return _NAN
    v1, v0 = var1 / n1, var0 / n0
    se = math.sqrt(v1 + v0)
    denom = v1**2 / (n1 - 1) + v0**2 / (n0 - 1)
    df = (v1 + v0) ** 2 / denom if denom > 0 else math.inf
    return _finish(float(m1 - m0), se, min(df, 1e12), conf_level)


def welch_t(x1: np.ndarray, x0: np.ndarray, conf_level: float) -> MeanDiff:
    """Welch two-sample t: ``mean(x1) - mean(x0)``, unequal variances, Welch-Satterthwaite df."""
    x1 = np.asarray(x1, float)
    x0 = np.asarray(x0, float)
    if x1.size < 2 or x0.size < 2:
        return _NAN
    return welch_from_stats(x1.mean(), x1.var(ddof=1), x1.size, x0.mean(), x0.var(ddof=1), x0.size, conf_level)


def paired_t(d: np.ndarray, conf_level: float) -> MeanDiff:
    """Paired t on within-pair differences ``d = x1 - x0``."""
    d = np.asarray(d, float)
    m = d.size
    if m < 2:
        return _NAN
    return _finish(float(d.mean()), float(d.std(ddof=1) / math.sqrt(m)), m - 1.0, conf_level)
