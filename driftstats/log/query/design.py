"""Design facts every verb needs: pairing across arms, answer counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from driftstats.errors import InvalidArgumentError

if TYPE_CHECKING:
    from driftstats.log.simlog import SimLog

__all__ = ["PAIRING_COLUMN", "RUN_COLUMNS", "count_answers", "paired_design", "resolve_strata", "varying_run_columns"]

#: The column that links the units of one persona across arms (docs/schema.md).
PAIRING_COLUMN = "persona_id"

#: The columns that identify one run of a study (docs/schema.md): answers of different runs are
#: never pooled by default (``by="auto"``), since each run may hold a different model or persona spec.
RUN_COLUMNS: tuple[str, ...] = ("study", "model", "run_id", "iteration")


def varying_run_columns(log: SimLog) -> tuple[str, ...]:
    """The run columns (:data:`RUN_COLUMNS`) with more than one value in the log's answers."""
    counts = log.con.execute(
        "SELECT " + ", ".join(f"count(DISTINCT {c})" for c in RUN_COLUMNS) + " FROM answers").fetchall()[0]
    return tuple(c for c, n in zip(RUN_COLUMNS, counts, strict=True) if n > 1)


def paired_design(log: SimLog, arms: Sequence[str] | None = None) -> bool:
    """True when some ``persona_id`` has units in more than one of ``arms`` (default: all arms)."""
    params: list[object] = []
    where = "persona_id IS NOT NULL"
    if arms is not None:
        where += " AND arm IN (SELECT unnest(?))"
        params.append(list(arms))
    n = log.con.execute(
        f"SELECT count(*) FROM (SELECT persona_id FROM answers WHERE {where} "
        "GROUP BY persona_id HAVING count(DISTINCT arm) > 1)", params).fetchall()[0][0]
    return bool(n)


def resolve_strata(log: SimLog, strata: str | Literal["auto"] | None) -> tuple[str | None, str | None]:
    """The strata a drift test permutes within, and the sentence that says why.

    One rule everywhere: ``"auto"`` (the default of every verb) uses ``persona_id`` when the
    design is paired (a persona has units in several arms) and no strata otherwise;
    ``None`` never pairs; a column name is used as given.
    """
    if strata == "auto":
        if paired_design(log):
            return PAIRING_COLUMN, ("paired design detected (persona_id shared across arms): comparisons are "
                                    "paired within persona; pass strata=None for an unpaired analysis")
        return None, None
    if strata is not None and not isinstance(strata, str):
        raise InvalidArgumentError(f"strata must be 'auto', None or a column name; got {strata!r}.")
    return strata, None


def count_answers(log: SimLog, items: Sequence[str], mode: str, *, valid: bool) -> int:
    """Answer rows of ``items`` in ``mode`` that are (``valid=True``) or are not valid."""
    return int(log.con.execute(
        "SELECT count(*) FROM answers WHERE valid = ? AND mode = ? AND item IN (SELECT unnest(?))",
        [valid, mode, list(items)]).fetchall()[0][0])
