"""Empirical calibration with negative (and positive) controls: a port of OHDSI EmpiricalCalibration.

methods.md section 4.4. In LLM simulations the negative controls are **placebo
interventions** (meaning-preserving paraphrases or sham texts of the control): their
contrasts with the control estimate the systematic error of the simulated experiment,
whose distribution is fitted (the *empirical null*) and used to calibrate the real
effect's p-value and interval.

Functions
---------
``fit_null`` -> :class:`NullDistribution`; ``calibrate_p``; ``fit_systematic_error_model``
-> :class:`SystematicErrorModel`; ``calibrate_ci``; ``ease``; ``simulate_controls``;
``evaluate_calibration``; ``calibrate_effect`` (placebo arms of a log as controls).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from driftstats._args import check_conf_level, rng_from
from driftstats._result import Provenance, Result
from driftstats.errors import InsufficientDataError, InvalidArgumentError

__all__ = [
    "CalibrationResult",
    "NullDistribution",
    "SystematicErrorModel",
    "calibrate_ci",
    "calibrate_effect",
    "calibrate_effects",
    "calibrate_p",
    "ease",
    "evaluate_calibration",
    "fit_null",
    "fit_systematic_error_model",
    "simulate_controls",
]

CALIBRATION_ASSUMPTION = (
    "Exchangeability of systematic error: the negative controls (placebo interventions) induce systematic "
    "error exchangeable with that of the real intervention. Intervention-specific drift violates this; "
    "pair calibration with the NCO diagnostics."
)


def _clean(estimates: Sequence[float], std_errors: Sequence[float], max_abs: float | None,
           *extra: Sequence[float]) -> tuple[np.ndarray, ...]:
    est = np.asarray(estimates, dtype=float)
    se = np.asarray(std_errors, dtype=float)
    if est.shape != se.shape:
        raise InvalidArgumentError(f"estimates and std_errors must have the same length; got {est.size} and {se.size}.")
    keep = np.isfinite(est) & np.isfinite(se) & (se > 0)
    others = [np.asarray(x, dtype=float) for x in extra]
    for o in others:
        keep &= np.isfinite(o)
    if max_abs is not None:
        keep &= np.abs(est) <= max_abs
    return (est[keep], se[keep], *[o[keep] for o in others], np.int64((~keep).sum()))


@dataclass(frozen=True, slots=True)
class NullDistribution:
    """The empirical null: systematic error ~ N(mean, sd^2)."""

    mean: float
    sd: float
    n_used: int
    n_dropped: int
    log_lik: float
    converged: bool

    def __repr__(self) -> str:
        return (f"NullDistribution(mean={self.mean:.4g}, sd={self.sd:.4g}; fitted on {self.n_used} controls, "
                f"{self.n_dropped} dropped{'' if self.converged else '; NOT CONVERGED'})")

    def as_error_model(self) -> SystematicErrorModel:
        """``convertNullToErrorModel``: the same error at every true effect (a, b, c, d) = (mean, 1, sd, 0)."""
        return SystematicErrorModel(self.mean, 1.0, self.sd, 0.0, self.n_used, self.n_dropped, self.log_lik,
                                    self.converged)


@dataclass(frozen=True, slots=True)
class SystematicErrorModel:
    """Systematic error given the true effect theta: mean ``a + b*theta``, sd ``c + d*|theta|``."""

    mean_intercept: float
    mean_slope: float
    sd_intercept: float
    sd_slope: float
    n_used: int
    n_dropped: int
    log_lik: float
    converged: bool

    def __repr__(self) -> str:
        return (f"SystematicErrorModel(mean = {self.mean_intercept:.4g} + {self.mean_slope:.4g}*theta, "
                f"sd = {self.sd_intercept:.4g} + {self.sd_slope:.4g}*|theta|; {self.n_used} controls)")

    def params(self) -> np.ndarray:
        return np.array([self.mean_intercept, self.mean_slope, self.sd_intercept, self.sd_slope])


def fit_null(
    estimates: Sequence[float],
    std_errors: Sequence[float],
    *,
    max_abs: float | None = math.log(100),
) -> NullDistribution:
    """Fit the empirical null to negative-control estimates (``fitNull``).

    Maximises ``sum_j log phi(theta_j; mu, sigma^2 + s_j^2)`` over ``(mu, precision = 1/sigma^2)``
    with Nelder-Mead from (0, 1). Non-finite values, and estimates with ``|theta| > max_abs``
    (default log 100, as EmpiricalCalibration does; ``None`` keeps all), are dropped and counted.

    References
    ----------
    Schuemie et al. (2014), Statistics in Medicine 33(2):209-218, doi:10.1002/sim.5925.

    Examples
    --------
    >>> import driftstats as ds
    >>> null = ds.fit_null([0.1, -0.2, 0.3, 0.05, 0.2], [0.1, 0.1, 0.2, 0.1, 0.15])
    >>> round(null.mean, 2)
    0.05
    """
    est, se, dropped = _clean(estimates, std_errors, max_abs)
    if est.size < 2:
        raise InsufficientDataError(
            f"fit_null needs at least 2 usable negative controls; got {est.size} ({int(dropped)} dropped as "
            "non-finite or beyond max_abs)."
        )

    def nll(theta: np.ndarray) -> float:
        mu, prec = theta
        if prec <= 0:
            return math.inf
        var = 1.0 / prec + se**2
        return float(0.5 * np.sum(np.log(2 * np.pi * var) + (est - mu) ** 2 / var))

    res = optimize.minimize(nll, x0=np.array([0.0, 1.0]), method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000, "maxfev": 40000})
    mu, prec = res.x
    return NullDistribution(float(mu), float(1 / math.sqrt(prec)), int(est.size), int(dropped), float(-res.fun),
                            bool(res.success))


def calibrate_p(
    null: NullDistribution,
    estimate: float | Sequence[float],
    std_error: float | Sequence[float],
    *,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
) -> np.ndarray:
    """Calibrated p-value(s) given an empirical null (``calibrateP``).

    ``p = 2 min{Phi((mu - theta)/sqrt(sigma^2 + s^2)), Phi((theta - mu)/sqrt(sigma^2 + s^2))}``.
    """
    est = np.asarray(estimate, dtype=float)
    se = np.asarray(std_error, dtype=float)
    scale = np.sqrt(null.sd**2 + se**2)
    upper = stats.norm.cdf((null.mean - est) / scale)
    lower = stats.norm.cdf((est - null.mean) / scale)
    if alternative == "two-sided":
        return 2 * np.minimum(upper, lower)
    if alternative == "greater":
        return upper
    if alternative == "less":
        return lower
    raise InvalidArgumentError(f"alternative must be 'two-sided', 'greater' or 'less'; got {alternative!r}.")


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
    (``theta_j != 0``).
    """
    est, se, truth, dropped = _clean(estimates, std_errors, max_abs, true_effects)
    if est.size < 3:
        raise InsufficientDataError(f"fit_systematic_error_model needs at least 3 usable controls; got {est.size}.")

    def nll(theta: np.ndarray) -> float:
        a, b, c, d = theta
        sd = c + d * np.abs(truth)
        var = se**2 + sd**2
        return float(0.5 * np.sum(np.log(2 * np.pi * var) + (est - (a + b * truth)) ** 2 / var))

    res = optimize.minimize(nll, x0=np.array([0.0, 1.0, 0.1, 0.0]), method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40000, "maxfev": 80000})
    a, b, c, d = res.x
    return SystematicErrorModel(float(a), float(b), float(c), float(d), int(est.size), int(dropped),
                                float(-res.fun), bool(res.success))


