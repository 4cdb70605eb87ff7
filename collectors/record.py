"""Record: the log rows of one elicited unit, built from the schema's fields.

Every row starts from the schema's own field list (``driftstats.log.schema``), so a field the
collector does not fill is NULL by name, never missing, and a name outside the schema is an
error here rather than a silently dropped column.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from collectors.backends.base import Elicited
from collectors.plan import ItemTask, UnitPlan
from driftstats.log.schema import ADJUSTMENTS, ANSWERS, ITERATIONS, PERSONAS, Field

__all__ = ["Elicitation", "adjustment_row", "answer_rows", "iteration_row", "persona_rows_of", "row_of"]

Elicitation = tuple[ItemTask, int, Elicited]  # (task, replicate, result)


def row_of(fields: Sequence[Field], values: Mapping[str, Any]) -> dict[str, Any]:
    """One row of a schema table: every field by name (NULL when not given); unknown names raise."""
    names = [f.name for f in fields]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise KeyError(f"not schema fields: {unknown}")
    return {n: values.get(n) for n in names}


def answer_rows(unit: UnitPlan, results: Sequence[Elicitation], *, study: str, run_id: str, iteration: int,
                model: str, info: Mapping[str, Any], temperature: float, top_p: float, style: str) -> list[dict]:
    """The answers rows of one unit: a sampled answer per (item, replicate) and, with a distribution,
    one ``dist`` row per option."""
    sampling = json.dumps({"temperature": temperature, "top_p": top_p, "prompt_style": style,
                           "answer_format": "letter"}, sort_keys=True)
    rows: list[dict] = []
    for task, rep, res in results:
        prompt = task.prompt
        now = pd.Timestamp.now(tz="UTC")
        common = {
            "study": study, "run_id": run_id, "iteration": iteration, "model": model, "unit_id": unit.unit_id,
            "arm": unit.arm.name, "item": task.item.name, "replicate": rep, "persona_id": unit.persona_id,
            "role": task.role, "option_order": prompt.option_order, "model_sha256": info["model_sha256"],
            "prompt_sha256": hashlib.sha256((unit.prefix + prompt.text).encode()).hexdigest(),
            "grammar_sha256": hashlib.sha256(prompt.regex.encode()).hexdigest(), "seed": task.seeds[rep],
            "temperature": temperature, "top_p": top_p, "backend": info["backend"],
            "backend_version": info["backend_version"], "created_at": now,
        }
        rows.append(row_of(ANSWERS, {**common, "mode": "sample", "sampling": sampling,
                                     "response": res.option if res.option is not None else res.text,
                                     "valid": res.option is not None, "error": res.error}))
        if res.probs is not None:
            extra = json.dumps({**json.loads(sampling), **{k: round(v, 10) for k, v in res.extra.items()}},
                               sort_keys=True)
            for opt, pr in res.probs.items():
                rows.append(row_of(ANSWERS, {**common, "mode": "dist", "sampling": extra, "response": opt,
                                             "prob": pr, "valid": True, "error": None}))
    return rows


def persona_rows_of(unit: UnitPlan) -> list[dict]:
    """The personas rows of one unit: stated attributes (``specified``) then known latent truth."""
    out = [row_of(PERSONAS, {"unit_id": unit.unit_id, "attribute": a, "value": v, "specified": True})
           for a, v in unit.persona.specified.items()]
    out += [row_of(PERSONAS, {"unit_id": unit.unit_id, "attribute": a, "value": v, "specified": False})
            for a, v in unit.persona.latent.items()]
    return out


def iteration_row(**values: Any) -> dict[str, Any]:
    """A row of the ``iterations`` table (see ``docs/schema.md``)."""
    return row_of(ITERATIONS, values)


def adjustment_row(**values: Any) -> dict[str, Any]:
    """A row of the ``adjustments`` table (see ``docs/schema.md``)."""
    return row_of(ADJUSTMENTS, values)
