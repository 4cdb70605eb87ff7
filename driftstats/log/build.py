"""Build the typed, validated log tables inside a DuckDB connection.

Input: raw relations ``raw_answers`` (required) and optionally ``raw_<table>`` for each side
table of the schema (``raw_items``, ..., ``raw_transcripts``), each with a ``__row`` column
(0-based source row).
Output: typed tables ``answers``, ``item_options`` and one per side table (the optional
``iterations``, ``adjustments`` and ``transcripts`` empty when not given).

Every check runs as SQL, so a frame and a 10-million-row Parquet file are validated
by the same code. Each failure raises a named error that gives the column, the first
offending rows and their count, what was expected, and how to fix it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa

from driftstats.errors import (
    ColumnTypeError,
    DuplicateKeyError,
    EmptyArmError,
    EmptyLogError,
    InvalidValueError,
    MissingColumnError,
    SingleOptionItemError,
    UnknownOptionError,
    format_rows,
)
from driftstats.log._sql import cast_expr, qi
from driftstats.log.dialogue import chain_sha256, text_sha256
from driftstats.log.likert import match_likert
from driftstats.log.schema import (
    ADJUSTMENT_SOURCES,
    ADJUSTMENT_STATUSES,
    ADJUSTMENTS,
    ANSWER_KEYS,
    ANSWERS,
    ARM_KINDS,
    ARMS,
    ITEMS,
    ITERATIONS,
    MESSAGE_ROLES,
    MODES,
    OPTIONAL_TABLES,
    PERSONAS,
    SCALES,
    STOP_RULES,
    TABLE_KEYS,
    TRANSCRIPTS,
    Field,
)

__all__ = ["MAX_OPTIONS", "Missing", "build_tables"]

ROLE_PATTERN = "^[a-z][a-z0-9_]*$"
PROB_TOLERANCE = 1e-6
ROW = "__row"
#: The most options one item may list (docs/schema.md). Reading costs time and memory linear in
#: the options; an item with more categories than this is free text or a number.
MAX_OPTIONS = 10_000
Missing = Literal["error", "invalid"]
MISSING_ERROR = "missing response"
#: transcripts.error of a message with neither text nor tool calls (kept, flagged invalid).
EMPTY_MESSAGE_ERROR = "empty message"


def _columns(con: duckdb.DuckDBPyConnection, rel: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {qi(rel)}").fetchall()]


def _exists(con: duckdb.DuckDBPyConnection, rel: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND database_name = current_database()",
            [rel],
        ).fetchall()[0][0]
        or con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND database_name = current_database()",
            [rel],
        ).fetchall()[0][0]
    )


def _offending(con: duckdb.DuckDBPyConnection, rel: str, where: str, params: Sequence[object] = ()) -> tuple[int, list[int]]:
    """Count rows of ``rel`` matching ``where`` and return the first few source rows."""
    n = con.execute(f"SELECT count(*) FROM {qi(rel)} WHERE {where}", list(params)).fetchall()[0][0]
    if not n:
        return 0, []
    rows = [r[0] for r in con.execute(
        f"SELECT {ROW} FROM {qi(rel)} WHERE {where} ORDER BY {ROW} LIMIT 5", list(params)
    ).fetchall()]
    return int(n), rows


def _rows_text(n: int, rows: list[int]) -> str:
    return format_rows(rows + [None] * (n - len(rows)), limit=5).replace(", None", "")


# ------------------------------------------------------------------------------ typing
def _typed(
    con: duckdb.DuckDBPyConnection,
    raw: str,
    fields: tuple[Field, ...],
    target: str,
    *,
    table_label: str,
    keep_extras: bool,
) -> list[str]:
    """Create ``target`` from ``raw`` with schema types; check required, types and NULLs."""
    described = {r[0]: r[1] for r in con.execute(f"DESCRIBE {qi(raw)}").fetchall()}
    cols = list(described)
    present = [f for f in fields if f.name in cols]
    missing = [f.name for f in fields if f.required and f.name not in cols]
    if missing:
        available = [c for c in cols if c != ROW]
        wide = ""
        if table_label == "answers" and {"item", "response"} & set(missing):
            wide = (" If the table is wide (one column per question), melt it into this long format with "
                    "driftstats.log.from_wide(frame, unit=..., arm=..., items=[...]).")
        fix = (f"rename them, e.g. read_log(..., mapping={{'your_column': {missing[0]!r}}})" if table_label == "answers"
               else f"add them to the {table_label} table, or rename its columns (mapping= renames answers columns only)")
        raise MissingColumnError(
            f"{table_label}: required column(s) {missing} are missing. Available columns: {available}. "
            f"Fix: {fix}.{wide}"
        )
    # a cast can fail only when the source type differs from the target (text -> number, 2.5 -> BIGINT)
    safe = {"BIGINT": {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UINTEGER", "USMALLINT", "UTINYINT"},
            "DOUBLE": {"DOUBLE", "FLOAT", "BIGINT", "INTEGER", "SMALLINT", "TINYINT"},
            "BOOLEAN": {"BOOLEAN"}, "TIMESTAMPTZ": {"TIMESTAMP WITH TIME ZONE"}}
    checks = [f for f in present if f.sql != "VARCHAR" and described[f.name] not in safe.get(f.sql, set())]
    if checks:
        exprs = ", ".join(
            f"count(*) FILTER (WHERE {qi(f.name)} IS NOT NULL AND {cast_expr(f.name, f.sql, described[f.name])} IS NULL)"
            for f in checks
        )
        counts = con.execute(f"SELECT {exprs} FROM {qi(raw)}").fetchall()[0]
        for f, n in zip(checks, counts, strict=True):
            if n:
                where = f"{qi(f.name)} IS NOT NULL AND {cast_expr(f.name, f.sql, described[f.name])} IS NULL"
                _, rows = _offending(con, raw, where)
                examples = [r[0] for r in con.execute(
                    f"SELECT DISTINCT CAST({qi(f.name)} AS VARCHAR) FROM {qi(raw)} WHERE {where} LIMIT 3"
                ).fetchall()]
                raise ColumnTypeError(
                    f"{table_label}: column {f.name!r} must hold {f.sql} values; {_rows_text(int(n), rows)} "
                    f"do not (e.g. {examples}). Fix: clean or recode the column before reading."
                )
    select = []
    for f in fields:
        if f.name in cols:
            select.append(f"{cast_expr(f.name, f.sql, described[f.name])} AS {qi(f.name)}")
        else:
            select.append(f"CAST({f.default} AS {f.sql}) AS {qi(f.name)}")
    names = {f.name for f in fields}
    extras = [c for c in cols if c not in names and c != ROW] if keep_extras else []
    select += [qi(c) for c in extras]
    con.execute(f"CREATE OR REPLACE TABLE {qi(target)} AS SELECT {ROW}, {', '.join(select)} FROM {qi(raw)}")
    required = [f for f in fields if not f.nullable]
    exprs = ", ".join(f"count(*) FILTER (WHERE {qi(f.name)} IS NULL)" for f in required)
    counts = con.execute(f"SELECT {exprs} FROM {qi(target)}").fetchall()[0]
    for f, n_null in zip(required, counts, strict=True):
        if n_null:
            n, rows = _offending(con, target, f"{qi(f.name)} IS NULL")
            raise InvalidValueError(
                f"{table_label}: column {f.name!r} has missing values in {_rows_text(n, rows)}. "
                f"Expected: a value on every row. Fix: fill them or drop those rows before reading."
            )
    return extras


def _check_values(con: duckdb.DuckDBPyConnection, rel: str, label: str, column: str, where: str, expected: str, fix: str) -> None:
    n, rows = _offending(con, rel, where)
    if n:
        bad = [r[0] for r in con.execute(
            f"SELECT DISTINCT CAST({qi(column)} AS VARCHAR) FROM {qi(rel)} WHERE {where} LIMIT 3"
        ).fetchall()]
        raise InvalidValueError(
            f"{label}: column {column!r} has unexpected values in {_rows_text(n, rows)} (e.g. {bad}). "
            f"Expected: {expected}. Fix: {fix}"
        )


def _check_unique(con: duckdb.DuckDBPyConnection, rel: str, label: str, keys: Sequence[str], fix: str) -> None:
    k = ", ".join(qi(c) for c in keys)
    dup = con.execute(
        f"SELECT {k}, count(*) AS n, list({ROW} ORDER BY {ROW})[1:5] FROM {qi(rel)} GROUP BY ALL HAVING count(*) > 1 "
        f"ORDER BY min({ROW}) LIMIT 3"
    ).fetchall()
    if dup:
        total = con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {qi(rel)} GROUP BY {k} HAVING count(*) > 1)"
        ).fetchall()[0][0]
        first = dup[0]
        key_text = ", ".join(f"{c}={v!r}" for c, v in zip(keys, first[: len(keys)], strict=True))
        raise DuplicateKeyError(
            f"{label}: {total} key(s) ({', '.join(keys)}) occur on more than one row; first: {key_text} "
            f"on rows {first[-1]}. Fix: {fix}"
        )


# ------------------------------------------------------------------------------ tables
def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in list(names)[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}]" + (f" ({len(names)} in all)" if len(names) > limit else "")


def _infer_items(
    con: duckdb.DuckDBPyConnection,
    diagnostics: list[str],
    *,
    item_levels: Mapping[str, Sequence[str]],
    response_levels: Sequence[str] | None,
    likert: bool,
) -> None:
    """Create ``items`` from the answers when no items table is given.

    The log claims an order only where it knows one: an ordered categorical (``response``, or
    one column per item in :func:`~driftstats.log.from_wide`) gives the options in category
    order and scale ``'ordinal'``; ``likert=True`` recognises standard Likert wordings
    (:mod:`driftstats.log.likert`); ``response_code`` gives the option positions (scale stays
    ``'nominal'``: a code is a position, not an ordering claim); numbers are listed by value.
    Everything else is listed alphabetically with scale ``'nominal'``, and the diagnostics say so.
    """
    con.execute(
        """CREATE OR REPLACE TEMP TABLE __observed AS
           SELECT item, response, min(response_code) AS code, TRY_CAST(response AS DOUBLE) AS num
           FROM answers WHERE valid AND response IS NOT NULL GROUP BY item, response"""
    )
    summary = con.execute(
        """SELECT it.item, coalesce(o.k, 0), coalesce(o.coded, false), coalesce(o.numeric_all, false)
           FROM (SELECT DISTINCT item FROM answers) it
           LEFT JOIN (SELECT item, count(*) AS k, bool_and(code IS NOT NULL) AS coded,
                             bool_and(num IS NOT NULL) AS numeric_all FROM __observed GROUP BY item) o USING (item)
           ORDER BY it.item"""
    ).fetchall()
    numeric_items = [item for item, k, coded, numeric_all in summary if numeric_all and not coded and k > 12]
    need = [item for item, k, coded, numeric_all in summary if item not in set(numeric_items)]
    too_many = [(item, k) for item, k, *_ in summary
                if item in set(need) and k > MAX_OPTIONS and item not in item_levels and response_levels is None]
    if too_many:
        item, k = too_many[0]
        raise InvalidValueError(
            f"answers: item {item!r} has {k} distinct responses, more than the {MAX_OPTIONS} options an item "
            "may have (driftstats.log.build.MAX_OPTIONS). An item with that many answers is free text or a "
            "number, not a categorical item. Fix: recode or drop it, or declare scale='numeric' in items=...."
        )
    observed: dict[str, list[tuple[str, int | None, float | None]]] = {item: [] for item in need}
    if need:
        for item, response, code, num in con.execute(
            "SELECT item, response, code, num FROM __observed WHERE item IN (SELECT unnest(?))", [need]
        ).fetchall():
            observed[item].append((response, code, num))
    con.execute("DROP TABLE __observed")
    rows: list[tuple[str, str | None, str]] = []
    by_source: dict[str, list[str]] = {"categorical": [], "codes": [], "numbers": [], "unknown": []}
    by_family: dict[str, list[str]] = {}
    for item, _k, coded, numeric_all in summary:
        if item in numeric_items:
            rows.append((item, None, "numeric"))
            by_source["numbers"].append(item)
            continue
        obs = observed.get(item, [])
        labels = {r for r, _, _ in obs}
        levels = item_levels.get(item, response_levels)
        if levels is not None and labels <= set(levels):
            rows.append((item, json.dumps(list(levels)), "ordinal"))
            by_source["categorical"].append(item)
            continue
        if coded and obs:
            opts = [r for r, _, _ in sorted(obs, key=lambda t: (t[1], t[0]))]
            rows.append((item, json.dumps(opts), "nominal"))
            by_source["codes"].append(item)
            continue
        if numeric_all and obs:
            opts = [r for r, _, _ in sorted(obs, key=lambda t: (t[2], t[0]))]
            rows.append((item, json.dumps(opts), "nominal"))
            by_source["numbers"].append(item)
            continue
        match = match_likert(sorted(labels)) if likert else None
        if match is not None:
            rows.append((item, json.dumps(match[1]), "ordinal"))
            by_family.setdefault(match[0], []).append(item)
            continue
        rows.append((item, json.dumps(sorted(labels)), "nominal"))
        if len(labels) >= 2:
            by_source["unknown"].append(item)
    table = pa.table({
        ROW: pa.array(np.arange(len(rows), dtype=np.int64)),
        "item": pa.array([r[0] for r in rows], pa.string()),
        "text": pa.nulls(len(rows), pa.string()),
        "options": pa.array([r[1] for r in rows], pa.string()),
        "scale": pa.array([r[2] for r in rows], pa.string()),
        "role": pa.array(["other"] * len(rows), pa.string()),
        "attribute": pa.nulls(len(rows), pa.string()),
    })
    con.register("__items_in", table)
    con.execute("CREATE OR REPLACE TABLE items AS SELECT * FROM __items_in")
    con.unregister("__items_in")
    diagnostics.append("no items table: items inferred from the answers; pass items=... to declare texts, "
                       "option order and scales")
    if by_source["categorical"]:
        diagnostics.append(f"option order of item(s) {_names(by_source['categorical'])} taken from the ordered "
                           "categorical (its categories, in order; scale 'ordinal')")
    if by_family:
        found = "; ".join(f"{fam}: {_names(items)}" for fam, items in by_family.items())
        diagnostics.append(f"likert=True: standard Likert labels recognised ({found}); the observed labels are "
                           "the options, in the scale's order; scale 'ordinal'")
    if by_source["codes"]:
        diagnostics.append(f"option order of item(s) {_names(by_source['codes'])} taken from response_code; "
                           "scale 'nominal' (a code is a position, not an ordering claim; declare scale='ordinal' "
                           "with items=... if the order is ordinal)")
    if by_source["numbers"]:
        diagnostics.append(f"item(s) {_names(by_source['numbers'])} have numeric answers: options listed by value "
                           "(scale 'nominal'; 'numeric' when more than 12 distinct values)")
    if by_source["unknown"]:
        diagnostics.append(
            f"option order unknown for item(s) {_names(by_source['unknown'])}: options listed alphabetically, "
            "scale 'nominal'. To give the order, pass items=... (options in order, scale='ordinal'), an ordered "
            "pandas Categorical as 'response', or likert=True for standard Likert labels")


def _item_options(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``item_options`` (item, option, pos) in one linear pass over the options arrays."""
    items_col: list[str] = []
    options_col: list[str] = []
    pos_col: list[int] = []
    single: list[tuple[str, int]] = []
    for item, options, scale in con.execute(f"SELECT item, options, scale FROM items ORDER BY {ROW}").fetchall():
        if options is None:
            continue
        try:
            value = json.loads(options)
        except ValueError:
            value = None
        if not isinstance(value, list):
            raise InvalidValueError(
                f"items: column 'options' of item {item!r} is not a JSON array. Expected: a JSON array of "
                'strings, e.g. ["Yes", "No"]. Fix: write options as a JSON array.')
        if not all(isinstance(v, str) for v in value):
            raise InvalidValueError(
                f"items: options of item {item!r} are not all strings. Expected: a JSON array of "
                'strings such as ["1", "2"]. Fix: quote the option labels.'
            )
        if len(value) > MAX_OPTIONS:
            raise InvalidValueError(
                f"items: item {item!r} lists {len(value)} options, more than the {MAX_OPTIONS} an item may have "
                "(driftstats.log.build.MAX_OPTIONS). Fix: declare it scale='numeric' (options NULL) if its "
                "answers are numbers, or recode it into fewer categories."
            )
        distinct = set(value)
        if len(distinct) != len(value):
            seen: set[str] = set()
            repeated = next(v for v in value if v in seen or seen.add(v))  # type: ignore[func-returns-value]
            raise InvalidValueError(
                f"items: item {item!r} lists option {repeated!r} more than once. Expected: distinct "
                "options. Fix: remove the repeated option."
            )
        if scale != "numeric" and len(distinct) < 2:
            single.append((item, len(value)))
        items_col.extend([item] * len(value))
        options_col.extend(value)
        pos_col.extend(range(len(value)))
    if single:
        single.sort()
        raise SingleOptionItemError(
            f"items: {len(single)} categorical item(s) have fewer than two options, e.g. "
            f"{single[0][0]!r} ({single[0][1]} option(s)). An item with one option cannot vary. "
            "Fix: declare all options, or set scale='numeric' for numeric answers."
        )
    table = pa.table({
        "item": pa.array(items_col, pa.string()),
        "option": pa.array(options_col, pa.string()),
        "pos": pa.array(pos_col, pa.int64()),
    })
    con.register("__item_options_in", table)
    con.execute("CREATE OR REPLACE TABLE item_options AS SELECT * FROM __item_options_in")
    con.unregister("__item_options_in")


