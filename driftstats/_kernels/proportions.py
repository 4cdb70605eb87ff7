"""Tests and intervals for a difference of two proportions, independent or paired (numpy/scipy only).

Each function returns one :class:`PropRow`: the estimate, the test's statistic and p-value and
an interval, all from *one* method, so that a row never mixes tests.

* :func:`score_2indep` - independent samples: the Miettinen-Nurminen score test of
  ``p1 - p0 = delta`` (variance at the restricted maximum-likelihood estimates, with the
  ``N / (N - 1)`` correction) and the interval that inverts it (statsmodels
  ``test_proportions_2indep`` / ``confint_proportions_2indep`` with ``method="score"``).
* :func:`paired_2x2` - paired samples: McNemar's test (exact binomial when there are fewer than
  ``exact_below`` discordant pairs, otherwise the chi-square form without continuity correction,
  which is the score test of Tango 1998 at ``delta = 0``) and Tango's score interval for the
  difference of paired proportions.

Both intervals lie inside ``[-1, 1]`` by construction.

References
----------
Miettinen O, Nurminen M (1985). Comparative analysis of two rates. *Statistics in Medicine* 4:213-226.
doi:10.1002/sim.4780040211
Farrington CP, Manning G (1990). Test statistics and sample size formulae for comparative binomial
trials with null hypothesis of non-zero risk difference or non-unity relative risk. *Statistics in
Medicine* 9:1447-1454. doi:10.1002/sim.4780091208
Tango T (1998). Equivalence test and confidence interval for the difference in proportions for the
paired-sample design. *Statistics in Medicine* 17:891-908.
doi:10.1002/(SICI)1097-0258(19980430)17:8<891::AID-SIM780>3.0.CO;2-B
McNemar Q (1947). Note on the sampling error of the difference between correlated proportions or
percentages. *Psychometrika* 12:153-157. doi:10.1007/BF02295996
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypedDict

from scipy import optimize, stats

__all__ = ["EXACT_BELOW", "PropRow", "mn_restricted", "paired_2x2", "score_2indep", "tango_restricted"]

#: McNemar's test is exact (binomial) below this many discordant pairs.
EXACT_BELOW = 25
_EPS = 1e-12


class PropRow(TypedDict):
    estimate: float
    std_error: float
    statistic: float
    df: float
    p_value: float
    conf_low: float
    conf_high: float


def _invert(z_of: Callable[[float], float], estimate: float, conf_level: float) -> tuple[float, float]:
    """The interval ``{delta : |z(delta)| <= q}`` for a score statistic decreasing in ``delta``."""
    q = float(stats.norm.ppf(0.5 + conf_level / 2))
    lo_end, hi_end = -1.0 + _EPS, 1.0 - _EPS
    if estimate <= lo_end:
        low = -1.0
    else:
        f = lambda d: z_of(d) - q  # noqa: E731
        low = -1.0 if f(lo_end) <= 0 else optimize.brentq(f, lo_end, estimate, xtol=1e-13, rtol=1e-12)
    if estimate >= hi_end:
        high = 1.0
    else:
        g = lambda d: z_of(d) + q  # noqa: E731
        high = 1.0 if g(hi_end) >= 0 else optimize.brentq(g, estimate, hi_end, xtol=1e-13, rtol=1e-12)
    return max(-1.0, float(low)), min(1.0, float(high))


# ---------------------------------------------------------------------------------- independent
def mn_restricted(x1: int, n1: int, x0: int, n0: int, delta: float) -> tuple[float, float]:
    """Restricted MLEs ``(p1~, p0~)`` of two binomial proportions under ``p1 - p0 = delta``.

    The closed-form root of the likelihood equations (Farrington & Manning 1990, eq. 11).
    """
    p1h, p0h = x1 / n1, x0 / n0
    if delta == 0:
        p = (x1 + x0) / (n1 + n0)
        return p, p
    theta = n0 / n1
    a = 1 + theta
    b = -(1 + theta + p1h + theta * p0h + delta * (theta + 2))
    c = delta**2 + delta * (2 * p1h + theta + 1) + p1h + theta * p0h
    d = -p1h * delta * (1 + delta)
    v = b**3 / (27 * a**3) - b * c / (6 * a**2) + d / (2 * a)
    u2 = b**2 / (9 * a**2) - c / (3 * a)
    u = math.copysign(math.sqrt(max(u2, 0.0)), v)
    ratio = 1.0 if u == 0 else max(-1.0, min(1.0, v / u**3))
    w = (math.pi + math.acos(ratio)) / 3
    p1 = 2 * u * math.cos(w) - b / (3 * a)
    p1 = min(1.0, max(0.0, p1))
    p0 = min(1.0, max(0.0, p1 - delta))
    return p1, p0


def score_2indep(x1: int, n1: int, x0: int, n0: int, conf_level: float) -> PropRow:
    """Miettinen-Nurminen score test of ``p1 = p0`` and its inverted interval for ``p1 - p0``.

    ``std_error`` is the standard error under the null ``p1 = p0`` (pooled proportion, with the
    ``N / (N - 1)`` correction), so ``statistic = estimate / std_error``. When every observation
    in both samples is the same (``x1 + x0`` is 0 or ``n1 + n0``) the test is undefined: statistic
    and p-value are NaN while the interval (well defined away from 0) is kept.

    Examples
    --------
    >>> row = score_2indep(40, 50, 30, 50, 0.95)
    >>> round(row["estimate"], 3), round(row["p_value"], 4)
    (0.2, 0.0299)
    """
    n = n1 + n0
    est = x1 / n1 - x0 / n0
    corr = n / (n - 1)

    def z_of(delta: float) -> float:
        num = est - delta
        if num == 0:
            return 0.0
        p1, p0 = mn_restricted(x1, n1, x0, n0, delta)
        var = (p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0) * corr
        return math.copysign(math.inf, num) if var <= 0 else num / math.sqrt(var)

    pooled = (x1 + x0) / n
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0) * corr)
    low, high = _invert(z_of, est, conf_level)
    if se0 > 0:
        z = est / se0
        p = float(2 * stats.norm.sf(abs(z)))
    else:
        z = p = math.nan
    return PropRow(estimate=est, std_error=se0 if se0 > 0 else math.nan, statistic=z, df=math.nan, p_value=p,
                   conf_low=low, conf_high=high)


# ---------------------------------------------------------------------------------- paired
def tango_restricted(b: int, c: int, n: int, delta: float) -> float:
    """Restricted MLE of the discordant-cell probability ``pi_01`` under ``pi_10 - pi_01 = delta``.

    ``b`` counts pairs (arm 1 yes, arm 0 no), ``c`` pairs (arm 1 no, arm 0 yes); Tango (1998) eq. 5.
    """
    a_ = 2 * n
    b_ = -b - c + (2 * n - b + c) * delta
    c_ = -c * delta * (1 - delta)
    return (math.sqrt(max(b_**2 - 4 * a_ * c_, 0.0)) - b_) / (2 * a_)


def paired_2x2(b: int, c: int, n: int, conf_level: float, *, exact_below: int = EXACT_BELOW) -> PropRow:
    """McNemar's test and Tango's score interval for a difference of paired proportions.

    ``estimate = (b - c) / n``. With ``b + c < exact_below`` discordant pairs the p-value is the
    exact two-sided binomial one, ``min(1, 2 P(Bin(b + c, 1/2) <= min(b, c)))``, and ``statistic``
    is ``b``; otherwise ``statistic = (b - c)^2 / (b + c)`` with ``df = 1`` (chi-square, no
    continuity correction). ``std_error = sqrt(b + c) / n`` is the standard error under the null.
    With no discordant pairs (``b + c = 0``) there is no test (NaN); the interval is kept.

    Examples
    --------
    >>> row = paired_2x2(30, 12, 100, 0.95)
    >>> round(row["statistic"], 4), round(row["p_value"], 5), row["df"]
    (7.7143, 0.00548, 1.0)
    """
    disc = b + c
    est = (b - c) / n

    def z_of(delta: float) -> float:
        num = b - c - n * delta
        if num == 0:
            return 0.0
        q = tango_restricted(b, c, n, delta)
        var = n * (2 * q + delta * (1 - delta))
        return math.copysign(math.inf, num) if var <= 0 else num / math.sqrt(var)

    low, high = _invert(z_of, est, conf_level)
    if disc == 0:
        stat = p = df = se = math.nan
    elif disc < exact_below:
        stat, df = float(b), math.nan
        p = min(1.0, float(2 * stats.binom.cdf(min(b, c), disc, 0.5)))
        se = math.sqrt(disc) / n
    else:
        stat, df = (b - c) ** 2 / disc, 1.0
        p = float(stats.chi2.sf(stat, 1))
        se = math.sqrt(disc) / n
    return PropRow(estimate=est, std_error=se, statistic=stat, df=df, p_value=p, conf_low=low, conf_high=high)
