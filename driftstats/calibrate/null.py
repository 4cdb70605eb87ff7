"""Empirical null distributions: the asymptotic (``fitNull``) and the MCMC (``fitMcmcNull``) fit.

Part of :mod:`driftstats.calibrate` (methods.md section 4.4).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize, stats

from driftstats._args import (
    DEFAULT_SEED,
    check_choice,
    check_conf_level,
    check_positive_int,
    rng_from,
    seed_value,
)
from driftstats.calibrate._inputs import _MAX_MIX_DRAWS, RHAT_MAX, _clean
from driftstats.calibrate._likelihood import _Errors, _fit_ml, _log_prior
from driftstats.errors import ConvergenceWarning, InsufficientDataError


# ----------------------------------------------------------------------------- fitted error models
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


