"""Power and sample size for NCO equivalence tests (methods.md section 3.3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from driftstats._args import (
    check_choice,
    check_conf_level,
    check_positive_int,
    rng_from,
    seed_value,
)
from driftstats._kernels.equiv import iut_tost, projection_equivalence
from driftstats._result import Provenance, Result
from driftstats.errors import InvalidArgumentError
from driftstats.nco.equivalence import EquivMethod, check_margin
from driftstats.simulate.nco import tilt_categorical

__all__ = ["PowerResult", "equivalence_power_draws", "nco_power", "nco_sample_size"]


@dataclass(frozen=True, slots=True, repr=False)
class PowerResult(Result):
    """Power of the equivalence test(s): one row per method (and sample size)."""

    TITLE: ClassVar[str] = "Power of the NCO equivalence test"
    DISPLAY: ClassVar[tuple[str, ...]] = ("n_per_arm", "n_levels", "margin", "estimate", "power", "std_error")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("n_per_arm", "n_levels", "margin", "power")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_tests",)
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        "Independent arms with one answer per unit (no pairing); the share estimates are approximated as "
        "Gaussian with their exact multinomial covariance, and the test is applied to each draw exactly as "
        "equivalence_test applies it to data.",
    )


def _shares(q: np.ndarray, n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    cov = (np.diag(q) - np.outer(q, q)) / n
    # the covariance is singular (shares sum to 1): draw through its eigen-decomposition
    w, v = np.linalg.eigh(cov)
    z = rng.standard_normal((draws, q.size)) * np.sqrt(np.clip(w, 0, None))
    return q + z @ v.T


def equivalence_power_draws(
    q1: np.ndarray, q0: np.ndarray, n1: int, n0: int, margin: float, conf_level: float,
    method: str, draws: int, rng: np.random.Generator,
) -> np.ndarray:
    """Decisions (bool per draw) of the equivalence test under Gaussian share estimates."""
    h1, h0 = _shares(q1, n1, draws, rng), _shares(q0, n0, draws, rng)
    h1c, h0c = np.clip(h1, 0, 1), np.clip(h0, 0, 1)
    se = np.sqrt(h1c * (1 - h1c) / n1 + h0c * (1 - h0c) / n0)
    d = h1 - h0
    if method == "iut":
        p, _ = iut_tost(d, se, margin)
        return p < (1 - conf_level)
    upper, _ = projection_equivalence(d, se, margin, conf_level)
    return upper < margin


def _qs(n_levels: int, q0: Sequence[float] | None, tvd: float) -> tuple[np.ndarray, np.ndarray]:
    base = np.full(n_levels, 1.0 / n_levels) if q0 is None else np.asarray(q0, float) / np.sum(q0)
    if base.size != n_levels:
        raise InvalidArgumentError(f"q0 has {base.size} entries but n_levels={n_levels}.")
    return tilt_categorical(base, tvd), base


def nco_power(
    n_per_arm: int | Sequence[int],
    *,
    margin: float,
    n_levels: int,
    tvd: float = 0.0,
    q0: Sequence[float] | None = None,
    n_reference: int | None = None,
    method: EquivMethod | Sequence[EquivMethod] = ("iut", "projection"),
    conf_level: float = 0.95,
    draws: int = 20_000,
    seed: int | np.random.Generator | None = 0,
) -> PowerResult:
    """Power of :func:`equivalence_test` to conclude TV < ``margin``.

    Parameters
    ----------
    n_per_arm
        Units in the compared arm (one or several sizes); ``n_reference`` in the reference
        arm (default the same).
    margin, n_levels
        Equivalence margin and number of NCO levels.
    tvd
        The true TVD (the compared arm is ``q0`` tilted by ``tvd``; 0 = no drift).
    q0
        Level distribution in the reference arm (default uniform).
    draws
        Monte Carlo draws; ``std_error`` in ``tidy()`` is the Monte Carlo standard error.

    Examples
    --------
    >>> import driftstats as ds
    >>> ds.nco_power([1000, 4000], margin=0.1, n_levels=5, method="iut").tidy()["power"].round(1).tolist()
    [0.0, 1.0]
    """
    margin = check_margin(margin)
    conf_level = check_conf_level(conf_level)
    n_levels = check_positive_int("n_levels", n_levels, minimum=2)
    draws = check_positive_int("draws", draws, minimum=100)
    methods = (method,) if isinstance(method, str) else tuple(method)
    for m in methods:
        check_choice("method", m, EquivMethod)
    sizes = [check_positive_int("n_per_arm", n, minimum=2) for n in np.atleast_1d(n_per_arm).tolist()]
    rng = rng_from(seed)
    q1, q0a = _qs(n_levels, q0, tvd)
    rows = []
    for n in sizes:
        n0 = n if n_reference is None else check_positive_int("n_reference", n_reference, minimum=2)
        for m in methods:
            dec = equivalence_power_draws(q1, q0a, n, n0, margin, conf_level, m, draws, rng)
            pw = float(dec.mean())
            rows.append({"term": m, "n_per_arm": n, "n_levels": n_levels, "margin": margin, "estimate": pw,
                         "power": pw, "std_error": float(np.sqrt(max(pw * (1 - pw), 1e-12) / draws))})
    info = {"method": "equivalence power (Gaussian Monte Carlo)", "conf_level": conf_level,
            "alternative": "less", "seed": seed_value(seed), "n_tests": len(rows)}
    return PowerResult.build(rows, info, provenance=Provenance(call="nco_power", seed=seed_value(seed)))


def nco_sample_size(
    *,
    margin: float,
    n_levels: int,
    power: float = 0.8,
    tvd: float = 0.0,
    q0: Sequence[float] | None = None,
    method: EquivMethod = "iut",
    conf_level: float = 0.95,
    draws: int = 20_000,
    seed: int = 0,
    n_max: int = 1_000_000,
) -> int:
    """Smallest units per arm for which :func:`nco_power` reaches ``power`` (bisection).

    Examples
    --------
    >>> import driftstats as ds
    >>> 2000 < ds.nco_sample_size(margin=0.1, n_levels=5, power=0.8) < 4000
    True
    """
    if not 0 < power < 1:
        raise InvalidArgumentError(f"power must be in (0, 1); got {power!r}.")
    check_choice("method", method, EquivMethod)

    def pw(n: int) -> float:
        # common random numbers (same seed) keep the power curve monotone enough for bisection
        return nco_power(n, margin=margin, n_levels=n_levels, tvd=tvd, q0=q0, method=method,
                         conf_level=conf_level, draws=draws, seed=seed).table["power"].iloc[0]

    lo, hi = 2, 16
    while pw(hi) < power:
        lo, hi = hi, hi * 2
        if hi > n_max:
            raise InvalidArgumentError(
                f"power {power} is not reached with up to {n_max} units per arm (true tvd={tvd} vs margin={margin})."
            )
    while hi - lo > max(1, lo // 200):
        mid = (lo + hi) // 2
        if pw(mid) >= power:
            hi = mid
        else:
            lo = mid
    return hi
