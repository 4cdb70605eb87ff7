"""Drift diagnostics with negative control outcomes (methods.md section 3)."""

from driftstats.nco.drift import NcoTestResult, nco_test

__all__ = ["NcoTestResult", "nco_test"]
