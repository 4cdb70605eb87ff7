"""Readers and writers: Parquet, CSV, JSONL and DuckDB, plus the sidecar convention.

File formats hold one table per file. The answers file ``runs.parquet`` is accompanied by
sidecars ``runs.items.parquet``, ``runs.personas.parquet`` and ``runs.arms.parquet`` (same
format), and, when the log has them, ``runs.iterations.parquet`` and
``runs.adjustments.parquet`` (adjustment studies) and ``runs.transcripts.parquet`` (dialogues).
A DuckDB file holds every table (``answers``, ``items``, ``personas``, ``arms``, and the optional
``iterations``, ``adjustments``, ``transcripts`` when the log has them) plus ``meta``. The list
of tables is :data:`driftstats.log.schema.SCHEMA`. Writes go to a temporary file that replaces the target only when complete, so a
crash never leaves a half-written log.

Reading is faithful: nothing is sniffed. CSV files are read with ``,`` as delimiter, ``"``
as quote and escape (a ``"`` inside a cell is written ``""``), the first line as header and
every cell as text; JSONL lines are parsed as JSON objects and every value is taken as its
text. The schema then casts each column to its type (``build.py``), so a cell that does not
fit is an error, never a guess. A path is a path: glob characters (``*``, ``?``, ``[``) in it
are matched literally. Every failure to read a file raises
:class:`~driftstats.errors.UnreadableLogError` (one line: the file, the reason, the fix).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from driftstats._version import __version__
from driftstats.errors import (
    IncompleteLogError,
    InvalidArgumentError,
    LogNotFoundError,
    UnreadableLogError,
)
from driftstats.log._sql import qi, ql
from driftstats.log.schema import (
    OPTIONAL_TABLES,
    SCHEMA,
    SCHEMA_VERSION,
)

__all__ = [
    "FileFormat",
    "Loaded",
    "LogNotFoundError",
    "StoreState",
    "as_arrow",
    "duckdb_reason",
    "format_from_path",
    "load_frame",
    "load_path",
    "sidecar",
    "unreadable_while_reading",
    "write_tables",
]

FileFormat = Literal["parquet", "csv", "jsonl", "duckdb"]
# The tables come from the schema (driftstats.log.schema.SCHEMA): the core side tables are inferred
# from the answers when absent; the optional ones (adjustment studies, dialogues) are empty when
# absent and written only when they hold rows.

_SUFFIX: dict[str, FileFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".duckdb": "duckdb",
    ".ddb": "duckdb",
    ".db": "duckdb",
}
_LABEL = {"parquet": "Parquet", "csv": "CSV", "jsonl": "JSONL", "duckdb": "DuckDB"}
_GLOB = re.compile(r"[*?\[]")

#: CSV dialect of every file driftstats writes and reads (RFC 4180 with a header line).
CSV_OPTIONS = "FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"'"


@dataclass
class StoreState:
    """What a collector store's ``meta`` and ``units_done`` tables say about its run."""

    status: str | None = None
    units_total: int | None = None
    units_done: int | None = None

    @property
    def incomplete(self) -> bool:
        if self.status is not None and self.status != "complete":
            return True
        return self.units_total is not None and self.units_done is not None and self.units_done < self.units_total

    def describe(self) -> str:
        done = "?" if self.units_done is None else str(self.units_done)
        total = "?" if self.units_total is None else str(self.units_total)
        return f"{done} of {total} units done (status {self.status or 'unknown'})"


@dataclass
class Loaded:
    """What loading a source taught us beyond its rows."""

    #: column -> (categories as text, ordered) for categorical / dictionary columns
    categoricals: dict[str, tuple[tuple[str, ...], bool]] = field(default_factory=dict)
    store: StoreState | None = None
    #: the alias under which a DuckDB file is attached (its side tables are read from it)
    alias: str | None = None


def format_from_path(path: Path) -> FileFormat:
    fmt = _SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise InvalidArgumentError(
            f"cannot tell the format of {str(path)!r} from its suffix {path.suffix!r}; known suffixes: "
            f"{sorted(_SUFFIX)}. Fix: pass format='parquet' | 'csv' | 'jsonl' | 'duckdb'."
        )
    return fmt


def sidecar(path: Path, table: str) -> Path:
    """``runs.parquet`` -> ``runs.items.parquet``."""
    return path.with_name(f"{path.stem}.{table}{path.suffix}")


