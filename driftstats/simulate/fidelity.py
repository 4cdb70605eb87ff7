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
    iterations: int = 1,
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
    iterations
        Independent replications of the whole design, labelled by ``iteration`` (new personas
        each time): ``fidelity(log, by="iteration")`` then gives one row set per replication,
        which makes simulation studies cheap.
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
    iterations = check_positive_int("iterations", iterations)
    if not heterogeneity >= 0:
        raise InvalidArgumentError(f"heterogeneity must be >= 0; got {heterogeneity!r}.")
    if not all(0 < f < 1 for f in fidelity) and heterogeneity > 0:
        raise InvalidArgumentError("with heterogeneity > 0, every fidelity rate must be strictly between 0 and 1.")
    rng = rng_from(seed)
    answers: list[dict[str, np.ndarray]] = []
    personas: list[dict[str, np.ndarray]] = []
    for it in range(iterations):
        _one_iteration(rng, it if iterations > 1 else None, answers, personas, n_per_arm=n_per_arm,
                       fidelity=fidelity, arms=arms, paired=paired, units_per_persona=units_per_persona,
                       replicates=replicates, heterogeneity=heterogeneity)
    items = pd.DataFrame([{"item": a, "text": f"What is your {a}?", "options": o, "scale": "nominal",
                           "role": "fidelity", "attribute": a} for a, o in ATTRIBUTES.items()])
    arm_table = pd.DataFrame({"arm": list(arms), "kind": ["control"] + ["treatment"] * (len(arms) - 1)})
    return read_log(_stack(answers), items=items, personas=_stack(personas), arms=arm_table)


def _stack(parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    return pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in parts[0]})


def _one_iteration(rng: np.random.Generator, it: int | None, answers: list[dict[str, np.ndarray]],
                   personas: list[dict[str, np.ndarray]], *, n_per_arm: int, fidelity: Sequence[float],
                   arms: Sequence[str], paired: bool, units_per_persona: int, replicates: int,
                   heterogeneity: float) -> None:
    """One replication of the design, vectorised over personas, units and replicates."""
    prefix = "" if it is None else f"i{it}-"
    n, k, r = n_per_arm, units_per_persona, replicates
    specs = {a: rng.integers(0, len(o), size=n) for a, o in ATTRIBUTES.items()}
    u = rng.normal(0.0, heterogeneity, size=n) if heterogeneity > 0 else np.zeros(n)
    p_idx = np.repeat(np.arange(n), k * r)
    k_idx = np.tile(np.repeat(np.arange(k), r), n)
    r_idx = np.tile(np.arange(r), n * k)
    for a_i, arm in enumerate(arms):
        if not paired:
            specs = {a: rng.integers(0, len(o), size=n) for a, o in ATTRIBUTES.items()}
            u = rng.normal(0.0, heterogeneity, size=n) if heterogeneity > 0 else np.zeros(n)
        f = fidelity[a_i]
        p_right = (stats.norm.cdf(stats.norm.ppf(f) * np.sqrt(1 + heterogeneity**2) + u) if heterogeneity > 0
                   else np.full(n, f))
        pers = np.array([f"{prefix}p{p}" if paired else f"{prefix}p{p}-{arm}" for p in range(n)], dtype=object)
        units = np.array([f"{prefix}p{p}-{arm}" if k == 1 else f"{prefix}p{p}-{arm}-{j}"
                          for p in range(n) for j in range(k)], dtype=object)
        unit_of = units[p_idx * k + k_idx]
        pid = pers[p_idx] if paired or k > 1 else unit_of
        for attr, opts in ATTRIBUTES.items():
            levels = np.asarray(opts, dtype=object)
            true = specs[attr][p_idx]
            right = rng.random(true.size) < p_right[p_idx]
            wrong = (true + rng.integers(1, len(opts), size=true.size)) % len(opts)  # a uniform wrong option
            m = true.size
            cols = {"iteration": np.full(m, it)} if it is not None else {}
            answers.append({**cols, "unit_id": unit_of, "persona_id": pid, "arm": np.full(m, arm, dtype=object),
                            "item": np.full(m, attr, dtype=object), "replicate": r_idx,
                            "response": levels[np.where(right, true, wrong)]})
            personas.append({"unit_id": units, "attribute": np.full(units.size, attr, dtype=object),
                             "value": levels[np.repeat(specs[attr], k)], "specified": np.ones(units.size, bool)})
