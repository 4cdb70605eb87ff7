"""The likelihood of the empirical null (EmpiricalCalibration's ``logLikelihoodNull``) and its ML fit.

Part of :mod:`driftstats.calibrate` (methods.md section 4.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from driftstats.calibrate._inputs import _PRIOR_RATE, _PRIOR_SHAPE


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


