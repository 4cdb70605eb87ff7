"""Corrections of the observed contrast: NCO difference-in-differences, proximal 2SLS,
categorical proximal identification (methods.md section 4). Each states its assumptions."""

from driftstats.correct.did import DidResult, did_nco
from driftstats.correct.p2sls import P2slsResult, p2sls
from driftstats.correct.proximal import ProximalResult, proximal_discrete

__all__ = ["DidResult", "P2slsResult", "ProximalResult", "did_nco", "p2sls", "proximal_discrete"]
