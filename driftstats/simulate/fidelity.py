"""Simulated fidelity probes with known per-arm fidelity rates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from driftstats._args import DEFAULT_SEED, check_positive_int, rng_from
from driftstats.errors import InvalidArgumentError
from driftstats.log.simlog import SimLog, read_log

__all__ = ["simulate_fidelity_log"]

ATTRIBUTES = {
    "party": ["Democrat", "Independent", "Republican"],
    "age": ["18-29", "30-44", "45-64", "65+"],
}


def simulate_fidelity_log(
    *,
    n_per_arm: int = 200,
    fidelity: Sequence[float] = (0.9, 0.8),
    arms: Sequence[str] = ("control", "treatment"),
    paired: bool = True,
    units_per_persona: int = 1,
    replicates: int = 1,
    heterogeneity: float = 0.0,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
) -> SimLog:
    """A log whose specified ``party`` and ``age`` are re-asked, with known fidelity per arm.

    Each answer in arm ``a`` reports the specified value with probability ``fidelity[a]``
    (marginally over personas), otherwise a uniformly chosen wrong option.

    Parameters
    ----------
    n_per_arm
        Personas per arm (the same personas in every arm when ``paired``).
    fidelity
        The probability of reporting the specified value, one per arm.
    paired
        The same personas (``persona_id``) in every arm; otherwise new personas per arm.
    units_per_persona
        Units per persona and arm (e.g. repeated conversations); they share the persona's
        specified values and its fidelity propensity.
    replicates
        Answers per unit and item (``replicate`` 0, 1, ...).
    heterogeneity
        Standard deviation ``sigma`` of a persona-level propensity ``u ~ N(0, sigma^2)`` shared by
        the persona's units and arms: an answer is right with probability
        ``Phi(Phi^-1(f_a) sqrt(1 + sigma^2) + u)``, whose mean over personas is exactly ``f_a``.
        ``sigma > 0`` correlates a persona's answers (within and across arms).
    seed
        Default 0: the log is reproducible; ``seed=None`` draws fresh entropy.

    Returns
    -------
    SimLog
        Items ``party`` and ``age`` (role ``fidelity``, nominal), personas table of specified
        values; the true difference of fidelity shares is ``fidelity[a] - fidelity[0]``.

    Examples
    --------
    >>> log = simulate_fidelity_log(n_per_arm=20, units_per_persona=2, seed=1)
    >>> log.sql("SELECT count(DISTINCT unit_id) AS n FROM answers")["n"].item()
    80
    """
    if len(fidelity) != len(arms):
        raise InvalidArgumentError(f"fidelity needs one rate per arm ({len(arms)}); got {len(fidelity)}.")
    units_per_persona = check_positive_int("units_per_persona", units_per_persona)
    replicates = check_positive_int("replicates", replicates)
    if not heterogeneity >= 0:
        raise InvalidArgumentError(f"heterogeneity must be >= 0; got {heterogeneity!r}.")
    if not all(0 < f < 1 for f in fidelity) and heterogeneity > 0:
        raise InvalidArgumentError("with heterogeneity > 0, every fidelity rate must be strictly between 0 and 1.")
    rng = rng_from(seed)
    rows, personas = [], []
    specs = {a: rng.integers(0, len(o), size=n_per_arm) for a, o in ATTRIBUTES.items()}
    u = rng.normal(0.0, heterogeneity, size=n_per_arm) if heterogeneity > 0 else None
    for a_i, arm in enumerate(arms):
        if not paired:
            specs = {a: rng.integers(0, len(o), size=n_per_arm) for a, o in ATTRIBUTES.items()}
            u = rng.normal(0.0, heterogeneity, size=n_per_arm) if heterogeneity > 0 else None
        f = fidelity[a_i]
        q = float(stats.norm.ppf(f)) * np.sqrt(1 + heterogeneity**2) if u is not None else None
        for p in range(n_per_arm):
            persona = f"p{p}" if paired else f"p{p}-{arm}"
            p_right = f if q is None else float(stats.norm.cdf(q + u[p]))  # type: ignore[index]
            for k in range(units_per_persona):
                unit = f"p{p}-{arm}" if units_per_persona == 1 else f"p{p}-{arm}-{k}"
                for attr, opts in ATTRIBUTES.items():
                    true = int(specs[attr][p])
                    personas.append({"unit_id": unit, "attribute": attr, "value": opts[true], "specified": True})
                    for r in range(replicates):
                        if rng.random() < p_right:
                            ans = true
                        else:
                            ans = int(rng.choice([j for j in range(len(opts)) if j != true]))
                        rows.append({"unit_id": unit, "persona_id": persona if paired or units_per_persona > 1 else unit,
                                     "arm": arm, "item": attr, "replicate": r, "response": opts[ans]})
    items = pd.DataFrame([{"item": a, "text": f"What is your {a}?", "options": o, "scale": "nominal",
                           "role": "fidelity", "attribute": a} for a, o in ATTRIBUTES.items()])
    arm_table = pd.DataFrame({"arm": list(arms), "kind": ["control"] + ["treatment"] * (len(arms) - 1)})
    return read_log(pd.DataFrame(rows), items=items, personas=pd.DataFrame(personas), arms=arm_table)
