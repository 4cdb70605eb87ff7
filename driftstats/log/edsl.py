"""Import an edsl ``Results`` export (CSV or JSONL) into the driftstats schema.

edsl flattens each ``Result`` (one agent x scenario x model x iteration interview) into one
row with prefixed columns: ``agent.<trait>``, ``scenario.<key>``, ``model.model``,
``iteration.iteration``, ``answer.<question>``, ``question_text.<q>_question_text``,
``question_options.<q>_question_options`` (a Python-repr list), ``question_type.<q>_question_type``,
``validated.<q>_validated``, ``generated_tokens.<q>_generated_tokens``, ``comment.<q>_comment``,
``prompt.<q>_user_prompt``.

Mapping: an agent in an arm (and model) becomes a unit; the agent is the persona
(``persona_id``), its traits the persona attributes; edsl's ``iteration`` becomes
``replicate``; every ``answer.<q>`` cell becomes an answer row. Answers edsl failed to
validate (``validated`` false, or an empty answer) are kept with ``valid = false`` and an
error text built from what the export holds (edsl keeps the exception itself in its task
history, not in the export): the model's raw output and comment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from driftstats.errors import (
    InvalidArgumentError,
    InvalidValueError,
    MissingColumnError,
    UnreadableLogError,
)
from driftstats.log.pyrepr import parse_list

__all__ = ["EDSL_SCALES", "from_edsl", "read_edsl_frame"]

# edsl question_type -> driftstats scale; free text has no options and is left out
EDSL_SCALES: dict[str, str] = {
    "multiple_choice": "nominal",
    "multiple_choice_with_other": "nominal",
    "yes_no": "nominal",
    "linear_scale": "ordinal",
    "likert_five": "ordinal",
    "rank": "nominal",
    "numerical": "numeric",
}
_AGENT_META = ("agent.agent_name", "agent.agent_instruction", "agent.agent_index")


def read_edsl_frame(path: Path) -> pd.DataFrame:
    """Read an edsl export as text cells (CRLF, multi-line quoted cells handled).

    A file that is missing, empty or not CSV / JSON raises a named error
    (:class:`~driftstats.errors.UnreadableLogError`), never a parser's own exception.
    """
    from driftstats.log.io import LogNotFoundError

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson", ".json"):
        raise InvalidArgumentError(f"edsl exports are read from .csv or .jsonl files; got {str(path)!r}.")
    if not path.exists():
        raise LogNotFoundError(f"edsl import: no such file: {str(path)!r}. Fix: check the path.")
    fix = "pass the file that edsl's Results.to_csv / to_jsonl wrote."
    if path.is_dir():
        raise UnreadableLogError(f"edsl import: cannot read {str(path)!r}: it is a directory. Fix: {fix}")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
        frame = pd.read_json(path, lines=suffix != ".json", dtype=False)
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableLogError(
            f"edsl import: cannot read {str(path)!r} as an edsl export ({reason[:160]}). Fix: {fix}") from None
    return frame.map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else v)


def _text(v: object) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return str(v)


def _options(cell: object) -> list[str] | None:
    text = _text(cell)
    if text is None or text.strip() in ("", "None", "null"):
        return None
    parsed = parse_list(text)
    return [o for o in parsed if o is not None]


def _normalise(response: str, options: Sequence[str] | None) -> str:
    """'3.0' -> '3' when the options are the integers as text (CSV float round trips)."""
    if not options or response in options:
        return response
    try:
        value = float(response)
    except ValueError:
        return response
    for o in options:
        try:
            if float(o) == value:
                return o
        except ValueError:
            continue
    return response


def _is_false(v: object) -> bool:
    t = _text(v)
    return t is not None and t.strip().lower() in ("false", "0", "no")


def from_edsl(
    frame: pd.DataFrame,
    *,
    arm: str,
    roles: Mapping[str, str],
    study: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Convert an edsl results frame into the four log tables (answers, items, personas, arms)."""
    cols = list(frame.columns)
    if arm not in cols:
        scen = [c for c in cols if c.startswith("scenario.")]
        raise MissingColumnError(
            f"edsl import: arm column {arm!r} not found. Scenario columns: {scen}. "
            "Fix: pass arm='scenario.<the key that names the arm>'."
        )
    questions = [c[len("answer."):] for c in cols if c.startswith("answer.")]
    if not questions:
        raise MissingColumnError(
            "edsl import: no 'answer.<question>' columns found; is this an edsl Results export "
            "(results.to_csv / to_jsonl)?"
        )
    unknown = sorted(set(roles) - set(questions))
    if unknown:
        raise InvalidValueError(
            f"edsl import: questions {unknown} named in a role argument are not in the export; "
            f"questions: {questions}."
        )

    def col(prefix: str, q: str, suffix: str) -> str | None:
        name = f"{prefix}.{q}_{suffix}"
        return name if name in cols else None

    # --- items
    items = []
    kept = []
    for q in questions:
        qt_col = col("question_type", q, "question_type")
        qtype = _text(frame[qt_col].dropna().iloc[0]) if qt_col and frame[qt_col].notna().any() else None
        opt_col = col("question_options", q, "question_options")
        options = None
        if opt_col:
            first = frame[opt_col].dropna()
            options = _options(first.iloc[0]) if len(first) else None
        scale = EDSL_SCALES.get(qtype or "", "nominal" if options else None)
        if scale is None or (scale != "numeric" and not options):
            if q in roles:
                raise InvalidValueError(
                    f"edsl import: question {q!r} (type {qtype!r}) has no options, so its answers "
                    "cannot be compared across arms. Fix: drop it from the role arguments."
                )
            continue  # free text: not an item driftstats can test
        text_col = col("question_text", q, "question_text")
        text = _text(frame[text_col].dropna().iloc[0]) if text_col and frame[text_col].notna().any() else None
        items.append({
            "item": q,
            "text": text,
            "options": json.dumps(options) if scale != "numeric" else None,
            "scale": scale,
            "role": roles.get(q, "other"),
            "attribute": None,
        })
        kept.append((q, options if scale != "numeric" else None))

    # --- units and personas
    traits = [c for c in cols if c.startswith("agent.") and c not in _AGENT_META]
    if "agent.agent_name" in cols:
        agent_key = frame["agent.agent_name"].map(_text)
    elif "agent.agent_index" in cols:
        agent_key = frame["agent.agent_index"].map(_text)
    elif traits:
        agent_key = frame[traits].astype(str).agg("|".join, axis=1)
    else:
        agent_key = pd.Series([f"row{i}" for i in range(len(frame))])
    model = frame["model.model"].map(_text) if "model.model" in cols else pd.Series(["unknown"] * len(frame))
    arm_values = frame[arm].map(_text)
    if arm_values.isna().any():
        bad = list(np.flatnonzero(arm_values.isna().to_numpy())[:5])
        raise InvalidValueError(f"edsl import: arm column {arm!r} is empty on rows {bad}.")
    replicate = (
        pd.to_numeric(frame["iteration.iteration"], errors="raise").astype(int)
        if "iteration.iteration" in cols else pd.Series([0] * len(frame))
    )
    persona_id = agent_key.astype(str)
    unit_id = persona_id + "|" + arm_values.astype(str) + "|" + model.astype(str)
    temperature = pd.to_numeric(frame["model.temperature"], errors="coerce") if "model.temperature" in cols else None
    service = frame["model.inference_service"].map(_text) if "model.inference_service" in cols else None

    personas = []
    seen = set()
    for i in range(len(frame)):
        u = unit_id.iloc[i]
        if u in seen:
            continue
        seen.add(u)
        for t in traits:
            personas.append({"unit_id": u, "attribute": t[len("agent."):], "value": _text(frame[t].iloc[i]),
                             "specified": True})

    # --- answers
    rows = []
    for q, options in kept:
        answers = frame[f"answer.{q}"].map(_text)
        validated = frame[col("validated", q, "validated")] if col("validated", q, "validated") else None
        tokens = frame[col("generated_tokens", q, "generated_tokens")] if col("generated_tokens", q, "generated_tokens") else None
        comment = frame[col("comment", q, "comment")] if col("comment", q, "comment") else None
        uprompt = frame[col("prompt", q, "user_prompt")] if col("prompt", q, "user_prompt") else None
        sprompt = frame[col("prompt", q, "system_prompt")] if col("prompt", q, "system_prompt") else None
        for i in range(len(frame)):
            resp = answers.iloc[i]
            failed = resp is None or (validated is not None and _is_false(validated.iloc[i]))
            error = None
            if failed:
                parts = ["edsl: answer failed validation"]
                if tokens is not None and _text(tokens.iloc[i]):
                    parts.append(f"model output: {_text(tokens.iloc[i])}")
                if comment is not None and _text(comment.iloc[i]):
                    parts.append(f"comment: {_text(comment.iloc[i])}")
                error = "; ".join(parts)
            elif options is not None:
                resp = _normalise(resp, options)
                if resp not in options:
                    failed = True
                    error = f"edsl: answer {resp!r} is not one of the options {options}"
            prompt_text = "".join(_text(s.iloc[i]) or "" for s in (sprompt, uprompt) if s is not None)
            rows.append({
                "study": study or "edsl",
                "run_id": "edsl",
                "iteration": 0,
                "model": model.iloc[i],
                "unit_id": unit_id.iloc[i],
                "arm": arm_values.iloc[i],
                "item": q,
                "replicate": int(replicate.iloc[i]),
                "persona_id": persona_id.iloc[i],
                "mode": "sample",
                "response": resp,
                "valid": not failed,
                "error": error,
                "prompt_sha256": hashlib.sha256(prompt_text.encode()).hexdigest() if prompt_text else None,
                "temperature": None if temperature is None else temperature.iloc[i],
                "backend": "edsl",
                "backend_version": None if service is None else json.dumps({"inference_service": service.iloc[i]}),
            })
    answers_frame = pd.DataFrame(rows)
    arms = pd.DataFrame({"arm": sorted(arm_values.unique())})
    arms["kind"] = [("control" if a.lower() == "control" else "treatment") for a in arms["arm"]]
    return {
        "answers": answers_frame,
        "items": pd.DataFrame(items, columns=["item", "text", "options", "scale", "role", "attribute"]),
        "personas": pd.DataFrame(personas, columns=["unit_id", "attribute", "value", "specified"]),
        "arms": arms,
    }
