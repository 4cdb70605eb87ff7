"""The Wald row: (estimate, standard error) -> statistic, p-value and interval, computed once.

Every estimator that reports a normal- or t-based test goes through :func:`wald`, so the
statistic, the p-value and the interval of a row always come from the same reference
distribution. A standard error that is not finite or not positive (a constant outcome, a
single cluster) gives no test: statistic and p-value are NaN, and so is the interval
(never a zero-width interval presented as a finding).
"""

from __future__ import annotations

import math
from typing import TypedDict

from scipy import stats

__all__ = ["WaldRow", "wald"]


class WaldRow(TypedDict):
    estimate: float
    std_error: float
    statistic: float
    p_value: float
    conf_low: float
    conf_high: float


def wald(
    estimate: float,
    std_error: float,
    conf_level: float,
    *,
    df: float | None = None,
    null: float = 0.0,
    bounds: tuple[float, float] | None = None,
) -> WaldRow:
    """Two-sided Wald test of ``estimate = null`` and the ``conf_level`` interval.

    ``df=None`` uses the standard normal; a finite ``df`` uses Student's t with ``df`` degrees
    of freedom (for the statistic, the p-value *and* the interval). ``bounds`` clips the
    interval to the parameter space (e.g. ``(-1, 1)`` for a difference of two shares).

    Examples
    --------
    >>> row = wald(0.5, 0.25, 0.95)
    >>> round(row["statistic"], 6), round(row["p_value"], 4)
    (2.0, 0.0455)
    >>> wald(0.0, 0.0, 0.95)["p_value"]
    nan
    """
    est = float(estimate)
    se = float(std_error)
    nan = math.nan
    if not math.isfinite(est) or not math.isfinite(se) or se <= 0 or (df is not None and not df > 0):
        return WaldRow(estimate=est, std_error=se if math.isfinite(se) else nan, statistic=nan, p_value=nan,
                       conf_low=nan, conf_high=nan)
    stat = (est - null) / se
    if df is None or math.isinf(df):
        p = float(2 * stats.norm.sf(abs(stat)))
        q = float(stats.norm.ppf(0.5 + conf_level / 2))
    else:
        p = float(2 * stats.t.sf(abs(stat), df))
        q = float(stats.t.ppf(0.5 + conf_level / 2, df))
    low, high = est - q * se, est + q * se
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return WaldRow(estimate=est, std_error=se, statistic=stat, p_value=p, conf_low=low, conf_high=high)