def _build_items(
    con: duckdb.DuckDBPyConnection,
    roles: Mapping[str, str],
    diagnostics: list[str],
    *,
    item_levels: Mapping[str, Sequence[str]],
    response_levels: Sequence[str] | None,
    likert: bool,
) -> bool:
    """Create ``items`` and ``item_options``; return True when the items were inferred."""
    inferred = not _exists(con, "raw_items")
    if not inferred:
        _typed(con, "raw_items", ITEMS, "items", table_label="items", keep_extras=False)
        _check_unique(con, "items", "items", ["item"], "each item must appear once in the items table.")
    else:
        _infer_items(con, diagnostics, item_levels=item_levels, response_levels=response_levels, likert=likert)
    # roles: answers.role (must agree per item) overrides the default; read_log(nco=..., ...) wins
    conflict = con.execute(
        "SELECT item, list(DISTINCT role) FROM answers WHERE role IS NOT NULL GROUP BY item "
        "HAVING count(DISTINCT role) > 1 LIMIT 3"
    ).fetchall()
    if conflict:
        raise InvalidValueError(
            f"answers: column 'role' differs within an item, e.g. item {conflict[0][0]!r} has roles "
            f"{conflict[0][1]}. Expected: one role per item. Fix: correct the role column or declare "
            "roles with read_log(..., nco=[...], primary=[...])."
        )
    con.execute(
        "UPDATE items SET role = a.role FROM (SELECT item, any_value(role) AS role FROM answers "
        "WHERE role IS NOT NULL GROUP BY item) a WHERE items.item = a.item"
    )
    for item, role in roles.items():
        con.execute("UPDATE items SET role = ? WHERE item = ?", [role, item])
    missing_roles = sorted(set(roles) - {r[0] for r in con.execute("SELECT item FROM items").fetchall()})
    if missing_roles:
        known = sorted(r[0] for r in con.execute("SELECT item FROM items").fetchall())
        raise InvalidValueError(
            f"items named in a role argument are not in the log: {missing_roles}. Items: {known}. "
            "Fix: check the spelling (after mapping)."
        )
    _check_values(con, "items", "items", "scale", f"scale NOT IN ({', '.join(repr(s) for s in SCALES)})",
                  f"one of {list(SCALES)}", "recode the scale column.")
    _check_values(con, "items", "items", "role", f"NOT regexp_full_match(role, '{ROLE_PATTERN}')",
                  "a lowercase identifier such as primary, nco, fidelity, confounder",
                  "recode the role column.")
    _check_values(con, "items", "items", "options",
                  "options IS NOT NULL AND (NOT json_valid(options) OR json_type(options) <> 'ARRAY')",
                  'a JSON array of strings, e.g. ["Yes", "No"]', "write options as a JSON array.")
    _check_values(con, "items", "items", "options",
                  "options IS NULL AND scale <> 'numeric'", "options for ordinal and nominal items",
                  "give the options in order, or set scale='numeric'.")
    _item_options(con)
    return inferred


