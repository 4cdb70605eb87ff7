"""What a log holds: sizes, invalid answers, provenance completeness, adjustment paths and dialogues."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from driftstats._result import fmt_num

if TYPE_CHECKING:
    from driftstats.log.simlog import SimLog

__all__ = ["PROVENANCE_FIELDS", "LogSummary", "summarize_log"]

PROVENANCE_FIELDS = ("model_sha256", "prompt_sha256", "grammar_sha256", "seed", "backend", "backend_version", "created_at")


@dataclass(frozen=True, slots=True)
class LogSummary:
    """Sizes, invalid answers by arm and item, and provenance completeness of a log."""

    source: str
    sizes: pd.DataFrame  # one row per arm: units, rows, invalid rows
    items: pd.DataFrame  # one row per item: role, scale, levels, rows, invalid
    invalid: pd.DataFrame  # arm x item invalid counts (long)
    provenance: pd.DataFrame  # field, missing rows, share missing
    facts: dict[str, object]
    diagnostics: tuple[str, ...]

    def as_text(self) -> str:
        lines = [f"driftstats log: {self.source}"]
        lines.append("  ".join(f"{k}: {v}" for k, v in self.facts.items()))
        lines.append("\nArms")
        lines.append(self.sizes.to_string(index=False))
        lines.append("\nItems")
        lines.append(self.items.to_string(index=False))
        lines.append("\nProvenance (rows missing each field)")
        prov = self.provenance.assign(share_missing=self.provenance["share_missing"].map(fmt_num))
        lines.append(prov.to_string(index=False))
        if self.diagnostics:
            lines.append("\nNotes")
            lines.extend(f"  - {d}" for d in self.diagnostics)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_text()

    def __repr__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        e = html.escape
        parts = [f"<div class='driftstats-log'><h4>driftstats log: {e(self.source)}</h4>",
                 "<p>" + " &middot; ".join(f"<b>{e(str(k))}</b>: {e(str(v))}" for k, v in self.facts.items()) + "</p>"]
        for title, frame in (("Arms", self.sizes), ("Items", self.items), ("Provenance", self.provenance)):
            parts.append(f"<h5>{title}</h5>")
            parts.append(frame.to_html(index=False, escape=True, na_rep=""))
        if self.diagnostics:
            parts.append("<ul>" + "".join(f"<li>{e(d)}</li>" for d in self.diagnostics) + "</ul>")
        parts.append("</div>")
        return "".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _adjustment_fact(log: SimLog) -> str | None:
    """The adjustment paths of the log, e.g. ``'2 models x 2 paths, iterations 0-3'``; None when it has none."""
    n, models, paths, low, high = log.con.execute(
        "SELECT count(*), count(DISTINCT model), count(DISTINCT path), min(iteration), max(iteration) FROM iterations"
    ).fetchall()[0]
    if not n:
        return None
    span = f"iteration {low}" if low == high else f"iterations {low}-{high}"
    return f"{_plural(models, 'model')} x {_plural(paths, 'path')}, {span}"


def _dialogue_fact(log: SimLog) -> str | None:
    """The dialogues of the log, e.g. ``'40 units with a transcript, 312 messages, 2-5 turns'``; None without any."""
    from driftstats.log.query.dialogue import dialogue_overview

    d = dialogue_overview(log)
    if not d.units:
        return None
    turns = f"{d.min_turns} turns" if d.min_turns == d.max_turns else f"{d.min_turns}-{d.max_turns} turns"
    text = f"{_plural(d.units, 'unit')} with a transcript, {_plural(d.messages, 'message')}, {turns}"
    if d.invalid_messages:
        text += f" ({d.invalid_messages} invalid message{'' if d.invalid_messages == 1 else 's'})"
    return text


def summarize_log(log: SimLog) -> LogSummary:
    con = log.con
    sizes = con.execute(
        """SELECT a.arm, any_value(r.kind) AS kind, count(DISTINCT a.unit_id) AS units, count(*) AS rows,
                  count(*) FILTER (WHERE NOT a.valid) AS invalid_rows
           FROM answers a JOIN arms r USING (arm) GROUP BY a.arm ORDER BY min(r.rowid)"""
    ).df()
    items = con.execute(
        """SELECT i.item, i.role, i.scale, json_array_length(i.options) AS levels,
                  count(a.item) AS rows, count(*) FILTER (WHERE NOT a.valid) AS invalid_rows,
                  any_value(i.text) AS text,
                  array_to_string(CAST(from_json(any_value(i.options), '["VARCHAR"]') AS VARCHAR[]), ' | ') AS options
           FROM items i LEFT JOIN answers a USING (item) GROUP BY i.item, i.role, i.scale, i.options
           ORDER BY i.role, i.item"""
    ).df()
    invalid = con.execute(
        """SELECT arm, item, count(*) FILTER (WHERE NOT valid) AS invalid, count(*) AS rows
           FROM answers GROUP BY arm, item ORDER BY arm, item"""
    ).df()
    n = log.n_rows
    exprs = ", ".join(f"count(*) FILTER (WHERE {f} IS NULL)" for f in PROVENANCE_FIELDS)
    missing = con.execute(f"SELECT {exprs} FROM answers").fetchall()[0]
    provenance = pd.DataFrame(
        {"field": list(PROVENANCE_FIELDS), "missing_rows": list(missing),
         "share_missing": [m / n for m in missing]}
    )
    facts_row = con.execute(
        """SELECT count(DISTINCT unit_id), count(DISTINCT persona_id), count(DISTINCT iteration),
                  count(DISTINCT model), max(replicate) + 1, count(*) FILTER (WHERE NOT valid),
                  list(DISTINCT mode ORDER BY mode), list(DISTINCT study ORDER BY study)
           FROM answers"""
    ).fetchall()[0]
    facts: dict[str, object] = {
        "rows": n,
        "units": facts_row[0],
        "personas": facts_row[1],
        "iterations": facts_row[2],
        "models": facts_row[3],
        "replicates": facts_row[4],
        "invalid_rows": facts_row[5],
        "modes": ", ".join(facts_row[6]),
        "studies": ", ".join(facts_row[7]),
    }
    adjustment = _adjustment_fact(log)
    if adjustment is not None:
        facts["adjustment"] = adjustment
    dialogue = _dialogue_fact(log)
    if dialogue is not None:
        facts["dialogue"] = dialogue
    return LogSummary(
        source=log.source,
        sizes=sizes,
        items=items,
        invalid=invalid,
        provenance=provenance,
        facts=facts,
        diagnostics=log.diagnostics,
    )
