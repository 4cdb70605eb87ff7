"""The validated log object and :func:`read_log`."""

from __future__ import annotations

import contextlib
import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import duckdb
import pandas as pd

from driftstats._args import as_columns, check_choice
from driftstats.errors import (
    IncompleteLogError,
    InvalidArgumentError,
    LogNotFoundError,
    LogValidationError,
    MissingColumnError,
)
from driftstats.log._sql import connect, qi
from driftstats.log.build import Missing, build_tables
from driftstats.log.edsl import from_edsl, read_edsl_frame
from driftstats.log.io import (
    FileFormat,
    Loaded,
    as_arrow,
    format_from_path,
    load_frame,
    load_path,
    sidecar,
    unreadable_while_reading,
    write_tables,
)
from driftstats.log.schema import (
    ANSWERS,
    OPTIONAL_TABLES,
    SIDE_TABLES,
    TABLE_KEYS,
    TABLES,
    SqlType,
    TableName,
)
from driftstats.log.summary import LogSummary, summarize_log

__all__ = ["ItemInfo", "SimLog", "as_log", "importer_formats", "read_log"]

#: The built-in formats; read_log also takes the name of a registered importer
#: (:data:`driftstats.log.importers.IMPORTERS`, see :func:`importer_formats`).
ReadFormat = Literal["parquet", "csv", "jsonl", "duckdb", "edsl"]
#: What read_log reads: a path, a pandas / polars DataFrame, a pyarrow Table, or a dict of such tables.
Source = str | os.PathLike[str] | pd.DataFrame | Any