def _check_answers(con: duckdb.DuckDBPyConnection, *, items_inferred: bool) -> None:
    label = "answers"
    _check_values(con, "answers", label, "iteration", "iteration < 0", "an integer >= 0", "renumber iterations from 0.")
    _check_values(con, "answers", label, "replicate", "replicate < 0", "an integer >= 0", "renumber replicates from 0.")
    _check_values(con, "answers", label, "mode", f"mode NOT IN ({', '.join(repr(m) for m in MODES)})",
                  f"one of {list(MODES)}", "use 'sample' for sampled answers, 'dist' for option probabilities.")
    _check_values(con, "answers", label, "role", f"role IS NOT NULL AND NOT regexp_full_match(role, '{ROLE_PATTERN}')",
                  "a lowercase identifier such as primary, nco, fidelity, confounder", "recode the role column.")
    _check_values(con, "answers", label, "response", "valid AND response IS NULL",
                  "a response on every row with valid = true",
                  "mark failed answers with valid = false (and an error text) instead of leaving them empty, "
                  "or read with read_log(..., missing='invalid') to do so (error 'missing response').")
    _check_values(con, "answers", label, "prob", "mode = 'sample' AND prob IS NOT NULL",
                  "NULL in mode 'sample'", "set mode = 'dist' for rows that carry option probabilities.")
    _check_values(con, "answers", label, "prob",
                  "mode = 'dist' AND valid AND (prob IS NULL OR prob < 0 OR prob > 1 OR isnan(prob))",
                  "a probability in [0, 1] on every valid 'dist' row", "check the probabilities.")
    unknown_items = _offending(con, "answers", "item NOT IN (SELECT item FROM items)")
    if unknown_items[0]:
        names = [r[0] for r in con.execute(
            "SELECT DISTINCT item FROM answers WHERE item NOT IN (SELECT item FROM items) LIMIT 5").fetchall()]
        raise InvalidValueError(
            f"answers: column 'item' names items missing from the items table in "
            f"{_rows_text(*unknown_items)} (e.g. {names}). Fix: add them to the items table."
        )
    # unknown options (categorical items): valid answers must be one of the options
    where = (
        "valid AND response IS NOT NULL AND item IN (SELECT item FROM items WHERE scale <> 'numeric') "
        "AND (item, response) NOT IN (SELECT item, option FROM item_options)"
    )
    n, rows = _offending(con, "answers", where)
    if n:
        ex = con.execute(f"SELECT item, response FROM answers WHERE {where} ORDER BY {ROW} LIMIT 3").fetchall()
        opts = con.execute(
            "SELECT list(option ORDER BY pos) FROM item_options WHERE item = ?", [ex[0][0]]
        ).fetchall()[0][0]
        raise UnknownOptionError(
            f"answers: column 'response' holds values that are not options of their item in "
            f"{_rows_text(n, rows)}; e.g. item {ex[0][0]!r} answered {ex[0][1]!r}, options {opts}. "
            "Fix: map the labels onto the options, or mark such answers valid = false with an error text."
        )
    # a valid numeric answer is a finite number: 'nan', 'inf' (or such a response_value) is no measurement
    where = (
        "valid AND response IS NOT NULL AND item IN (SELECT item FROM items WHERE scale = 'numeric') "
        "AND (TRY_CAST(response AS DOUBLE) IS NULL OR NOT isfinite(TRY_CAST(response AS DOUBLE)) "
        "OR (response_value IS NOT NULL AND NOT isfinite(response_value)))"
    )
    n, rows = _offending(con, "answers", where)
    if n:
        raise UnknownOptionError(
            f"answers: numeric items need numeric responses; {_rows_text(n, rows)} are not finite numbers "
            "(text, NaN or infinite). Fix: mark them valid = false with an error text."
        )
    if items_inferred:
        return  # codes are renumbered to positions among the observed options in _derive_answers
    # response_code agrees with the option position (fill when NULL)
    mism = _offending(
        con, "answers",
        "response_code IS NOT NULL AND valid AND EXISTS (SELECT 1 FROM item_options o WHERE o.item = answers.item "
        "AND o.option = answers.response AND o.pos <> answers.response_code)",
    )
    if mism[0]:
        raise InvalidValueError(
            f"answers: column 'response_code' disagrees with the position of 'response' in the item's "
            f"options in {_rows_text(*mism)}. Expected: the 0-based position. Fix: drop the column "
            "(it is derived) or declare the options in the order the codes assume."
        )