def calibrate_ci(
    model: SystematicErrorModel | NullDistribution,
    estimate: float | Sequence[float],
    std_error: float | Sequence[float],
    *,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Calibrated estimate and interval (``calibrateConfidenceInterval``).

    Each bound solves ``z + (a + b*x - theta_hat)/sqrt((c + d*|x|)^2 + s^2) = 0`` for x (root on
    [-100, 100]): the estimate at z = 0, the lower bound at z = +z_{(1+level)/2}, the upper at -z.
    Returns columns ``estimate, conf_low, conf_high, std_error``.
    """
    conf_level = check_conf_level(conf_level)
    m = model.as_error_model() if isinstance(model, NullDistribution) else model
    a, b, c, d = m.params()
    est = np.atleast_1d(np.asarray(estimate, dtype=float))
    se = np.atleast_1d(np.asarray(std_error, dtype=float))
    zq = stats.norm.ppf(0.5 + conf_level / 2)

    def solve(theta_hat: float, s: float, z: float) -> float:
        def f(x: float) -> float:
            return z + (a + b * x - theta_hat) / math.sqrt((c + d * abs(x)) ** 2 + s**2)

        try:
            return float(optimize.brentq(f, -100.0, 100.0, xtol=1e-12))
        except ValueError:
            return math.nan

    rows = []
    for t, s in zip(est, se, strict=True):
        point, low, high = solve(t, s, 0.0), solve(t, s, zq), solve(t, s, -zq)
        rows.append({"estimate": point, "conf_low": low, "conf_high": high, "std_error": (high - low) / (2 * zq)})
    return pd.DataFrame(rows)


def ease(null: NullDistribution) -> float:
    """Expected absolute systematic error ``E|X|``, ``X ~ N(mean, sd^2)`` (``computeExpectedAbsoluteSystematicError``)."""
    mu, sd = null.mean, null.sd
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
    est = np.asarray(estimates, float)
    se = np.asarray(std_errors, float)
    truth = np.asarray(true_effects, float)
    grp = np.arange(est.size) if groups is None else np.asarray(groups)
    null_only = np.unique(truth).size == 1
    rows = []
    for g in np.unique(grp):
        out = grp == g
        if null_only:
            model: SystematicErrorModel | NullDistribution = fit_null(est[~out], se[~out])
        else:
            model = fit_systematic_error_model(est[~out], se[~out], truth[~out])
        for level in conf_levels:
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


@dataclass(frozen=True, slots=True, repr=False)
class CalibrationResult(Result):
    """The effect of each non-placebo arm, uncalibrated and calibrated against the placebo arms."""

    TITLE: ClassVar[str] = "Empirical calibration against placebo arms"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "calibrated", "estimate", "std_error", "p_value",
                                          "conf_low", "conf_high")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "calibrated")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("null_mean", "null_sd", "n_tests")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (CALIBRATION_ASSUMPTION,)

    controls: pd.DataFrame = field(default_factory=pd.DataFrame)
    null: NullDistribution | None = None

    def plot(self, **kwargs: Any) -> Any:
        """Empirical null with the controls, and calibrated vs uncalibrated intervals (needs ``[plot]``)."""
        from driftstats.plot import plot_calibration

        return plot_calibration(self, **kwargs)


def calibrate_effects(
    effects: pd.DataFrame,
    controls: pd.DataFrame,
    *,
    conf_level: float = 0.95,
    min_controls: int = 2,
    max_abs: float | None = None,
    by: Sequence[str] = (),
    call: str = "calibrate_effects",
) -> CalibrationResult:
    """Calibrate effect rows (``term, arm, reference, estimate, std_error`` and the ``by`` columns)
    against control rows."""
    if len(controls) < min_controls:
        raise InsufficientDataError(
            f"calibration needs at least {min_controls} negative-control estimates (placebo arms); got {len(controls)}."
        )
    null = fit_null(controls["estimate"], controls["std_error"], max_abs=max_abs)
    zq = stats.norm.ppf(0.5 + conf_level / 2)
    rows = []
    for rec in effects.to_dict("records"):
        e = pd.Series(rec)
        base = {**{b: rec[b] for b in by}, "term": e.term, "arm": e.arm, "reference": e.reference,
                "measure": "mean_diff"}
        rows.append({**base, "calibrated": False, "estimate": e.estimate, "std_error": e.std_error,
                     "statistic": e.estimate / e.std_error,
                     "p_value": float(2 * stats.norm.sf(abs(e.estimate / e.std_error))),
                     "conf_low": e.estimate - zq * e.std_error, "conf_high": e.estimate + zq * e.std_error})
        ci = calibrate_ci(null, e.estimate, e.std_error, conf_level=conf_level).iloc[0]
        rows.append({**base, "calibrated": True, "estimate": ci["estimate"], "std_error": ci["std_error"],
                     "p_value": float(calibrate_p(null, e.estimate, e.std_error)),
                     "conf_low": ci["conf_low"], "conf_high": ci["conf_high"]})
    diag = [f"empirical null from {null.n_used} placebo contrast(s): mean {null.mean:.4g}, sd {null.sd:.4g}"]
    if len(controls) < 20:
        diag.append(f"only {len(controls)} negative controls: the null is poorly determined (methods 4.4 suggests J >= 20)")
    if not null.converged:
        diag.append("the null fit did not report convergence")
    info = {"method": "empirical calibration (asymptotic null)", "n_obs": int(null.n_used), "conf_level": conf_level,
            "alternative": "two-sided", "converged": null.converged, "n_dropped": null.n_dropped,
            "null_mean": null.mean, "null_sd": null.sd, "n_tests": len(rows)}
    return CalibrationResult.build(rows, info, by=by, diagnostics=diag, provenance=Provenance(call=call),
                                   controls=controls.reset_index(drop=True), null=null)


def calibrate_effect(
    data: Any,
    *,
    outcome: str | None = None,
    by: str | Sequence[str] = ("iteration",),
    mode: Literal["sample", "dist"] = "sample",
    conf_level: float = 0.95,
    max_abs: float | None = None,
) -> CalibrationResult:
    """Calibrate the effect of every treatment arm against the log's placebo arms.

    Each placebo arm's contrast with the control (same outcome, same estimator as
    :func:`driftstats.effect`) is a negative-control estimate with true effect 0; the empirical
    null fitted to them calibrates the treatment arms' p-values and intervals. Groups in ``by``
    (e.g. iterations) are pooled: every placebo contrast of every group is a control.

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_placebo_log(n_placebo=20, n_per_arm=60, bias_sd=0.1, seed=1)
    >>> res = ds.calibrate_effect(log, outcome="y")
    >>> res.tidy()["calibrated"].tolist()
    [False, True]
    """
    from driftstats.effects import effect
    from driftstats.log.simlog import as_log

    log = as_log(data)
    placebos = set(log.arms_of_kind("placebo"))
    if not placebos:
        raise InvalidArgumentError(
            "calibration needs placebo arms (arms table kind = 'placebo'): meaning-preserving paraphrases or sham "
            "texts of the control."
        )
    res = effect(log, outcome=outcome, by=by, mode=mode, conf_level=conf_level, tvd=False)
    eff = res.tidy()
    eff = eff[eff["measure"] == "mean_diff"]
    controls = eff[eff["arm"].isin(placebos)]
    effects = eff[~eff["arm"].isin(placebos)]
    return calibrate_effects(effects, controls, conf_level=conf_level, max_abs=max_abs, by=res.by,
                             call="calibrate_effect")
