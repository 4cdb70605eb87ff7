"""Crash-safe DuckDB store in the driftstats log schema (one file per study, one writer at a time).

All answers of one unit (and its persona rows, and a ``units_done`` marker) are written in
one transaction, so ``kill -9`` at any point loses at most the unit in flight and never
leaves half a unit; on restart the completed units are skipped. The table layout is the
log schema itself (``driftstats.log.schema``), so ``driftstats.read_log(path)`` reads the
store directly.

**One writer.** A store is written by one collector at a time: :class:`StoreLock` takes an
exclusive ``fcntl.flock`` on the sidecar ``<store>.lock`` (which holds the writer's pid) before
anything is deleted or opened, holds it for the run and removes it on close. A second collector,
with or without ``overwrite``, fails at once with :class:`StoreLockedError`. The kernel drops the
lock when its process dies, so a ``.lock`` file left by a killed run blocks nobody.

**Lifecycle** (the ``meta`` table; readers report an unfinished run from these keys and the
``units_done`` table):

* ``units_total``: units in the study (an integer, as text);
* ``status``: ``'running'`` from the start of every run until it ends (a run stopped before every
  unit was done, by ``max_units`` or ``kill -9``, stays ``'running'``: incomplete and resumable),
  ``'complete'`` when every unit is done, ``'failed'`` when the run raised (``error`` then holds
  the exception in one line);
* a run that fails before any unit is written removes the store it created (never a store that
  already existed: a resumed store keeps its units and says ``'failed'``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from collectors.study import StudyError
from driftstats.log._sql import qi
from driftstats.log.schema import (
    PERSONAS,
    SCHEMA_VERSION,
    TABLES,
    TRANSCRIPTS,
    Field,
)

__all__ = ["STATUSES", "Store", "StoreLock", "StoreLockedError", "lock_path"]

STATUSES = ("running", "complete", "failed")
Status = Literal["running", "complete", "failed"]


class StoreLockedError(StudyError):
    """Another collector is writing the store (a store has one writer at a time)."""


def lock_path(path: str | Path) -> Path:
    """The sidecar lock file of the store at ``path``: ``<path>.lock``."""
    p = Path(path)
    return p.with_name(p.name + ".lock")


def _remove_database(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


class StoreLock:
    """Exclusive lock on ``<store>.lock`` (one writer per store), taken on construction.

    Parameters
    ----------
    store
        Path of the DuckDB store the lock guards.

    Raises
    ------
    StoreLockedError
        Another process (or another :class:`StoreLock` in this one) holds the lock; the message
        names the store and the writer's pid.

    Notes
    -----
    ``fcntl.flock`` (POSIX). The holder writes its pid into the file; :meth:`release` removes
    the file and drops the lock. An acquirer checks, after locking, that the path still names
    the file it locked (a holder may have removed it in between), so two writers never hold
    locks on different files of the same name.
    """

    def __init__(self, store: str | Path) -> None:
        import fcntl

        self.store = Path(store)
        self.path = lock_path(self.store)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # somebody holds it
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                who = f"pid {pid}" if pid.isdigit() else "pid unknown"
                raise StoreLockedError(
                    f"{self.store} is being written by another collector ({who}; lock file {self.path}). "
                    "A store has one writer at a time: wait for that run to finish or stop it, "
                    "or write to another --out file."
                ) from None
            try:
                st = os.stat(self.path)
                same = (st.st_ino, st.st_dev) == (os.fstat(fd).st_ino, os.fstat(fd).st_dev)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file while we waited on it: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        import fcntl

        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)  # while still locked: nobody can lock this file after us
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _ddl(name: str, fields: tuple[Field, ...]) -> str:
    cols = ", ".join(f"{qi(f.name)} {f.sql}" for f in fields)
    return f"CREATE TABLE IF NOT EXISTS {qi(name)} ({cols})"


def _add_later_columns(con: duckdb.DuckDBPyConnection, name: str, fields: tuple[Field, ...]) -> None:
    """A store written before a column joined the schema gains it (optional columns only, as their default)."""
    have = {r[0] for r in con.execute(f"DESCRIBE {qi(name)}").fetchall()}
    for f in fields:
        if f.name in have:
            continue
        if f.required:
            raise StudyError(f"the store's table {name!r} lacks the required column {f.name!r}: it is not a "
                             "driftstats store. Use a new --out file, or --overwrite.")
        con.execute(f"ALTER TABLE {qi(name)} ADD COLUMN {qi(f.name)} {f.sql} DEFAULT {f.default}")


def _check_study(path: Path, meta: dict[str, str], study_name: str, study_hash: str) -> None:
    if meta and meta.get("study_hash") != study_hash:
        raise StudyError(
            f"{path} holds another study ({meta.get('study')!r}, hash {meta.get('study_hash', '?')[:12]}) "
            f"than {study_name!r} (hash {study_hash[:12]}): resuming would mix them. "
            "Use a new --out file, or --overwrite."
        )


class Store:
    """The DuckDB store of one study run (see the module docstring).

    Parameters
    ----------
    path
        The DuckDB file (created when absent, resumed when present).
    study_name, study_hash
        The study; resuming a store of another study is refused.
    overwrite
        Delete an existing store first (after the lock is taken).
    lock
        A :class:`StoreLock` on ``path`` already held by the caller (default: take one). The store
        owns it from here on and releases it on :meth:`close`, :meth:`abort` or a failed open.

    Raises
    ------
    StoreLockedError
        Another collector is writing ``path``.
    StudyError
        ``path`` holds another study, or is not a DuckDB store.
    """

    def __init__(self, path: str | Path, *, study_name: str, study_hash: str, overwrite: bool = False,
                 lock: StoreLock | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = lock if lock is not None else StoreLock(self.path)  # before anything is deleted or opened
        self.con: duckdb.DuckDBPyConnection | None = None
        self.created = overwrite or not self.path.exists()
        try:
            if overwrite:
                _remove_database(self.path)
            self.con = self._connect()
            for name, fields in TABLES.items():  # every table of the log schema
                self.con.execute(_ddl(name, fields))
                _add_later_columns(self.con, name, fields)
            self.con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            self.con.execute(
                "CREATE TABLE IF NOT EXISTS units_done (unit_id VARCHAR PRIMARY KEY, finished_at TIMESTAMPTZ)")
            meta = dict(self.con.execute("SELECT key, value FROM meta").fetchall())
            _check_study(self.path, meta, study_name, study_hash)
            if not meta:
                self.con.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("study", study_name), ("study_hash", study_hash), ("schema_version", SCHEMA_VERSION),
                ])
        except BaseException:
            self._shut(remove=self.created)
            raise

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise StudyError(
                f"{self.path} cannot be opened as a DuckDB store ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                "use another --out file, or --overwrite to replace it."
            ) from None

    @staticmethod
    def check_resumable(path: str | Path, *, study_name: str, study_hash: str) -> None:
        """Refuse early (before a model loads) a store that holds another study or is no DuckDB file.

        The caller holds the store's lock; nothing is written.
        """
        p = Path(path)
        if not p.exists():
            return
        try:
            con = duckdb.connect(str(p), read_only=True)
        except duckdb.Error as exc:
            raise StudyError(
                f"{p} cannot be opened as a DuckDB store ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                "use another --out file, or --overwrite to replace it."
            ) from None
        try:
            has_meta = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'").fetchone()[0]
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall()) if has_meta else {}
        finally:
            con.close()
        _check_study(p, meta, study_name, study_hash)

    # -- lifecycle -----------------------------------------------------------------------
    def begin(self, *, units_total: int) -> None:
        """Mark a run in flight: ``units_total`` and ``status = 'running'``."""
        self._set_many({"units_total": str(int(units_total)), "status": "running"})

    def close(self, *, status: Status | None = None) -> None:
        """Record ``status`` (if given), checkpoint, close and release the lock (idempotent)."""
        if self.con is not None and status is not None:
            if status not in STATUSES:
                raise ValueError(f"status must be one of {STATUSES}; got {status!r}")
            self._set_many({"status": status})
        self._shut(remove=False)

    def abort(self, error: BaseException) -> bool:
        """End a run that raised ``error``.

        A store this run created that holds no finished unit is removed (nothing is left behind);
        any other store records ``status = 'failed'`` and ``error``. Returns whether the store was
        removed. Never raises: the caller re-raises ``error``.
        """
        try:
            remove = self.created and not self.done_units()
        except Exception:
            remove = False
        if not remove:
            try:
                line = f"{type(error).__name__}: {error}".splitlines()[0][:500] if str(error) else type(error).__name__
                self._set_many({"status": "failed", "error": line})
            except Exception:  # the database itself failed: keep what it holds
                pass
        self._shut(remove=remove)
        return remove

    def _shut(self, *, remove: bool) -> None:
        try:
            if self.con is not None:
                con, self.con = self.con, None
                try:
                    if not remove:
                        con.execute("CHECKPOINT")
                finally:
                    con.close()
            if remove:
                _remove_database(self.path)
        finally:
            self._lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self.abort(exc)
        else:
            self.close()

    # -- writes --------------------------------------------------------------------------
    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            raise ValueError(f"the store {self.path} is closed")
        return self.con

    @contextlib.contextmanager
    def _transaction(self, **frames: pd.DataFrame) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction with ``frames`` registered under their names; rolled back on any exception
        (an interrupt too: a transaction is never left open), the frames unregistered in every case."""
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            for name, frame in frames.items():
                con.register(name, frame)
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            for name in frames:
                con.unregister(name)

    def _set_many(self, values: dict[str, str]) -> None:
        with self._transaction() as con:
            con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))

    def set_meta(self, key: str, value: str) -> None:
        self._con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def write_design(self, items: pd.DataFrame, arms: pd.DataFrame) -> None:
        """Items and arms tables (idempotent: replaced as a whole)."""
        with self._transaction(items_in=items, arms_in=arms) as con:
            con.execute("DELETE FROM items")
            con.execute("DELETE FROM arms")
            con.execute("INSERT INTO items BY NAME SELECT * FROM items_in")
            con.execute("INSERT INTO arms BY NAME SELECT * FROM arms_in")

    def add_items(self, items: pd.DataFrame) -> None:
        """Add (or replace, by name) items: the probes of candidates found during a run."""
        self._replace("items", items, "item IN (SELECT item FROM rows_in)")

    def write_rows(self, table: str, rows: list[dict[str, Any]], where: str, params: list[Any]) -> None:
        """Replace the rows of ``table`` matching ``where`` (with ``params``) by ``rows``, in one transaction."""
        if table not in ("iterations", "adjustments"):
            raise ValueError(f"write_rows writes the adjustment tables only, not {table!r}")
        fields = TABLES[table]
        frame = pd.DataFrame(rows, columns=[f.name for f in fields])
        self._replace(table, frame, where, params)

    def _replace(self, table: str, frame: pd.DataFrame, where: str, params: list[Any] | None = None) -> None:
        with self._transaction(rows_in=frame) as con:
            con.execute(f"DELETE FROM {qi(table)} WHERE {where}", params or [])
            if len(frame):
                con.execute(f"INSERT INTO {qi(table)} BY NAME SELECT * FROM rows_in")

    def get_meta(self, key: str) -> str | None:
        r = self._con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if r is None else r[0]

    def tables_of(self, *, model: str, run_ids: list[str]) -> dict[str, pd.DataFrame]:
        """The log tables of the given runs of ``model`` (answers, personas of their units, items, arms)."""
        con = self._con
        answers = con.execute("SELECT * FROM answers WHERE model = ? AND run_id IN (SELECT unnest(?)) "
                              "ORDER BY unit_id, item, mode, replicate, response", [model, run_ids]).df()
        personas = con.execute(
            "SELECT * FROM personas WHERE unit_id IN (SELECT DISTINCT unit_id FROM answers WHERE model = ? AND "
            "run_id IN (SELECT unnest(?))) ORDER BY unit_id, attribute", [model, run_ids]).df()
        items = con.execute("SELECT * FROM items WHERE item IN (SELECT DISTINCT item FROM answers WHERE model = ? "
                            "AND run_id IN (SELECT unnest(?))) ORDER BY item", [model, run_ids]).df()
        arms = con.execute("SELECT * FROM arms ORDER BY arm").df()
        return {"answers": answers, "personas": personas, "items": items, "arms": arms}

    def done_units(self) -> set[str]:
        return {r[0] for r in self._con.execute("SELECT unit_id FROM units_done").fetchall()}

    def write_unit(self, unit_id: str, answers: list[dict[str, Any]], personas: list[dict[str, Any]],
                   transcripts: list[dict[str, Any]] | None = None) -> None:
        """Append one unit atomically (its answers, persona rows and, for a dialogue, its transcript)."""
        a = pd.DataFrame(answers)
        p = pd.DataFrame(personas, columns=[f.name for f in PERSONAS])
        t = pd.DataFrame(transcripts or [], columns=[f.name for f in TRANSCRIPTS])
        with self._transaction(a_in=a, p_in=p, t_in=t) as con:
            con.execute("INSERT INTO answers BY NAME SELECT * FROM a_in")
            con.execute("INSERT INTO personas BY NAME SELECT * FROM p_in")
            if len(t):
                con.execute("INSERT INTO transcripts BY NAME SELECT * FROM t_in")
            con.execute("INSERT INTO units_done VALUES (?, now())", [unit_id])

    def counts(self) -> dict[str, int]:
        r = self._con.execute(
            "SELECT count(*) FILTER (WHERE mode = 'sample'), count(*) FILTER (WHERE mode = 'sample' AND NOT valid) "
            "FROM answers").fetchall()[0]
        return {"answers": int(r[0]), "invalid": int(r[1])}

    @staticmethod
    def study_json(obj: Any) -> str:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))
