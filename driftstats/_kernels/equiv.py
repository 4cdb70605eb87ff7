"""Equivalence ("no drift beyond delta") for the TVD: intersection-union TOST and projection.

``d``: ``(..., K)`` share differences ``q1k - q0k``; ``se``: their standard errors.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["iut_tost", "projection_equivalence"]


def iut_tost(d: np.ndarray, se: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-category Wald TOST combined by intersection-union (Berger 1982).

    Category k tests ``|d_k| >= delta_k`` with ``delta_k = 2 * margin / K``; the IUT p-value
    is the largest per-category p-value, and its rejection implies ``TV < margin``.
    Returns ``(p_value, z_min)`` where ``z_min`` is the binding (smallest) one-sided z.
    """
    d = np.asarray(d, float)
    se = np.asarray(se, float)
    k = d.shape[-1]
    dk = 2.0 * margin / k
    with np.errstate(divide="ignore", invalid="ignore"):
        z_low = (d + dk) / se  # H0: d <= -dk
        z_upp = (dk - d) / se  # H0: d >= dk
    z_low = np.where(se > 0, z_low, np.where(d > -dk, np.inf, -np.inf))
    z_upp = np.where(se > 0, z_upp, np.where(d < dk, np.inf, -np.inf))
    z = np.minimum(z_low, z_upp)
    p = stats.norm.sf(z)
    return p.max(axis=-1), z.min(axis=-1)


def projection_equivalence(d: np.ndarray, se: np.ndarray, margin: float, conf_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Projection test: the upper bound of the valid TV interval below ``margin``.

    ``U(alpha) = 1/2 sum_k (|d_k| + z_{1 - alpha/(2K)} se_k)``. Returns ``(U at 1 - conf_level,
    p-value)`` where the p-value is the smallest alpha with ``U(alpha) < margin``.
    """
    d = np.asarray(d, float)
    se = np.asarray(se, float)
    k = d.shape[-1]
    alpha = 1.0 - conf_level
    z = stats.norm.ppf(1 - alpha / (2 * k))
    half_abs = 0.5 * np.abs(d).sum(axis=-1)
    half_se = 0.5 * se.sum(axis=-1)
    upper = np.minimum(half_abs + z * half_se, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_star = (margin - half_abs) / half_se
    p = np.where(z_star > 0, np.minimum(1.0, 2 * k * stats.norm.sf(z_star)), 1.0)
    return upper, p