def _derive_answers(con: duckdb.DuckDBPyConnection, *, items_inferred: bool, diagnostics: list[str]) -> None:
    if items_inferred:
        changed = con.execute(
            "SELECT count(*) FROM answers a JOIN item_options o ON o.item = a.item AND o.option = a.response "
            "WHERE a.response_code IS NOT NULL AND a.response_code <> o.pos"
        ).fetchall()[0][0]
        if changed:
            diagnostics.append(
                f"response_code renumbered on {changed} row(s) to positions among the observed options "
                "(items were inferred and some options were never answered); pass items=... to keep them"
            )
        con.execute("UPDATE answers SET response_code = NULL")
    con.execute(
        "UPDATE answers SET response_code = o.pos FROM item_options o "
        "WHERE answers.response_code IS NULL AND o.item = answers.item AND o.option = answers.response"
    )
    con.execute(
        "UPDATE answers SET response_value = TRY_CAST(response AS DOUBLE) "
        "WHERE response_value IS NULL AND item IN (SELECT item FROM items WHERE scale = 'numeric')"
    )
    con.execute(
        "UPDATE answers SET role = i.role FROM items i WHERE answers.role IS NULL AND i.item = answers.item"
    )
    # explicit role arguments win over the answers column
    con.execute(
        "UPDATE answers SET role = i.role FROM items i WHERE i.item = answers.item AND answers.role <> i.role"
    )