# ------------------------------------------------------------------------------ errors
def duckdb_reason(exc: BaseException) -> str:
    """The first line of a DuckDB error without its class prefix (never the SQL it echoes)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^[A-Za-z ]*Error: ", "", text).strip()
    return text if len(text) <= 200 else text[:197] + "..."


def _unreadable(name: str, path: Path, fmt: FileFormat, reason: str, fix: str) -> UnreadableLogError:
    return UnreadableLogError(
        f"{name}: cannot read {str(path)!r} as a {_LABEL[fmt]} file: {reason.rstrip('.')}. Fix: {fix}")


def unreadable_while_reading(path: Path, fmt: str, exc: BaseException) -> UnreadableLogError:
    """A DuckDB error met while validating a file-backed log (the data blocks are read lazily)."""
    label = _LABEL.get(fmt, fmt)
    return UnreadableLogError(
        f"answers: cannot read {str(path)!r} as a {label} file: {duckdb_reason(exc).rstrip('.')}. Fix: check that "
        "the file is complete and not corrupt, or re-create it from its source.")


_FIX_FORMAT = "check that the file is a {label} log (pass format=... if its suffix is wrong), or re-create it from its source."


def _check_file(name: str, path: Path, fmt: FileFormat) -> None:
    """Existence, kind, permissions, emptiness and (Parquet) magic bytes, before DuckDB sees the file."""
    if not path.exists():
        raise LogNotFoundError(
            f"{name}: no such file: {str(path)!r}. Fix: check the path (it is taken literally: glob "
            "characters such as * and [ are not expanded)."
        )
    if path.is_dir():
        raise _unreadable(name, path, fmt, "it is a directory", "pass the path of a log file, not of a folder.")
    try:
        with path.open("rb") as f:
            head = f.read(4)
            size = path.stat().st_size
            tail = b""
            if size >= 8:
                f.seek(size - 4)
                tail = f.read(4)
    except PermissionError:
        raise _unreadable(name, path, fmt, "permission denied", "make the file readable (chmod) or read a copy.") from None
    except OSError as exc:
        raise _unreadable(name, path, fmt, f"the operating system refused to read it ({exc.strerror or exc})",
                          "check the file and its storage.") from None
    if size == 0 and not (fmt == "jsonl" and name != "answers"):  # an empty JSONL side table is an empty file
        raise _unreadable(name, path, fmt, "the file is empty (0 bytes)",
                          "point to the complete log, or re-create it (e.g. SimLog.write).")
    if fmt == "parquet" and (head != b"PAR1" or tail != b"PAR1"):
        reason = "it does not start with the Parquet magic bytes" if head != b"PAR1" else \
            "it does not end with the Parquet footer (truncated?)"
        raise _unreadable(name, path, fmt, reason, _FIX_FORMAT.format(label="Parquet"))


def _reader_path(path: Path, tmp: contextlib.ExitStack) -> str:
    """The file's path as DuckDB's table readers will take it literally (they expand globs).

    Glob characters are escaped as one-character classes (``[`` -> ``[[]``); DuckDB has no
    escape for paths that also hold a backslash, so such files are read through a symlink
    with a plain name in a private temporary folder.
    """
    text = str(path.absolute())
    if not _GLOB.search(text):
        return text
    if "\\" not in text:
        return _GLOB.sub(lambda m: f"[{m.group(0)}]", text)
    folder = Path(tmp.enter_context(tempfile.TemporaryDirectory(prefix="driftstats-")))
    link = folder / f"source{path.suffix}"
    os.symlink(path.absolute(), link)
    return _reader_path(link, tmp) if _GLOB.search(str(link)) and "\\" not in str(link) else str(link)


# ------------------------------------------------------------------------------ frames
def _with_row(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    if "__row" in frame.columns:
        raise InvalidArgumentError("column name '__row' is reserved by driftstats; rename it.")
    out = frame.copy(deep=False)
    out["__row"] = np.arange(len(frame), dtype=np.int64)
    return out


def _jsonify_lists(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Side tables given as frames may hold JSON-array columns (items' options, an iteration's
    spec) as Python lists, tuples or numpy arrays (what Arrow list columns become): store them as JSON text."""
    present = [c for c in columns if c in frame.columns]
    if not present:
        return frame
    out = frame.copy()
    for c in present:
        out[c] = [
            json.dumps([_as_text(o) for o in v]) if isinstance(v, (list, tuple, np.ndarray)) else v
            for v in out[c]
        ]
    return out


def _plain_json(v: object) -> object:
    """json.dumps' fallback for what Arrow / pandas frames hold inside JSON values (numpy arrays and scalars)."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"a {type(v).__name__} is not a JSON value")


def _jsonify_values(name: str, frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """JSON-value columns (a message's tool calls) given as Python lists / dicts: stored as their JSON text."""
    present = [c for c in columns if c in frame.columns]
    if not present:
        return frame
    out = frame.copy()
    for c in present:
        try:
            out[c] = [json.dumps(_plain_json(v) if isinstance(v, np.ndarray) else v, default=_plain_json,
                                 ensure_ascii=False)
                      if isinstance(v, (list, tuple, dict, np.ndarray)) else v for v in out[c]]
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"{name}: column {c!r} holds a value that is not JSON ({exc}). Fix: give it as JSON text or as "
                "lists / dicts of strings, numbers, booleans and None.") from None
    return out


def _as_text(v: object) -> str | None:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and np.isnan(v)):
        return None
    if isinstance(v, (list, dict, tuple)):
        return json.dumps(v)
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)) and float(v).is_integer() and abs(float(v)) < 2**53:
        return str(int(v))
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


