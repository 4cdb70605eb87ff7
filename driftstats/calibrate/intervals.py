"""Calibrated confidence intervals: the systematic error model (``fitSystematicErrorModel``), ``calibrateConfidenceInterval``, EASE and the evaluation on simulated controls.

Part of :mod:`driftstats.calibrate` (methods.md section 4.4).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from driftstats._args import (
    check_conf_level,
    rng_from,
)
from driftstats._kernels.wald import wald
from driftstats.calibrate._inputs import _broadcast, _clean, _floats, _same_length
from driftstats.calibrate._likelihood import _Errors
from driftstats.calibrate.null import (
    McmcNullDistribution,
    Null,
    NullDistribution,
    SystematicErrorModel,
    _draws_for_mixture,
    fit_null,
)
from driftstats.errors import ConvergenceWarning, InsufficientDataError, InvalidArgumentError


def fit_systematic_error_model(
    estimates: Sequence[float],
    std_errors: Sequence[float],
    true_effects: Sequence[float],
    *,
    max_abs: float | None = None,
) -> SystematicErrorModel:
    """Fit how systematic error changes with the true effect (``fitSystematicErrorModel``).

    Error mean ``a + b*theta``, error sd ``c + d*|theta|``; likelihood
    ``sum_j log phi(theta_hat_j; a + b*theta_j, s_j^2 + (c + d*|theta_j|)^2)`` maximised by
    Nelder-Mead from (0, 1, 0.1, 0). ``b`` and ``d`` are identified only with positive controls
    (``theta_j != 0``). A :class:`~driftstats.errors.ConvergenceWarning` is issued when the
    optimiser did not converge (``converged=False`` on the model).

    Examples
    --------
    >>> import driftstats as ds
    >>> c = ds.simulate_controls(60, mean=0.1, sd=0.1, true_effects=[0.0, 0.5, 1.0], seed=2)
    >>> m = ds.fit_systematic_error_model(c["estimate"], c["std_error"], c["true_effect"])
    >>> m.converged, bool(abs(m.mean_intercept - 0.1) < 0.1)
    (True, True)
    """
    est, se, truth, dropped = _clean(estimates, std_errors, max_abs, true_effects)
    if est.size < 3:
        raise InsufficientDataError(f"fit_systematic_error_model needs at least 3 usable controls; got {est.size}.")
    if np.unique(truth).size < 2:
        raise InsufficientDataError(
            f"fit_systematic_error_model needs controls with at least 2 different true effects (negative controls at 0 "
            f"and positive controls); every usable control has true effect {truth[0]:g}, so the slopes of the error "
            "model are not identified. Fix: add positive controls, or use fit_null (negative controls only).")

    def nll(theta: np.ndarray) -> float:
        a, b, c, d = theta
        sd = c + d * np.abs(truth)
        var = se**2 + sd**2
        return float(0.5 * np.sum(np.log(2 * np.pi * var) + (est - (a + b * truth)) ** 2 / var))

    with np.errstate(all="ignore"):
        res = optimize.minimize(nll, x0=np.array([0.0, 1.0, 0.1, 0.0]), method="Nelder-Mead",
                                options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40000, "maxfev": 80000})
    a, b, c, d = res.x
    converged = bool(res.success) and bool(np.isfinite(res.x).all())
    if not converged:
        warnings.warn(f"fit_systematic_error_model: Nelder-Mead did not converge on {est.size} controls "
                      f"({res.nfev} evaluations)", ConvergenceWarning, stacklevel=2)
    return SystematicErrorModel(float(a), float(b), float(c), float(d), int(est.size), int(dropped),
                                float(-res.fun), converged)


# ----------------------------------------------------------------------------- predictive calibration
def _mixture_row(theta: float, m: np.ndarray, v: np.ndarray, conf_level: float) -> dict[str, float]:
    """Calibrated row from the null's predictive distribution of the error, a normal mixture N(m_d, v_d).

    Estimate ``theta - median``, interval ``theta - [q_(1+level)/2, q_(1-level)/2]``, two-sided
    ``p = 2 min(F(theta), 1 - F(theta))``: the interval excludes 0 exactly when p < 1 - level.
    With one component this is the Wald row of ``(theta - m, sqrt(v))``.
    """
    if not (math.isfinite(theta) and np.isfinite(m).all() and np.isfinite(v).all() and (v > 0).all()):
        return {**wald(math.nan, math.nan, conf_level)}
    if m.size == 1:
        return {**wald(theta - float(m[0]), math.sqrt(float(v[0])), conf_level)}
    sd = np.sqrt(v)

    def cdf(x: float) -> float:
        return float(stats.norm.cdf((x - m) / sd).mean())

    lo_b, hi_b = float((m - 12 * sd).min()), float((m + 12 * sd).max())

    def quant(q: float) -> float:
        return float(optimize.brentq(lambda x: cdf(x) - q, lo_b, hi_b, xtol=1e-12))

    a = 0.5 - conf_level / 2
    med, q_lo, q_hi = quant(0.5), quant(a), quant(1 - a)
    f = cdf(theta)
    p = float(min(1.0, 2 * min(f, 1 - f)))
    est = theta - med
    low, high = theta - q_hi, theta - q_lo
    z = stats.norm.ppf(0.5 + conf_level / 2)
    stat = float(math.copysign(stats.norm.isf(p / 2), est)) if p > 0 else math.copysign(math.inf, est)
    return {"estimate": est, "std_error": (high - low) / (2 * z), "statistic": stat, "p_value": p,
            "conf_low": low, "conf_high": high}


def _predictive(null: Null, err: _Errors, v_tt: float, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictive (mean, variance) components of a new contrast's error given the controls.

    The new contrast has sampling variance ``v_tt`` and covariance ``k`` with the controls (a shared
    control arm or shared personas). Per value of the null ``(mu, sigma^2)``: conditional mean
    ``mu + k' S^-1 (c - mu 1)`` and variance ``sigma^2 + v_tt - k' S^-1 k``, ``S = sigma^2 I + V``.
    Asymptotic null: one component at the fitted ``sigma``, ``mu`` by GLS with its uncertainty
    added (``(1 - 1'S^-1 k)^2 / 1'S^-1 1``, universal kriging); MCMC null: one component per draw.
    """
    kq = err.rotate(np.asarray(k, float))
    if isinstance(null, McmcNullDistribution):
        d = _draws_for_mixture(null)
        mu, s2 = d[:, 0], 1.0 / d[:, 1]
        den = s2[:, None] + err.lam[None, :]
        m = mu + np.sum(kq[None, :] * (err.rot[None, :] - mu[:, None] * err.ones[None, :]) / den, axis=1)
        v = s2 + v_tt - np.sum(kq[None, :] ** 2 / den, axis=1)
        return m, v
    s2 = null.sd**2
    mu, info = err.gls(s2)
    den = s2 + err.lam
    m = mu + float(np.sum(kq * (err.rot - mu * err.ones) / den))
    one_k = float(np.sum(err.ones * kq / den))
    v = s2 + v_tt - float(np.sum(kq**2 / den)) + (1 - one_k) ** 2 / info
    return np.array([m]), np.array([v])