def _check_keys(con: duckdb.DuckDBPyConnection) -> None:
    keys = list(ANSWER_KEYS)
    k = ", ".join(qi(c) for c in keys)
    # fast pre-check on one hash per row; the detailed (expensive) query runs only on a hit
    n_rows, n_distinct = con.execute(
        f"SELECT count(*), count(DISTINCT hash({k}, CASE WHEN mode = 'dist' THEN response END)) FROM answers"
    ).fetchall()[0]
    dup = [] if n_rows == n_distinct else con.execute(
        f"""SELECT {k}, count(*), list({ROW} ORDER BY {ROW})[1:5] FROM answers
            GROUP BY {k}, CASE WHEN mode = 'dist' THEN response END HAVING count(*) > 1
            ORDER BY min({ROW}) LIMIT 1"""
    ).fetchall()
    if dup:
        total = con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM answers GROUP BY {k}, CASE WHEN mode = 'dist' THEN response END "
            "HAVING count(*) > 1)"
        ).fetchall()[0][0]
        key_text = ", ".join(f"{c}={v!r}" for c, v in zip(keys, dup[0][: len(keys)], strict=True))
        raise DuplicateKeyError(
            f"answers: {total} key(s) ({', '.join(keys)}; plus response in mode 'dist') occur on more than "
            f"one row; first: {key_text} on rows {dup[0][-1]}. Fix: give repeated answers distinct "
            "'replicate' numbers, or drop exact duplicates."
        )
    has_dist = con.execute("SELECT count(*) FROM answers WHERE mode = 'dist'").fetchall()[0][0]
    bad = [] if not has_dist else con.execute(
        f"""SELECT {k}, sum(prob) FROM answers WHERE mode = 'dist' AND valid GROUP BY {k}
            HAVING abs(sum(prob) - 1) > {PROB_TOLERANCE} LIMIT 1"""
    ).fetchall()
    if bad:
        n = con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM answers WHERE mode = 'dist' AND valid GROUP BY {k} "
            f"HAVING abs(sum(prob) - 1) > {PROB_TOLERANCE})"
        ).fetchall()[0][0]
        raise InvalidValueError(
            f"answers: probabilities of {n} distribution-mode answer(s) do not sum to 1 (tolerance "
            f"{PROB_TOLERANCE}); first: unit_id={bad[0][keys.index("unit_id")]!r}, item={bad[0][keys.index("item")]!r}, sum={bad[0][-1]:.6g}. "
            "Fix: renormalise over the item's options."
        )
    units, unit_arms = con.execute(
        "SELECT count(DISTINCT unit_id), count(DISTINCT hash(unit_id, arm)) FROM answers").fetchall()[0]
    two_arms = [] if units == unit_arms else con.execute(
        "SELECT unit_id, list(DISTINCT arm) FROM answers GROUP BY unit_id HAVING count(DISTINCT arm) > 1 LIMIT 1"
    ).fetchall()
    if two_arms:
        raise InvalidValueError(
            f"answers: unit_id {two_arms[0][0]!r} appears in several arms {two_arms[0][1]}. A unit is one "
            "persona instance in one arm. Fix: give each (persona, arm) its own unit_id and link them "
            "with persona_id."
        )


def _build_arms(con: duckdb.DuckDBPyConnection, diagnostics: list[str]) -> None:
    if _exists(con, "raw_arms"):
        _typed(con, "raw_arms", ARMS, "arms", table_label="arms", keep_extras=False)
        _check_unique(con, "arms", "arms", ["arm"], "each arm must appear once in the arms table.")
        _check_values(con, "arms", "arms", "kind", f"kind NOT IN ({', '.join(repr(k) for k in ARM_KINDS)})",
                      f"one of {list(ARM_KINDS)}", "recode the kind column.")
        empty = con.execute(
            "SELECT arm FROM arms WHERE arm NOT IN (SELECT DISTINCT arm FROM answers) ORDER BY __row"
        ).fetchall()
        if empty:
            counts = con.execute("SELECT arm, count(*) FROM answers GROUP BY arm ORDER BY arm").fetchall()
            raise EmptyArmError(
                f"arms: declared arm(s) {[r[0] for r in empty]} have no rows in the answers "
                f"(rows per arm: {dict(counts)}). Fix: check the arm labels (after mapping), or drop "
                "the arm from the arms table."
            )
        undeclared = _offending(con, "answers", "arm NOT IN (SELECT arm FROM arms)")
        if undeclared[0]:
            names = [r[0] for r in con.execute(
                "SELECT arm FROM answers WHERE arm NOT IN (SELECT arm FROM arms) GROUP BY arm "
                f"ORDER BY min({ROW}) LIMIT 5").fetchall()]
            declared = [r[0] for r in con.execute(f"SELECT arm FROM arms ORDER BY {ROW}").fetchall()]
            raise InvalidValueError(
                f"answers: column 'arm' holds arm(s) {names} missing from the arms table (declared: "
                f"{declared}) in {_rows_text(*undeclared)}. Fix: declare every arm in the arms table."
            )
    else:
        con.execute(
            f"""CREATE OR REPLACE TABLE arms AS
                SELECT row_number() OVER (ORDER BY arm) - 1 AS {ROW}, arm,
                       CASE WHEN lower(arm) IN ('control', 'ctrl', 'placebo_control') THEN 'control'
                            ELSE 'treatment' END AS kind,
                       CAST(NULL AS VARCHAR) AS intervention
                FROM (SELECT DISTINCT arm FROM answers)"""
        )
        diagnostics.append(
            "no arms table: arms inferred from the answers; kinds inferred from the names (an arm named "
            "'control' or 'ctrl' is the control, every other arm a treatment, the schema's default); "
            "pass arms=... to declare kinds (e.g. placebo) and interventions")


def _build_personas(con: duckdb.DuckDBPyConnection, persona_cols: Sequence[str], diagnostics: list[str]) -> None:
    parts = []
    if _exists(con, "raw_personas"):
        _typed(con, "raw_personas", PERSONAS, "personas_given", table_label="personas", keep_extras=False)
        parts.append("SELECT __row, unit_id, attribute, value, specified FROM personas_given")
    if persona_cols:
        for c in persona_cols:
            conflict = con.execute(
                f"SELECT unit_id FROM answers GROUP BY unit_id HAVING count(DISTINCT {qi(c)}) > 1 LIMIT 1"
            ).fetchall()
            if conflict:
                raise InvalidValueError(
                    f"answers: persona column {c!r} takes several values for unit {conflict[0][0]!r}. "
                    "Expected: one value per unit. Fix: check the unit_id mapping."
                )
        union = " UNION ALL ".join(
            f"SELECT DISTINCT unit_id, ? AS attribute, CAST({qi(c)} AS VARCHAR) AS value FROM answers"
            for c in persona_cols
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE personas_wide_in AS SELECT row_number() OVER () - 1 + 1000000000 AS __row, "
            f"unit_id, attribute, value, TRUE AS specified FROM ({union})",
            list(persona_cols),
        )
        parts.append("SELECT __row, unit_id, attribute, value, specified FROM personas_wide_in")
    if parts:
        con.execute(f"CREATE OR REPLACE TABLE personas AS {' UNION ALL '.join(parts)}")
    else:
        con.execute(
            "CREATE OR REPLACE TABLE personas (__row BIGINT, unit_id VARCHAR, attribute VARCHAR, value VARCHAR, specified BOOLEAN)"
        )
        diagnostics.append("no persona table: persona attributes unknown (fidelity checks unavailable)")
    _check_unique(con, "personas", "personas", ["unit_id", "attribute"],
                  "give each unit one value per attribute.")
    orphan = _offending(con, "personas", "unit_id NOT IN (SELECT DISTINCT unit_id FROM answers)")
    if orphan[0]:
        raise InvalidValueError(
            f"personas: units without answers in {_rows_text(*orphan)}. Fix: check the unit_id values."
        )
    # fidelity items without an attribute re-ask the persona attribute of the same name
    con.execute(
        "UPDATE items SET attribute = item WHERE role = 'fidelity' AND attribute IS NULL "
        "AND item IN (SELECT DISTINCT attribute FROM personas)"
    )


