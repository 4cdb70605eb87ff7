"""Data-generating processes with known truth, for validation and teaching.

Every method has a simulator here; tests check point recovery, size and coverage
against them (methods.md section 6).
"""

from driftstats.simulate.adjustment import simulate_adjustment_log
from driftstats.simulate.fidelity import simulate_fidelity_log
from driftstats.simulate.latent import (
    LatentWorld,
    simulate_latent_world,
    simulate_placebo_log,
    simulate_proxy_data,
)
from driftstats.simulate.nco import simulate_nco_log, tilt_categorical
from driftstats.simulate.study import simulate_study_log

__all__ = [
    "LatentWorld",
    "simulate_adjustment_log",
    "simulate_fidelity_log",
    "simulate_latent_world",
    "simulate_nco_log",
    "simulate_placebo_log",
    "simulate_proxy_data",
    "simulate_study_log",
    "tilt_categorical",
]
