"""The validated log object and :func:`read_log`."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from driftstats._args import as_columns
from driftstats.errors import InvalidArgumentError
from driftstats.log._sql import connect, qi
from driftstats.log.build import build_tables
from driftstats.log.edsl import from_edsl, read_edsl_frame
from driftstats.log.io import (
    SIDE_TABLES,
    format_from_path,
    load_frame,
    load_path,
    sidecar,
    write_tables,
)
from driftstats.log.schema import ANSWERS, ARMS, ITEMS, PERSONAS, SqlType
from driftstats.log.summary import LogSummary, summarize_log

__all__ = ["ItemInfo", "SimLog", "as_log", "read_log"]

ReadFormat = Literal["parquet", "csv", "jsonl", "duckdb", "edsl"]
Source = str | Path | pd.DataFrame

_PANDAS_TYPES: dict[SqlType, str] = {
    "VARCHAR": "string",
    "BIGINT": "Int64",
    "DOUBLE": "float64",
    "BOOLEAN": "boolean",
}
_FIELDS = {"answers": ANSWERS, "items": ITEMS, "personas": PERSONAS, "arms": ARMS}


@dataclass(frozen=True, slots=True)
class ItemInfo:
    """One item: its text, options in order, scale and role."""

    item: str
    text: str | None
    options: tuple[str, ...] | None
    scale: str
    role: str
    attribute: str | None

    @property
    def n_levels(self) -> int | None:
        return None if self.options is None else len(self.options)


class SimLog:
    """A validated simulation log (see ``docs/schema.md``).

    Holds four tables (``answers``, ``items``, ``personas``, ``arms``) in an in-process
    DuckDB database, so the same log can be queried with pandas (:meth:`to_pandas`)
    or SQL (:meth:`sql`). Create one with :func:`read_log`.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, *, diagnostics: Sequence[str], source: str) -> None:
        self._con = con
        self.diagnostics: tuple[str, ...] = tuple(diagnostics)
        self.source = source
        items = con.execute(
            "SELECT item, text, options, scale, role, attribute FROM items ORDER BY item"
        ).fetchall()
        self._items: dict[str, ItemInfo] = {
            r[0]: ItemInfo(r[0], r[1], None if r[2] is None else tuple(json.loads(r[2])), r[3], r[4], r[5])
            for r in items
        }
        self._arms: tuple[str, ...] = tuple(r[0] for r in con.execute("SELECT arm FROM arms").fetchall())
        self._n_rows: int = con.execute("SELECT count(*) FROM answers").fetchall()[0][0]
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ access
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection holding the tables (read them; do not modify them)."""
        return self._con

    def __len__(self) -> int:
        return self._n_rows

    @property
    def n_rows(self) -> int:
        return self._n_rows

    def to_pandas(self, table: Literal["answers", "items", "personas", "arms"] = "answers") -> pd.DataFrame:
        """A table as a pandas DataFrame with schema dtypes (nullable ``Int64``, ``string``, ...)."""
        if table not in _FIELDS:
            raise InvalidArgumentError(f"table must be one of {list(_FIELDS)}; got {table!r}.")
        frame = self._con.execute(f"SELECT * FROM {qi(table)}").df()
        for f in _FIELDS[table]:
            if f.name in frame.columns and f.sql in _PANDAS_TYPES:
                frame[f.name] = frame[f.name].astype(_PANDAS_TYPES[f.sql])
        return frame

    @property
    def items(self) -> pd.DataFrame:
        return self.to_pandas("items")

    @property
    def arms(self) -> pd.DataFrame:
        return self.to_pandas("arms")

    @property
    def personas(self) -> pd.DataFrame:
        return self.to_pandas("personas")

    def personas_wide(self, *, specified: bool | None = None) -> pd.DataFrame:
        """One row per unit, one column per persona attribute (values as text)."""
        frame = self.personas
        if specified is not None:
            frame = frame[frame["specified"] == specified]
        if frame.empty:
            return pd.DataFrame({"unit_id": pd.Series([], dtype="string")})
        wide = frame.pivot(index="unit_id", columns="attribute", values="value")
        wide.columns.name = None
        return wide.reset_index()

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a SQL query against the log's tables (``answers``, ``items``, ``personas``, ``arms``)."""
        return self._con.execute(query, list(params or [])).df()

    @property
    def arm_names(self) -> tuple[str, ...]:
        return self._arms

    def arm_kind(self, arm: str) -> str | None:
        r = self._con.execute("SELECT kind FROM arms WHERE arm = ?", [arm]).fetchall()
        return r[0][0] if r else None

    def arms_of_kind(self, kind: str) -> tuple[str, ...]:
        return tuple(r[0] for r in self._con.execute("SELECT arm FROM arms WHERE kind = ?", [kind]).fetchall())

    @property
    def reference_arm(self) -> str:
        """The control arm when declared, otherwise the first arm."""
        controls = self.arms_of_kind("control")
        return controls[0] if controls else self._arms[0]

    def item(self, name: str) -> ItemInfo:
        try:
            return self._items[name]
        except KeyError:
            raise InvalidArgumentError(
                f"item {name!r} is not in this log; items: {sorted(self._items)}."
            ) from None

    def item_names(self, role: str | None = None) -> tuple[str, ...]:
        return tuple(n for n, i in self._items.items() if role is None or i.role == role)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(r[0] for r in self._con.execute("SELECT DISTINCT mode FROM answers ORDER BY mode").fetchall())

    def columns(self) -> tuple[str, ...]:
        return tuple(r[0] for r in self._con.execute("DESCRIBE answers").fetchall())

    def fingerprint(self) -> str:
        """A content hash of the four tables (16 hex digits), independent of row order.

        Every result computed from this log carries it in ``provenance``, so a number can be
        traced to the exact data it came from. Computed once (one scan) and cached.
        """
        if self._fingerprint is None:
            import hashlib

            h = hashlib.sha256()
            for table in ("answers", "items", "personas", "arms"):
                n, x = self._con.execute(
                    f"SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM {qi(table)} AS t").fetchall()[0]
                h.update(f"{table}:{n}:{x};".encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    # ------------------------------------------------------------------ output
    def write(self, path: str | Path, *, format: Literal["parquet", "csv", "jsonl", "duckdb"] | None = None) -> list[Path]:
        """Write the log (format from the suffix); side tables go to sidecar files.

        Returns the paths written. The write is atomic per file.
        """
        path = Path(path)
        fmt = format or format_from_path(path)
        return write_tables(self._con, path, fmt)

    def summary(self) -> LogSummary:
        """Sizes, invalid answers by arm and item, provenance completeness."""
        return summarize_log(self)

    def __repr__(self) -> str:
        arms = ", ".join(self._arms)
        roles: dict[str, int] = {}
        for i in self._items.values():
            roles[i.role] = roles.get(i.role, 0) + 1
        role_text = ", ".join(f"{n} {r}" for r, n in sorted(roles.items()))
        return (
            f"<SimLog: {self._n_rows} answer rows; arms: {arms}; items: {len(self._items)} ({role_text}); "
            f"modes: {', '.join(self.modes)}>"
        )

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(repr(self))}</p>" + self.summary()._repr_html_()