_PANDAS_TYPES: dict[SqlType, str] = {
    "VARCHAR": "string",
    "BIGINT": "Int64",
    "DOUBLE": "float64",
    "BOOLEAN": "boolean",
}


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

    Holds four tables (``answers``, ``items``, ``personas``, ``arms``) and the optional ones:
    ``iterations`` and ``adjustments`` of adjustment studies, ``transcripts`` of dialogues
    (empty otherwise; see :data:`driftstats.log.schema.SCHEMA`) in an in-process DuckDB
    database, so the same log can be queried with pandas (:meth:`to_pandas`) or SQL
    (:meth:`sql`). Create one with :func:`read_log`.
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

    def to_pandas(self, table: TableName = "answers") -> pd.DataFrame:
        """A table as a pandas DataFrame with schema dtypes (nullable ``Int64``, ``string``, ...).

        The optional tables (``iterations``, ``adjustments``, ``transcripts``) are ordered by
        their keys and have the schema's columns even when the log has none.
        """
        if table not in TABLES:
            raise InvalidArgumentError(f"table must be one of {list(TABLES)}; got {table!r}.")
        order = f" ORDER BY {', '.join(qi(k) for k in TABLE_KEYS[table])}" if table in OPTIONAL_TABLES else ""
        return self._typed_frame(table, self._con.execute(f"SELECT * FROM {qi(table)}{order}").df())

    @staticmethod
    def _typed_frame(table: str, frame: pd.DataFrame) -> pd.DataFrame:
        for f in TABLES[table]:
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

    @property
    def iterations(self) -> pd.DataFrame:
        """One row per (study, model, path, iteration) of an adjustment study, ordered by that key.

        Empty, with the schema's columns, when the log is not an adjustment study.
        """
        return self.to_pandas("iterations")

    @property
    def adjustments(self) -> pd.DataFrame:
        """One row per (study, model, path, iteration, attribute) of an adjustment study, ordered by that key.

        Empty, with the schema's columns, when the log is not an adjustment study.
        """
        return self.to_pandas("adjustments")

    @property
    def transcripts(self) -> pd.DataFrame:
        """One row per message of the units' intervention dialogues, ordered by (unit_id, message).

        Empty, with the schema's columns, when the log has no dialogues.
        """
        return self.to_pandas("transcripts")

    @property
    def has_transcripts(self) -> bool:
        """True when the log holds transcript messages (a dialogue study or an imported agent log)."""
        return bool(self._con.execute("SELECT count(*) FROM transcripts").fetchall()[0][0])

    def transcript(self, unit_id: str) -> pd.DataFrame:
        """The messages of one unit's dialogue, in order (empty when the unit has no transcript).

        Raises
        ------
        InvalidArgumentError
            ``unit_id`` is not a unit of the log.
        """
        if not isinstance(unit_id, str):
            raise InvalidArgumentError(f"unit_id must be a string (a unit of answers.unit_id); got {unit_id!r}.")
        if not self._con.execute("SELECT count(*) FROM answers WHERE unit_id = ?", [unit_id]).fetchall()[0][0]:
            raise InvalidArgumentError(
                f"unit_id {unit_id!r} is not a unit of this log. Fix: take one from log.to_pandas()['unit_id'] "
                "(units with a transcript: log.transcripts['unit_id'].unique()).")
        frame = self._con.execute("SELECT * FROM transcripts WHERE unit_id = ? ORDER BY message", [unit_id]).df()
        return self._typed_frame("transcripts", frame)

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
        """Run a SQL query against the log's tables (``answers``, ``items``, ``personas``, ``arms``,
        ``iterations``, ``adjustments``, ``transcripts``)."""
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
        """A content hash of the tables (16 hex digits), independent of row order.

        Covers ``answers``, ``items``, ``personas``, ``arms`` and, when they hold rows, the
        optional tables ``iterations``, ``adjustments`` and ``transcripts`` (so a log without
        them keeps the fingerprint it always had; likewise the answers column
        ``dialogue_sha256`` enters only when it holds a value). Every result computed from
        this log carries it in ``provenance``, so a number can be traced to the exact data it
        came from. Computed once (one scan per table) and cached.
        """
        if self._fingerprint is None:
            import hashlib

            h = hashlib.sha256()
            for table in TABLES:
                source = qi(table)
                if table == "answers" and not self._con.execute(
                        "SELECT count(dialogue_sha256) FROM answers").fetchall()[0][0]:
                    source = "(SELECT * EXCLUDE (dialogue_sha256) FROM answers)"  # the hash of logs before the column
                n, x = self._con.execute(
                    f"SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM {source} AS t").fetchall()[0]
                if table in OPTIONAL_TABLES and not n:
                    continue
                h.update(f"{table}:{n}:{x};".encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    # ------------------------------------------------------------------ output
    def write(self, path: str | Path, *, format: FileFormat | None = None) -> list[Path]:
        """Write the log (format from the suffix); side tables go to sidecar files.

        Parameters
        ----------
        path
            The answers file (``runs.parquet``, ``runs.csv``, ``runs.jsonl``) or the DuckDB file.
            Sidecars ``runs.items.parquet``, ``runs.personas.parquet``, ``runs.arms.parquet`` sit
            next to it (same format), and ``runs.iterations.parquet``, ``runs.adjustments.parquet``,
            ``runs.transcripts.parquet`` when the log has those tables (rows); a DuckDB file holds
            every table.
        format
            Overrides the suffix.

        Returns
        -------
        list of Path
            The paths written. Each file is written to a temporary name and renamed when complete.
            A sidecar ``runs.iterations.*`` / ``runs.adjustments.*`` / ``runs.transcripts.*`` left by an earlier write to the
            same path is removed when this log has no such rows.

        Notes
        -----
        :func:`read_log` reads the files back with the same values and types: DuckDB and Parquet
        store the types; CSV (``,`` delimiter, ``"`` quote and escape, header line) and JSONL hold
        text that is cast back with the schema's types (extra answer columns come back as text).

        Examples
        --------
        >>> import tempfile, pathlib
        >>> import pandas as pd
        >>> import driftstats as ds
        >>> log = ds.read_log(pd.DataFrame({"unit_id": ["a", "b"], "arm": ["control", "t"], "item": "q",
        ...                                 "response": ['said "hi"', "0.50"]}))
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "runs.csv"
        >>> [p.name for p in log.write(out)]
        ['runs.csv', 'runs.items.csv', 'runs.personas.csv', 'runs.arms.csv']
        >>> ds.read_log(out).to_pandas()["response"].tolist()
        ['said "hi"', '0.50']
        """
        path = Path(path)
        fmt = format or format_from_path(path)
        check_choice("format", fmt, FileFormat)
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


def _is_path(x: object) -> bool:
    return isinstance(x, (str, os.PathLike))


_SOURCES = (
    "a path to a log file (.parquet, .csv, .jsonl, .duckdb), a pandas or polars DataFrame, a pyarrow Table, "
    "or a dict of such tables {'answers': ..., 'items': ..., 'personas': ..., 'arms': ..., 'iterations': ..., "
    "'adjustments': ..., 'transcripts': ...}"
)


def _split_tables(source: Any, overrides: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A dict of tables -> (answers, side tables); the keyword side tables may not repeat one."""
    if not isinstance(source, Mapping):
        return source, overrides
    unknown = sorted(map(str, set(source) - {"answers", *SIDE_TABLES}))
    if unknown or "answers" not in source:
        raise InvalidArgumentError(
            f"a dict source holds the log's tables under the keys 'answers' (required), "
            f"{', '.join(map(repr, SIDE_TABLES))}; got keys {sorted(map(str, source))}. Fix: rename the keys"
            + (f" (unknown: {unknown})." if unknown else "; add 'answers'.")
        )
    out = dict(overrides)
    for name in SIDE_TABLES:
        if name in source:
            if overrides.get(name) is not None:
                raise InvalidArgumentError(
                    f"the {name} table is given twice: in the dict source and as {name}=. Fix: give it once.")
            out[name] = source[name]
    return source["answers"], out


def _check_source(source: Any) -> None:
    if _is_path(source) or isinstance(source, pd.DataFrame) or as_arrow(source) is not None:
        return
    raise InvalidArgumentError(
        f"source must be {_SOURCES}; got {type(source).__name__}. Fix: pass one of these; to combine several "
        "files, read them into one DataFrame first (pandas.concat): read_log expands neither lists nor globs."
    )


def read_log(
    source: Source,
    *,
    format: ReadFormat | str | None = None,
    mapping: Mapping[str, str] | None = None,
    items: Source | None = None,
    personas: Source | None = None,
    arms: Source | None = None,
    iterations: Source | None = None,
    adjustments: Source | None = None,
    transcripts: Source | None = None,
    persona: str | Sequence[str] | None = None,
    nco: str | Sequence[str] | None = None,
    primary: str | Sequence[str] | None = None,
    fidelity: str | Sequence[str] | None = None,
    roles: Mapping[str, str] | None = None,
    arm: str | Sequence[str | None] | None = None,
    table: str | None = None,
    missing: Missing = "error",
    likert: bool = False,
) -> SimLog:
    """Read and validate a simulation log.

    Parameters
    ----------
    source
        A path (``.parquet``, ``.csv``, ``.jsonl``, ``.duckdb``), a pandas or polars DataFrame or a
        pyarrow Table of answers (long format: one row per answer), or a dict of such tables
        ``{"answers": ..., "items": ..., "personas": ..., "arms": ..., "iterations": ...,
        "adjustments": ..., "transcripts": ...}``. For an importer format (see ``format``): one
        path or a list / tuple of paths. Side tables are read from sidecar files (``runs.items.parquet``,
        ``runs.iterations.parquet``, ...) or the DuckDB file's tables when present. A path is taken literally (``*``, ``?`` and ``[`` are not glob patterns). A
        wide table (one column per question) is read with :func:`driftstats.log.from_wide`.
    format
        Overrides the suffix; ``"edsl"`` imports an edsl ``Results`` export (CSV/JSONL). The name of
        a registered importer (:func:`importer_formats`, :mod:`driftstats.log.importers`) imports
        that tool's files (one path or a list of them); the imported tables are validated like
        any log, and side tables given as arguments replace the imported ones.
    mapping
        ``{"their_column": "schema_column"}`` for foreign logs. Every target must be a column
        of the answers schema (``docs/schema.md``) or a persona column named in ``persona``.
    items, personas, arms
        Side tables as paths, pandas / polars DataFrames or pyarrow Tables (override
        sidecars). ``items["options"]`` may hold Python lists.
    iterations, adjustments
        The side tables of an adjustment study (optional; ``docs/schema.md``), given the same
        ways. JSON-array columns (``spec``, ``rules_fired``, ``options``) may hold Python lists.
        Each iteration's (model, iteration, run_id) must match answers of the log.
    transcripts
        The messages of the units' intervention dialogues (optional; ``docs/schema.md``), given
        the same ways (sidecar ``runs.transcripts.parquet``, DuckDB table ``transcripts``).
        ``tool_calls`` may hold Python lists. Message hashes are checked where given and derived
        where missing; empty messages are kept and flagged invalid.
    persona
        Columns of the answers holding persona attributes (one value per unit); they are
        moved to the personas table.
    nco, primary, fidelity, roles
        Assign item roles by name (override the log's own).
    arm
        The column that names the arm (shortcut for ``mapping={arm: "arm"}``; for edsl
        e.g. ``"scenario.arm"``). For an importer format it names *arms*, not a column: a
        string gives the arm of a single file, a list one arm name per file (``None``: the
        arm the file itself records).
    table
        For DuckDB sources: the answers table name (default ``answers``).
    missing
        What a valid row without a response (NULL, or NaN in a numeric column) is: ``"error"``
        (default) raises :class:`~driftstats.errors.InvalidValueError`; ``"invalid"`` keeps the row
        as an invalid answer (``valid = false``, ``error = "missing response"``), counted in the
        diagnostics and left out of analyses like every invalid answer.
    likert
        Only used when no items table is given: ``True`` recognises standard Likert labels
        (agree/disagree, support/oppose, favor/oppose, approve/disapprove and frequency scales
        of 4, 5 or 7 points; :mod:`driftstats.log.likert`) and gives such items their
        canonical option order and scale ``'ordinal'``. Default ``False``: the log never claims
        an order it was not given.

    Returns
    -------
    SimLog

    Raises
    ------
    UnreadableLogError
        The file cannot be read as a log of its format (not such a file, empty, truncated,
        corrupt, a directory, unreadable); :class:`~driftstats.log.io.LogNotFoundError` (also a
        ``FileNotFoundError``) when it does not exist.
    IncompleteLogError
        A collector store whose run is in progress or stopped early and does not validate
        (its ``meta`` says ``status`` != ``'complete'`` or fewer ``units_done`` than
        ``units_total``); a store that validates is read, and its diagnostics say it is incomplete.
    InvalidArgumentError
        An argument is not allowed (an unsupported source type, a mapping onto a column the
        schema does not have, ...).
    EmptyLogError, MissingColumnError, ColumnTypeError, InvalidValueError,
    UnknownOptionError, DuplicateKeyError, EmptyArmError, SingleOptionItemError
        See ``docs/schema.md``; every message names the table, the column, the offending rows
        and the fix.

    Notes
    -----
    Without an items table the items are inferred from the answers. Option order then comes
    from what the data declare: an ordered categorical ``response`` (pandas ``Categorical``
    with ``ordered=True``, or an ordered Arrow dictionary) gives every item the categories in
    order and scale ``'ordinal'``; ``response_code`` gives the positions (scale ``'nominal'``);
    numeric answers are listed by value; ``likert=True`` recognises standard Likert labels.
    Otherwise options are listed alphabetically with scale ``'nominal'``, and the diagnostics
    name the items whose order is unknown.

    Examples
    --------
    >>> import pandas as pd
    >>> import driftstats as ds
    >>> answers = pd.DataFrame({"unit_id": ["u1", "u2", "u3", "u4"], "arm": ["control", "control", "t", "t"],
    ...                         "item": "q", "response": ["Agree", None, "Disagree", "Agree"]})
    >>> log = ds.read_log(answers, missing="invalid", likert=True)
    >>> log.item("q").options, log.item("q").scale
    (('Disagree', 'Agree'), 'ordinal')
    >>> int(log.to_pandas()["valid"].sum()), log.arm_kind("t")
    (3, 'treatment')
    """
    return _read_log(
        source, format=format, mapping=mapping, items=items, personas=personas, arms=arms, iterations=iterations,
        adjustments=adjustments, transcripts=transcripts, persona=persona,
        nco=nco, primary=primary, fidelity=fidelity, roles=roles, arm=arm, table=table, missing=missing,
        likert=likert,
    )


def _first_sentence(exc: BaseException) -> str:
    text = str(exc)
    cut = text.find(". Fix:")
    return text if cut < 0 else text[:cut]


def _read_log(
    source: Any,
    *,
    format: ReadFormat | None = None,
    mapping: Mapping[str, str] | None = None,
    items: Any = None,
    personas: Any = None,
    arms: Any = None,
    iterations: Any = None,
    adjustments: Any = None,
    transcripts: Any = None,
    persona: str | Sequence[str] | None = None,
    nco: str | Sequence[str] | None = None,
    primary: str | Sequence[str] | None = None,
    fidelity: str | Sequence[str] | None = None,
    roles: Mapping[str, str] | None = None,
    arm: Any = None,
    table: str | None = None,
    missing: Missing = "error",
    likert: bool = False,
    item_levels: Mapping[str, Sequence[str]] | None = None,
    notes: Sequence[str] = (),
) -> SimLog:
    check_choice("missing", missing, Missing)
    if not isinstance(likert, bool):
        raise InvalidArgumentError(f"likert must be True or False; got {likert!r}.")
    importer = _check_format(format)
    role_map = _role_map(nco, primary, fidelity, roles)
    persona_cols = as_columns("persona", persona)
    given = {"items": items, "personas": personas, "arms": arms, "iterations": iterations,
             "adjustments": adjustments, "transcripts": transcripts}
    if importer is not None:
        paths, arm_names = _importer_sources(str(format), source, arm)
        side = given
        is_path = False
        label = str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"
    else:
        if arm is not None and not isinstance(arm, str):
            raise InvalidArgumentError(
                f"arm= names the column that holds the arm (a string); got {type(arm).__name__}. A list of arm "
                f"names is taken only by importer formats ({', '.join(importer_formats()) or 'none registered'}).")
        source, side = _split_tables(source, given)
        _check_source(source)
        is_path = _is_path(source)
        label = str(source) if is_path else type(source).__name__
    if table is not None and not (is_path and format in (None, "duckdb")):
        raise InvalidArgumentError("table= names the answers table of a DuckDB file; it applies only to .duckdb paths.")
    con = connect()
    path = Path(source) if is_path else None
    loaded = Loaded()
    with contextlib.ExitStack() as tmp:
        if importer is not None:
            tables = _imported_tables(str(format), importer(paths, arms=arm_names))
            for name, t in tables.items():
                override = side.get(name)
                _load(con, name, override if override is not None else t, tmp)
            for name in SIDE_TABLES:  # tables the format does not hold
                if name not in tables and side.get(name) is not None:
                    _load(con, name, side[name], tmp)
            if mapping:
                _apply_mapping(con, dict(mapping), persona_cols)
        elif format == "edsl":
            if arm is None:
                raise InvalidArgumentError(
                    "format='edsl' needs arm='scenario.<key>': the scenario column that names the arm."
                )
            frame = read_edsl_frame(path) if path is not None else source
            if as_arrow(frame) is not None:
                frame = as_arrow(frame).to_pandas()
            tables = from_edsl(frame, arm=arm, roles=role_map)
            for name, t in tables.items():
                override = side.get(name)
                _load(con, name, override if override is not None else t, tmp)
            for name in SIDE_TABLES:  # tables an edsl export does not hold (iterations, adjustments, transcripts)
                if name not in tables and side.get(name) is not None:
                    _load(con, name, side[name], tmp)
            role_map = {}  # already applied
        else:
            map_ = dict(mapping or {})
            if arm is not None:
                map_[arm] = "arm"
            if path is not None:
                fmt = format or format_from_path(path)
                loaded = load_path(con, "answers", path, fmt, table=table, tmp=tmp)
                for t in SIDE_TABLES:
                    if side.get(t) is not None:
                        continue  # given as an argument: it replaces the file's table
                    if fmt == "duckdb":
                        load_path(con, t, path, fmt, tmp=tmp, attached=loaded.alias)
                    elif sidecar(path, t).exists():
                        load_path(con, t, sidecar(path, t), fmt, tmp=tmp)
                if loaded.alias is not None:  # the tables are copied: release the file (and its lock)
                    con.execute(f"DETACH {qi(loaded.alias)}")
            else:
                loaded = load_frame(con, "answers", source)
            if map_:
                _apply_mapping(con, map_, persona_cols)
            for name in SIDE_TABLES:
                if side.get(name) is not None:
                    _load(con, name, side[name], tmp)
        source_of_response = next((k for k, v in (mapping or {}).items() if v == "response"), "response")
        levels = loaded.categoricals.get(source_of_response)
        try:
            diagnostics = build_tables(
                con, roles=role_map, persona_cols=persona_cols, missing=missing, likert=likert,
                item_levels=item_levels, response_levels=levels[0] if levels else None,
            )
        except duckdb.Error as exc:
            if path is None:
                raise
            raise unreadable_while_reading(path, format or format_from_path(path), exc) from None
        except LogValidationError as exc:
            store = loaded.store
            if store is not None and store.incomplete:
                raise IncompleteLogError(
                    f"{label}: run in progress / incomplete: {store.describe()}; the store does not validate yet "
                    f"({type(exc).__name__}: {_first_sentence(exc)}). Fix: wait for the run to finish, or resume "
                    f"it with `driftstats simulate STUDY --out {label}` (the same file)."
                ) from None
            raise
    if loaded.store is not None and loaded.store.incomplete:
        diagnostics.append(
            f"incomplete run: {loaded.store.describe()}; the log holds the finished units only (resume with "
            f"`driftstats simulate STUDY --out {label}`)")
    return SimLog(con, diagnostics=[*notes, *diagnostics], source=label)


def importer_formats() -> tuple[str, ...]:
    """The formats of the registered importers (:data:`driftstats.log.importers.IMPORTERS`), sorted.

    The modules of :mod:`driftstats.log.importers` are imported on the first call (each registers
    its format); a module whose optional dependency is missing registers nothing.
    """
    import importlib
    import pkgutil

    import driftstats.log.importers as package

    global _IMPORTERS_LOADED
    if not _IMPORTERS_LOADED:
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                with contextlib.suppress(ImportError):
                    importlib.import_module(f"{package.__name__}.{info.name}")
        _IMPORTERS_LOADED = True
    return tuple(sorted(package.IMPORTERS))


_IMPORTERS_LOADED = False


def _check_format(format: Any) -> Any:
    """``None`` for the built-in formats (checked), the importer for a registered importer's name."""
    if format is None or (isinstance(format, str) and format in get_args(ReadFormat)):
        return None
    names = importer_formats() if isinstance(format, str) else ()
    if format in names:
        from driftstats.log.importers import IMPORTERS

        return IMPORTERS[format]
    allowed = [*get_args(ReadFormat), *names]
    raise InvalidArgumentError(
        f"format must be one of {', '.join(map(repr, allowed))}; got {format!r}. Fix: pass one of these (the "
        "names after 'edsl' are the registered importers of driftstats.log.importers), or omit format= to take "
        "it from the file's suffix.")


def _importer_sources(format: str, source: Any, arm: Any) -> tuple[list[Path], list[str | None]]:
    """The files of an importer format (one path or a list / tuple of paths) and one arm name (or None) per file."""
    items = list(source) if isinstance(source, (list, tuple)) else [source]
    bad = [type(p).__name__ for p in items if not _is_path(p)]
    if not items or bad:
        raise InvalidArgumentError(
            f"format={format!r} reads files: source must be a path or a list / tuple of paths; got "
            f"{'an empty ' + type(source).__name__ if not items else 'a ' + bad[0]}. Fix: pass the file(s) to import.")
    paths = [Path(p) for p in items]
    for p in paths:
        if not p.exists():
            raise LogNotFoundError(
                f"{format}: no such file: {str(p)!r}. Fix: check the path (it is taken literally: glob characters "
                "such as * and [ are not expanded).")
    if arm is None:
        arms: list[str | None] = [None] * len(paths)
    elif isinstance(arm, str):
        if len(paths) != 1:
            raise InvalidArgumentError(
                f"format={format!r}: arm={arm!r} names the arm of one file, but {len(paths)} files are given. Fix: "
                "pass one arm name per file, arm=['control', 'treatment', ...] (None: the arm the file records).")
        arms = [arm]
    elif isinstance(arm, Sequence) and all(a is None or isinstance(a, str) for a in arm):
        arms = list(arm)
        if len(arms) != len(paths):
            raise InvalidArgumentError(
                f"format={format!r}: arm= gives {len(arms)} arm name(s) for {len(paths)} file(s). Fix: pass one arm "
                "name per file, in the order of the files (None: the arm the file records).")
    else:
        raise InvalidArgumentError(
            f"format={format!r}: arm= must be an arm name or a list of arm names (one per file, None: the arm the "
            f"file records); got {arm!r}.")
    return paths, arms


def _imported_tables(format: str, tables: Any) -> dict[str, Any]:
    """The importer's tables, checked: a mapping with ``answers`` and schema side tables only."""
    if not isinstance(tables, Mapping) or "answers" not in tables:
        raise InvalidArgumentError(
            f"the importer of format={format!r} returned {type(tables).__name__} without an 'answers' table; an "
            "importer returns a dict of the log's tables ('answers' required). Fix the importer.")
    unknown = sorted(map(str, set(tables) - {"answers", *SIDE_TABLES}))
    if unknown:
        raise InvalidArgumentError(
            f"the importer of format={format!r} returned tables {unknown} that the log schema does not have "
            f"(tables: {list(TABLES)}). Fix the importer.")
    return {k: v for k, v in tables.items() if v is not None}


def _load(con: duckdb.DuckDBPyConnection, name: str, src: Any, tmp: contextlib.ExitStack) -> None:
    if _is_path(src):
        path = Path(src)
        load_path(con, name, path, format_from_path(path), tmp=tmp)
    else:
        load_frame(con, name, src)


def _apply_mapping(con: duckdb.DuckDBPyConnection, mapping: Mapping[str, str], persona_cols: Sequence[str]) -> None:
    cols = [r[0] for r in con.execute("DESCRIBE raw_answers").fetchall()]
    missing = [k for k in mapping if k not in cols]
    if missing:
        raise MissingColumnError(
            f"mapping names column(s) {missing} that the log does not have. Columns: "
            f"{[c for c in cols if c != '__row']}."
        )
    schema = [f.name for f in ANSWERS]
    unknown = [v for v in mapping.values() if v not in schema and v not in persona_cols]
    if unknown:
        raise InvalidArgumentError(
            f"mapping maps onto column(s) {unknown} that the log schema does not have. Answers columns: "
            f"{schema}. Fix: map onto one of them; persona attributes are named with persona=[...] (map a "
            "column onto a new name only together with persona=), other columns need no mapping (they are kept)."
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
    """A :class:`SimLog` from a log, or anything :func:`read_log` reads (read and validated)."""
    if isinstance(data, SimLog):
        if read_kwargs:
            raise InvalidArgumentError(
                f"read options {sorted(read_kwargs)} apply only when passing a path or a table."
            )
        return data
    if _is_path(data) or isinstance(data, (pd.DataFrame, Mapping)) or as_arrow(data) is not None:
        return read_log(data, **read_kwargs)
    raise InvalidArgumentError(f"expected a SimLog or {_SOURCES}; got {type(data).__name__}.")
