"""SQL quoting. Identifiers and literals that come from users are quoted, never formatted raw."""

from __future__ import annotations

import contextlib

import duckdb

from driftstats.log.schema import SqlType

__all__ = ["cast_expr", "connect", "qi", "ql"]


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that draws no progress bars (a library does not draw on the user's terminal).

    Inside Jupyter without ``ipywidgets`` DuckDB refuses to change the setting at all
    ("required package 'ipywidgets' is missing"); it then draws nothing either, so the
    refusal is harmless and ignored.
    """
    con = duckdb.connect(database)
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")
    return con


def qi(name: str) -> str:
    """Quote an identifier for DuckDB (``"`` doubled inside)."""
    if not isinstance(name, str):
        raise TypeError(f"identifier must be str, got {type(name).__name__}")
    if "\x00" in name:
        raise ValueError("identifiers may not contain NUL characters")
    return '"' + name.replace('"', '""') + '"'


def ql(value: str) -> str:
    """Quote a string literal (``'`` doubled inside). Used only where DuckDB takes no parameters."""
    if "\x00" in value:
        raise ValueError("literals may not contain NUL characters")
    return "'" + value.replace("'", "''") + "'"


_FLOATS = ("DOUBLE", "FLOAT", "REAL")
_INTS = ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT", "HUGEINT",
         "UHUGEINT")


def cast_expr(col: str, sql: SqlType, source: str | None = None) -> str:
    """A cast that yields NULL where the value does not fit ``sql`` exactly.

    Integers must be whole numbers (DuckDB would round '2.5' to 3); booleans accept
    true/false, t/f, 1/0, yes/no in any case. Floating-point values (``source`` is the
    column's DuckDB type) become text the way a person writes them: whole numbers without
    ``.0`` (``3.0`` -> ``'3'``, as pandas object columns are read) and NaN as NULL (a missing
    answer, as pandas reads NaN).
    """
    c = qi(col)
    if sql == "VARCHAR" and source in _FLOATS:
        return (
            f"(CASE WHEN isnan({c}) THEN NULL "
            f"WHEN {c} = trunc({c}) AND abs({c}) < 9007199254740992 THEN CAST(CAST({c} AS BIGINT) AS VARCHAR) "
            f"ELSE CAST({c} AS VARCHAR) END)"
        )
    if sql == "BIGINT":
        if source in _INTS:
            return f"TRY_CAST({c} AS BIGINT)"  # exact (NULL only on overflow)
        via_double = (
            f"(CASE WHEN TRY_CAST({c} AS DOUBLE) = TRY_CAST(TRY_CAST({c} AS DOUBLE) AS BIGINT) "
            f"THEN TRY_CAST(TRY_CAST({c} AS DOUBLE) AS BIGINT) END)"
        )
        if source in (None, "VARCHAR"):  # integer text is cast exactly (a double holds 53 bits only)
            return (f"(CASE WHEN regexp_full_match(CAST({c} AS VARCHAR), '\\s*[+-]?[0-9]+\\s*') "
                    f"THEN TRY_CAST(trim(CAST({c} AS VARCHAR)) AS BIGINT) ELSE {via_double} END)")
        return via_double
    if sql == "VARCHAR":
        return f"CAST({c} AS VARCHAR)"
    return f"TRY_CAST({c} AS {sql})"