def _role_map(
    nco: str | Sequence[str] | None,
    primary: str | Sequence[str] | None,
    fidelity: str | Sequence[str] | None,
    roles: Mapping[str, str] | None,
) -> dict[str, str]:
    out: dict[str, str] = dict(roles or {})
    for role, names in (("nco", nco), ("primary", primary), ("fidelity", fidelity)):
        for n in as_columns(role, names):
            if n in out and out[n] != role:
                raise InvalidArgumentError(f"item {n!r} is given two roles: {out[n]!r} and {role!r}.")
            out[n] = role
    return out


def read_log(
    source: Source,
    *,
    format: ReadFormat | None = None,
    mapping: Mapping[str, str] | None = None,
    items: Source | None = None,
    personas: Source | None = None,
    arms: Source | None = None,
    persona: str | Sequence[str] | None = None,
    nco: str | Sequence[str] | None = None,
    primary: str | Sequence[str] | None = None,
    fidelity: str | Sequence[str] | None = None,
    roles: Mapping[str, str] | None = None,
    arm: str | None = None,
    table: str | None = None,
) -> SimLog:
    """Read and validate a simulation log.

    Parameters
    ----------
    source
        A path (``.parquet``, ``.csv``, ``.jsonl``, ``.duckdb``) or a pandas DataFrame of
        answers. Side tables are read from sidecar files (``runs.items.parquet``, ...) or
        the DuckDB file's tables when present.
    format
        Overrides the suffix; ``"edsl"`` imports an edsl ``Results`` export (CSV/JSONL).
    mapping
        ``{"their_column": "schema_column"}`` for foreign logs.
    items, personas, arms
        Side tables as DataFrames or paths (override sidecars). ``items["options"]`` may
        hold Python lists.
    persona
        Columns of the answers holding persona attributes (one value per unit); they are
        moved to the personas table.
    nco, primary, fidelity, roles
        Assign item roles by name (override the log's own).
    arm
        The column that names the arm (shortcut for ``mapping={arm: "arm"}``; for edsl
        e.g. ``"scenario.arm"``).
    table
        For DuckDB sources: the answers table name (default ``answers``).

    Returns
    -------
    SimLog

    Raises
    ------
    EmptyLogError, MissingColumnError, ColumnTypeError, InvalidValueError,
    UnknownOptionError, DuplicateKeyError, EmptyArmError, SingleOptionItemError
        See ``docs/schema.md``; every message names the column, the offending rows and the fix.
    """
    role_map = _role_map(nco, primary, fidelity, roles)
    persona_cols = as_columns("persona", persona)
    con = connect()
    label = "DataFrame" if isinstance(source, pd.DataFrame) else str(source)
    if format == "edsl":
        if arm is None:
            raise InvalidArgumentError(
                "format='edsl' needs arm='scenario.<key>': the scenario column that names the arm."
            )
        frame = source if isinstance(source, pd.DataFrame) else read_edsl_frame(Path(source))
        tables = from_edsl(frame, arm=arm, roles=role_map)
        for name, t in tables.items():
            override = {"personas": personas, "arms": arms, "items": items}.get(name)
            _load(con, name, override if override is not None else t)
        role_map = {}  # already applied
    else:
        map_ = dict(mapping or {})
        if arm is not None:
            map_[arm] = "arm"
        if isinstance(source, pd.DataFrame):
            load_frame(con, "answers", source)
            fmt = None
        else:
            path = Path(source)
            fmt = format or format_from_path(path)
            load_path(con, "answers", path, fmt, table=table)
            for t in SIDE_TABLES:
                if fmt == "duckdb":
                    load_path(con, t, path, fmt)
                elif sidecar(path, t).exists():
                    load_path(con, t, sidecar(path, t), fmt)
        if map_:
            _apply_mapping(con, map_)
        for name, override in (("items", items), ("personas", personas), ("arms", arms)):
            if override is not None:
                _load(con, name, override)
    diagnostics = build_tables(con, roles=role_map, persona_cols=persona_cols)
    return SimLog(con, diagnostics=diagnostics, source=label)


