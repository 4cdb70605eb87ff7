"""Unit-level tables for effect estimation and corrections.

Estimators in ``effects`` and ``correct`` work on one row per unit. From a log, each
requested item becomes a column holding the unit's answer code (0-based option position,
averaged over replicates; the expected code in distribution mode; the value for numeric
items), joined with the arm, iteration, persona_id and the persona attributes. A plain
DataFrame that is not a log is used as it is (one row per unit, the named columns present).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftstats.errors import InvalidArgumentError, MissingColumnError
from driftstats.log._sql import qi
from driftstats.log.simlog import SimLog, as_log

__all__ = ["UnitData", "is_log_like", "unit_data"]

LOG_COLUMNS = {"unit_id", "arm", "item", "response"}


def is_log_like(data: Any) -> bool:
    if isinstance(data, (SimLog, str, Path)):
        return True
    return isinstance(data, pd.DataFrame) and set(data.columns) >= LOG_COLUMNS


class UnitData:
    """A unit-level frame plus what it came from."""

    def __init__(self, frame: pd.DataFrame, *, log: SimLog | None, arm: str) -> None:
        self.frame = frame
        self.log = log
        self.arm = arm

    def require(self, columns: Sequence[str], arg: str) -> None:
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            where = "items or persona attributes of the log" if self.log is not None else "columns of the data"
            raise MissingColumnError(
                f"{arg}: {missing} not among the {where}; available: {sorted(map(str, self.frame.columns))}."
            )

    def arms(self) -> list[str]:
        return list(pd.unique(self.frame[self.arm]))

    def reference(self, reference: str | None) -> str:
        if reference is not None:
            if reference not in set(self.frame[self.arm]):
                raise InvalidArgumentError(f"reference={reference!r} is not an arm; arms: {self.arms()}.")
            return reference
        if self.log is not None:
            return self.log.reference_arm
        vals = self.frame[self.arm]
        if set(vals.dropna().unique()) <= {0, 1}:
            return 0  # type: ignore[return-value]
        return sorted(vals.dropna().unique())[0]

    def treatment(self, arm1: Any, arm0: Any) -> tuple[pd.DataFrame, np.ndarray]:
        sub = self.frame[self.frame[self.arm].isin([arm1, arm0])]
        return sub, (sub[self.arm] == arm1).to_numpy(dtype=float)


def unit_data(data: Any, items: Sequence[str], *, arm: str = "arm", mode: str = "sample",
              persona: bool = True) -> UnitData:
    """Build the unit-level table for ``items`` (see the module docstring)."""
    if not is_log_like(data):
        if not isinstance(data, pd.DataFrame):
            raise InvalidArgumentError(
                f"data must be a SimLog, a log DataFrame, a path, or a unit-level DataFrame; got {type(data).__name__}."
            )
        ud = UnitData(data.reset_index(drop=True), log=None, arm=arm)
        ud.require([arm], "arm")
        return ud
    log = as_log(data)
    if arm != "arm":
        raise InvalidArgumentError("with a log, arm must be 'arm' (map foreign columns when reading the log).")
    names = [n for n in dict.fromkeys(items) if n in log.item_names()]
    attrs = set(log.personas["attribute"]) if persona else set()
    unknown = [n for n in items if n not in names and n not in attrs]
    if unknown:
        raise MissingColumnError(
            f"{unknown} are neither items nor persona attributes of the log; items: {sorted(log.item_names())}, "
            f"persona attributes: {sorted(attrs)}."
        )
    base = log.con.execute(
        "SELECT DISTINCT unit_id, arm, iteration, persona_id, model FROM answers ORDER BY unit_id"
    ).df()
    frame = base
    for name in names:
        info = log.item(name)
        value = "response_value" if info.scale == "numeric" else "CAST(response_code AS DOUBLE)"
        col = log.con.execute(
            f"SELECT unit_id, sum({value} * coalesce(prob, 1.0)) / sum(coalesce(prob, 1.0)) AS {qi(name)} "
            "FROM answers WHERE valid AND item = ? AND mode = ? GROUP BY unit_id",
            [name, mode],
        ).df()
        frame = frame.merge(col, on="unit_id", how="left")
    if persona and attrs:
        wide = log.personas_wide()
        keep = [c for c in wide.columns if c == "unit_id" or c not in frame.columns]
        frame = frame.merge(wide[keep], on="unit_id", how="left")
    return UnitData(frame, log=log, arm="arm")
