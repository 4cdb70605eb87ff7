"""Elicit: ask every item of a planned unit on a backend (each item in its own branch).

The backend sees the unit's prefix once; each item is evaluated after it in its own branch
(forked elicitation), once per replicate, with the seed the plan gave it.
"""

from __future__ import annotations

from typing import Any

from collectors.plan import UnitPlan
from collectors.record import Elicitation
from collectors.study import ModelSpec

__all__ = ["elicit_unit"]


def elicit_unit(backend: Any, unit: UnitPlan, model: ModelSpec) -> list[Elicitation]:
    """Every (item, replicate) answer of ``unit``: a list of ``(task, replicate, Elicited)``."""
    out: list[Elicitation] = []
    for task in unit.tasks:
        for rep, seed in enumerate(task.seeds):
            res = backend.elicit_item(unit.prefix, task.prompt, seed=seed, temperature=model.temperature,
                                      top_p=model.top_p, dist=model.distribution)
            out.append((task, rep, res))
    return out
