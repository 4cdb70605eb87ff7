"""Import SimulatorArena annotated conversations (``format="simulator_arena"``).

microsoft/SimulatorArena ships its rated dialogues as JSON lists (``data/*_annotations*.json``;
see ``docs/importers.md``): one record per conversation with ``workerId``, ``model`` (the AI
assistant), ``user_queries`` and ``ai_responses`` (the turns, in order), ``why_stop`` (the
reason the user picked when ending the conversation) and 1-10 ratings:
``overall_rating`` (math tutoring), ``overall_interaction_rating`` and
``overall_document_rating`` (document creation). Math tutoring records also hold the user's
``math_expertise`` and whether they solved the problem (``solve_or_not``,
``problem_1_correctness``).

Mapping: each record is a unit; the assistant model is its arm (``arm=`` for a file puts all its
records in that arm); units are independent (``persona_id`` NULL: every conversation has its own
user). The ratings are ordinal items with options ``'1'``..``'10'`` (role primary; a 0 is what
the annotation app stores when no rating was submitted, so it is an invalid answer);
``solve_or_not`` and ``problem_1_correctness`` are nominal (role other); ``dialogue_end`` keeps
``why_stop``'s own labels. ``math_expertise`` is a persona attribute. ``answers.model`` is
``user_model=`` (default ``'human'``: the annotation files were written by crowd workers).

The simulator outputs (``simulation/output/...``: nested ``{model: {document_type: {intent:
{workerId: ...}}}}`` objects, rated in separate evaluation files) are not read by this importer.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Any

import pandas as pd

from driftstats.errors import InvalidArgumentError, UnreadableLogError
from driftstats.log.importers import register
from driftstats.log.importers._common import (
    Message,
    Unit,
    arm_kinds,
    assemble,
    bad_field,
    check_arms,
    get,
    load_json,
)

__all__ = ["SIMULATOR_ARENA_STOPS", "read_simulator_arena"]

FMT = "simulator_arena"
_FIX = "pass a SimulatorArena annotations file (data/*_annotations*.json: a JSON list of conversations)."
#: The choices of the ``why_stop`` radio of the annotation apps (crowdsoucing/heroku/*/app.py), in order.
SIMULATOR_ARENA_STOPS: tuple[str, ...] = (
    "I felt confident enough to solve the problem.",
    "I found the AI tutor not helpful.",
    "I am satified with the document the AI created.",
    "I found the AI writing assistant not helpful.",
    "I encountered technical issues with the interface.",
    "Other reason",
)
_RATINGS = {
    "overall_rating": "overall rating of the tutoring interaction (1-10)",
    "overall_interaction_rating": "overall rating of the writing interaction (1-10)",
    "overall_document_rating": "overall rating of the final document (1-10)",
}
_OUTCOMES = {
    "solve_or_not": (["yes", "no"], "did the user solve the problem (their own answer)"),
    "problem_1_correctness": (["correct", "incorrect"], "was the user's answer to the problem correct"),
}
_PERSONA = ("math_expertise",)
_SCALE = [str(k) for k in range(1, 11)]


def _rating(v: object) -> tuple[str | None, bool, str | None]:
    if v is None:
        return None, False, "no rating"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer():
        return (str(v), False, f"rating {v!r} is not an integer from 1 to 10")
    k = int(v)
    if k == 0:
        return None, False, "no rating submitted (the annotation app stores 0)"
    if not 1 <= k <= 10:
        return str(k), False, f"rating {k} is outside 1..10"
    return str(k), True, None


def _outcome(v: object, options: list[str]) -> tuple[str | None, bool, str | None]:
    if v is None or v == "":
        return None, False, "not answered"
    text = str(v)
    return (text, True, None) if text in options else (text, False, f"{text!r} is not one of {options}")


def _turns(rec: dict[str, Any], *, path: Path, record: str, user_model: str | None,
           assistant: str | None) -> list[Message]:
    queries = get(rec, "user_queries", (list,), fmt=FMT, path=path, record=record)
    responses = get(rec, "ai_responses", (list,), fmt=FMT, path=path, record=record)
    out = []
    for k, (q, r) in enumerate(zip_longest(queries, responses, fillvalue=_NONE)):
        for role, text, name in (("user", q, "user_queries"), ("assistant", r, "ai_responses")):
            if text is _NONE:
                continue
            if text is not None and not isinstance(text, str):
                raise bad_field(FMT, path, record, f"{name}[{k}]", f"expected a string, got {type(text).__name__}",
                                "check that the file is a complete SimulatorArena annotations file.")
            out.append(Message(role=role, text=text, model=user_model if role == "user" else assistant))
    return out


_NONE = object()


@register(FMT)
def read_simulator_arena(sources: Sequence[Path], *, arms: Sequence[str | None], control: str | None = None,
                         user_model: str = "human", **options: Any) -> dict[str, pd.DataFrame]:
    """Read SimulatorArena annotation files; the assistant ``model`` of each record is its arm.

    ``arms``: one name per file (``None``: each record's ``model``). ``control``: the control arm
    (default: the first arm met). ``user_model``: ``answers.model`` (default ``'human'``).
    """
    if options:
        raise InvalidArgumentError(
            f"simulator_arena import: unknown option(s) {sorted(options)}; known: control, user_model.")
    if not isinstance(user_model, str) or not user_model:
        raise InvalidArgumentError(f"simulator_arena import: user_model must be a non-empty string; got {user_model!r}.")
    sources = [Path(s) for s in sources]
    arm_names = check_arms(arms, len(sources), FMT)
    units: list[Unit] = []
    ends = list(SIMULATOR_ARENA_STOPS)
    present: set[str] = set()
    order: list[str] = []
    where: dict[str, str] = {}
    for path, given in zip(sources, arm_names, strict=True):
        data = load_json(path, FMT, _FIX)
        if not isinstance(data, list):
            raise UnreadableLogError(
                f"simulator_arena import: {str(path)!r} holds a JSON {type(data).__name__}, not a list of annotated "
                f"conversations (a simulator output file is a nested object; it is not read here). Fix: {_FIX}")
        for i, rec in enumerate(data):
            wid = rec.get("workerId") if isinstance(rec, dict) else None
            record = f"record {i}" + (f" (workerId {wid!r})" if isinstance(wid, str) else "")
            worker = get(rec, "workerId", (str,), fmt=FMT, path=path, record=record)
            model = get(rec, "model", (str,), fmt=FMT, path=path, record=record, required=given is None)
            arm = given or model
            unit_id = f"{arm}/{worker}/{i}" if f"{arm}/{worker}" in where else f"{arm}/{worker}"
            where[unit_id] = record
            if arm not in order:
                order.append(arm)
            answers: dict[str, tuple[str | None, bool, str | None]] = {}
            for item in _RATINGS:
                if item in rec:
                    present.add(item)
                    answers[item] = _rating(rec[item])
            for item, (opts, _text) in _OUTCOMES.items():
                if item in rec:
                    present.add(item)
                    answers[item] = _outcome(rec[item], opts)
            why = rec.get("why_stop")
            end = why if isinstance(why, str) and why.strip() else "unknown"
            if end not in ends:
                ends.append(end)
            personas = {a: (None if rec[a] is None else str(rec[a])) for a in _PERSONA if a in rec}
            units.append(Unit(unit_id=unit_id, arm=arm, end=end, model=user_model, answers=answers,
                              personas=personas,
                              messages=_turns(rec, path=path, record=record, user_model=None, assistant=model)))
    items = [{"item": k, "text": t, "options": _SCALE, "scale": "ordinal", "role": "primary", "attribute": None}
             for k, t in _RATINGS.items() if k in present]
    items += [{"item": k, "text": t, "options": o, "scale": "nominal", "role": "other", "attribute": None}
              for k, (o, t) in _OUTCOMES.items() if k in present]
    return assemble(units, items, ends=ends, arms={a: f"AI assistant {a}" for a in order},
                    kinds=arm_kinds(order, control, FMT), fmt=FMT)
