"""Drift diagnostics with negative control outcomes (methods.md section 3)."""

from driftstats.nco.drift import NcoTestResult, nco_test
from driftstats.nco.equivalence import EquivalenceResult, equivalence_test
from driftstats.nco.power import PowerResult, nco_power, nco_sample_size

__all__ = [
    "EquivalenceResult",
    "NcoTestResult",
    "PowerResult",
    "equivalence_test",
    "nco_power",
    "nco_sample_size",
    "nco_test",
]
