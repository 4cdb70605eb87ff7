"""Queries for the units' intervention dialogues (the ``transcripts`` table and the dialogue items).

* :func:`dialogue_overview` - units with a transcript, messages, invalid messages and the turn range (``summary()``).
* :func:`turns_by_arm` - per run and arm: units with a transcript, messages and turns per unit (the report).
* :func:`ends_by_arm` - per run and arm: how many dialogues ended for each reason (answers of ``dialogue_end``).
* :func:`transcript_sample` - the messages of the first units of each arm with a transcript (the report's viewer).
* :func:`unit_ends` - why each unit's dialogue ended (the viewer's summaries).
* :func:`answers_after_dialogue` - how many answers to some items carry the transcript hash (asked after the dialogue).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from driftstats.log._sql import qi
from driftstats.log.schema import DIALOGUE_END_ITEM

if TYPE_CHECKING:
    from driftstats.log.simlog import SimLog

__all__ = ["DialogueOverview", "answers_after_dialogue", "dialogue_overview", "ends_by_arm", "transcript_sample",
           "turns_by_arm", "unit_ends"]


@dataclass(frozen=True, slots=True)
class DialogueOverview:
    """How much dialogue a log holds (all zero when it has no transcripts)."""

    units: int
    messages: int
    invalid_messages: int
    min_turns: int | None
    max_turns: int | None


def dialogue_overview(log: SimLog) -> DialogueOverview:
    """Units with a transcript, their messages (and invalid ones), and the range of turns per unit."""
    r = log.con.execute(
        """SELECT count(*), coalesce(sum(messages), 0), coalesce(sum(invalid), 0), min(turns), max(turns)
           FROM (SELECT unit_id, count(*) AS messages, count(*) FILTER (WHERE NOT valid) AS invalid,
                        count(DISTINCT turn) AS turns FROM transcripts GROUP BY unit_id)"""
    ).fetchall()[0]
    return DialogueOverview(int(r[0]), int(r[1]), int(r[2]), None if r[3] is None else int(r[3]),
                            None if r[4] is None else int(r[4]))


def _unit_runs(by: Sequence[str]) -> str:
    cols = "".join(f", {qi(b)}" for b in by)
    return f"SELECT DISTINCT unit_id, arm{cols} FROM answers"


def turns_by_arm(log: SimLog, by: Sequence[str]) -> pd.DataFrame:
    """Per run (``by`` columns) and arm: ``units`` (with answers), ``dialogues`` (units with a transcript),
    ``messages``, ``invalid_messages`` and ``turns_mean`` / ``turns_min`` / ``turns_max`` (turns per unit
    with a transcript: its distinct ``turn`` values)."""
    keys = "".join(f"{qi(b)}, " for b in by)
    return log.con.execute(
        f"""WITH u AS ({_unit_runs(by)}),
                 t AS (SELECT unit_id, count(*) AS messages, count(*) FILTER (WHERE NOT valid) AS invalid,
                              count(DISTINCT turn) AS turns FROM transcripts GROUP BY unit_id)
            SELECT {keys}u.arm, count(*) AS units, count(t.unit_id) AS dialogues,
                   coalesce(sum(t.messages), 0) AS messages, coalesce(sum(t.invalid), 0) AS invalid_messages,
                   avg(t.turns) AS turns_mean, min(t.turns) AS turns_min, max(t.turns) AS turns_max
            FROM u LEFT JOIN t USING (unit_id)
            GROUP BY ALL ORDER BY {keys}min(u.unit_id)"""
    ).df()


def ends_by_arm(log: SimLog, by: Sequence[str], item: str = DIALOGUE_END_ITEM) -> pd.DataFrame:
    """Per run and arm, one row per end reason: ``end``, ``units`` (units whose valid answer to ``item`` is
    that reason; an invalid or missing answer counts as NULL). Reasons are listed in the item's option order."""
    keys = "".join(f"{qi(b)}, " for b in by)
    return log.con.execute(
        f"""WITH u AS ({_unit_runs(by)}),
                 e AS (SELECT unit_id, any_value(response) AS "end" FROM answers
                       WHERE item = ? AND valid AND mode = 'sample' GROUP BY unit_id)
            SELECT {keys}u.arm, e."end", count(*) AS units
            FROM u LEFT JOIN e USING (unit_id)
            LEFT JOIN item_options o ON o.item = ? AND o.option = e."end"
            WHERE u.unit_id IN (SELECT unit_id FROM answers WHERE item = ?)
            GROUP BY ALL ORDER BY {keys}u.arm, min(o.pos) NULLS LAST, e."end" NULLS LAST""",
        [item, item, item],
    ).df()


def transcript_sample(log: SimLog, per_arm: int = 3) -> pd.DataFrame:
    """The messages of the first ``per_arm`` units (by unit_id) of each arm that have a transcript.

    Columns: ``arm``, the answers' run columns (``study``, ``model``, ``run_id``, ``iteration``) and
    every transcripts column, ordered by arm (in the arms table's order), unit_id and message.
    """
    return log.con.execute(
        """WITH u AS (SELECT DISTINCT a.unit_id, a.arm, a.study, a.model, a.run_id, a.iteration, r.rowid AS arm_pos
                      FROM answers a JOIN arms r USING (arm)
                      WHERE a.unit_id IN (SELECT unit_id FROM transcripts)),
                k AS (SELECT *, row_number() OVER (PARTITION BY arm ORDER BY unit_id) AS k FROM u)
           SELECT k.arm, k.study, k.model, k.run_id, k.iteration, t.*
           FROM k JOIN transcripts t USING (unit_id) WHERE k.k <= ?
           ORDER BY k.arm_pos, t.unit_id, t.message""",
        [int(per_arm)],
    ).df()


def answers_after_dialogue(log: SimLog, items: Sequence[str]) -> tuple[int, int]:
    """``(with_hash, total)``: answers to ``items`` of units with a transcript, and how many of them carry the
    transcript's hash (``answers.dialogue_sha256``: the answer was asked after that dialogue)."""
    r = log.con.execute(
        "SELECT count(*) FILTER (WHERE dialogue_sha256 IS NOT NULL), count(*) FROM answers "
        "WHERE item IN (SELECT unnest(?)) AND unit_id IN (SELECT unit_id FROM transcripts)",
        [list(items)],
    ).fetchall()[0]
    return int(r[0]), int(r[1])


def unit_ends(log: SimLog, item: str = DIALOGUE_END_ITEM) -> pd.Series:
    """Why each unit's dialogue ended (its valid sampled answer to ``item``), indexed by unit_id; empty without it."""
    frame = log.con.execute(
        "SELECT unit_id, any_value(response) AS end_reason FROM answers WHERE item = ? AND valid AND mode = 'sample' "
        "GROUP BY unit_id ORDER BY unit_id", [item]).df()
    return pd.Series(frame["end_reason"].to_numpy(dtype=object), index=frame["unit_id"].to_numpy(dtype=object),
                     dtype=object)
