"""Facts the audit's preconditions need: units per arm with valid answers, and validity counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from driftstats.log.query.design import RUN_COLUMNS

if TYPE_CHECKING:
    from driftstats.log.simlog import SimLog

__all__ = ["answered_units", "invalid_rows"]


def answered_units(log: SimLog, items: Sequence[str], mode: str) -> pd.DataFrame:
    """Units with at least one valid answer to ``items`` in ``mode``, per run and arm.

    Columns ``study, model, run_id, iteration, arm, units`` (the run columns, then the arm);
    arms of a run without any such unit appear with 0.
    """
    keys = ", ".join(RUN_COLUMNS)
    return log.con.execute(
        f"""
        WITH g AS (SELECT DISTINCT {keys}, arm FROM answers),
             u AS (SELECT {keys}, arm, count(DISTINCT unit_id) AS units FROM answers
                   WHERE valid AND mode = ? AND item IN (SELECT unnest(?)) GROUP BY ALL)
        SELECT g.*, coalesce(u.units, 0) AS units
        FROM g LEFT JOIN u USING ({keys}, arm) ORDER BY ALL
        """,
        [mode, list(items)],
    ).df()


def invalid_rows(log: SimLog, items: Sequence[str], mode: str) -> tuple[int, int]:
    """``(invalid, total)`` answer rows of ``items`` in ``mode``."""
    r = log.con.execute(
        "SELECT count(*) FILTER (WHERE NOT valid), count(*) FROM answers WHERE mode = ? AND item IN (SELECT unnest(?))",
        [mode, list(items)],
    ).fetchall()[0]
    return int(r[0]), int(r[1])
