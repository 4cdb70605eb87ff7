"""Power and sample size for NCO equivalence tests (methods.md section 3.3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from driftstats._args import (
    DEFAULT_SEED,
    check_choice,
    check_conf_level,
    check_margin,
    check_positive_int,
    rng_from,
    seed_value,
)
from driftstats._kernels.equiv import iut_tost, projection_decision
from driftstats._kernels.tvd_ci import event_stats_counts
from driftstats._provenance import provenance
from driftstats._result import Result
from driftstats.errors import InvalidArgumentError
from driftstats.nco.equivalence import EquivMethod
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
        "Independent arms with one sampled answer per unit (no pairing): the answer counts of each arm are "
        "multinomial, drawn exactly, and each draw is tested with the kernels equivalence_test runs on data "
        "(score statistics, continuity-corrected). Paired designs and distribution mode usually have more "
        "power than this.",
    )


_CHUNK = 2000
#: draws per chunk are capped so the per-draw K x K covariance of the event statistics stays
#: within this many cells (memory linear in the draws, whatever the number of levels)
_CHUNK_CELLS = 4_000_000


def equivalence_power_draws(
    q1: np.ndarray, q0: np.ndarray, n1: int, n0: int, margin: float, conf_level: float,
    method: str, draws: int, rng: np.random.Generator,
) -> np.ndarray:
    """Decisions (bool per draw) of the equivalence test on multinomial answer counts.

    Each draw is a pair of count tables (``n1`` answers from ``q1``, ``n0`` from ``q0``) tested
    exactly as :func:`~driftstats.equivalence_test` tests sampled answers of independent arms.
    """
    out = np.empty(draws, dtype=bool)
    chunk = max(1, min(_CHUNK, _CHUNK_CELLS // (len(q1) ** 2)))
    for start in range(0, draws, chunk):
        c = min(chunk, draws - start)
        st = event_stats_counts(rng.multinomial(n1, q1, size=c), rng.multinomial(n0, q0, size=c))
        if method == "iut":
            out[start:start + c] = iut_tost(st, margin)[0] < 1 - conf_level
        else:
            out[start:start + c] = projection_decision(st, margin, conf_level)
    return out


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
    seed: int | np.random.Generator | None = DEFAULT_SEED,
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
    method
        ``"iut"`` and / or ``"projection"``, as in :func:`equivalence_test`.
    conf_level
        ``1 - alpha`` of the tests.
    draws
        Monte Carlo draws; ``std_error`` in ``tidy()`` is the Monte Carlo standard error.
    seed
        Default 0: results are reproducible; ``seed=None`` draws fresh entropy.

    Returns
    -------
    PowerResult
        ``tidy()``: one row per method and size: ``power`` (= ``estimate``), its Monte Carlo
        ``std_error``, ``n_per_arm``, ``n_levels``, ``margin``.

    Notes
    -----
    Each draw is a pair of multinomial answer-count tables, tested by the same kernels as
    :func:`equivalence_test` (score statistics with continuity correction), so the power is that
    of the test the verb runs on sampled answers of independent arms, up to Monte Carlo error.
    The projection test is much more powerful than the per-level IUT for ``K > 2``: the IUT
    spends the margin as ``2 * margin / K`` per level, the projection test tests each event
    against the whole margin.

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
    info = {"method": "equivalence power (multinomial Monte Carlo of the score tests)", "conf_level": conf_level,
            "alternative": "less", "seed": seed_value(seed), "n_tests": len(rows)}
    return PowerResult.build(rows, info, provenance=provenance("nco_power", seed=seed))


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
    seed: int = DEFAULT_SEED,
    n_max: int = 1_000_000,
) -> int:
    """Smallest units per arm for which :func:`nco_power` reaches ``power`` (bisection).

    Parameters
    ----------
    margin, n_levels, tvd, q0, method, conf_level, draws
        As in :func:`nco_power` (one method; default the per-level IUT).
    power
        The power to reach.
    seed
        Default 0: results are reproducible; every size is simulated from this seed.
    n_max
        Give up beyond this many units per arm.

    Returns
    -------
    int
        Units per arm (in both arms).

    Raises
    ------
    InvalidArgumentError
        ``power`` outside (0, 1), an unknown method, or ``power`` not reached by ``n_max``.

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
