"""Import generic chat logs in JSON Lines (``format="chat"``).

One JSON object per line: the unit, its arm, an OpenAI-style ``messages`` list
(``{"role", "content", "tool_calls"}``) and the answers the unit gave after the dialogue::

    {"unit_id": "u1", "arm": "A", "persona_id": "p1", "model": "sim-7b", "messages": [...],
     "answers": {"q1": "Yes", "q2": 3}, "dialogue_end": "user_stop"}

Field names are options: ``unit=`` (default ``"unit_id"``), ``arm_field=`` (``"arm"``; a file's
``arm=`` name overrides it), ``answers=`` (``"answers"``), ``messages=`` (``"messages"``),
``persona=`` (``"persona_id"``, optional), ``model=`` (``"model"``, optional: the simulated
user's model), ``end=`` (``"dialogue_end"``, optional: why the dialogue ended; ``'unknown'``
when absent). Roles ``system``, ``user``, ``assistant`` and ``tool`` are kept; OpenAI's
``developer`` is a system message and the legacy ``function`` a tool message. A ``content``
given as a list of parts keeps the text of its ``text`` parts, joined.

Items are inferred from the answers exactly as :func:`driftstats.read_log` infers them
(options alphabetical, or by value for numbers; scale ``'nominal'``); pass ``items=`` (a
DataFrame or a list of dicts with the items columns) to declare options, scales and roles.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from driftstats.errors import InvalidArgumentError
from driftstats.log.importers import register
from driftstats.log.importers._common import (
    Message,
    Unit,
    arm_kinds,
    as_text,
    assemble,
    bad_field,
    check_arms,
    get,
    load_jsonl,
    role_of,
)
from driftstats.log.schema import DIALOGUE_END_ITEM, DIALOGUE_TURNS_ITEM

__all__ = ["read_chat"]

FMT = "chat"
_FIX = "pass a JSON Lines file: one JSON object per line with the unit, the arm, 'messages' and 'answers'."
_ROLES = {"developer": "system", "function": "tool"}
_ITEM_COLUMNS = ["item", "text", "options", "scale", "role", "attribute"]


def _content(v: object, *, path: Path, record: str, k: int) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(p, dict) for p in v):
        texts = [p.get("text") for p in v if p.get("type") == "text"]
        if all(isinstance(t, str) for t in texts):
            return "".join(texts)
    raise bad_field(FMT, path, record, f"messages[{k}].content",
                    "expected a string, null or a list of {'type': 'text', 'text': ...} parts",
                    "write each message's content as text.")


def _infer(answers: pd.DataFrame) -> pd.DataFrame:
    """Items of the answers, inferred by read_log's own rule (driftstats.log.build)."""
    from driftstats.log._sql import connect
    from driftstats.log.build import ROW, _infer_items

    con = connect()
    try:
        frame = answers[["item", "response", "valid"]].assign(response_code=pd.array([None] * len(answers), "Int64"))
        con.register("__in", frame)
        con.execute("CREATE TABLE answers AS SELECT item, response, CAST(response_code AS BIGINT) AS response_code, "
                    "valid FROM __in")
        _infer_items(con, [], item_levels={}, response_levels=None, likert=False)
        out = con.execute(f"SELECT item, text, options, scale, role, attribute FROM items ORDER BY {ROW}").df()
    finally:
        con.close()
    out["options"] = [None if o is None or (isinstance(o, float) and o != o) else json.loads(o) for o in out["options"]]
    return out


def _given_items(items: object) -> pd.DataFrame:
    frame = items if isinstance(items, pd.DataFrame) else pd.DataFrame(list(items))  # type: ignore[arg-type]
    if "item" not in frame.columns:
        raise InvalidArgumentError("chat import: items= must have an 'item' column (and options, scale, role).")
    return frame.reindex(columns=_ITEM_COLUMNS)


