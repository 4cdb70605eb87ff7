"""Simulated fidelity probes with known per-arm fidelity rates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from driftstats._args import rng_from
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
    seed: int | np.random.Generator | None = None,
) -> SimLog:
    """Units whose specified ``party`` and ``age`` are re-asked; arm ``a`` reports them correctly
    with probability ``fidelity[a]`` (otherwise a uniformly chosen wrong option).
    """
    if len(fidelity) != len(arms):
        raise InvalidArgumentError(f"fidelity needs one rate per arm ({len(arms)}); got {len(fidelity)}.")
    rng = rng_from(seed)
    rows, personas = [], []
    specs = {a: rng.integers(0, len(o), size=n_per_arm) for a, o in ATTRIBUTES.items()}
    for a_i, arm in enumerate(arms):
        if not paired:
            specs = {a: rng.integers(0, len(o), size=n_per_arm) for a, o in ATTRIBUTES.items()}
        for p in range(n_per_arm):
            unit = f"p{p}-{arm}"
            for attr, opts in ATTRIBUTES.items():
                true = int(specs[attr][p])
                personas.append({"unit_id": unit, "attribute": attr, "value": opts[true], "specified": True})
                if rng.random() < fidelity[a_i]:
                    ans = true
                else:
                    ans = int(rng.choice([k for k in range(len(opts)) if k != true]))
                rows.append({"unit_id": unit, "persona_id": f"p{p}" if paired else unit, "arm": arm,
                             "item": attr, "response": opts[ans]})
    items = pd.DataFrame([{"item": a, "text": f"What is your {a}?", "options": o, "scale": "nominal",
                           "role": "fidelity", "attribute": a} for a, o in ATTRIBUTES.items()])
    arm_table = pd.DataFrame({"arm": list(arms), "kind": ["control"] + ["treatment"] * (len(arms) - 1)})
    return read_log(pd.DataFrame(rows), items=items, personas=pd.DataFrame(personas), arms=arm_table)
