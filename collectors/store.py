"""Crash-safe DuckDB store in the driftstats log schema (one file per study).

All answers of one unit (and its persona rows, and a ``units_done`` marker) are written in
one transaction, so ``kill -9`` at any point loses at most the unit in flight and never
leaves half a unit; on restart the completed units are skipped. The table layout is the
log schema itself (``driftstats.log.schema``), so ``driftstats.read_log(path)`` reads the
store directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from collectors.study import StudyError
from driftstats.log._sql import qi
from driftstats.log.schema import ANSWERS, ARMS, ITEMS, PERSONAS, SCHEMA_VERSION, Field

__all__ = ["Store"]


def _ddl(name: str, fields: tuple[Field, ...]) -> str:
    cols = ", ".join(f"{qi(f.name)} {f.sql}" for f in fields)
    return f"CREATE TABLE IF NOT EXISTS {qi(name)} ({cols})"


class Store:
    def __init__(self, path: str | Path, *, study_name: str, study_hash: str, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite and self.path.exists():
            self.path.unlink()
            wal = self.path.with_name(self.path.name + ".wal")
            if wal.exists():
                wal.unlink()
        self.con = duckdb.connect(str(self.path))
        for name, fields in (("answers", ANSWERS), ("items", ITEMS), ("personas", PERSONAS), ("arms", ARMS)):
            self.con.execute(_ddl(name, fields))
        self.con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        self.con.execute("CREATE TABLE IF NOT EXISTS units_done (unit_id VARCHAR PRIMARY KEY, finished_at TIMESTAMPTZ)")
        meta = dict(self.con.execute("SELECT key, value FROM meta").fetchall())
        if meta:
            if meta.get("study_hash") != study_hash:
                raise StudyError(
                    f"{self.path} holds another study ({meta.get('study')!r}, hash {meta.get('study_hash', '?')[:12]}) "
                    f"than {study_name!r} (hash {study_hash[:12]}): resuming would mix them. "
                    "Use a new --out file, or --overwrite."
                )
        else:
            self.con.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("study", study_name), ("study_hash", study_hash), ("schema_version", SCHEMA_VERSION),
            ])

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def write_design(self, items: pd.DataFrame, arms: pd.DataFrame) -> None:
        """Items and arms tables (idempotent: replaced as a whole)."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("DELETE FROM items")
            self.con.execute("DELETE FROM arms")
            self.con.register("items_in", items)
            self.con.register("arms_in", arms)
            self.con.execute("INSERT INTO items BY NAME SELECT * FROM items_in")
            self.con.execute("INSERT INTO arms BY NAME SELECT * FROM arms_in")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self.con.unregister("items_in")
            self.con.unregister("arms_in")

    def done_units(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT unit_id FROM units_done").fetchall()}

    def write_unit(self, unit_id: str, answers: list[dict[str, Any]], personas: list[dict[str, Any]]) -> None:
        """Append one unit atomically."""
        a = pd.DataFrame(answers)
        p = pd.DataFrame(personas, columns=[f.name for f in PERSONAS])
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.register("a_in", a)
            self.con.register("p_in", p)
            self.con.execute("INSERT INTO answers BY NAME SELECT * FROM a_in")
            self.con.execute("INSERT INTO personas BY NAME SELECT * FROM p_in")
            self.con.execute("INSERT INTO units_done VALUES (?, now())", [unit_id])
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self.con.unregister("a_in")
            self.con.unregister("p_in")

    def counts(self) -> dict[str, int]:
        r = self.con.execute(
            "SELECT count(*) FILTER (WHERE mode = 'sample'), count(*) FILTER (WHERE mode = 'sample' AND NOT valid) "
            "FROM answers").fetchall()[0]
        return {"answers": int(r[0]), "invalid": int(r[1])}

    def close(self) -> None:
        self.con.execute("CHECKPOINT")
        self.con.close()

    @staticmethod
    def study_json(obj: Any) -> str:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))