@register(FMT)
def read_chat(sources: Sequence[Path], *, arms: Sequence[str | None], unit: str = "unit_id",
              arm_field: str = "arm", answers: str = "answers", messages: str = "messages",
              persona: str = "persona_id", model: str = "model", end: str = "dialogue_end",
              control: str | None = None, items: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
              **options: Any) -> dict[str, pd.DataFrame]:
    """Read chat JSONL files (see the module docstring for the fields and options)."""
    if options:
        raise InvalidArgumentError(
            f"chat import: unknown option(s) {sorted(options)}; known: unit, arm_field, answers, messages, persona, "
            "model, end, control, items.")
    for name, value in (("unit", unit), ("arm_field", arm_field), ("answers", answers), ("messages", messages),
                        ("persona", persona), ("model", model), ("end", end)):
        if not isinstance(value, str) or not value:
            raise InvalidArgumentError(f"chat import: {name}= must name a field (a non-empty string); got {value!r}.")
    sources = [Path(s) for s in sources]
    arm_names = check_arms(arms, len(sources), FMT)
    units: list[Unit] = []
    order: list[str] = []
    ends: list[str] = []
    where: dict[str, str] = {}
    for path, given in zip(sources, arm_names, strict=True):
        for lineno, rec in load_jsonl(path, FMT, _FIX):
            uid = rec.get(unit) if isinstance(rec, dict) else None
            record = f"line {lineno}" + (f" ({unit} {uid!r})" if isinstance(uid, (str, int)) else "")
            unit_id = str(get(rec, unit, (str, int), fmt=FMT, path=path, record=record))
            arm = given or str(get(rec, arm_field, (str, int), fmt=FMT, path=path, record=record))
            if unit_id in where:
                raise bad_field(FMT, path, record, unit, f"unit {unit_id!r} occurs twice (also {where[unit_id]})",
                                "give every unit its own id.")
            where[unit_id] = f"{str(path)!r} {record}"
            if arm not in order:
                order.append(arm)
            msgs = []
            for k, m in enumerate(get(rec, messages, (list,), fmt=FMT, path=path, record=record)):
                if not isinstance(m, dict):
                    raise bad_field(FMT, path, record, f"{messages}[{k}]", "expected a JSON object",
                                    "write each message as {\"role\": ..., \"content\": ...}.")
                role = role_of(m.get("role"), fmt=FMT, path=path, record=record, index=k, mapping=_ROLES)
                calls = get(m, "tool_calls", (list,), fmt=FMT, path=path, record=record,
                            fld=f"{messages}[{k}].tool_calls", required=False)
                msgs.append(Message(role=role, text=_content(m.get("content"), path=path, record=record, k=k),
                                    tool_calls=calls or None))
            given_answers = get(rec, answers, (dict,), fmt=FMT, path=path, record=record, required=False, default={})
            rows: dict[str, tuple[str | None, bool, str | None]] = {}
            for item, value in given_answers.items():
                if item in (DIALOGUE_TURNS_ITEM, DIALOGUE_END_ITEM):
                    raise bad_field(FMT, path, record, f"{answers}.{item}", "is a name the importer reserves",
                                    "rename the item; the dialogue items are built from the messages.")
                if value is None:
                    rows[item] = (None, False, "no answer")
                elif isinstance(value, (dict, list)):
                    rows[item] = (as_text(value), False, "the answer is not a single value")
                else:
                    rows[item] = (as_text(value), True, None)
            stop = get(rec, end, (str,), fmt=FMT, path=path, record=record, required=False, default="unknown")
            if stop not in ends:
                ends.append(stop)
            pid = get(rec, persona, (str, int), fmt=FMT, path=path, record=record, required=False)
            who = get(rec, model, (str,), fmt=FMT, path=path, record=record, required=False)
            units.append(Unit(unit_id=unit_id, arm=arm, end=stop, messages=msgs, answers=rows,
                              persona_id=None if pid is None else str(pid), model=who))
    probe = assemble(units, [], ends=ends, arms={a: None for a in order}, kinds=arm_kinds(order, control, FMT),
                     fmt=FMT)
    own = probe["answers"][~probe["answers"]["item"].isin([DIALOGUE_TURNS_ITEM, DIALOGUE_END_ITEM])]
    inferred = _infer(own) if len(own) else pd.DataFrame(columns=_ITEM_COLUMNS)
    if items is not None:
        declared = _given_items(items)
        inferred = pd.concat([declared, inferred[~inferred["item"].isin(declared["item"])]], ignore_index=True)
    numeric = {r.item: "numeric" for r in inferred.itertuples() if r.scale == "numeric"}
    return assemble(units, inferred.to_dict("records"), ends=ends, arms={a: None for a in order},
                    kinds=arm_kinds(order, control, FMT), fmt=FMT, answer_values=numeric)
