"""Inputs of the calibration functions: checked arrays, usable controls, assumptions and defaults.

Part of :mod:`driftstats.calibrate` (methods.md section 4.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from driftstats.errors import InvalidArgumentError

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


