"""Queries of the NCO drift tests (``driftstats.nco``): unit-level answers and count tables.

Every query is parametrised: values travel as parameters, identifiers (``by`` columns, strata
columns) are quoted with :func:`~driftstats.log._sql.qi` after being checked against the log's
columns by the caller. Results are pandas frames or plain numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import pandas as pd

from driftstats.log._sql import qi

if TYPE_CHECKING:
    from driftstats.log.simlog import SimLog

__all__ = [
    "StrataSource",
    "answer_counts",
    "answer_hashes",
    "count_nco_answers",
    "persona_attributes",
    "unit_answers",
    "unit_patterns",
]

#: Where a strata name lives: a column of ``answers`` or an attribute of ``personas``.
StrataSource = Literal["column", "attribute"]

#: Sampled answers of one unit to one item are encoded as ``sum_r base ** code_r`` (the counts of
#: the R replicates over the K levels, in base ``base``); exact while ``base ** K <= 2 ** 53``.
MAX_PATTERN_KEY = 2**53


def persona_attributes(log: SimLog) -> list[str]:
    """The distinct attribute names of the ``personas`` table."""
    return [r[0] for r in log.con.execute("SELECT DISTINCT attribute FROM personas ORDER BY 1").fetchall()]


def _strata(strata: str | None, source: StrataSource | None) -> tuple[str, str, list[object]]:
    """(select expression, join clause, join parameters) of the stratum of unit ``a``."""
    if strata is None:
        return "NULL", "", []
    if source == "column":
        return f"CAST(a.{qi(strata)} AS VARCHAR)", "", []
    return ("s.value", "LEFT JOIN (SELECT unit_id, any_value(value) AS value FROM personas WHERE attribute = ? "
                      "GROUP BY unit_id) s ON s.unit_id = a.unit_id", [strata])


def unit_answers(
    log: SimLog,
    items: Sequence[str],
    arms: Sequence[str],
    *,
    by: Sequence[str],
    mode: str,
    strata: str | None = None,
    strata_source: StrataSource | None = None,
) -> pd.DataFrame:
    """Valid answers aggregated per unit, item and level.

    One row per (``by`` values, arm, unit, item, response code) with columns ``g_<by>``, ``arm``,
    ``unit_id``, ``stratum`` (VARCHAR or NULL), ``item``, ``code`` (NULL for numeric items),
    ``w`` (number of sampled answers, or summed option probability in mode ``dist``) and ``x``
    (mean ``response_value``: the unit's mean over replicates for numeric items).
    """
    s_sel, s_join, s_params = _strata(strata, strata_source)
    by_sel = "".join(f"a.{qi(b)} AS {qi('g_' + b)}, " for b in by)
    by_grp = "".join(f"a.{qi(b)}, " for b in by)
    q = (f"SELECT {by_sel}a.arm, a.unit_id, {s_sel} AS stratum, a.item, a.response_code AS code, "
         f"sum(coalesce(a.prob, 1.0)) AS w, avg(a.response_value) AS x "
         f"FROM answers a {s_join} "
         f"WHERE a.valid AND a.mode = ? AND a.item IN (SELECT unnest(?)) AND a.arm IN (SELECT unnest(?)) "
         f"GROUP BY {by_grp}a.arm, a.unit_id, {s_sel}, a.item, a.response_code "
         f"ORDER BY {by_grp}a.arm, a.unit_id, a.item, a.response_code")  # a fixed row order: same seed, same numbers
    return log.con.execute(q, [*s_params, mode, list(items), list(arms)]).df()


def count_nco_answers(log: SimLog, items: Sequence[str], arms: Sequence[str], mode: str, *, valid: bool) -> int:
    """Answer rows of ``items`` in ``arms`` and ``mode`` that are (``valid=True``) or are not valid."""
    return int(log.con.execute(
        "SELECT count(*) FROM answers WHERE valid = ? AND mode = ? AND item IN (SELECT unnest(?)) "
        "AND arm IN (SELECT unnest(?))", [valid, mode, list(items), list(arms)]).fetchall()[0][0])


def answer_counts(log: SimLog, items: Sequence[str], arms: Sequence[str], mode: str) -> tuple[int, int, int]:
    """``(valid rows, invalid rows, replicates)`` of ``items`` in ``arms`` and ``mode``, in one scan.

    ``replicates`` is ``1 + max(replicate)`` over the valid rows (0 when there are none): an upper
    bound on the valid answers one unit gave to one item (the key includes ``replicate``).
    """
    r = log.con.execute(
        "SELECT count(*) FILTER (WHERE valid), count(*) FILTER (WHERE NOT valid), max(replicate) FILTER (WHERE valid) "
        "FROM answers WHERE mode = ? AND item IN (SELECT unnest(?)) AND arm IN (SELECT unnest(?))",
        [mode, list(items), list(arms)]).fetchall()[0]
    return int(r[0]), int(r[1]), 0 if r[2] is None else int(r[2]) + 1


def unit_patterns(
    log: SimLog,
    items: Sequence[str],
    arms: Sequence[str],
    *,
    by: Sequence[str],
    base: int | None,
    strata: str | None = None,
    strata_source: StrataSource | None = None,
) -> pd.DataFrame:
    """One row per unit of sampled answers: ``by`` columns, ``arm``, ``stratum`` and one key per item.

    Column ``c_j`` holds the unit's answers to ``items[j]`` (NULL: no valid answer): the response
    code when ``base`` is None (one answer per unit and item), otherwise the pattern key
    ``sum_r base ** code_r`` over the unit's valid replicates (``base`` larger than the number of
    replicates, so the key encodes the count of every level). One aggregation in DuckDB, so logs
    on disk are never pulled row by row into pandas.
    """
    s_sel, s_join, s_params = _strata(strata, strata_source)
    agg = ("max(a.response_code) FILTER (WHERE a.item = ?)" if base is None else
           "CAST(sum(CAST(pow(?, a.response_code) AS BIGINT)) FILTER (WHERE a.item = ?) AS BIGINT)")
    cols = ", ".join(f"{agg} AS {qi('c_' + str(j))}" for j in range(len(items)))
    params: list[object] = []
    for name in items:
        params.extend([name] if base is None else [int(base), name])
    by_sel = "".join(f"a.{qi(b)} AS {qi(b)}, " for b in by)
    by_grp = "".join(f"a.{qi(b)}, " for b in by)
    q = (f"SELECT {by_sel}a.arm, {s_sel} AS stratum, {cols} FROM answers a {s_join} "
         f"WHERE a.valid AND a.mode = 'sample' AND a.item IN (SELECT unnest(?)) AND a.arm IN (SELECT unnest(?)) "
         f"GROUP BY {by_grp}a.arm, a.unit_id, {s_sel} ORDER BY {by_grp}a.arm, a.unit_id")
    return log.con.execute(q, [*params, *s_params, list(items), list(arms)]).df()


def answer_hashes(log: SimLog) -> tuple[tuple[str, str], ...]:
    """Model hash(es) and the number of distinct prompts of the answers, for a result's provenance."""
    r = log.con.execute(
        "SELECT string_agg(DISTINCT model_sha256, ','), count(DISTINCT prompt_sha256) FROM answers"
    ).fetchall()[0]
    out = []
    if r[0]:
        out.append(("model_sha256", str(r[0])))
    if r[1]:
        out.append(("n_prompt_sha256", str(int(r[1]))))
    return tuple(out)
