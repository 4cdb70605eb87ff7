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

from driftstats.calibrate.contrasts import CalibrationResult, calibrate_effect, calibrate_effects
from driftstats.calibrate.intervals import (
    calibrate_ci,
    ease,
    evaluate_calibration,
    fit_systematic_error_model,
    simulate_controls,
)
from driftstats.calibrate.null import (
    McmcNullDistribution,
    NullDistribution,
    SystematicErrorModel,
    fit_mcmc_null,
    fit_null,
)
from driftstats.calibrate.pvalues import calibrate_p, calibrate_p_interval

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
