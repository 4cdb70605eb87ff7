"""Equivalence ("no drift beyond delta") for the TVD: two intersection-union tests on score statistics.

Both take the event statistics of :mod:`driftstats._kernels.tvd_ci` (independent arms:
Miettinen-Nurminen score statistics; matched pairs: Tango's; continuity-corrected; effective
counts for units that are not one-hot), so they hold their size where a Wald statistic's
standard error collapses (empty or rare levels), and the projection test's bound is the valid
interval's upper bound.

* :func:`iut_tost`: per level ``k``, the TOST of ``|d_k| >= delta_k`` with
  ``delta_k = 2 delta / K``, combined by intersection-union (Berger 1982): its rejection
  implies ``TV = 1/2 sum_k |d_k| < delta``.
* :func:`projection_equivalence`: ``H0: TV >= delta`` is the union over events ``A`` of
  ``D(A) >= delta``; the intersection-union test rejects when every event's one-sided score test
  rejects, which is exactly "the one-sided upper confidence bound ``max_A U_A`` of the TVD is
  below ``delta``". Above ``MAX_EVENT_LEVELS`` levels, the bound is the per-level Bonferroni
  band's ``sum_k (U_k)_+``.
"""

from __future__ import annotations

import numpy as np

from driftstats._kernels.tvd_ci import (
    EventStats,
    reference_cdf,
    score_statistic,
    score_upper,
    upper_bound,
)

__all__ = ["iut_tost", "projection_decision", "projection_equivalence"]


def iut_tost(st: EventStats, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-level score TOST with margins ``2 * margin / K``, combined by intersection-union.

    Parameters
    ----------
    st
        Event statistics (:func:`~driftstats._kernels.tvd_ci.event_stats` or
        ``event_stats_counts``); leading axes index tables.
    margin
        The TVD margin ``delta``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(p_value, z_min)``: the IUT p-value (the largest of the ``2K`` one-sided p-values) and
        the binding (smallest) one-sided statistic.
    """
    s = st.singletons()  # events {k}, then their complements: D({k}^c) = -d_k
    t = score_statistic(s, 2.0 * margin / st.n_levels)
    return reference_cdf(s, t).max(axis=-1), (-t).min(axis=-1)


def projection_equivalence(st: EventStats, margin: float, conf_level: float) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """Equivalence from the valid upper bound of the TVD: ``upper < margin``.

    Parameters
    ----------
    st
        Event statistics; leading axes index tables.
    margin
        The TVD margin ``delta``.
    conf_level
        ``1 - alpha``: the bound is one-sided at this level, i.e. the upper end of the valid
        two-sided ``1 - 2 alpha`` interval of :func:`~driftstats._kernels.tvd_ci.tvd_conf_int`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(upper, p_value, statistic)``; ``p_value < 1 - conf_level`` exactly when
        ``upper < margin`` (up to ties).
    """
    upper = upper_bound(st, conf_level)
    if not st.level_wise:
        t = score_statistic(st, margin)  # one-sided tests of D(A) >= margin, every event
        return upper, reference_cdf(st, t).max(axis=-1), (-t).min(axis=-1)
    # levels: the smallest alpha' whose Bonferroni bound sum_k (U_k(z_{1 - alpha'/K}))_+ is below the margin
    fl = st.flat()
    p = np.ones(fl.d.shape[0])
    z = np.zeros(fl.d.shape[0])
    idx = np.arange(st.n_levels)
    for i in range(fl.d.shape[0]):
        one = type(st)(st.paired, st.n_levels, True, fl.d[i], fl.a1[i], fl.m1[i], fl.a0[i], fl.m0[i],
                       st.n_min, None, st.df, st.correction)

        def bound(zz: float, one: EventStats = one) -> float:
            return float(np.clip(score_upper(one, zz, idx), 0.0, None).sum())

        if bound(0.0) >= margin:
            continue
        lo, hi = 0.0, 40.0
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if bound(mid) < margin else (lo, mid)
        z[i] = lo
        p[i] = min(1.0, st.n_levels * (1.0 - float(reference_cdf(st, np.asarray(lo)))))
    lead = np.shape(st.d)[:-1]
    return upper, p.reshape(lead), z.reshape(lead)


def projection_decision(st: EventStats, margin: float, conf_level: float) -> np.ndarray:
    """Whether the projection test concludes equivalence, per table (cheap; for power simulations).

    The same decision as ``projection_equivalence(...)[1] < 1 - conf_level``: with events, from
    the closed-form score p-values (no root finding); with levels, ``upper < margin``.
    """
    if st.level_wise:
        return upper_bound(st, conf_level) < margin
    return reference_cdf(st, score_statistic(st, margin)).max(axis=-1) < 1 - conf_level
