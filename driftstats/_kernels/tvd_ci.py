"""The valid confidence interval for the TVD between two arms (methods.md 3.2a): one entry point.

Every engine and verb that reports the *valid* TVD interval (``conf_low`` / ``conf_high`` of a
drift row) calls :func:`tvd_conf_int` (unit-level share vectors) or :func:`tvd_conf_int_counts`
(count tables of sampled answers), so the method lives in one place.

Interface (stable; the method behind it may change):

* ``x1``: ``(n1, K)`` unit share vectors of arm 1 (each row sums to 1: one-hot for a sampled
  answer, option probabilities in distribution mode, replicate averages); ``x0``: ``(n0, K)``.
* ``paired=True``: row i of ``x1`` and row i of ``x0`` are one matched pair (``n1 == n0``).
* returns ``(conf_low, conf_high)`` with ``0 <= conf_low <= conf_high <= 1``.

Current method: the Bonferroni projection of per-category Wald intervals.
"""

from __future__ import annotations

import math

import numpy as np

from driftstats._kernels.tvd import projection_interval

__all__ = ["tvd_conf_int", "tvd_conf_int_counts"]


def tvd_conf_int(x1: np.ndarray, x0: np.ndarray, conf_level: float, *, paired: bool = False) -> tuple[float, float]:
    """Valid ``conf_level`` interval for ``TV(P1, P0)`` from unit share vectors (see the module docstring)."""
    x1 = np.asarray(x1, dtype=np.float64)
    x0 = np.asarray(x0, dtype=np.float64)
    n1, n0 = x1.shape[0], x0.shape[0]
    if n1 == 0 or n0 == 0:
        return math.nan, math.nan
    d = x1.mean(axis=0) - x0.mean(axis=0)
    if paired:
        if n1 != n0:
            raise ValueError("paired=True needs as many rows in x1 as in x0 (one row per pair)")
        diff = x1 - x0
        se = diff.std(axis=0, ddof=1) / math.sqrt(n1) if n1 > 1 else np.full(d.size, np.nan)
    else:
        se = np.sqrt(x1.var(axis=0) / n1 + x0.var(axis=0) / n0)
    return projection_interval(d, se, conf_level)


def tvd_conf_int_counts(c1: np.ndarray, c0: np.ndarray, conf_level: float) -> tuple[float, float]:
    """Valid ``conf_level`` interval for ``TV`` from the answer counts per level of two independent arms."""
    c1 = np.asarray(c1, dtype=np.float64)
    c0 = np.asarray(c0, dtype=np.float64)
    m1, m0 = c1.sum(), c0.sum()
    if m1 == 0 or m0 == 0:
        return math.nan, math.nan
    q1, q0 = c1 / m1, c0 / m0
    se = np.sqrt(q1 * (1 - q1) / m1 + q0 * (1 - q0) / m0)
    return projection_interval(q1 - q0, se, conf_level)