def calibrate_ci(
    model: SystematicErrorModel | NullDistribution | McmcNullDistribution,
    estimate: float | Sequence[float],
    std_error: float | Sequence[float],
    *,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Calibrated estimate and interval (``calibrateConfidenceInterval``).

    Each bound solves ``z + (a + b*x - theta_hat)/sqrt((c + d*|x|)^2 + s^2) = 0`` for x (root on
    [-100, 100]): the estimate at z = 0, the lower bound at z = +z_{(1+level)/2}, the upper at -z.
    With an :class:`McmcNullDistribution` the interval inverts the posterior predictive
    distribution of the error (a normal mixture over the draws) [PROPOSAL: EmpiricalCalibration
    calibrates intervals with asymptotic models only]. Returns columns
    ``estimate, conf_low, conf_high, std_error``.

    Examples
    --------
    >>> import driftstats as ds
    >>> null = ds.fit_null([0.1, 0.3, -0.1, 0.2, 0.15, 0.05], [0.1, 0.05, 0.1, 0.2, 0.1, 0.1])
    >>> ci = ds.calibrate_ci(null, 0.8, 0.1)
    >>> bool(ci["conf_low"].iloc[0] < 0.8 - null.mean < ci["conf_high"].iloc[0])
    True
    """
    conf_level = check_conf_level(conf_level)
    est, se, _shape = _broadcast(estimate, std_error)
    est, se = est.ravel(), se.ravel()
    if isinstance(model, McmcNullDistribution):
        rows = []
        d = _draws_for_mixture(model)
        for t, s in zip(est, se, strict=True):
            r = _mixture_row(float(t), d[:, 0], 1.0 / d[:, 1] + s**2, conf_level)
            rows.append({"estimate": r["estimate"], "conf_low": r["conf_low"], "conf_high": r["conf_high"],
                         "std_error": r["std_error"]})
        return pd.DataFrame(rows, columns=["estimate", "conf_low", "conf_high", "std_error"])
    m = model.as_error_model() if isinstance(model, NullDistribution) else model
    a, b, c, d_ = m.params()
    if not b > 0:
        raise InvalidArgumentError(
            f"the error model's mean slope is {b:.4g}: a calibrated interval needs the systematic error's mean to "
            "increase with the true effect (slope > 0). Refit with more, and more varied, positive controls.")
    zq = stats.norm.ppf(0.5 + conf_level / 2)

    def solve(theta_hat: float, s: float, z: float) -> float:
        def f(x: float) -> float:
            return z + (a + b * x - theta_hat) / math.sqrt((c + d_ * abs(x)) ** 2 + s**2)

        try:
            return float(optimize.brentq(f, -100.0, 100.0, xtol=1e-12))
        except ValueError:
            return math.nan

    rows = []
    for t, s in zip(est, se, strict=True):
        point, low, high = solve(t, s, 0.0), solve(t, s, zq), solve(t, s, -zq)
        rows.append({"estimate": point, "conf_low": low, "conf_high": high, "std_error": (high - low) / (2 * zq)})
    return pd.DataFrame(rows, columns=["estimate", "conf_low", "conf_high", "std_error"])


def ease(null: NullDistribution) -> float:
    """Expected absolute systematic error ``E|X|``, ``X ~ N(mean, sd^2)`` (``computeExpectedAbsoluteSystematicError``).

    Examples
    --------
    >>> from driftstats.calibrate import NullDistribution, ease
    >>> ease(NullDistribution(0.2, 0.0, 5, 0, 0.0, True, True))
    0.2
    """
    mu, sd = null.mean, null.sd
    if sd == 0:
        return abs(float(mu))
    return float(sd * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * sd**2)) + mu * (1 - 2 * stats.norm.cdf(-mu / sd)))


def simulate_controls(
    n: int = 50,
    *,
    mean: float = 0.0,
    sd: float = 0.1,
    std_errors: Sequence[float] | None = None,
    true_effects: float | Sequence[float] = 0.0,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Control estimates with known systematic error (``simulateControls``).

    ``estimate_j = theta_j + bias_j + noise_j`` with ``bias_j ~ N(mean, sd^2)``,
    ``noise_j ~ N(0, s_j^2)``; ``s_j`` defaults to Uniform(0.01, 0.2).
    """
    rng = rng_from(seed)
    se = rng.uniform(0.01, 0.2, n) if std_errors is None else np.asarray(std_errors, float)
    truth = np.resize(np.asarray(true_effects, float), n)
    bias = rng.normal(mean, sd, n)
    return pd.DataFrame({"true_effect": truth, "estimate": truth + bias + rng.normal(0, se), "std_error": se})


def evaluate_calibration(
    estimates: Sequence[float],
    std_errors: Sequence[float],
    true_effects: Sequence[float],
    *,
    conf_levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95),
    groups: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """Leave-one-out coverage of calibrated vs uncalibrated intervals (``evaluateCiCalibration``).

    For each control (or ``groups`` value: a negative control and its derived positive
    controls), the systematic error model is fitted on the others (``fit_null`` when all
    true effects are equal) and the left-out controls' intervals are calibrated.
    """
    est = _floats("estimates", estimates)
    se = _floats("std_errors", std_errors)
    truth = _floats("true_effects", true_effects)
    grp = np.arange(est.size) if groups is None else np.atleast_1d(np.asarray(groups, dtype=object))
    _same_length(estimates=est, std_errors=se, true_effects=truth, **({} if groups is None else {"groups": grp}))
    levels = [check_conf_level(float(c), name="conf_levels") for c in _floats("conf_levels", conf_levels)]
    if len(pd.unique(grp)) < 2 or not levels:
        raise InsufficientDataError(
            f"evaluate_calibration needs at least 2 groups of controls (each is left out in turn and the null is "
            f"fitted on the others) and one conf_level; got {len(pd.unique(grp))} group(s) of {est.size} control(s) "
            f"and {len(levels)} level(s).")
    null_only = np.unique(truth).size == 1
    rows = []
    for g in pd.unique(grp):
        out = grp == g
        if null_only:
            model: SystematicErrorModel | NullDistribution = fit_null(est[~out], se[~out])
        else:
            model = fit_systematic_error_model(est[~out], se[~out], truth[~out])
        for level in levels:
            cal = calibrate_ci(model, est[out], se[out], conf_level=level)
            zq = stats.norm.ppf(0.5 + level / 2)
            for i, row in enumerate(cal.itertuples()):
                t = truth[out][i]
                rows.append({"conf_level": level, "group": g, "true_effect": t,
                             "covered_calibrated": row.conf_low <= t <= row.conf_high,
                             "covered_uncalibrated": est[out][i] - zq * se[out][i] <= t <= est[out][i] + zq * se[out][i]})
    frame = pd.DataFrame(rows)
    return (frame.groupby("conf_level")[["covered_calibrated", "covered_uncalibrated"]].mean()
            .rename(columns={"covered_calibrated": "coverage_calibrated", "covered_uncalibrated": "coverage_uncalibrated"})
            .reset_index())