def _load(con: duckdb.DuckDBPyConnection, name: str, src: Source) -> None:
    if isinstance(src, pd.DataFrame):
        load_frame(con, name, src)
    else:
        path = Path(src)
        load_path(con, name, path, format_from_path(path))  # type: ignore[arg-type]


def _apply_mapping(con: duckdb.DuckDBPyConnection, mapping: Mapping[str, str]) -> None:
    cols = [r[0] for r in con.execute("DESCRIBE raw_answers").fetchall()]
    missing = [k for k in mapping if k not in cols]
    if missing:
        from driftstats.errors import MissingColumnError

        raise MissingColumnError(
            f"mapping names column(s) {missing} that the log does not have. Columns: "
            f"{[c for c in cols if c != '__row']}."
        )
    targets = [mapping.get(c, c) for c in cols]
    dupes = sorted({t for t in targets if targets.count(t) > 1})
    if dupes:
        raise InvalidArgumentError(
            f"mapping makes several columns named {dupes}. Fix: map only one column onto each schema "
            "column (drop or rename the others first)."
        )
    kind = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = 'raw_answers' AND database_name = current_database()"
    ).fetchall()[0][0]
    con.execute(f"ALTER {'VIEW' if kind else 'TABLE'} raw_answers RENAME TO raw_answers_src")
    select = ", ".join(f"{qi(c)} AS {qi(mapping.get(c, c))}" for c in cols)
    con.execute(f"CREATE VIEW raw_answers AS SELECT {select} FROM raw_answers_src")


def as_log(data: SimLog | Source, **read_kwargs: Any) -> SimLog:
    """A :class:`SimLog` from a log, a DataFrame or a path (read and validated)."""
    if isinstance(data, SimLog):
        if read_kwargs:
            raise InvalidArgumentError(
                f"read options {sorted(read_kwargs)} apply only when passing a path or a DataFrame."
            )
        return data
    if isinstance(data, (str, Path, pd.DataFrame)):
        return read_log(data, **read_kwargs)
    raise InvalidArgumentError(
        f"expected a SimLog, a pandas DataFrame or a path; got {type(data).__name__}."
    )
