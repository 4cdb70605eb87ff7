"""The per-unit dialogue items: how many turns a dialogue ran and why it ended.

Every unit whose intervention is a dialogue carries two answers of its own, so that stopping
behaviour is tested across arms like any other outcome (``nco_test``, ``effect``): the simulated
user ending early is a known failure of agent benchmarks. Collectors and importers build them
with :func:`dialogue_answers` and :func:`dialogue_items`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from driftstats.log.schema import DIALOGUE_END_ITEM, DIALOGUE_ENDS, DIALOGUE_TURNS_ITEM

__all__ = ["chain_sha256", "dialogue_answers", "dialogue_items", "text_sha256"]


def text_sha256(text: str | None) -> str | None:
    """transcripts.sha256: sha256 hex of the message text in UTF-8 (NULL text: NULL)."""
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_sha256(prev: str, role: str, text: str | None) -> str:
    """transcripts.dialogue_sha256 of a message from that of the message before it ('' for the first).

    sha256 hex of ``prev + "\n" + role + "\n" + (text_sha256(text) or "")``: the last message's value
    identifies the whole transcript (every role and text, in order).
    """
    body = f"{prev}\n{role}\n{text_sha256(text) or ''}"
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def dialogue_answers(units: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Answer rows of the two dialogue items, one pair per unit.

    Each element of ``units`` holds the unit's answer keys (``unit_id``, ``arm`` and any other
    answers column such as ``persona_id``, ``model``, ``run_id``, ``dialogue_sha256``) plus
    ``turns`` (int) and ``end`` (str: why the dialogue ended).
    """
    rows = []
    for u in units:
        base = {k: v for k, v in u.items() if k not in ("turns", "end")}
        rows.append({**base, "item": DIALOGUE_TURNS_ITEM, "response": str(int(u["turns"])),
                     "response_value": float(u["turns"])})
        rows.append({**base, "item": DIALOGUE_END_ITEM, "response": str(u["end"])})
    return pd.DataFrame(rows)


def dialogue_items(ends: Sequence[str] = DIALOGUE_ENDS, *, max_turns: int | None = None) -> pd.DataFrame:
    """Items rows of the two dialogue items (role ``other``: outcomes of the dialogue, not NCOs).

    ``ends``: the end reasons, in order (the collector's :data:`DIALOGUE_ENDS`, or an importing
    tool's own labels). ``max_turns``: when known, the turn counts 0..max_turns are the numeric
    item's options.
    """
    turns = None if max_turns is None else [str(k) for k in range(int(max_turns) + 1)]
    return pd.DataFrame([
        {"item": DIALOGUE_TURNS_ITEM, "text": "number of turns the intervention dialogue ran",
         "options": turns, "scale": "numeric", "role": "other", "attribute": None},
        {"item": DIALOGUE_END_ITEM, "text": "why the intervention dialogue ended",
         "options": list(ends), "scale": "nominal", "role": "other", "attribute": None},
    ])