def _in_list(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _json_array_problem(text: str, allowed: Sequence[str] | None) -> str | None:
    """Why ``text`` is not a JSON array of distinct strings (drawn from ``allowed``); None when it is."""
    try:
        value = json.loads(text)
    except ValueError:
        return "not valid JSON"
    if not isinstance(value, list):
        return f"a JSON {type(value).__name__ if value is not None else 'null'}, not an array"
    if not all(isinstance(v, str) for v in value):
        return "an element that is not a string"
    if allowed is not None and (unknown := [v for v in value if v not in allowed]):
        return f"unknown name {unknown[0]!r}"
    if len(set(value)) != len(value):
        repeated = next(v for i, v in enumerate(value) if v in value[:i])
        return f"{repeated!r} listed twice"
    return None


def _check_json_arrays(con: duckdb.DuckDBPyConnection, rel: str, label: str, column: str, *, expected: str,
                       fix: str, allowed: Sequence[str] | None = None) -> None:
    """Every non-NULL cell of ``column`` is a JSON array of distinct strings (from ``allowed`` when given).

    Checked in Python: the side tables are small, and DuckDB's JSON functions raise on invalid text
    instead of returning NULL.
    """
    values = con.execute(
        f"SELECT {ROW}, {qi(column)} FROM {qi(rel)} WHERE {qi(column)} IS NOT NULL ORDER BY {ROW}").fetchall()
    bad = [(row, text, why) for row, text in values if (why := _json_array_problem(text, allowed)) is not None]
    if bad:
        examples = list(dict.fromkeys(text for _, text, _ in bad))[:3]
        raise InvalidValueError(
            f"{label}: column {column!r} has unexpected values in {_rows_text(len(bad), [b[0] for b in bad[:5]])} "
            f"(e.g. {examples}; the first holds {bad[0][2]}). Expected: {expected}. Fix: {fix}"
        )


def _empty_table(con: duckdb.DuckDBPyConnection, name: str, fields: tuple[Field, ...]) -> None:
    cols = ", ".join(f"CAST(NULL AS {f.sql}) AS {qi(f.name)}" for f in fields)
    con.execute(f"CREATE OR REPLACE TABLE {qi(name)} AS SELECT CAST(NULL AS BIGINT) AS {ROW}, {cols} LIMIT 0")


def _build_iterations(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``iterations`` (empty when not given) and check it against itself and the answers."""
    if not _exists(con, "raw_iterations"):
        _empty_table(con, "iterations", ITERATIONS)
        return
    label = "iterations"
    _typed(con, "raw_iterations", ITERATIONS, "iterations", table_label=label, keep_extras=False)
    _check_values(con, "iterations", label, "iteration", "iteration < 0", "an integer >= 0 (0 = the base spec)",
                  "renumber iterations from 0.")
    _check_values(con, "iterations", label, "units", "units < 0", "a count >= 0 or NULL", "correct the units column.")
    _check_unique(con, "iterations", label, TABLE_KEYS["iterations"],
                  "give each (study, model, path) one row per iteration.")
    _check_json_arrays(con, "iterations", label, "spec", expected='a JSON array of distinct attribute names, e.g. '
                       '["age", "party"]', fix="write the spec as a JSON array of strings.")
    _check_json_arrays(con, "iterations", label, "rules_fired", allowed=STOP_RULES,
                       expected=f"a JSON array of distinct stopping rules from {list(STOP_RULES)} ('[]' when none)",
                       fix="write the rules that hold as a JSON array of these names.")
    _check_values(con, "iterations", label, "stopped_by",
                  f"stopped_by IS NOT NULL AND stopped_by NOT IN ({_in_list(STOP_RULES)})",
                  f"NULL or one of {list(STOP_RULES)}", "recode the stopped_by column.")
    _check_values(con, "iterations", label, "stopped_by",
                  "stopped_by IS NOT NULL AND NOT list_contains(CAST(from_json(rules_fired, '[\"VARCHAR\"]') "
                  "AS VARCHAR[]), stopped_by)",
                  "one of the rules in the row's rules_fired (the rule that ended the path held after the iteration)",
                  "add the rule to rules_fired, or correct stopped_by.")
    where = ("EXISTS (SELECT 1 FROM iterations s WHERE s.study = iterations.study AND s.model = iterations.model "
             "AND s.path = iterations.path AND s.stopped_by IS NOT NULL AND s.iteration < iterations.iteration)")
    n, rows = _offending(con, "iterations", where)
    if n:
        first = con.execute(
            f"""SELECT i.study, i.model, i.path, i.iteration, s.iteration, s.stopped_by FROM iterations i
                JOIN iterations s ON s.study = i.study AND s.model = i.model AND s.path = i.path
                 AND s.stopped_by IS NOT NULL AND s.iteration < i.iteration
                ORDER BY i.{ROW}, s.iteration LIMIT 1""").fetchall()[0]
        raise InvalidValueError(
            f"iterations: {_rows_text(n, rows)} come after the iteration that ended their path; first: study="
            f"{first[0]!r}, model={first[1]!r}, path={first[2]!r}, iteration={first[3]} after iteration {first[4]} "
            f"stopped by {first[5]!r}. Expected: stopped_by set on the last iteration of a path only. Fix: set "
            "stopped_by NULL where the path went on, or drop the later rows."
        )
    # each iteration names answers that exist: its model, iteration number and run_id
    con.execute("CREATE OR REPLACE TEMP TABLE __runs AS SELECT DISTINCT model, iteration, run_id FROM answers")
    where = ("NOT EXISTS (SELECT 1 FROM __runs r WHERE r.model = iterations.model AND r.iteration = "
             "iterations.iteration AND r.run_id = iterations.run_id)")
    n, rows = _offending(con, "iterations", where)
    if n:
        model, iteration, run_id = con.execute(
            f"SELECT model, iteration, run_id FROM iterations WHERE {where} ORDER BY {ROW} LIMIT 1").fetchall()[0]
        held = con.execute(
            "SELECT iteration, run_id FROM __runs WHERE model = ? ORDER BY iteration, run_id LIMIT 9", [model]
        ).fetchall()
        if held:
            pairs = ", ".join(f"({i}, {r!r})" for i, r in held[:8]) + (", ..." if len(held) > 8 else "")
            what = f"the answers of model {model!r} hold (iteration, run_id) {pairs}"
        else:
            models = [r[0] for r in con.execute("SELECT DISTINCT model FROM __runs ORDER BY model LIMIT 9").fetchall()]
            what = f"the answers hold no model {model!r} (models: {_names(models)})"
        con.execute("DROP TABLE __runs")
        raise InvalidValueError(
            f"iterations: {_rows_text(n, rows)} name answers that do not exist; first: model={model!r}, "
            f"iteration={iteration}, run_id={run_id!r}, but {what}. Expected: each row's (model, iteration, "
            "run_id) matches answers of the log (iteration 0 of every path is the base run). Fix: correct the "
            "model, iteration or run_id, or drop the rows of iterations whose answers are not in the log."
        )
    con.execute("DROP TABLE __runs")


def _build_adjustments(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``adjustments`` (empty when not given); its paths must be paths of ``iterations``."""
    if not _exists(con, "raw_adjustments"):
        _empty_table(con, "adjustments", ADJUSTMENTS)
        return
    label = "adjustments"
    _typed(con, "raw_adjustments", ADJUSTMENTS, "adjustments", table_label=label, keep_extras=False)
    _check_values(con, "adjustments", label, "iteration", "iteration < 0", "an integer >= 0 (0 = the base spec)",
                  "renumber iterations from 0.")
    _check_unique(con, "adjustments", label, TABLE_KEYS["adjustments"],
                  "describe each attribute once per (study, model, path, iteration).")
    _check_values(con, "adjustments", label, "status", f"status NOT IN ({_in_list(ADJUSTMENT_STATUSES)})",
                  f"one of {list(ADJUSTMENT_STATUSES)}", "recode the status column.")
    _check_values(con, "adjustments", label, "source", f"source NOT IN ({_in_list(ADJUSTMENT_SOURCES)})",
                  f"one of {list(ADJUSTMENT_SOURCES)}", "recode the source column.")
    _check_json_arrays(con, "adjustments", label, "options", expected='NULL or a JSON array of distinct strings, '
                       'e.g. ["Yes", "No"]', fix="write the probe's options as a JSON array.")
    where = ("NOT EXISTS (SELECT 1 FROM iterations i WHERE i.study = adjustments.study AND i.model = "
             "adjustments.model AND i.path = adjustments.path)")
    n, rows = _offending(con, "adjustments", where)
    if n:
        study, model, path = con.execute(
            f"SELECT study, model, path FROM adjustments WHERE {where} ORDER BY {ROW} LIMIT 1").fetchall()[0]
        paths = [f"({s!r}, {m!r}, {p!r})" for s, m, p in con.execute(
            "SELECT DISTINCT study, model, path FROM iterations ORDER BY ALL LIMIT 9").fetchall()]
        held = (f"the iterations table holds (study, model, path) {', '.join(paths[:8])}"
                f"{', ...' if len(paths) > 8 else ''}" if paths else "the log has no iterations table")
        raise InvalidValueError(
            f"adjustments: {_rows_text(n, rows)} describe paths that are not in the iterations table; first: "
            f"study={study!r}, model={model!r}, path={path!r}, but {held}. Expected: every (study, model, path) "
            "of adjustments has its iterations. Fix: give the iterations table too (read_log(..., iterations=...) "
            "or a sidecar such as runs.iterations.parquet), or correct the study, model and path columns."
        )


def _json_value_problem(text: str) -> str | None:
    """Why ``text`` is not a JSON array (of any values); None when it is."""
    try:
        value = json.loads(text)
    except ValueError:
        return "not valid JSON"
    return None if isinstance(value, list) else f"a JSON {type(value).__name__ if value is not None else 'null'}, not an array"


def _build_transcripts(con: duckdb.DuckDBPyConnection, diagnostics: list[str]) -> None:
    """Create ``transcripts`` (empty when not given): check it, derive missing hashes, flag empty messages.

    The message hashes are checked where given (``sha256`` = :func:`text_sha256` of ``text``;
    ``dialogue_sha256`` = the running :func:`chain_sha256` within the unit, in message order) and
    filled where missing; a unit's answers that give ``dialogue_sha256`` must name its last message's.
    """
    if not _exists(con, "raw_transcripts"):
        _empty_table(con, "transcripts", TRANSCRIPTS)
        return
    label = "transcripts"
    _typed(con, "raw_transcripts", TRANSCRIPTS, "transcripts", table_label=label, keep_extras=False)
    _check_values(con, "transcripts", label, "message", "message < 0", "an integer >= 0 (0 = the first message)",
                  "number each unit's messages from 0.")
    _check_values(con, "transcripts", label, "turn", "turn < 0", "an integer >= 0 (0 = the first turn)",
                  "number each unit's turns from 0.")
    _check_unique(con, "transcripts", label, TABLE_KEYS["transcripts"],
                  "give each message of a unit its own position (message = 0, 1, 2, ...).")
    _check_values(con, "transcripts", label, "role", f"role NOT IN ({_in_list(MESSAGE_ROLES)})",
                  f"one of {list(MESSAGE_ROLES)}", "recode the role column (the simulated user is 'user', the agent "
                  "under evaluation 'assistant').")
    values = con.execute(
        f"SELECT {ROW}, tool_calls FROM transcripts WHERE tool_calls IS NOT NULL ORDER BY {ROW}").fetchall()
    bad = [(row, text, why) for row, text in values if (why := _json_value_problem(text)) is not None]
    if bad:
        raise InvalidValueError(
            f"transcripts: column 'tool_calls' has unexpected values in "
            f"{_rows_text(len(bad), [b[0] for b in bad[:5]])} (e.g. {[b[1] for b in bad[:3]]}; the first is "
            f"{bad[0][2]}). Expected: NULL or a JSON array of the message's tool calls. Fix: write the calls as a "
            "JSON array (a list of objects).")
    n, rows = _offending(con, "transcripts", "unit_id NOT IN (SELECT DISTINCT unit_id FROM answers)")
    if n:
        names = [r[0] for r in con.execute(
            "SELECT unit_id FROM transcripts WHERE unit_id NOT IN (SELECT DISTINCT unit_id FROM answers) "
            f"GROUP BY unit_id ORDER BY min({ROW}) LIMIT 3").fetchall()]
        raise InvalidValueError(
            f"transcripts: {_rows_text(n, rows)} belong to units without answers (e.g. unit_id {names}). "
            "Expected: every transcript's unit_id is a unit of the answers. Fix: check the unit_id values, or "
            "drop the transcripts of units that are not in the log.")
    _check_hashes(con)
    where = "(text IS NULL OR text = '') AND (tool_calls IS NULL OR tool_calls = '[]')"
    n_empty = con.execute(f"SELECT count(*) FROM transcripts WHERE {where}").fetchall()[0][0]
    if n_empty:
        con.execute(f"UPDATE transcripts SET valid = false, error = coalesce(error, ?) WHERE {where}",
                    [EMPTY_MESSAGE_ERROR])
        diagnostics.append(f"{n_empty} transcript message(s) have no text and no tool calls: kept, flagged invalid "
                           f"(error {EMPTY_MESSAGE_ERROR!r})")


def _check_hashes(con: duckdb.DuckDBPyConnection) -> None:
    """Check the given message and dialogue hashes, fill the missing ones (Python: one pass in key order)."""
    rows = con.execute(
        f"SELECT {ROW}, unit_id, role, text, sha256, dialogue_sha256 FROM transcripts ORDER BY unit_id, message"
    ).fetchall()
    sha: list[str | None] = []
    chain: list[str] = []
    bad_sha: list[int] = []
    bad_chain: list[tuple[int, str]] = []
    last: dict[str, str] = {}
    prev, unit = "", None
    for row, unit_id, role, text, given_sha, given_chain in rows:
        if unit_id != unit:
            prev, unit = "", unit_id
        h = text_sha256(text)
        if given_sha is not None and given_sha != h:
            bad_sha.append(row)
        prev = chain_sha256(prev, role, text)
        if given_chain is not None and given_chain != prev:
            bad_chain.append((row, unit_id))
        sha.append(h)
        chain.append(prev)
        last[unit_id] = prev
    if bad_sha:
        bad_sha.sort()
        raise InvalidValueError(
            f"transcripts: column 'sha256' does not match the sha256 of the message text in "
            f"{_rows_text(len(bad_sha), bad_sha[:5])}: the text is not the text that was hashed (a corrupt or altered "
            "log). Expected: sha256 = driftstats.log.dialogue.text_sha256(text), or NULL (derived). Fix: re-create "
            "the log from its source; drop the sha256 column only if the texts are known to be right.")
    if bad_chain:
        bad_chain.sort()
        units = list(dict.fromkeys(u for _, u in bad_chain))
        raise InvalidValueError(
            f"transcripts: column 'dialogue_sha256' does not follow the hash chain of its unit's messages in "
            f"{_rows_text(len(bad_chain), [r for r, _ in bad_chain[:5]])} (units {_names(units)}): a message was "
            "changed, removed, reordered or inserted (a corrupt or altered log). Expected: each message's value is "
            "driftstats.log.dialogue.chain_sha256(previous value, role, text) in message order ('' before the "
            "first), or NULL (derived). Fix: re-create the log from its source.")
    con.register("__hashes_in", pa.table({
        ROW: pa.array([r[0] for r in rows], pa.int64()),
        "sha256": pa.array(sha, pa.string()),
        "dialogue_sha256": pa.array(chain, pa.string()),
    }))
    con.execute("UPDATE transcripts SET sha256 = h.sha256, dialogue_sha256 = h.dialogue_sha256 "
                f"FROM __hashes_in h WHERE transcripts.{ROW} = h.{ROW}")
    con.unregister("__hashes_in")
    # the answers of a unit with a transcript name its last message's hash (when they give one)
    con.register("__last_in", pa.table({"unit_id": pa.array(list(last), pa.string()),
                                        "last": pa.array(list(last.values()), pa.string())}))
    where = ("dialogue_sha256 IS NOT NULL AND EXISTS (SELECT 1 FROM __last_in l WHERE l.unit_id = answers.unit_id "
             "AND l.last <> answers.dialogue_sha256)")
    n, bad = _offending(con, "answers", where)
    if n:
        units = [r[0] for r in con.execute(
            f"SELECT unit_id FROM answers WHERE {where} GROUP BY unit_id ORDER BY min({ROW}) LIMIT 9").fetchall()]
        con.unregister("__last_in")
        raise InvalidValueError(
            f"answers: column 'dialogue_sha256' does not name the unit's transcript in {_rows_text(n, bad)} (units "
            f"{_names(units)}): the answers were asked after another dialogue than the one in the transcripts table "
            "(a corrupt or mixed log). Expected: the dialogue_sha256 of the unit's last message, or NULL. Fix: "
            "re-create the log from its source, or pair the answers with their own transcripts.")
    con.unregister("__last_in")


def build_tables(
    con: duckdb.DuckDBPyConnection,
    *,
    roles: Mapping[str, str],
    persona_cols: Sequence[str] = (),
    missing: Missing = "error",
    likert: bool = False,
    item_levels: Mapping[str, Sequence[str]] | None = None,
    response_levels: Sequence[str] | None = None,
) -> list[str]:
    """Validate the raw relations and create the typed tables; return diagnostics.

    ``missing='invalid'`` turns valid rows without a response into invalid rows (error text
    ``'missing response'``); ``item_levels`` / ``response_levels`` are option orders known from
    ordered categoricals (used only when no items table is given), ``likert`` recognises
    standard Likert labels then.
    """
    diagnostics: list[str] = []
    n = con.execute("SELECT count(*) FROM raw_answers").fetchall()[0][0]
    if n == 0:
        raise EmptyLogError(
            "answers: the log has no rows. Fix: check the source path / table, or the filter applied "
            "before reading."
        )
    extras = _typed(con, "raw_answers", ANSWERS, "answers", table_label="answers", keep_extras=True)
    missing_persona = [c for c in persona_cols if c not in extras]
    if missing_persona:
        raise MissingColumnError(
            f"answers: persona column(s) {missing_persona} named in persona= are missing. "
            f"Extra columns available: {extras}."
        )
    if missing == "invalid":
        n_missing = con.execute("SELECT count(*) FROM answers WHERE valid AND response IS NULL").fetchall()[0][0]
        if n_missing:
            con.execute("UPDATE answers SET valid = false, error = coalesce(error, ?) WHERE valid AND response IS NULL",
                        [MISSING_ERROR])
            diagnostics.append(f"missing='invalid': {n_missing} answer row(s) without a response marked invalid "
                               f"(error {MISSING_ERROR!r})")
    items_inferred = _build_items(con, roles, diagnostics, item_levels=item_levels or {},
                                  response_levels=response_levels, likert=likert)
    _check_answers(con, items_inferred=items_inferred)
    _derive_answers(con, items_inferred=items_inferred, diagnostics=diagnostics)
    _check_keys(con)
    _build_arms(con, diagnostics)
    _build_personas(con, persona_cols, diagnostics)
    _build_iterations(con)
    _build_adjustments(con)
    _build_transcripts(con, diagnostics)
    for c in persona_cols:  # moved to the personas table
        con.execute(f"ALTER TABLE answers DROP COLUMN {qi(c)}")
    invalid = con.execute("SELECT count(*) FROM answers WHERE NOT valid").fetchall()[0][0]
    if invalid:
        diagnostics.append(f"{invalid} answer row(s) are flagged invalid (kept; analyses leave them out)")
    # answers were created in source order: dropping the helper column is enough (no sort, no copy);
    # the small side tables may come from unordered queries, so they are rewritten in order
    con.execute(f"ALTER TABLE answers DROP COLUMN {ROW}")
    for table in ("items", "arms", "personas"):
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * EXCLUDE ({ROW}) FROM {table} ORDER BY {ROW}")
    for table in OPTIONAL_TABLES:  # ordered by their keys
        keys = ", ".join(qi(k) for k in TABLE_KEYS[table])
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * EXCLUDE ({ROW}) FROM {table} ORDER BY {keys}")
    return diagnostics
