"""Readers and writers: Parquet, CSV, JSONL and DuckDB, plus the sidecar convention.

File formats hold one table per file. The answers file ``runs.parquet`` is accompanied by
sidecars ``runs.items.parquet``, ``runs.personas.parquet`` and ``runs.arms.parquet`` (same
format). A DuckDB file holds all four tables (``answers``, ``items``, ``personas``,
``arms``) plus ``meta``. Writes go to a temporary file that replaces the target only when
complete, so a crash never leaves a half-written log.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from driftstats._version import __version__
from driftstats.errors import InvalidArgumentError
from driftstats.log._sql import qi, ql
from driftstats.log.schema import SCHEMA_VERSION

__all__ = ["FileFormat", "format_from_path", "load_frame", "load_path", "sidecar", "write_tables"]

FileFormat = Literal["parquet", "csv", "jsonl", "duckdb"]
SIDE_TABLES = ("items", "personas", "arms")
TABLES = ("answers", *SIDE_TABLES)

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


def _with_row(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    if "__row" in frame.columns:
        raise InvalidArgumentError("column name '__row' is reserved by driftstats; rename it.")
    out = frame.copy(deep=False)
    out["__row"] = np.arange(len(frame), dtype=np.int64)
    return out


def _jsonify_options(frame: pd.DataFrame) -> pd.DataFrame:
    """Items given as a frame may hold options as Python lists/tuples: store them as JSON text."""
    if "options" not in frame.columns:
        return frame
    out = frame.copy()
    out["options"] = [
        json.dumps([str(o) for o in v]) if isinstance(v, (list, tuple, np.ndarray)) else v
        for v in out["options"]
    ]
    return out


def _as_text(v: object) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, (list, dict, tuple)):
        return json.dumps(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def load_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    """Register a DataFrame as the raw relation ``raw_<name>``."""
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgumentError(f"{name} must be a pandas DataFrame or a path; got {type(frame).__name__}.")
    if name == "items":
        frame = _jsonify_options(frame)
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise InvalidArgumentError(f"{name}: column names must be strings; got {bad[:3]}. Fix: df.columns = df.columns.astype(str).")
    # Object columns may mix Python types (DuckDB's scan infers one type from a sample and
    # fails on the rest): store them as text (lists/dicts as JSON); the schema casts type them.
    frame = frame.copy(deep=False)
    for c in frame.columns:
        if frame[c].dtype == object:
            frame[c] = pd.array([_as_text(v) for v in frame[c]], dtype="string")
    con.register(f"df_{name}", _with_row(frame))
    con.execute(f"CREATE OR REPLACE VIEW {qi('raw_' + name)} AS SELECT * FROM {qi('df_' + name)}")


def _reader(fmt: FileFormat, path: Path) -> str:
    p = ql(str(path))
    if fmt == "parquet":
        return f"read_parquet({p}, file_row_number = true)"
    if fmt == "csv":
        return f"read_csv({p}, header = true, all_varchar = true, strict_mode = false)"
    if fmt == "jsonl":
        return f"read_json({p}, format = 'newline_delimited')"
    raise AssertionError(fmt)


def load_path(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: Path,
    fmt: FileFormat,
    *,
    table: str | None = None,
) -> None:
    """Create the raw relation ``raw_<name>`` over a file (answers or a side table)."""
    if not path.exists():
        raise FileNotFoundError(f"{name}: no such file: {str(path)!r}")
    raw = qi("raw_" + name)
    if fmt == "duckdb":
        alias = f"src_{uuid.uuid4().hex[:8]}"
        con.execute(f"ATTACH {ql(str(path))} AS {qi(alias)} (READ_ONLY)")
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [alias]).fetchall()]
        wanted = table or name
        if wanted not in tables:
            if name != "answers":
                return  # side tables are optional
            raise InvalidArgumentError(
                f"the DuckDB file {str(path)!r} has no table {wanted!r}; tables: {sorted(tables)}. "
                "Fix: pass table='...'."
            )
        con.execute(
            f"CREATE OR REPLACE TABLE {raw} AS SELECT rowid AS __row, * FROM {qi(alias)}.{qi(wanted)}"
        )
        return
    if fmt == "parquet":
        con.execute(
            f"CREATE OR REPLACE VIEW {raw} AS SELECT * EXCLUDE (file_row_number), "
            f"file_row_number AS __row FROM {_reader(fmt, path)}"
        )
        return
    # CSV / JSONL: materialise so that rowid gives the source order
    con.execute(f"CREATE OR REPLACE TABLE {qi('rawt_' + name)} AS SELECT * FROM {_reader(fmt, path)}")
    con.execute(f"CREATE OR REPLACE VIEW {raw} AS SELECT rowid AS __row, * FROM {qi('rawt_' + name)}")


def write_tables(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: FileFormat,
    *,
    meta: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``answers`` and the side tables atomically; return the paths written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    token = f".tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    if fmt == "duckdb":
        tmp = path.with_name(path.name + token)
        alias = f"out_{uuid.uuid4().hex[:8]}"
        con.execute(f"ATTACH {ql(str(tmp))} AS {qi(alias)}")
        try:
            for t in TABLES:
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
        "csv": "FORMAT csv, HEADER true",
        "jsonl": "FORMAT json",
    }[fmt]
    for t in TABLES:
        target = path if t == "answers" else sidecar(path, t)
        tmp = target.with_name(target.name + token)
        con.execute(f"COPY (SELECT * FROM {qi(t)}) TO {ql(str(tmp))} ({options})")
        os.replace(tmp, target)
        written.append(target)
    return written