def _text_categorical(series: pd.Series) -> tuple[pd.Series, tuple[tuple[str, ...], bool]]:
    """A categorical column as text, and its categories (as text) with the ordered flag."""
    cats = [_as_text(c) for c in series.cat.categories]
    labels = np.asarray([c for c in cats] + [None], dtype=object)
    codes = series.cat.codes.to_numpy()
    text = pd.Series(pd.array(labels[np.where(codes < 0, len(cats), codes)], dtype="string"), index=series.index)
    return text, (tuple(c for c in cats if c is not None), bool(series.cat.ordered))


def as_arrow(obj: Any) -> pa.Table | None:
    """A pyarrow Table from a pyarrow Table / RecordBatch, a polars DataFrame (``to_arrow()``) or any
    object that exports an Arrow stream; None for anything else. polars is never imported."""
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    if isinstance(obj, (pd.DataFrame, str, Path, Mapping)) or obj is None:
        return None
    module = type(obj).__module__ or ""
    if module.startswith("polars") and type(obj).__name__ == "LazyFrame":
        raise InvalidArgumentError("a polars LazyFrame cannot be read; call .collect() first and pass the DataFrame.")
    to_arrow = getattr(obj, "to_arrow", None)
    if callable(to_arrow):
        out = to_arrow()
        if isinstance(out, pa.RecordBatch):
            out = pa.Table.from_batches([out])
        if isinstance(out, pa.Table):
            return out
    if hasattr(obj, "__arrow_c_stream__"):
        return pa.table(obj)
    return None


def _arrow_categoricals(table: pa.Table) -> dict[str, tuple[tuple[str, ...], bool]]:
    out: dict[str, tuple[tuple[str, ...], bool]] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_dictionary(col.type) and col.type.ordered:
            unified = col.unify_dictionaries() if col.num_chunks > 1 else col
            if unified.num_chunks:
                dictionary = unified.chunk(0).dictionary.to_pylist()
                out[name] = (tuple(t for t in (_as_text(v) for v in dictionary) if t is not None), True)
    return out


def _check_names(label: str, names: list[object]) -> None:
    bad = [c for c in names if not isinstance(c, str)]
    if bad:
        raise InvalidArgumentError(
            f"{label}: column names must be strings; got {bad[:3]}. Fix: df.columns = df.columns.astype(str).")
    if "__row" in names:
        raise InvalidArgumentError(f"{label}: column name '__row' is reserved by driftstats; rename it.")
    empty = [i for i, c in enumerate(names) if c == ""]
    if empty:
        raise InvalidArgumentError(f"{label}: column {empty[0]} has an empty name. Fix: name every column.")
    nul = [c for c in names if "\x00" in str(c)]
    if nul:
        raise InvalidArgumentError(f"{label}: column names may not contain NUL characters; got {nul[0]!r}.")
    seen: dict[str, str] = {}
    for c in names:
        key = str(c).lower()
        if key in seen:
            raise InvalidArgumentError(
                f"{label}: columns {seen[key]!r} and {c!r} have the same name (column names are "
                "case-insensitive). Fix: rename or drop one of them.")
        seen[key] = str(c)


def _check_file_names(name: str, path: Path, fmt: FileFormat, names: list[str], what: str = "columns") -> None:
    try:
        _check_names(name, names)
    except InvalidArgumentError as exc:
        reason = str(exc).split(": ", 1)[1].split(". Fix:")[0]
        raise _unreadable(name, path, fmt, f"its {what}: {reason}", f"rename the {what} in the file.") from None


