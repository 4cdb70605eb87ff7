"""Empirical calibration with negative (and positive) controls: a port of OHDSI EmpiricalCalibration.

methods.md section 4.4. In LLM simulations the negative controls are **placebo
interventions** (meaning-preserving paraphrases or sham texts of the control): their
contrasts with the control estimate the systematic error of the simulated experiment,
whose distribution is fitted (the *empirical null*) and used to calibrate the real
effect's p-value and interval.

Functions
---------
``fit_null`` -> :class:`NullDistribution` (asymptotic, ``fitNull``); ``fit_mcmc_null`` ->
:class:`McmcNullDistribution` (``fitMcmcNull``); ``calibrate_p`` (both nulls, ``calibrateP``);
``calibrate_p_interval`` (MCMC null: the interval of the calibrated p); ``fit_systematic_error_model``
-> :class:`SystematicErrorModel`; ``calibrate_ci``; ``ease``; ``simulate_controls``;
``evaluate_calibration``; ``calibrate_effects`` (effect rows against control rows) and
``calibrate_effect`` (placebo arms of a log as controls, with the shared control arm modelled).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from driftstats._args import (
    DEFAULT_SEED,
    check_by,
    check_choice,
    check_conf_level,
    check_positive_int,
    rng_from,
    seed_value,
)
from driftstats._groups import iter_groups
from driftstats._kernels.wald import wald
from driftstats._provenance import provenance
from driftstats._result import Result
from driftstats.errors import ConvergenceWarning, InsufficientDataError, InvalidArgumentError

__all__ = [
    "CalibrationResult",
    "McmcNullDistribution",
    "NullDistribution",
    "SystematicErrorModel",
    "calibrate_ci",
    "calibrate_effect",
    "calibrate_effects",
    "calibrate_p",
    "calibrate_p_interval",
    "ease",
    "evaluate_calibration",
    "fit_mcmc_null",
    "fit_null",
    "fit_systematic_error_model",
    "simulate_controls",
]

CALIBRATION_ASSUMPTION = (
    "Exchangeability of systematic error: the negative controls (placebo interventions) induce systematic "
    "error exchangeable with that of the real intervention. Intervention-specific drift violates this; "
    "pair calibration with the NCO diagnostics."
)
NORMAL_ASSUMPTION = (
    "The systematic errors of the controls and of the real intervention are draws from one normal "
    "distribution N(mean, sd^2) (the empirical null), and each contrast is normal around its true value "
    "plus its systematic error, with the estimated sampling covariance."
)

NullMethod = Literal["auto", "asymptotic", "mcmc"]
PSummary = Literal["median", "predictive"]
Alternative = Literal["two-sided", "greater", "less"]
Cluster = Literal["auto", "unit", "persona", "none"]

#: Weak Gamma(shape, rate) prior on the precision, as EmpiricalCalibration's ``logLikelihoodNullMcmc``.
_PRIOR_SHAPE = 1e-4
_PRIOR_RATE = 1e-4
#: Below this many controls the asymptotic calibration is anti-conservative (simulated size 0.10-0.12
#: at J = 10 for a nominal 0.05; the slow test_size_of_calibrated_p_asymptotic_vs_mcmc in
#: tests/test_calibrate_null.py); ``null="auto"`` switches to MCMC there.
FEW_CONTROLS = 20
#: The smallest number of placebo contrasts ``calibrate_effect`` calibrates against by default.
MIN_CONTROLS = 5
_MAX_MIX_DRAWS = 20000
#: Split R-hat above this marks an MCMC null as not converged (chains that disagree this much are not mixing).
RHAT_MAX = 1.05


def _floats(name: str, values: Any, *, ndim: int = 1) -> np.ndarray:
    """``values`` as a float array of at most ``ndim`` dimensions (scalars become length 1), or a named error."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        shown = repr(values)
        raise InvalidArgumentError(
            f"{name} must be numbers (NaN for a missing value); got {shown[:80] + ('...' if len(shown) > 80 else '')}."
        ) from None
    if arr.ndim > ndim:
        raise InvalidArgumentError(f"{name} must be {'a vector' if ndim == 1 else f'{ndim}-dimensional'}; got an "
                                   f"array of shape {arr.shape}.")
    return np.atleast_1d(arr)


def _same_length(**arrays: np.ndarray) -> None:
    sizes = {k: int(v.size) for k, v in arrays.items()}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{k} {n}" for k, n in sizes.items())
        raise InvalidArgumentError(f"{', '.join(sizes)} must have the same length; got {shown}.")


