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
from driftstats.log.dialogue import chain_sha256, dialogue_answers, text_sha256
from driftstats.log.schema import ADJUSTMENTS, ANSWERS, ITERATIONS, PERSONAS, TRANSCRIPTS, Field

__all__ = ["Elicitation", "adjustment_row", "answer_rows", "dialogue_rows", "iteration_row", "persona_rows_of",
           "row_of", "transcript_rows"]

Elicitation = tuple[ItemTask, int, Elicited]  # (task, replicate, result)


def row_of(fields: Sequence[Field], values: Mapping[str, Any]) -> dict[str, Any]:
    """One row of a schema table: every field by name (NULL when not given); unknown names raise."""
    names = [f.name for f in fields]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise KeyError(f"not schema fields: {unknown}")
    return {n: values.get(n) for n in names}


def answer_rows(unit: UnitPlan, results: Sequence[Elicitation], *, study: str, run_id: str, iteration: int,
                model: str, info: Mapping[str, Any], temperature: float, top_p: float, style: str,
                dialogue_sha256: str | None = None, sampling_extra: Mapping[str, Any] | None = None) -> list[dict]:
    """The answers rows of one unit: a sampled answer per (item, replicate) and, with a distribution,
    one ``dist`` row per option. A dialogue unit's rows carry ``dialogue_sha256`` (the transcript they
    were asked after) and the dialogue's settings in ``sampling`` (``sampling_extra``)."""
    sampling = json.dumps({"temperature": temperature, "top_p": top_p, "prompt_style": style,
                           "answer_format": "letter", **(sampling_extra or {})}, sort_keys=True)
    rows: list[dict] = []
    for task, rep, res in results:
        prompt = task.prompt
        now = pd.Timestamp.now(tz="UTC")
        common = {
            "study": study, "run_id": run_id, "iteration": iteration, "model": model, "unit_id": unit.unit_id,
            "arm": unit.arm.name, "item": task.item.name, "replicate": rep, "persona_id": unit.persona_id,
            "role": task.role, "option_order": prompt.option_order, "model_sha256": info["model_sha256"],
            "prompt_sha256": hashlib.sha256((unit.prefix + prompt.text).encode()).hexdigest(),
            "dialogue_sha256": dialogue_sha256,
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


def transcript_rows(unit_id: str, messages: Sequence[Any]) -> list[dict]:
    """The transcripts rows of one unit's dialogue: one per message, with its hash and the running chain.

    ``messages``: objects with ``role, turn, text, tokens, finish_reason, valid, error, model, seed``
    (:class:`collectors.dialogue.Message`). The last row's ``dialogue_sha256`` identifies the transcript.
    """
    rows, chain = [], ""
    now = pd.Timestamp.now(tz="UTC")
    for k, m in enumerate(messages):
        chain = chain_sha256(chain, m.role, m.text)
        rows.append(row_of(TRANSCRIPTS, {
            "unit_id": unit_id, "message": k, "turn": m.turn, "role": m.role, "text": m.text, "tokens": m.tokens,
            "finish_reason": m.finish_reason, "valid": m.valid, "error": m.error, "model": m.model, "seed": m.seed,
            "sha256": text_sha256(m.text), "dialogue_sha256": chain, "created_at": now}))
    return rows


def dialogue_rows(unit: UnitPlan, *, turns: int, end: str, dialogue_sha256: str | None, study: str, run_id: str,
                  iteration: int, model: str, info: Mapping[str, Any], sampling: Mapping[str, Any]) -> list[dict]:
    """The unit's two dialogue answers (``dialogue_turns``, ``dialogue_end``; built by
    :func:`driftstats.log.dialogue.dialogue_answers`) as answers rows."""
    base = {"study": study, "run_id": run_id, "iteration": iteration, "model": model, "unit_id": unit.unit_id,
            "arm": unit.arm.name, "replicate": 0, "persona_id": unit.persona_id, "role": "other", "mode": "sample",
            "valid": True, "dialogue_sha256": dialogue_sha256, "model_sha256": info["model_sha256"],
            "backend": info["backend"], "backend_version": info["backend_version"],
            "sampling": json.dumps(dict(sampling), sort_keys=True), "created_at": pd.Timestamp.now(tz="UTC")}
    frame = dialogue_answers([{**base, "turns": turns, "end": end}])
    return [row_of(ANSWERS, {k: v for k, v in r.items() if not (isinstance(v, float) and v != v)})
            for r in frame.to_dict("records")]


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
