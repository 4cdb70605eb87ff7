"""driftstats: audit experiments run on LLM-simulated users.

Negative-control drift tests, equivalence and power, persona fidelity, effect
estimation, corrections (NCO difference-in-differences, proximal 2SLS, categorical
proximal) and empirical calibration, on a validated simulation log.

Heavy layers (plots, report, Bayesian models) load lazily; the top-level names below
are resolved on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from driftstats._version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # log
    "read_log": "driftstats.log",
    "from_wide": "driftstats.log",
    "SimLog": "driftstats.log",
    # drift diagnostics
    "nco_test": "driftstats.nco",
    "equivalence_test": "driftstats.nco",
    "nco_power": "driftstats.nco",
    "nco_sample_size": "driftstats.nco",
    # simulators
    "simulate_nco_log": "driftstats.simulate",
    "simulate_fidelity_log": "driftstats.simulate",
    "simulate_latent_world": "driftstats.simulate",
    "simulate_proxy_data": "driftstats.simulate",
    "simulate_study_log": "driftstats.simulate",
    # effects
    "effect": "driftstats.effects",
    "effect_model": "driftstats.effects",
    # decomposition and corrections
    "decompose": "driftstats.decomposition",
    "decompose_world": "driftstats.decomposition",
    "retention": "driftstats.decomposition",
    "manski_bounds": "driftstats.decomposition",
    "did_nco": "driftstats.correct",
    "p2sls": "driftstats.correct",
    "proximal_discrete": "driftstats.correct",
    # calibration
    "fit_null": "driftstats.calibrate",
    "calibrate_p": "driftstats.calibrate",
    "fit_systematic_error_model": "driftstats.calibrate",
    "calibrate_ci": "driftstats.calibrate",
    "ease": "driftstats.calibrate",
    "simulate_controls": "driftstats.calibrate",
    "evaluate_calibration": "driftstats.calibrate",
    "calibrate_effect": "driftstats.calibrate",
    "calibrate_effects": "driftstats.calibrate",
    "fit_mcmc_null": "driftstats.calibrate",
    "calibrate_p_interval": "driftstats.calibrate",
    "simulate_placebo_log": "driftstats.simulate",
    "simulate_adjustment_log": "driftstats.simulate",
    # the persona-augmentation loop
    "adjustment_path": "driftstats.adjust",
    # the audit
    "audit": "driftstats.report",
    # fidelity
    "fidelity": "driftstats.persona",
    # errors live in driftstats.errors (imported eagerly: they are tiny)
}

__all__ = ["__version__", "errors", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name == "errors":
            return importlib.import_module("driftstats.errors")
        raise AttributeError(f"module 'driftstats' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
