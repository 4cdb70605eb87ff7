"""What every importer shares: reading JSON as data, named errors, turns, hashes and the log's tables.

Files are parsed with :mod:`json` only (never evaluated). Every failure names the file, the
record (its index and, when it has one, its id) and the field, and says how to fix it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from driftstats.errors import (
    InvalidArgumentError,
    InvalidValueError,
    LogNotFoundError,
    UnreadableLogError,
)
from driftstats.log.dialogue import chain_sha256, dialogue_answers, dialogue_items, text_sha256
from driftstats.log.schema import MESSAGE_ROLES

__all__ = [
    "Message",
    "Unit",
    "arm_kinds",
    "as_number",
    "as_text",
    "assemble",
    "bad_field",
    "check_arms",
    "load_json",
    "load_jsonl",
    "role_of",
    "transcript",
]

_MISSING = object()


# ------------------------------------------------------------------------------ reading
def _read_text(path: Path, fmt: str, fix: str) -> str:
    if not path.exists():
        raise LogNotFoundError(f"{fmt} import: no such file: {str(path)!r}. Fix: check the path.")
    if path.is_dir():
        raise UnreadableLogError(f"{fmt} import: cannot read {str(path)!r}: it is a directory. Fix: {fix}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableLogError(
            f"{fmt} import: cannot read {str(path)!r}: {exc.strerror or exc}. Fix: check the file's permissions.") from None
    if not raw.strip():
        raise UnreadableLogError(f"{fmt} import: {str(path)!r} is empty. Fix: {fix}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableLogError(
            f"{fmt} import: {str(path)!r} is not UTF-8 text (byte {exc.start}). Fix: {fix}") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def load_json(path: Path, fmt: str, fix: str) -> Any:
    """The file parsed as one JSON document (``NaN`` / ``Infinity`` are refused: they are not JSON)."""
    text = _read_text(path, fmt, fix)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UnreadableLogError(
            f"{fmt} import: {str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            f"Fix: {fix}") from None
    except ValueError as exc:
        raise UnreadableLogError(f"{fmt} import: {str(path)!r} is not valid JSON ({exc}). Fix: {fix}") from None


def load_jsonl(path: Path, fmt: str, fix: str) -> list[tuple[int, Any]]:
    """``(line number, parsed object)`` for every non-blank line of a JSON Lines file."""
    text = _read_text(path, fmt, fix)
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((lineno, json.loads(line, parse_constant=_reject_constant)))
        except json.JSONDecodeError as exc:
            raise UnreadableLogError(
                f"{fmt} import: {str(path)!r} line {lineno} is not valid JSON ({exc.msg} at column {exc.colno}). "
                f"Fix: {fix}") from None
        except ValueError as exc:
            raise UnreadableLogError(
                f"{fmt} import: {str(path)!r} line {lineno} is not valid JSON ({exc}). Fix: {fix}") from None
    return out


# ------------------------------------------------------------------------------ fields
def bad_field(fmt: str, path: Path, record: str, fld: str, problem: str, fix: str) -> InvalidValueError:
    """The one error shape for a record that does not fit its format."""
    return InvalidValueError(f"{fmt} import: {str(path)!r}, {record}, field {fld!r}: {problem}. Fix: {fix}")


def _kind(v: object) -> str:
    return "null" if v is None else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(v), "number" if isinstance(v, (int, float)) else type(v).__name__)


def get(obj: Mapping[str, Any], key: str, kinds: tuple[type, ...], *, fmt: str, path: Path, record: str,
        fld: str | None = None, required: bool = True, default: Any = None) -> Any:
    """``obj[key]`` checked against ``kinds`` (``None`` allowed when not required); a named error otherwise."""
    name = fld or key
    if not isinstance(obj, Mapping):
        raise bad_field(fmt, path, record, name.rsplit(".", 1)[0] if "." in name else name,
                        f"expected a JSON object, got {_kind(obj)}", "check that the file is a complete export.")
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise bad_field(fmt, path, record, name, "missing" if value is _MISSING else "null",
                            "check that the file is a complete export of its tool.")
        return default
    if (bool in kinds or not isinstance(value, bool)) and isinstance(value, kinds):
        return value
    names = " or ".join(sorted({_kind(k()) if k is not type(None) else "null" for k in kinds}))
    raise bad_field(fmt, path, record, name, f"expected {names}, got {_kind(value)} {_short(value)}",
                    "check that the file is a complete export of its tool.")


def _short(v: object) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def as_text(v: object) -> str | None:
    """A JSON scalar as answer text (``True`` -> ``'true'``, ``3.0`` -> ``'3'``)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float, str)):
        return str(v)
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def as_number(v: object) -> float | None:
    """A JSON number as a float (``None`` for anything else, booleans included)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def role_of(role: object, *, fmt: str, path: Path, record: str, index: int,
            mapping: Mapping[str, str] | None = None) -> str:
    """A foreign message role mapped onto :data:`MESSAGE_ROLES`; an unknown one is a named error."""
    key = role if isinstance(role, str) else None
    mapped = (mapping or {}).get(key, key) if key is not None else None
    if mapped not in MESSAGE_ROLES:
        known = sorted({*MESSAGE_ROLES, *(mapping or {})})
        raise bad_field(fmt, path, record, f"messages[{index}].role", f"unknown role {_short(role)}; known roles: {known}",
                        "map the role onto one of system, user, assistant, tool (or fix the file).")
    return mapped


# ------------------------------------------------------------------------------ dialogues
@dataclass
class Message:
    """One message of a dialogue, in the driftstats roles."""

    role: str
    text: str | None
    tool_calls: list[Any] | None = None
    #: who the message belongs to for turn counting: a tool message shares the turn of whoever called it
    speaker: str | None = None
    model: str | None = None
    tokens: int | None = None
    finish_reason: str | None = None


def turns_of(messages: Sequence[Message]) -> list[int]:
    """0-based turn of each message: a turn is one round in which each speaker (user, assistant) speaks once.

    Consecutive messages of one speaker (an assistant's tool call, the tool's result and the
    assistant's reply) are one block; a new turn starts when a speaker who already spoke in the
    current turn starts a new block. System messages belong to the turn they precede.
    """
    out: list[int] = []
    turn, spoken, last = 0, set(), None
    for m in messages:
        speaker = m.speaker or ("assistant" if m.role == "tool" else m.role)
        if speaker == "system":
            out.append(turn)
            continue
        if speaker != last and speaker in spoken:
            turn += 1
            spoken = set()
        spoken.add(speaker)
        last = speaker
        out.append(turn)
    return out


def n_turns(messages: Sequence[Message], turns: Sequence[int]) -> int:
    """How many turns the dialogue ran (turns holding a user or assistant message)."""
    return len({t for m, t in zip(messages, turns, strict=True) if m.role != "system"})


def transcript(unit_id: str, messages: Sequence[Message]) -> tuple[list[dict[str, Any]], str | None, int]:
    """Transcript rows of one unit, the last message's running hash, and the number of turns."""
    turns = turns_of(messages)
    rows, prev = [], ""
    for k, (m, t) in enumerate(zip(messages, turns, strict=True)):
        prev = chain_sha256(prev, m.role, m.text)
        empty = (m.text is None or not m.text.strip()) and not m.tool_calls
        rows.append({
            "unit_id": unit_id, "message": k, "turn": t, "role": m.role, "text": m.text,
            "tokens": m.tokens, "finish_reason": m.finish_reason,
            "tool_calls": None if not m.tool_calls else json.dumps(m.tool_calls, ensure_ascii=False),
            "valid": not empty, "error": "empty message (no text and no tool calls)" if empty else None,
            "model": m.model, "seed": None, "sha256": text_sha256(m.text), "dialogue_sha256": prev,
        })
    return rows, (prev if rows else None), n_turns(messages, turns)


# ------------------------------------------------------------------------------ tables
@dataclass
class Unit:
    """One imported unit: its keys, its answers (besides the dialogue items) and its dialogue."""

    unit_id: str
    arm: str
    messages: list[Message]
    end: str
    persona_id: str | None = None
    model: str | None = None
    seed: int | None = None
    #: item -> (response text or None, valid, error)
    answers: dict[str, tuple[str | None, bool, str | None]] = field(default_factory=dict)
    personas: dict[str, str | None] = field(default_factory=dict)


def check_arms(arms: Sequence[str | None], n: int, fmt: str) -> list[str | None]:
    arms = list(arms)
    if len(arms) != n:
        raise InvalidArgumentError(
            f"{fmt} import: {n} file(s) but {len(arms)} arm name(s). Fix: give one arm name per file (or none).")
    for a in arms:
        if a is not None and (not isinstance(a, str) or not a.strip()):
            raise InvalidArgumentError(f"{fmt} import: arm names must be non-empty strings; got {a!r}.")
    return arms


def arm_kinds(names: Sequence[str], control: str | None, fmt: str) -> dict[str, str]:
    """``control`` (default: the first arm) is the control arm; every other arm is a treatment."""
    if not names:
        return {}
    if control is None:
        control = names[0]
    if control not in names:
        raise InvalidArgumentError(
            f"{fmt} import: control={control!r} is not an arm of the files; arms: {list(names)}. "
            "Fix: pass one of these names.")
    return {a: ("control" if a == control else "treatment") for a in names}


def assemble(units: Sequence[Unit], items: Iterable[Mapping[str, Any]], *, ends: Sequence[str],
             arms: Mapping[str, str | None], kinds: Mapping[str, str], fmt: str,
             answer_values: Mapping[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """The log's tables: answers (long), items, arms, personas (when any) and transcripts.

    ``items`` are the format's own items (the two dialogue items are added here). ``answer_values``
    maps an item to 'numeric' when its response_value is the number in the response text.
    """
    seen: dict[str, str] = {}
    for u in units:
        if u.unit_id in seen:
            raise InvalidValueError(
                f"{fmt} import: unit {u.unit_id!r} occurs twice (arm {u.arm!r}). Expected: one record per unit. "
                "Fix: pass each file once, or give the files different arm names.")
        seen[u.unit_id] = u.arm
    answer_rows: list[dict[str, Any]] = []
    transcript_rows: list[dict[str, Any]] = []
    dialogue_units: list[dict[str, Any]] = []
    persona_rows: list[dict[str, Any]] = []
    numeric = {k for k, v in (answer_values or {}).items() if v == "numeric"}
    for u in units:
        rows, last, turns = transcript(u.unit_id, u.messages)
        transcript_rows.extend(rows)
        keys = {"unit_id": u.unit_id, "arm": u.arm, "persona_id": u.persona_id, "model": u.model or "unknown",
                "seed": u.seed, "dialogue_sha256": last}
        for item, (response, valid, error) in u.answers.items():
            value = float(response) if item in numeric and response is not None and valid else None
            answer_rows.append({**keys, "item": item, "response": response, "response_value": value,
                                "valid": valid, "error": error})
        dialogue_units.append({**keys, "turns": turns, "end": u.end})
        persona_rows.extend({"unit_id": u.unit_id, "attribute": a, "value": v} for a, v in u.personas.items())
    base_cols = ["unit_id", "arm", "persona_id", "model", "seed", "dialogue_sha256", "item", "response",
                 "response_value", "valid", "error"]
    dialogue = dialogue_answers(dialogue_units)
    if len(dialogue):
        dialogue["valid"] = True
        dialogue["error"] = None
    answers = pd.concat([pd.DataFrame(answer_rows, columns=base_cols), dialogue.reindex(columns=base_cols)],
                        ignore_index=True)
    answers["seed"] = answers["seed"].astype("Int64")
    answers["response_value"] = answers["response_value"].astype("float64")
    answers["valid"] = answers["valid"].astype(bool)
    item_frame = pd.concat([pd.DataFrame(list(items), columns=["item", "text", "options", "scale", "role", "attribute"]),
                            dialogue_items(list(ends))], ignore_index=True)
    arm_frame = pd.DataFrame([{"arm": a, "kind": kinds[a], "intervention": arms[a]} for a in kinds],
                             columns=["arm", "kind", "intervention"])
    tcols = ["unit_id", "message", "turn", "role", "text", "tokens", "finish_reason", "tool_calls", "valid", "error",
             "model", "seed", "sha256", "dialogue_sha256"]
    tr = pd.DataFrame(transcript_rows, columns=tcols)
    for c in ("message", "turn", "tokens", "seed"):
        tr[c] = tr[c].astype("Int64")
    tr["valid"] = tr["valid"].astype(bool)
    out = {"answers": answers, "items": item_frame, "arms": arm_frame, "transcripts": tr}
    if persona_rows:
        out["personas"] = pd.DataFrame(persona_rows, columns=["unit_id", "attribute", "value"])
    return out