def load_frame(con: duckdb.DuckDBPyConnection, name: str, frame: Any) -> Loaded:
    """Register a table (pandas or polars DataFrame, pyarrow Table) as the raw relation ``raw_<name>``."""
    table = as_arrow(frame)
    if table is not None:
        if name != "answers":  # side tables are small: pandas handles lists (options) and categoricals
            return load_frame(con, name, table.to_pandas())
        _check_names(name, list(table.column_names))
        loaded = Loaded(categoricals=_arrow_categoricals(table))
        table = table.append_column("__row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        try:
            con.register(f"df_{name}", table)
            con.execute(f"CREATE OR REPLACE VIEW {qi('raw_' + name)} AS SELECT * FROM {qi('df_' + name)}")
            con.execute(f"DESCRIBE {qi('raw_' + name)}").fetchall()
        except duckdb.Error as exc:
            raise InvalidArgumentError(
                f"{name}: the Arrow table cannot be read ({duckdb_reason(exc)}). Fix: cast unusual column "
                "types (extension, decimal, binary) to strings or numbers first.") from None
        return loaded
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgumentError(
            f"{name} must be a path, a pandas or polars DataFrame or a pyarrow Table; got {type(frame).__name__}.")
    _check_names(name, list(frame.columns))
    spec = SCHEMA.get(name)
    if spec is not None:
        frame = _jsonify_lists(frame, spec.json_arrays)
        frame = _jsonify_values(name, frame, spec.json_values)
    # Object columns may mix Python types (DuckDB's scan infers one type from a sample and
    # fails on the rest): store them as text (lists/dicts as JSON); the schema casts type them.
    frame = frame.copy(deep=False)
    loaded = Loaded()
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            frame[c], levels = _text_categorical(frame[c])
            if levels[1]:
                loaded.categoricals[c] = levels
        elif frame[c].dtype == object:
            frame[c] = pd.array([_as_text(v) for v in frame[c]], dtype="string")
    con.register(f"df_{name}", _with_row(frame))
    con.execute(f"CREATE OR REPLACE VIEW {qi('raw_' + name)} AS SELECT * FROM {qi('df_' + name)}")
    return loaded


# ------------------------------------------------------------------------------ files
def _csv_header(name: str, path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            row = next(csv.reader(f), None)
    except UnicodeDecodeError:
        raise _unreadable(name, path, "csv", "it is not UTF-8 text", _FIX_FORMAT.format(label="CSV")) from None
    except csv.Error as exc:
        raise _unreadable(name, path, "csv", f"its header line is not valid CSV ({exc})",
                          _FIX_FORMAT.format(label="CSV")) from None
    if not row or all(c.strip() == "" for c in row):
        raise _unreadable(name, path, "csv", "its first line (the header) names no columns",
                          "write the column names on the first line.")
    return [c if c != "" else f"column{i}" for i, c in enumerate(row)]


def _load_csv(con: duckdb.DuckDBPyConnection, name: str, path: Path, source: str) -> None:
    header = _csv_header(name, path)
    _check_file_names(name, path, "csv", header, "header names")
    columns = "{" + ", ".join(f"{ql(c)}: 'VARCHAR'" for c in header) + "}"
    raw_t = qi("rawt_" + name)
    con.execute(
        f"CREATE OR REPLACE TABLE {raw_t} AS SELECT * FROM read_csv(?, header = true, auto_detect = false, "
        f"delim = ',', quote = '\"', escape = '\"', columns = {columns}, allow_quoted_nulls = false, "
        "strict_mode = true, null_padding = false, encoding = 'utf-8')",
        [source],
    )
    con.execute(f"CREATE OR REPLACE VIEW {qi('raw_' + name)} AS SELECT rowid AS __row, * FROM {raw_t}")


def _load_jsonl(con: duckdb.DuckDBPyConnection, name: str, path: Path, source: str) -> None:
    """Two passes: the distinct key lists of the lines (objects only), then every value as text.

    Key order: that of the most common key list, then keys of rarer lists as they come.
    """
    groups = con.execute(
        "SELECT json_type(json) AS t, json_keys(json) AS ks, count(*) AS n "
        "FROM read_json_objects(?, format = 'newline_delimited') GROUP BY ALL ORDER BY n DESC, ks",
        [source],
    ).fetchall()
    if any(t != "OBJECT" for t, _, _ in groups):
        first = con.execute(
            "SELECT j.i, j.t FROM (SELECT row_number() OVER () - 1 AS i, json_type(json) AS t "
            "FROM read_json_objects(?, format = 'newline_delimited')) j WHERE j.t <> 'OBJECT' ORDER BY j.i LIMIT 1",
            [source],
        ).fetchall()[0]
        raise _unreadable(name, path, "jsonl", f"record {first[0]} (0-based, blank lines skipped) is a JSON "
                          f"{str(first[1]).lower()}, not an object", "write one JSON object per line.")
    n = sum(int(g[2]) for g in groups)
    keys = list(dict.fromkeys(k for _, ks, _ in groups for k in ks))
    raw_t = qi("rawt_" + name)
    if not keys:
        if n == 0 and name != "answers":  # an empty side table (SimLog.write writes an empty file)
            cols = ", ".join(f"CAST(NULL AS VARCHAR) AS {qi(f.name)}" for f in SCHEMA[name].fields)
            con.execute(f"CREATE OR REPLACE TABLE {raw_t} AS SELECT 0::BIGINT AS __row, {cols} LIMIT 0")
        else:
            con.execute(f"CREATE OR REPLACE TABLE {raw_t} AS SELECT range AS __row FROM range({int(n)})")
        con.execute(f"CREATE OR REPLACE VIEW {qi('raw_' + name)} AS SELECT * FROM {raw_t}")
        return
    _check_file_names(name, path, "jsonl", keys, "keys")
    columns = "{" + ", ".join(f"{ql(k)}: 'VARCHAR'" for k in keys) + "}"
    con.execute(
        f"CREATE OR REPLACE TABLE {raw_t} AS SELECT * FROM read_json(?, format = 'newline_delimited', "
        f"columns = {columns}, auto_detect = false)",
        [source],
    )
    con.execute(f"CREATE OR REPLACE VIEW {qi('raw_' + name)} AS SELECT rowid AS __row, * FROM {raw_t}")


def _store_state(con: duckdb.DuckDBPyConnection, alias: str, tables: list[str]) -> StoreState | None:
    """The run state a collector store records (meta ``status`` / ``units_total``, table ``units_done``)."""
    if "meta" not in tables:
        return None
    cols = [r[0] for r in con.execute(f"DESCRIBE {qi(alias)}.meta").fetchall()]
    if "key" not in cols or "value" not in cols:
        return None
    meta = dict(con.execute(
        f"SELECT CAST(key AS VARCHAR), CAST(value AS VARCHAR) FROM {qi(alias)}.meta "
        "WHERE key IN ('status', 'units_total')").fetchall())
    if not meta:
        return None
    state = StoreState(status=meta.get("status"))
    total = (meta.get("units_total") or "").strip()
    if total.isdigit():
        state.units_total = int(total)
    if "units_done" in tables:
        state.units_done = int(con.execute(f"SELECT count(*) FROM {qi(alias)}.units_done").fetchall()[0][0])
    return state


def _load_duckdb(con: duckdb.DuckDBPyConnection, name: str, path: Path, table: str | None,
                 alias: str | None) -> tuple[str, StoreState | None]:
    if alias is None:
        alias = f"src_{uuid.uuid4().hex[:8]}"
        try:
            con.execute(f"ATTACH {ql(str(path.absolute()))} AS {qi(alias)} (READ_ONLY)")
        except duckdb.Error as exc:
            reason = duckdb_reason(exc)
            if "lock" in reason.lower():
                pid = re.search(r"PID (\d+)", reason)
                raise IncompleteLogError(
                    f"{name}: {str(path)!r}: run in progress: the file is being written by another process"
                    f"{f' (PID {pid.group(1)})' if pid else ''}, e.g. a collector. Fix: wait for the run to "
                    "finish (or stop it), or read a copy of the file.") from None
            if "not a valid DuckDB database" in reason or "invalid" in reason.lower():
                reason = "it is not a DuckDB database"
            raise _unreadable(name, path, "duckdb", reason, _FIX_FORMAT.format(label="DuckDB")) from None
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [alias]).fetchall()]
    tables += [r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE database_name = ? AND NOT internal", [alias]).fetchall()]
    state = _store_state(con, alias, tables) if name == "answers" else None
    wanted = table or name
    if wanted not in tables:
        if name != "answers":
            return alias, state  # side tables are optional
        raise InvalidArgumentError(
            f"the DuckDB file {str(path)!r} has no table {wanted!r}; tables: {sorted(tables)}. "
            "Fix: pass table='...'."
        )
    cols = [r[0] for r in con.execute(f"DESCRIBE {qi(alias)}.{qi(wanted)}").fetchall()]
    _check_file_names(name, path, "duckdb", cols)
    con.execute(
        f"CREATE OR REPLACE TABLE {qi('raw_' + name)} AS SELECT rowid AS __row, * FROM {qi(alias)}.{qi(wanted)}"
    )
    return alias, state


def load_path(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: Path,
    fmt: FileFormat,
    *,
    table: str | None = None,
    tmp: contextlib.ExitStack,
    attached: str | None = None,
) -> Loaded:
    """Create the raw relation ``raw_<name>`` over a file (answers or a side table).

    ``tmp`` owns temporary links made for paths with glob characters; ``attached`` is the
    alias of a DuckDB file already attached (its side tables are read from the same file).
    """
    if fmt != "duckdb" or attached is None:
        _check_file(name, path, fmt)
    try:
        if fmt == "duckdb":
            alias, state = _load_duckdb(con, name, path, table, attached)
            return Loaded(store=state, alias=alias)
        source = _reader_path(path, tmp)
        if fmt == "parquet":
            con.execute(
                f"CREATE OR REPLACE VIEW {qi('raw_' + name)} AS SELECT * EXCLUDE (file_row_number), "
                f"file_row_number AS __row FROM read_parquet({ql(source)}, file_row_number = true)"
            )
            described = [r[0] for r in con.execute(f"DESCRIBE {qi('raw_' + name)}").fetchall()]
            _check_file_names(name, path, "parquet", [c for c in described if c != "__row"])
            return Loaded()
        if fmt == "csv":
            _load_csv(con, name, path, source)
        else:
            _load_jsonl(con, name, path, source)
        return Loaded()
    except duckdb.Error as exc:
        raise _unreadable(name, path, fmt, duckdb_reason(exc), _FIX_FORMAT.format(label=_LABEL[fmt])) from None
    except OSError as exc:
        raise _unreadable(name, path, fmt, f"the operating system refused to read it ({exc.strerror or exc})",
                          "check the file and its storage.") from None


# ------------------------------------------------------------------------------ writing
def write_tables(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: FileFormat,
    *,
    meta: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``answers`` and the side tables atomically; return the paths written.

    Types survive exactly: DuckDB and Parquet store them; CSV and JSONL store text that the
    reader casts back with the schema's types (doubles in their shortest exact form, NULL as
    an empty unquoted CSV cell, the empty string as ``""``). The optional tables
    (``iterations``, ``adjustments``, ``transcripts``) are written only when they hold rows; a
    sidecar of one left by an earlier write to the same path is removed, so it is never read
    with other answers.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    token = f".tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    tables = [t for t in SCHEMA if t not in OPTIONAL_TABLES or _has_rows(con, t)]
    if fmt == "duckdb":
        tmp = path.with_name(path.name + token)
        alias = f"out_{uuid.uuid4().hex[:8]}"
        con.execute(f"ATTACH {ql(str(tmp))} AS {qi(alias)}")
        try:
            for t in tables:
                con.execute(f"CREATE TABLE {qi(alias)}.{qi(t)} AS SELECT * FROM {qi(t)}")
            info = {"schema_version": SCHEMA_VERSION, "driftstats_version": __version__, **(meta or {})}
            con.execute(f"CREATE TABLE {qi(alias)}.meta (key VARCHAR, value VARCHAR)")
            con.executemany(f"INSERT INTO {qi(alias)}.meta VALUES (?, ?)", list(info.items()))
        finally:
            con.execute(f"DETACH {qi(alias)}")
        os.replace(tmp, path)
        return [path]
    options = {
        "parquet": "FORMAT parquet, COMPRESSION zstd",
        "csv": CSV_OPTIONS,
        "jsonl": "FORMAT json",
    }[fmt]
    for t in tables:
        target = path if t == "answers" else sidecar(path, t)
        tmp = target.with_name(target.name + token)
        con.execute(f"COPY (SELECT * FROM {qi(t)}) TO {ql(str(tmp))} ({options})")
        os.replace(tmp, target)
        written.append(target)
    for t in OPTIONAL_TABLES:
        if t not in tables:
            sidecar(path, t).unlink(missing_ok=True)
    return written


def _has_rows(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND database_name = current_database()", [table]
    ).fetchall()[0][0]
    return bool(exists) and bool(con.execute(f"SELECT count(*) FROM {qi(table)}").fetchall()[0][0])