def _broadcast(estimate: Any, std_error: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Estimates and SEs to calibrate, broadcast against each other (a named error when they cannot be)."""
    est = _floats("estimate", estimate, ndim=np.ndim(estimate) if np.ndim(estimate) > 1 else 1)
    se = _floats("std_error", std_error, ndim=np.ndim(std_error) if np.ndim(std_error) > 1 else 1)
    try:
        shape = np.broadcast_shapes(np.shape(estimate), np.shape(std_error))
        est, se = np.broadcast_arrays(est, se)
    except ValueError:
        raise InvalidArgumentError(f"estimate and std_error must have the same length (or one of them length 1); got "
                                   f"{np.size(estimate)} and {np.size(std_error)}.") from None
    return est, se, shape


def usable_controls(est: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Controls that enter a null: finite estimate and SE, with ``est**2`` and ``0 < se**2`` finite in floating point.

    A standard error whose square overflows (> 1e154) or underflows to 0 (< 1e-154) carries no usable
    weight in the likelihood (its variance is infinite or zero), so it is dropped like a non-finite one.
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return np.isfinite(est) & np.isfinite(est * est) & np.isfinite(se * se) & (se * se > 0) & (se > 0)


def _clean(estimates: Sequence[float], std_errors: Sequence[float], max_abs: float | None,
           *extra: Sequence[float]) -> tuple[np.ndarray, ...]:
    est = _floats("estimates", estimates)
    se = _floats("std_errors", std_errors)
    if est.shape != se.shape:
        raise InvalidArgumentError(f"estimates and std_errors must have the same length; got {est.size} and {se.size}.")
    keep = usable_controls(est, se)
    others = [_floats("true_effects", x) for x in extra]
    for o in others:
        if o.shape != est.shape:
            raise InvalidArgumentError(f"true_effects must have one value per estimate; got {o.size} for "
                                       f"{est.size} estimates.")
        with np.errstate(over="ignore"):
            keep &= np.isfinite(o) & np.isfinite(o * o)
    if max_abs is not None:
        keep &= np.abs(est) <= max_abs
    return (est[keep], se[keep], *[o[keep] for o in others], np.int64((~keep).sum()))


# ----------------------------------------------------------------------------- the likelihood kernel
class _Errors:
    """Control estimates ``c`` with sampling covariance ``V``: ``c ~ N(mu 1, sigma^2 I + V)``.

    ``V`` is held in its eigenbasis (``V = Q diag(lam) Q'``), so the likelihood at any
    ``sigma`` costs O(J); with independent controls ``Q = I`` and ``lam = s_j^2`` (EmpiricalCalibration's
    likelihood exactly).
    """

    def __init__(self, est: np.ndarray, *, se: np.ndarray | None = None, cov: np.ndarray | None = None) -> None:
        self.est = np.asarray(est, float)
        if cov is None:
            assert se is not None
            self.q: np.ndarray | None = None
            self.lam = np.asarray(se, float) ** 2
            self.rot = self.est
            self.ones = np.ones(self.est.size)
        else:
            lam, q = np.linalg.eigh((cov + cov.T) / 2)
            self.q, self.lam = q, lam
            self.rot = q.T @ self.est
            self.ones = q.T @ np.ones(self.est.size)

    @property
    def size(self) -> int:
        return int(self.est.size)

    def rotate(self, k: np.ndarray) -> np.ndarray:
        return k if self.q is None else self.q.T @ k

    def loglik(self, mu: np.ndarray, sigma2: np.ndarray) -> np.ndarray:
        """Log-likelihood at arrays of (mu, sigma^2)."""
        var = sigma2[:, None] + self.lam[None, :]
        r = self.rot[None, :] - mu[:, None] * self.ones[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = -0.5 * np.sum(np.log(2 * np.pi * var) + r**2 / var, axis=1)
        return np.where(np.isfinite(out), out, -np.inf)

    def gls(self, sigma2: float) -> tuple[float, float]:
        """GLS mean at ``sigma^2`` and ``1' Sigma^-1 1``."""
        w = self.ones / (sigma2 + self.lam)
        info = float(w @ self.ones)
        return float(w @ self.rot) / info, info


def _nll_precision(err: _Errors, prior: bool) -> Any:
    lam, rot, ones = err.lam, err.rot, err.ones
    const = np.log(2 * np.pi)

    def nll(theta: np.ndarray) -> float:
        mu, prec = float(theta[0]), float(theta[1])
        if not prec > 0 or not math.isfinite(mu):
            return math.inf
        var = 1.0 / prec + lam
        val = 0.5 * float(np.sum(const + np.log(var) + (rot - mu * ones) ** 2 / var))
        if prior:
            val -= float(_log_prior(np.array([prec]))[0])
        return val if math.isfinite(val) else math.inf

    return nll


def _log_prior(prec: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return ((_PRIOR_SHAPE - 1) * np.log(prec) - _PRIOR_RATE * prec + _PRIOR_SHAPE * math.log(_PRIOR_RATE)
                - special.gammaln(_PRIOR_SHAPE))


@dataclass(frozen=True, slots=True)
class _MlFit:
    mean: float
    sd: float
    log_lik: float
    converged: bool
    at_boundary: bool
    n_eval: int


def _fit_ml(err: _Errors) -> _MlFit:
    """Maximum likelihood of (mu, precision) by Nelder-Mead from (0, 1), as ``fitNull``, then a boundary check.

    When the controls spread no more than their sampling errors explain, the likelihood is
    maximised at ``sigma = 0`` (precision -> infinity), where Nelder-Mead cannot stop. That
    optimum is recognised (the profile likelihood at ``sigma = 0`` is at least the optimiser's
    and its slope in ``sigma^2`` there is <= 0) and returned exactly, with ``at_boundary``.
    """
    mu0, _ = err.gls(0.0)
    r0 = err.rot - mu0 * err.ones
    score0 = 0.5 * float(np.sum(r0**2 / err.lam**2) - np.sum(1.0 / err.lam))
    l0 = float(err.loglik(np.array([mu0]), np.array([0.0]))[0])
    if score0 <= 0:
        # the slope at sigma = 0 is <= 0; unless the profile rises again further out, the optimum is sigma = 0
        grid = np.geomspace(1e-6 * float(err.lam.min()), 100 * float(err.lam.max() + np.var(err.rot)), 60)
        prof = [float(err.loglik(np.array([err.gls(g)[0]]), np.array([g]))[0]) for g in grid]
        if max(prof) <= l0 + 1e-10 * (1 + abs(l0)):
            return _MlFit(mu0, 0.0, l0, True, True, 0)
    nll = _nll_precision(err, prior=False)
    with np.errstate(all="ignore"):
        res = optimize.minimize(nll, x0=np.array([0.0, 1.0]), method="Nelder-Mead",
                                options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000, "maxfev": 40000})
    mu, prec = (float(v) for v in res.x)
    ok = bool(res.success) and prec > 0 and math.isfinite(mu) and math.isfinite(float(res.fun))
    l_fit = -float(res.fun) if math.isfinite(float(res.fun)) else -math.inf
    if ok and l0 > l_fit + 1e-8 * (1 + abs(l_fit)):
        return _MlFit(mu0, 0.0, l0, True, True, int(res.nfev))  # the boundary beats the local optimum found
    sd = 1.0 / math.sqrt(prec) if prec > 0 else math.nan
    return _MlFit(mu, sd, l_fit, ok, False, int(res.nfev))


# ----------------------------------------------------------------------------- null distributions
@dataclass(frozen=True, slots=True)
class NullDistribution:
    """The empirical null fitted by maximum likelihood: systematic error ~ N(mean, sd^2).

    ``at_boundary``: the likelihood is maximised at ``sd = 0`` (the controls spread no more than
    their standard errors explain); ``converged`` is False when the optimiser failed.
    """

    mean: float
    sd: float
    n_used: int
    n_dropped: int
    log_lik: float
    converged: bool
    at_boundary: bool = False

    def __repr__(self) -> str:
        flag = "" if self.converged else "; NOT CONVERGED"
        flag += "; sd at the boundary 0" if self.at_boundary else ""
        return (f"NullDistribution(mean={self.mean:.4g}, sd={self.sd:.4g}; fitted on {self.n_used} controls, "
                f"{self.n_dropped} dropped{flag})")

    def as_error_model(self) -> SystematicErrorModel:
        """``convertNullToErrorModel``: the same error at every true effect (a, b, c, d) = (mean, 1, sd, 0)."""
        return SystematicErrorModel(self.mean, 1.0, self.sd, 0.0, self.n_used, self.n_dropped, self.log_lik,
                                    self.converged)


@dataclass(frozen=True, slots=True, eq=False)
class McmcNullDistribution:
    """The empirical null sampled by MCMC (``fitMcmcNull``): posterior draws of (mean, precision).

    ``mean`` and ``precision`` are posterior medians (as EmpiricalCalibration reports them);
    ``draws`` has shape (steps, chains, 2). ``converged`` is False when the split R-hat of the
    mean or of ``sd = precision^-1/2`` exceeds 1.05 or no proposal was accepted.
    """

    mean: float
    precision: float
    draws: np.ndarray
    acceptance: float
    r_hat: float
    n_used: int
    n_dropped: int
    converged: bool
    seed: int | None = None

    @property
    def sd(self) -> float:
        """``precision^-1/2`` at the posterior median precision."""
        return 1.0 / math.sqrt(self.precision) if self.precision > 0 else math.inf

    @property
    def chain(self) -> np.ndarray:
        """All draws, shape (n_draws, 2): columns mean, precision."""
        return self.draws.reshape(-1, 2)

    def interval(self, parameter: Literal["mean", "precision"] = "mean", *, conf_level: float = 0.95
                 ) -> tuple[float, float]:
        """Equal-tailed posterior interval of ``mean`` or ``precision``."""
        check_choice("parameter", parameter, Literal["mean", "precision"])
        conf_level = check_conf_level(conf_level)
        x = self.chain[:, 0 if parameter == "mean" else 1]
        lo, hi = np.quantile(x, [0.5 - conf_level / 2, 0.5 + conf_level / 2])
        return float(lo), float(hi)

    def mcse(self, parameter: Literal["mean", "precision"] = "mean", *, quantile: float = 0.5) -> float:
        """Monte Carlo standard error of a posterior quantile, from the spread across chains."""
        check_choice("parameter", parameter, Literal["mean", "precision"])
        x = self.draws[:, :, 0 if parameter == "mean" else 1]
        per_chain = np.quantile(x, quantile, axis=0)
        return float(per_chain.std(ddof=1) / math.sqrt(per_chain.size)) if per_chain.size > 1 else math.nan

    def __repr__(self) -> str:
        m_lo, m_hi = self.interval("mean")
        p_lo, p_hi = self.interval("precision")
        flag = "" if self.converged else f"; NOT CONVERGED (R-hat {self.r_hat:.3g})"
        return (f"McmcNullDistribution(mean={self.mean:.4g} [{m_lo:.4g}, {m_hi:.4g}], precision={self.precision:.4g} "
                f"[{p_lo:.4g}, {p_hi:.4g}]; {self.chain.shape[0]} draws, acceptance {self.acceptance:.3f}; "
                f"{self.n_used} controls, {self.n_dropped} dropped{flag})")


Null = NullDistribution | McmcNullDistribution


def fit_null(
    estimates: Sequence[float],
    std_errors: Sequence[float],
    *,
    max_abs: float | None = math.log(100),
) -> NullDistribution:
    """Fit the empirical null to negative-control estimates by maximum likelihood (``fitNull``).

    Parameters
    ----------
    estimates, std_errors
        Control estimates (log scale for ratio measures) and their standard errors.
    max_abs
        Estimates with ``|theta| > max_abs`` are dropped and counted (default log 100, as
        EmpiricalCalibration does; ``None`` keeps all). Non-finite values, and standard errors whose
        square over- or underflows (no usable weight), are always dropped.

    Returns
    -------
    NullDistribution
        ``mean``, ``sd``, ``n_used``, ``n_dropped``, ``log_lik``, ``converged``, ``at_boundary``.

    Raises
    ------
    InsufficientDataError
        Fewer than 2 usable controls.

    Warns
    -----
    ConvergenceWarning
        The optimiser did not converge (the returned null says ``converged=False``; do not calibrate
        with it).

    Notes
    -----
    Maximises ``sum_j log phi(theta_j; mu, sigma^2 + s_j^2)`` over ``(mu, precision = 1/sigma^2)`` by
    Nelder-Mead from (0, 1). When the maximum lies on the boundary ``sigma = 0`` (the controls
    spread no more than their standard errors explain), Nelder-Mead cannot stop; the boundary
    optimum is detected and returned exactly (``sd = 0``, ``at_boundary=True``). With few controls
    the plug-in null understates its own uncertainty and calibrated p-values are anti-conservative
    (simulated size about 0.10 at J = 10); :func:`fit_mcmc_null` accounts for it.

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
    fit = _fit_ml(_Errors(est, se=se))
    if not fit.converged:
        warnings.warn(f"fit_null: Nelder-Mead did not converge on {est.size} controls ({fit.n_eval} evaluations); "
                      "the null is not usable for calibration", ConvergenceWarning, stacklevel=2)
    return NullDistribution(fit.mean, fit.sd, int(est.size), int(dropped), fit.log_lik, fit.converged,
                            fit.at_boundary)


def _split_rhat(x: np.ndarray) -> float:
    """Split R-hat (Gelman et al.) of draws shaped (steps, chains)."""
    n = x.shape[0] // 2
    if n < 2:
        return math.nan
    halves = np.concatenate([x[:n], x[n:2 * n]], axis=1)
    means = halves.mean(axis=0)
    w = float(halves.var(axis=0, ddof=1).mean())
    b = n * float(means.var(ddof=1))
    if not w > 0:
        return 1.0 if b == 0 else math.inf
    return math.sqrt(((n - 1) / n * w + b / n) / w)


def _scale(f: Any, start: float, steps: Sequence[float]) -> float:
    """Distance from ``start`` at which ``f`` (log-posterior drop minus the target) turns positive."""
    for hi in steps:
        if f(start + hi) > 0:
            try:
                return float(optimize.brentq(f, start, start + hi, xtol=1e-10)) - start
            except ValueError:
                return math.nan
    return math.nan


def _run_mcmc(err: _Errors, n_iter: int, n_chains: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Random-walk Metropolis for the posterior of ``fitMcmcNull``, with ``n_chains`` chains at once.

    The target is EmpiricalCalibration's (flat prior on mu, Gamma(1e-4, 1e-4) on the precision tau).
    As ``runMetropolisMcmc``: start at the posterior mode, proposal sd per coordinate from the
    profile posterior's 90% half-width at the mode (``binarySearchMu`` / ``binarySearchSigma``), no
    burn-in (every chain starts at the mode). Unlike it, the walk is on ``log tau`` (the density
    carries the Jacobian ``tau``, so the posterior is the same): with few controls the precision's
    posterior spans orders of magnitude and a walk on ``tau`` itself hardly moves (acceptance 1%).
    Returns draws of (mu, tau), shape (steps, chains, 2), and the acceptance rate.
    """

    def logpost(m: np.ndarray, lt: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            tau = np.exp(lt)
            out = err.loglik(m, np.exp(-lt)) + _log_prior(tau) + lt
        return np.where(np.isfinite(out), out, -np.inf)

    def nlp(theta: np.ndarray) -> float:
        v = -float(logpost(np.array([float(theta[0])]), np.array([float(theta[1])]))[0])
        return v if math.isfinite(v) else math.inf

    mu_start = err.gls(float(np.var(err.rot)) if err.size > 1 else 1.0)[0]
    with np.errstate(all="ignore"):
        res = optimize.minimize(nlp, x0=np.array([mu_start, 0.0]), method="Nelder-Mead",
                                options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 20000, "maxfev": 40000})
    mode = np.asarray(res.x, float)
    if not (np.isfinite(mode).all() and math.isfinite(nlp(mode))):
        mode = np.array([err.gls(0.0)[0], 0.0])
    q = stats.chi2.ppf(0.9, 1) / 2
    l0 = -nlp(mode)
    s_mu = _scale(lambda x: l0 + nlp(np.array([x, mode[1]])) - q, mode[0], [0.01 * 2**i for i in range(20)])
    s_lt = _scale(lambda x: l0 + nlp(np.array([mode[0], x])) - q, mode[1], [0.1 * 2**i for i in range(10)])
    if not (s_mu > 0):
        s_mu = 1.0 / math.sqrt(err.gls(0.0)[1])
    if not (s_lt > 0):
        s_lt = 1.0
    steps = max(n_iter // n_chains, 2)
    mu = np.full(n_chains, mode[0])
    lt = np.full(n_chains, mode[1])
    lp = logpost(mu, lt)
    draws = np.empty((steps, n_chains, 2))
    accepted = 0
    z = rng.normal(size=(steps, n_chains, 2)) * np.array([s_mu, s_lt])
    log_u = np.log(rng.random((steps, n_chains)))
    for i in range(steps):
        p_mu = mu + z[i, :, 0]
        p_lt = lt + z[i, :, 1]
        p_lp = logpost(p_mu, p_lt)
        ok = log_u[i] < p_lp - lp
        mu = np.where(ok, p_mu, mu)
        lt = np.where(ok, p_lt, lt)
        lp = np.where(ok, p_lp, lp)
        accepted += int(ok.sum())
        draws[i, :, 0] = mu
        draws[i, :, 1] = lt
    with np.errstate(over="ignore"):
        draws[:, :, 1] = np.exp(draws[:, :, 1])
    return draws, accepted / (steps * n_chains)


def _mcmc_null(err: _Errors, n_used: int, n_dropped: int, n_iter: int, n_chains: int, seed: Any) -> McmcNullDistribution:
    draws, acc = _run_mcmc(err, n_iter, n_chains, rng_from(seed))
    with np.errstate(divide="ignore"):
        r_hat = max(_split_rhat(draws[:, :, 0]), _split_rhat(1.0 / np.sqrt(draws[:, :, 1])))
    converged = bool(acc > 0 and math.isfinite(r_hat) and r_hat <= RHAT_MAX)
    flat = draws.reshape(-1, 2)
    return McmcNullDistribution(float(np.median(flat[:, 0])), float(np.median(flat[:, 1])), draws, float(acc),
                                float(r_hat), n_used, n_dropped, converged, seed_value(seed))


def fit_mcmc_null(
    estimates: Sequence[float],
    std_errors: Sequence[float],
    *,
    max_abs: float | None = math.log(100),
    n_iter: int = 100_000,
    n_chains: int = 10,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
) -> McmcNullDistribution:
    """Sample the empirical null's posterior by MCMC (``fitMcmcNull``), for few controls.

    Parameters
    ----------
    estimates, std_errors, max_abs
        As :func:`fit_null`.
    n_iter
        Total Metropolis iterations over all chains (default 100,000, as EmpiricalCalibration).
    n_chains
        Chains run side by side from the posterior mode (their spread gives R-hat and Monte Carlo
        errors); each runs ``n_iter // n_chains`` steps.
    seed
        Default 0: results are reproducible; ``seed=None`` draws fresh entropy.

    Returns
    -------
    McmcNullDistribution
        Posterior medians ``mean`` and ``precision``, the draws, acceptance rate, R-hat.

    Raises
    ------
    InsufficientDataError
        Fewer than 2 usable controls.

    Warns
    -----
    ConvergenceWarning
        Split R-hat above 1.05 (chains disagree) or no accepted proposal.

    Notes
    -----
    Posterior ``p(mu, tau | theta) ∝ prod_j phi(theta_j; mu, 1/tau + s_j^2) Gamma(tau; 1e-4, 1e-4)``
    (flat prior on ``mu``), the model of EmpiricalCalibration 3.1.4 (``R/EmpiricalCalibrationUsingMcmc.R``),
    sampled by random-walk Metropolis from the posterior mode with proposal scales from the profile
    posterior, as there. Two departures, neither changing the posterior: the walk is on
    ``log tau`` (R walks on ``tau`` with a reflection at 0, which barely moves when few controls
    leave the precision spread over orders of magnitude), and ``n_chains`` chains run at once
    (vectorised), which gives R-hat and Monte Carlo errors.

    References
    ----------
    Schuemie et al. (2014), Statistics in Medicine 33(2):209-218, doi:10.1002/sim.5925.

    Examples
    --------
    >>> from driftstats.calibrate import fit_mcmc_null
    >>> null = fit_mcmc_null([0.1, -0.2, 0.3, 0.05, 0.2], [0.1, 0.1, 0.2, 0.1, 0.15], n_iter=20000)
    >>> bool(-0.2 < null.mean < 0.3), null.converged
    (True, True)
    """
    n_iter = check_positive_int("n_iter", n_iter, minimum=100)
    n_chains = check_positive_int("n_chains", n_chains, minimum=2)
    est, se, dropped = _clean(estimates, std_errors, max_abs)
    if est.size < 2:
        raise InsufficientDataError(
            f"fit_mcmc_null needs at least 2 usable negative controls; got {est.size} ({int(dropped)} dropped as "
            "non-finite or beyond max_abs)."
        )
    null = _mcmc_null(_Errors(est, se=se), int(est.size), int(dropped), n_iter, n_chains, seed)
    if not null.converged:
        warnings.warn(f"fit_mcmc_null: the {n_chains} chains did not converge (split R-hat {null.r_hat:.3g}, "
                      f"acceptance {null.acceptance:.3f}); increase n_iter", ConvergenceWarning, stacklevel=2)
    return null


def _draws_for_mixture(null: McmcNullDistribution) -> np.ndarray:
    flat = null.chain
    if flat.shape[0] > _MAX_MIX_DRAWS:
        flat = flat[np.linspace(0, flat.shape[0] - 1, _MAX_MIX_DRAWS).astype(int)]
    return flat


def _one_sided(null: Null, est: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per null draw (rows) and estimate (columns): P(error >= est) and P(error <= est)."""
    if isinstance(null, McmcNullDistribution):
        d = null.chain
        mu, s2 = d[:, 0][:, None], 1.0 / d[:, 1][:, None]
    else:
        mu, s2 = np.array([[null.mean]]), np.array([[null.sd**2]])
    scale = np.sqrt(s2 + se[None, :] ** 2)
    return stats.norm.cdf((mu - est[None, :]) / scale), stats.norm.cdf((est[None, :] - mu) / scale)


def calibrate_p(
    null: Null,
    estimate: float | Sequence[float],
    std_error: float | Sequence[float],
    *,
    alternative: Alternative = "two-sided",
    summary: PSummary = "median",
) -> np.ndarray:
    """Calibrated p-value(s) given an empirical null (``calibrateP``).

    Parameters
    ----------
    null
        A :class:`NullDistribution` (asymptotic) or :class:`McmcNullDistribution`.
    estimate, std_error
        The estimates to calibrate and their standard errors.
    alternative
        ``"two-sided"``, ``"greater"`` (upper tail) or ``"less"``.
    summary
        MCMC nulls only. ``"median"`` (default): the posterior median of the per-draw calibrated
        p, as EmpiricalCalibration's ``calibrateP.mcmcNull``; ``"predictive"``: the posterior
        predictive p, the tail probability of the estimate under the null *averaged* over the
        posterior (two-sided: twice the smaller tail). [PROPOSAL] the predictive p keeps its
        size with few controls (simulated 0.06 at J = 10 for nominal 0.05; the median: 0.10).

    Returns
    -------
    numpy.ndarray
        Calibrated p-values (NaN where the estimate or its SE is not finite).

    Notes
    -----
    ``p = 2 min{Phi((mu - theta)/sqrt(sigma^2 + s^2)), Phi((theta - mu)/sqrt(sigma^2 + s^2))}``.

    Examples
    --------
    >>> import driftstats as ds
    >>> null = ds.fit_null([0.1, -0.2, 0.3, 0.05, 0.2], [0.1, 0.1, 0.2, 0.1, 0.15])
    >>> p = ds.calibrate_p(null, [0.05, 0.9], [0.1, 0.1])
    >>> bool(p[0] > 0.5), bool(p[1] < 0.05)
    (True, True)
    """
    check_choice("alternative", alternative, Alternative)
    check_choice("summary", summary, PSummary)
    est, se, shape = _broadcast(estimate, std_error)
    upper, lower = _one_sided(null, est, se)
    if isinstance(null, McmcNullDistribution) and summary == "predictive":
        up, lo = upper.mean(axis=0), lower.mean(axis=0)
        p = {"two-sided": np.minimum(2 * np.minimum(up, lo), 1.0), "greater": up, "less": lo}[alternative]
    else:
        per_draw = {"two-sided": 2 * np.minimum(upper, lower), "greater": upper, "less": lower}[alternative]
        p = np.median(per_draw, axis=0)
    bad = ~(np.isfinite(est) & np.isfinite(se))
    p = np.where(bad, np.nan, p)
    return p.reshape(shape)


def calibrate_p_interval(
    null: McmcNullDistribution,
    estimate: float | Sequence[float],
    std_error: float | Sequence[float],
    *,
    alternative: Alternative = "two-sided",
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """The calibrated p of an MCMC null with its posterior interval (``calibrateP.mcmcNull``: p, lb95ci, ub95ci).

    Returns
    -------
    pandas.DataFrame
        Columns ``p_value`` (posterior median of the per-draw p), ``conf_low``, ``conf_high``
        (equal-tailed posterior quantiles at ``conf_level``).
    """
    if not isinstance(null, McmcNullDistribution):
        raise InvalidArgumentError(
            f"null must be an McmcNullDistribution (from fit_mcmc_null); got {type(null).__name__}. An asymptotic "
            "null has no posterior: use calibrate_p."
        )
    check_choice("alternative", alternative, Alternative)
    conf_level = check_conf_level(conf_level)
    est, se, _shape = _broadcast(estimate, std_error)
    upper, lower = _one_sided(null, est, se)
    per_draw = {"two-sided": 2 * np.minimum(upper, lower), "greater": upper, "less": lower}[alternative]
    q = np.quantile(per_draw, [0.5, 0.5 - conf_level / 2, 0.5 + conf_level / 2], axis=0)
    return pd.DataFrame({"p_value": q[0], "conf_low": q[1], "conf_high": q[2]})


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


# ----------------------------------------------------------------------------- the verbs
@dataclass(frozen=True, slots=True, repr=False)
class CalibrationResult(Result):
    """The effect of each non-placebo arm, uncalibrated and calibrated against the placebo arms.

    ``calibrated`` says whether the calibrated rows carry numbers; when not, ``not_calibrated``
    says why (the same sentence is the calibrated rows' ``note``). ``null`` is the fitted null; below
    ``min_controls`` (with at least 2 controls) it is an asymptotic fit kept for display only (it
    calibrates nothing, and ``glance()`` leaves ``null_mean``, ``null_sd`` and ``converged`` NA).
    """

    TITLE: ClassVar[str] = "Empirical calibration against placebo arms"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "calibrated", "estimate", "std_error", "p_value",
                                          "conf_low", "conf_high", "note")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "calibrated", "note")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("null_mean", "null_sd", "n_tests", "strata")
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (CALIBRATION_ASSUMPTION, NORMAL_ASSUMPTION)

    controls: pd.DataFrame = field(default_factory=pd.DataFrame)
    null: NullDistribution | McmcNullDistribution | None = None
    not_calibrated: str | None = None

    @property
    def calibrated(self) -> bool:
        """True when the calibrated rows carry a calibrated estimate (the null was fitted and usable)."""
        return self.not_calibrated is None

    def plot(self, **kwargs: Any) -> Any:
        """Empirical null with the controls, and calibrated vs uncalibrated intervals (needs ``[plot]``)."""
        from driftstats.plot import plot_calibration

        return plot_calibration(self, **kwargs)


def _calibrate(
    contrasts: pd.DataFrame,
    cov: np.ndarray,
    is_control: np.ndarray,
    *,
    by: Sequence[str],
    conf_level: float,
    null: NullMethod,
    min_controls: int,
    few_controls: int,
    max_abs: float | None,
    n_iter: int,
    seed: Any,
    diagnostics: list[str],
    call: str,
    data: Any,
    strata: str | None,
) -> CalibrationResult:
    """Calibrate the non-control rows of ``contrasts`` (``term, arm, reference, estimate, std_error, note``
    and ``by``) against its control rows; ``cov`` is the joint sampling covariance of all rows."""
    est = contrasts["estimate"].to_numpy(float)
    var = np.diag(cov).astype(float)
    usable = is_control & np.isfinite(est) & np.isfinite(var) & (var > 0)
    if max_abs is not None:
        usable &= np.abs(est) <= max_abs
    ctrl = np.flatnonzero(usable)
    n_dropped = int(is_control.sum() - ctrl.size)
    n_ctrl = int(ctrl.size)
    method = null
    if null == "auto":
        method = "mcmc" if n_ctrl < few_controls else "asymptotic"
        if n_ctrl < few_controls and n_ctrl >= min_controls:
            diagnostics.append(f"null='auto': {n_ctrl} placebo contrast(s) < few_controls={few_controls}, so the null "
                               "is sampled by MCMC (fitMcmcNull) and calibrated rows use its posterior predictive "
                               "distribution; the asymptotic null is anti-conservative with few controls")
    elif null == "asymptotic" and min_controls <= n_ctrl < few_controls:
        diagnostics.append(f"only {n_ctrl} placebo contrast(s) with the asymptotic null: calibrated p-values are "
                           f"anti-conservative below {few_controls} controls (simulated size about 0.10 at J = 10 "
                           "for a nominal 0.05); null='mcmc' accounts for the null's uncertainty")
    if n_dropped:
        diagnostics.append(f"{n_dropped} placebo contrast(s) left out of the null: not testable (fewer than 2 units, "
                           "zero variance)" + (" or beyond max_abs" if max_abs is not None else ""))
    fitted: Null | None = None
    reason: str | None = None
    err: _Errors | None = None
    shown: Null | None = None  # a null fitted for display only (below min_controls), never used
    if n_ctrl < min_controls:
        reason = (f"only {n_ctrl} usable placebo contrast(s); calibration needs at least min_controls="
                  f"{min_controls} (the empirical null is not estimable from fewer)")
        if n_ctrl >= 2:
            fit = _fit_ml(_Errors(est[ctrl], se=np.sqrt(var[ctrl])))
            shown = NullDistribution(fit.mean, fit.sd, n_ctrl, n_dropped, fit.log_lik, fit.converged, fit.at_boundary)
    else:
        sub = cov[np.ix_(ctrl, ctrl)]
        lam = np.linalg.eigvalsh((sub + sub.T) / 2)
        if lam.min() <= 1e-12 * max(lam.max(), 1e-300):
            reason = ("the placebo contrasts' sampling covariance is singular (too few persona clusters for "
                      f"{n_ctrl} contrasts)")
        else:
            diag_only = bool(np.allclose(sub - np.diag(np.diag(sub)), 0.0))
            err = _Errors(est[ctrl], se=np.sqrt(var[ctrl])) if diag_only else _Errors(est[ctrl], cov=sub)
            if method == "mcmc":
                fitted = _mcmc_null(err, n_ctrl, n_dropped, n_iter, 10, seed)
                if not fitted.converged:
                    reason = (f"the MCMC null did not converge (split R-hat {fitted.r_hat:.3g}, acceptance "
                              f"{fitted.acceptance:.3f}); increase n_iter")
                    warnings.warn(f"{call}: {reason}", ConvergenceWarning, stacklevel=3)
            else:
                fit = _fit_ml(err)
                fitted = NullDistribution(fit.mean, fit.sd, n_ctrl, n_dropped, fit.log_lik, fit.converged,
                                          fit.at_boundary)
                if not fit.converged:
                    reason = (f"the empirical-null fit did not converge (Nelder-Mead, {fit.n_eval} evaluations on "
                              f"{n_ctrl} controls)")
                    warnings.warn(f"{call}: {reason}", ConvergenceWarning, stacklevel=3)
                elif fit.at_boundary:
                    diagnostics.append("the null's sd is estimated at its boundary 0: the placebo contrasts spread no "
                                       "more than their sampling errors explain")
    rows: list[dict[str, Any]] = []
    for i in np.flatnonzero(~is_control):
        rec = contrasts.iloc[i].to_dict()
        base = {**{b: rec[b] for b in by}, "term": rec["term"], "arm": rec["arm"], "reference": rec["reference"],
                "measure": "mean_diff"}
        raw_note = rec.get("note")
        raw_note = raw_note if isinstance(raw_note, str) else None
        raw = wald(est[i], math.sqrt(var[i]) if var[i] >= 0 else math.nan, conf_level)
        raw_note = raw_note or (None if math.isfinite(raw["p_value"]) else "not testable: zero or undefined variance")
        rows.append({**base, "calibrated": False, **raw, "note": raw_note})
        if reason is not None or fitted is None or err is None:
            why = reason or "no usable null"
            rows.append({**base, "calibrated": True, **wald(math.nan, math.nan, conf_level),
                         "note": f"not calibrated: {why}"})
            continue
        if raw_note is not None:
            rows.append({**base, "calibrated": True, **wald(math.nan, math.nan, conf_level),
                         "note": f"not calibrated: the contrast itself is {raw_note}"})
            continue
        m, v = _predictive(fitted, err, float(var[i]), cov[i, ctrl])
        rows.append({**base, "calibrated": True, **_mixture_row(float(est[i]), m, v, conf_level), "note": None})
    if reason is not None:
        diagnostics.append(f"NOT CALIBRATED: {reason}; the calibrated rows carry no estimate")
    if fitted is not None:
        kind = "MCMC" if isinstance(fitted, McmcNullDistribution) else "asymptotic"
        diagnostics.insert(0, f"empirical null ({kind}) from {n_ctrl} placebo contrast(s): mean {fitted.mean:.4g}, "
                              f"sd {fitted.sd:.4g}")
    converged = None if fitted is None else bool(fitted.converged)
    label = "no null fitted" if fitted is None else f"{'MCMC' if method == 'mcmc' else 'asymptotic'} null"
    ran_mcmc = isinstance(fitted, McmcNullDistribution)
    info = {"method": f"empirical calibration ({label})",
            "n_obs": n_ctrl, "conf_level": conf_level, "alternative": "two-sided",
            "seed": seed_value(seed) if ran_mcmc else None, "converged": converged, "n_dropped": n_dropped,
            "null_mean": None if fitted is None else fitted.mean, "null_sd": None if fitted is None else fitted.sd,
            "n_tests": int(sum(1 for r in rows if math.isfinite(r["p_value"]))), "strata": strata}
    controls = contrasts.iloc[ctrl][[*by, "arm", "reference", "estimate", "std_error"]].reset_index(drop=True)
    return CalibrationResult.build(rows, info, by=by, diagnostics=diagnostics,
                                   provenance=provenance(call, data, seed=seed if ran_mcmc else None),
                                   controls=controls, null=fitted if fitted is not None else shown,
                                   not_calibrated=reason)


def _check_null_args(null: str, min_controls: int, few_controls: int, n_iter: int) -> None:
    check_choice("null", null, NullMethod)
    check_positive_int("min_controls", min_controls, minimum=2)
    check_positive_int("few_controls", few_controls, minimum=2)
    check_positive_int("n_iter", n_iter, minimum=100)


def calibrate_effects(
    effects: pd.DataFrame,
    controls: pd.DataFrame,
    *,
    conf_level: float = 0.95,
    null: NullMethod = "auto",
    min_controls: int = MIN_CONTROLS,
    few_controls: int = FEW_CONTROLS,
    max_abs: float | None = None,
    by: Sequence[str] = (),
    n_iter: int = 100_000,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
) -> CalibrationResult:
    """Calibrate effect rows against independent control rows.

    Parameters
    ----------
    effects, controls
        Frames with ``term, arm, reference, estimate, std_error`` (and the ``by`` columns); the
        controls' estimates are independent of each other and of the effects (otherwise use
        :func:`calibrate_effect`, which models a shared control arm).
    null
        ``"auto"`` (default): MCMC below ``few_controls`` controls, asymptotic otherwise;
        ``"asymptotic"`` (``fitNull``); ``"mcmc"`` (``fitMcmcNull``).
    min_controls
        Below this many usable controls (default 5) nothing is calibrated: the calibrated rows
        carry NaN and ``note = "not calibrated: ..."``, and ``result.calibrated`` is False.
    seed
        For the MCMC null. Default 0: results are reproducible; ``seed=None`` draws fresh entropy.

    Returns
    -------
    CalibrationResult
        Per effect a raw row (``calibrated=False``) and a calibrated row (``calibrated=True``).

    Examples
    --------
    >>> import driftstats as ds, pandas as pd
    >>> from driftstats.calibrate import calibrate_effects
    >>> c = ds.simulate_controls(30, mean=0.2, sd=0.1, seed=1).assign(term="y", arm="p", reference="c")
    >>> e = pd.DataFrame({"term": ["y"], "arm": ["t"], "reference": ["c"], "estimate": [0.9], "std_error": [0.1]})
    >>> res = calibrate_effects(e, c)
    >>> res.calibrated, res.tidy()["calibrated"].tolist()
    (True, [False, True])
    """
    conf_level = check_conf_level(conf_level)
    _check_null_args(null, min_controls, few_controls, n_iter)
    need = {"term", "arm", "reference", "estimate", "std_error", *by}
    for name, frame in (("effects", effects), ("controls", controls)):
        missing = sorted(need - set(frame.columns))
        if missing:
            raise InvalidArgumentError(f"{name} needs columns {sorted(need)}; missing {missing}.")
    cols = [*by, "term", "arm", "reference", "estimate", "std_error"]
    allrows = pd.concat([controls[cols], effects[cols]], ignore_index=True)
    is_control = np.r_[np.ones(len(controls), bool), np.zeros(len(effects), bool)]
    cov = np.diag(allrows["std_error"].to_numpy(float) ** 2)
    return _calibrate(allrows, cov, is_control, by=list(by), conf_level=conf_level, null=null,
                      min_controls=min_controls, few_controls=few_controls, max_abs=max_abs, n_iter=n_iter,
                      seed=seed, diagnostics=[], call="calibrate_effects", data=allrows, strata=None)


def _arm_mean_covariance(y: np.ndarray, cell: np.ndarray, n_cells: int, clusters: np.ndarray | None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means of ``y`` per cell (group x arm), their counts, and the sampling covariance of the means.

    Independent units: ``diag(s_c^2 / n_c)``. Clusters (paired personas): the CR1 sandwich
    ``G/(G-1) sum_g psi_g psi_g'`` with ``psi_g[c] = sum_{i in g, cell c} (y_i - ybar_c) / n_c``.
    """
    n = np.bincount(cell, minlength=n_cells).astype(float)
    with np.errstate(all="ignore"):
        mean = np.bincount(cell, weights=y, minlength=n_cells) / n
        r = y - mean[cell]
        if clusters is None:
            ss = np.bincount(cell, weights=r**2, minlength=n_cells)
            return mean, n, np.diag(ss / (n * (n - 1)))
        g = int(clusters.max()) + 1
        psi = np.zeros((g, n_cells))
        np.add.at(psi, (clusters, cell), r / n[cell])
    return mean, n, g / (g - 1) * psi.T @ psi if g > 1 else np.full((n_cells, n_cells), np.nan)


def calibrate_effect(
    data: Any,
    *,
    outcome: str | None = None,
    by: str | Sequence[str] | None = None,
    placebo: Sequence[str] | None = None,
    arm: str = "arm",
    reference: str | None = None,
    mode: Literal["sample", "dist"] = "sample",
    null: NullMethod = "auto",
    min_controls: int = MIN_CONTROLS,
    few_controls: int = FEW_CONTROLS,
    cluster: Cluster = "auto",
    conf_level: float = 0.95,
    max_abs: float | None = None,
    n_iter: int = 100_000,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
) -> CalibrationResult:
    """Calibrate the effect of every treatment arm against the placebo arms, modelling the shared control.

    Each placebo arm's contrast with the control (the difference in mean outcome, as
    :func:`driftstats.effect`) is a negative-control estimate with true effect 0; the empirical
    null fitted to them calibrates the treatment arms' p-values and intervals. Groups in ``by``
    (e.g. iterations) are pooled: every placebo contrast of every group is a control, and each
    treatment contrast is calibrated with the placebo contrasts of its own group.

    Parameters
    ----------
    data
        A log (arms of kind ``placebo`` are the controls) or a unit-level DataFrame with ``arm``,
        the outcome column and ``placebo=`` naming the placebo arms.
    outcome
        The outcome item (default: the log's single primary item) or column.
    by
        Grouping columns. Default ``None``: by ``iteration`` when the data have that column (logs
        always do), else no grouping. A name that is not a column is an error.
    placebo
        The placebo arms (default: the log's arms of kind ``placebo``).
    reference
        The control arm (default: the log's reference arm).
    null
        ``"auto"`` (default): MCMC when fewer than ``few_controls`` (20) placebo contrasts are
        usable, the asymptotic null otherwise; ``"asymptotic"``; ``"mcmc"``.
    min_controls
        Below this many usable placebo contrasts (default 5) nothing is calibrated: the
        calibrated rows carry NaN with ``note = "not calibrated: ..."``, ``result.calibrated`` is
        False and ``result.not_calibrated`` says why.
    cluster
        ``"auto"`` (default): cluster on ``persona_id`` when the design is paired (the project's
        pairing rule), else independent units; ``"persona"``, ``"unit"``, ``"none"``.
    n_iter, seed
        MCMC iterations and seed. Default seed 0: results are reproducible; ``seed=None`` draws
        fresh entropy.

    Returns
    -------
    CalibrationResult
        Per treatment arm (and group): a raw row (``calibrated=False``) and a calibrated row.
        ``glance()``: ``converged`` (NA when no null was fitted), ``null_mean``, ``null_sd``,
        ``n_obs`` (controls used), ``n_dropped`` (placebo contrasts left out).

    Raises
    ------
    InvalidArgumentError
        No placebo arms; unknown ``by`` column.

    Warns
    -----
    ConvergenceWarning
        The null's optimiser (or MCMC) did not converge; the calibrated rows are then not reported.

    Notes
    -----
    Every contrast ``theta_a = ybar_a - ybar_c`` shares the control arm's mean, so the placebo
    contrasts are correlated with each other and with the treatment contrast (covariance
    ``var(ybar_c)``; in paired designs also through the personas). The joint sampling covariance
    ``V`` of all contrasts is estimated from the units, the null is fitted to
    ``c ~ N(mu 1, sigma^2 I + V_cc)`` (EmpiricalCalibration's likelihood when ``V`` is diagonal),
    and each treatment contrast is calibrated with the predictive distribution of its error given
    the controls: mean ``mu + k' S^-1 (c - mu 1)``, variance ``sigma^2 + v_tt - k' S^-1 k``
    (``S = sigma^2 I + V_cc``, ``k`` the covariance with the controls), plus the null mean's
    estimation error for the asymptotic null (universal kriging) or averaged over the posterior
    for the MCMC null [PROPOSAL]. Treating the contrasts as independent double-counts the control
    arm's noise: simulated size 0.0025 for a nominal 0.05.

    References
    ----------
    Schuemie et al. (2014), Statistics in Medicine 33(2):209-218, doi:10.1002/sim.5925.

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_placebo_log(n_placebo=20, n_per_arm=60, bias_sd=0.1, seed=1)
    >>> res = ds.calibrate_effect(log, outcome="y", null="asymptotic")
    >>> res.calibrated, res.tidy()["calibrated"].tolist()
    (True, [False, True])
    """
    from driftstats._units import unit_data
    from driftstats.correct._pairs import pairing
    from driftstats.log.simlog import SimLog

    conf_level = check_conf_level(conf_level)
    _check_null_args(null, min_controls, few_controls, n_iter)
    check_choice("cluster", cluster, Cluster)
    ud = unit_data(data, [outcome] if outcome else [], arm=arm, mode=mode)
    log = ud.log if isinstance(ud.log, SimLog) else None
    if outcome is None:
        prim = log.item_names("primary") if log is not None else ()
        if len(prim) != 1:
            raise InvalidArgumentError(
                f"outcome= is needed: {'the log has primary items ' + str(list(prim)) if log is not None else 'name the outcome column'}"
                " (expected exactly one primary item).")
        outcome = prim[0]
        ud = unit_data(data, [outcome], arm=arm, mode=mode)
    ud.require([outcome], "outcome")
    if placebo is None:
        placebos = set(log.arms_of_kind("placebo")) if log is not None else set()
    else:
        placebos = {str(p) for p in placebo}
    if not placebos:
        raise InvalidArgumentError(
            "calibration needs placebo arms (arms table kind = 'placebo', or placebo=[...] for a unit-level frame): "
            "meaning-preserving paraphrases or sham texts of the control."
        )
    frame = ud.frame
    by_cols = check_by(by, frame.columns) if by is not None else (("iteration",) if "iteration" in frame.columns
                                                                     else ())
    ref = ud.reference(reference)
    n_before = len(frame)
    frame = frame.dropna(subset=[outcome]).reset_index(drop=True)
    diagnostics: list[str] = []
    if n_before > len(frame):
        diagnostics.append(f"{n_before - len(frame)} unit(s) without a valid {outcome!r} left out")
    no_arm = int(frame[ud.arm].isna().sum())
    if no_arm:  # a unit without an arm belongs to no contrast
        frame = frame[frame[ud.arm].notna()].reset_index(drop=True)
        diagnostics.append(f"{no_arm} unit(s) without an arm ({ud.arm!r} missing) left out")
    if frame.empty:
        raise InsufficientDataError(f"no unit has a valid answer to {outcome!r}.")
    if not pd.api.types.is_numeric_dtype(frame[outcome]):
        raise InvalidArgumentError(f"outcome {outcome!r} is not numeric; calibration contrasts mean outcomes.")
    yv = frame[outcome].to_numpy(float)
    if not np.isfinite(yv).all() or np.abs(yv).max() > 1e150:
        raise InvalidArgumentError(f"outcome {outcome!r} holds infinite values or values beyond 1e150 in magnitude, "
                                   "which overflow the contrasts' variances; rescale it.")
    arm_col = ud.arm
    frame = frame.assign(__arm=frame[arm_col].astype(str))
    ref_s = str(ref)
    cells: list[tuple[dict[str, Any], str]] = []
    cell_of = np.full(len(frame), -1)
    for group, sub in iter_groups(frame, by_cols):
        for a in sorted(sub["__arm"].unique()):
            idx = sub.index[sub["__arm"] == a]
            cell_of[idx] = len(cells)
            cells.append((group, a))
    pair = pairing(frame, "__arm", cluster, log=log, arms=sorted(frame["__arm"].unique()))
    if pair.sentence:
        diagnostics.append(pair.sentence)
    y = frame[outcome].to_numpy(float)
    mean, n, vcell = _arm_mean_covariance(y, cell_of, len(cells), pair.clusters)
    rows: list[dict[str, Any]] = []
    a_rows: list[np.ndarray] = []
    control_flags: list[bool] = []
    for c, (group, a) in enumerate(cells):
        if a == ref_s:
            continue
        ref_cell = next((j for j, (g2, a2) in enumerate(cells) if g2 == group and a2 == ref_s), None)
        note = None
        vec = np.zeros(len(cells))
        vec[c] = 1.0
        if ref_cell is None:
            note = f"not testable: the group has no {ref_s!r} (reference) arm"
        else:
            vec[ref_cell] = -1.0
            if n[c] < 2 or n[ref_cell] < 2:
                note = f"not testable: arm {a!r} or {ref_s!r} has fewer than 2 units with a valid answer"
        rows.append({**group, "term": outcome, "arm": a, "reference": ref_s, "note": note,
                     "estimate": float(vec @ mean) if ref_cell is not None else math.nan})
        a_rows.append(vec)
        control_flags.append(a in placebos)
    if not rows:
        raise InsufficientDataError("no arm besides the reference arm has units with a valid answer.")
    amat = np.vstack(a_rows)
    with np.errstate(all="ignore"):
        cov = amat @ np.nan_to_num(vcell, nan=0.0, posinf=np.inf) @ amat.T
    contrasts = pd.DataFrame(rows)
    bad = contrasts["note"].notna().to_numpy()
    cov[bad, :] = 0.0
    cov[:, bad] = 0.0
    cov[bad, bad] = math.nan
    contrasts["std_error"] = np.sqrt(np.diag(cov))
    contrasts.loc[bad, "estimate"] = math.nan
    is_control = np.asarray(control_flags)
    if not (~is_control).any():
        raise InvalidArgumentError(f"every arm besides {ref_s!r} is a placebo arm: there is no effect to calibrate.")
    shared = "the placebo and treatment contrasts share the control arm's mean: their covariance is estimated " \
             "from the units and modelled (not treated as independent)"
    diagnostics.append(shared)
    return _calibrate(contrasts, cov, is_control, by=list(by_cols), conf_level=conf_level, null=null,
                      min_controls=min_controls, few_controls=few_controls, max_abs=max_abs, n_iter=n_iter,
                      seed=seed, diagnostics=diagnostics, call="calibrate_effect", data=data, strata=pair.strata)
