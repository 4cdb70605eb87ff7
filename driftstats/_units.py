"""Unit-level tables for effect estimation and corrections.

Estimators in ``effects`` and ``correct`` work on one row per unit. From a log, each
requested item becomes a column joined with the arm, iteration, persona_id and the persona
attributes. How an item becomes a column depends on what its scale says about the order of
its options:

* ``ordinal``: the 0-based option position (the *code*), averaged over replicates (the
  expected code in distribution mode);
* ``numeric``: the value, averaged likewise;
* ``nominal`` with two options: the 0/1 indicator of the second option (its share over
  replicates), stated in :attr:`UnitData.diagnostics`;
* ``nominal`` with more options: the order is unknown, so codes are **never** averaged or
  used as numbers: :func:`unit_data` raises :class:`~driftstats.errors.InvalidArgumentError`
  naming the item and the three ways to give the order, unless the caller asks for the item
  as ``labels`` (then the column is a pandas Categorical of the unit's answer, for estimators
  that treat it as a factor).

A plain DataFrame that is not a log is used as it is (one row per unit, the named columns
present), except that a named column holding an *ordered* pandas Categorical becomes its
0-based category codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftstats.errors import InvalidArgumentError, MissingColumnError
from driftstats.log.query.units import item_unit_labels, item_unit_means, unit_design
from driftstats.log.simlog import SimLog, as_log

__all__ = ["UnitData", "frame_codes", "is_log_like", "order_unknown_message", "unit_data"]

LOG_COLUMNS = {"unit_id", "arm", "item", "response"}


def is_log_like(data: Any) -> bool:
    if isinstance(data, (SimLog, str, Path)):
        return True
    return isinstance(data, pd.DataFrame) and set(data.columns) >= LOG_COLUMNS


def order_unknown_message(item: str, options: Sequence[str] | None, use: str = "a mean or a numeric code") -> str:
    """The error text for a nominal item whose codes would be used as numbers."""
    opts = list(options or ())
    shown = ", ".join(map(repr, opts[:6])) + (", ..." if len(opts) > 6 else "")
    return (
        f"item {item!r} is nominal: the order of its {len(opts)} options ({shown}) is unknown, so its "
        f"codes cannot be used as {use}. Give the order in one of three ways: (1) an items table with "
        f"scale 'ordinal' and the options in order, e.g. read_log(..., items=pd.DataFrame({{'item': [{item!r}], "
        "'options': [[...in order...]], 'scale': ['ordinal']}})); (2) an ordered pandas Categorical as the "
        "response column (pd.Categorical(values, categories=[...in order...], ordered=True)); (3) "
        "read_log(..., likert=True) for common Likert scales. (A two-option item is used as the 0/1 indicator "
        "of its second option.)"
    )


class UnitData:
    """A unit-level frame plus what it came from.

    ``coding`` maps each item column to how it was coded (``"code"``, ``"value"``,
    ``"indicator"``, ``"labels"``, ``"categorical codes"``); ``diagnostics`` holds the sentences
    a result should carry about that coding.
    """

    def __init__(self, frame: pd.DataFrame, *, log: SimLog | None, arm: str,
                 coding: dict[str, str] | None = None, diagnostics: Sequence[str] = ()) -> None:
        self.frame = frame
        self.log = log
        self.arm = arm
        self.coding: dict[str, str] = dict(coding or {})
        self.diagnostics: list[str] = list(diagnostics)

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
        levels = vals.dropna().unique()
        try:
            return sorted(levels)[0]
        except TypeError:
            kinds = sorted({type(v).__name__ for v in levels})
            raise InvalidArgumentError(
                f"arm={self.arm!r}: the column mixes values of types {kinds}, so no arm comes first; pass "
                "reference=<the control arm>, or make the column one type."
            ) from None

    def treatment(self, arm1: Any, arm0: Any) -> tuple[pd.DataFrame, np.ndarray]:
        sub = self.frame[self.frame[self.arm].isin([arm1, arm0])]
        return sub, (sub[self.arm] == arm1).to_numpy(dtype=float)

    def option_order(self, column: str) -> tuple[str, ...] | None:
        """The option order that a categorical column takes (reference level first), if known.

        For an item: its options. For a persona attribute: the options of the item that
        re-asks it (``items.attribute``) or of the item of the same name. None otherwise.
        """
        if self.log is None:
            return None
        names = self.log.item_names()
        if column in names:
            return self.log.item(column).options
        for name in names:
            info = self.log.item(name)
            if info.attribute == column and info.options is not None:
                return info.options
        return None


def frame_codes(frame: pd.DataFrame, items: Sequence[str]) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """Ordered Categorical columns of a unit-level DataFrame -> 0-based category codes."""
    coding: dict[str, str] = {}
    notes: list[str] = []
    out = frame
    for name in dict.fromkeys(items):
        if name not in frame.columns:
            continue
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype) and col.cat.ordered:
            if out is frame:
                out = frame.copy()
            codes = col.cat.codes.to_numpy(dtype=float)
            codes[codes < 0] = np.nan
            out[name] = codes
            coding[name] = "categorical codes"
            cats = list(col.cat.categories)
            notes.append(f"{name!r} is an ordered Categorical: coded 0..{len(cats) - 1} in its category order "
                         f"({', '.join(map(repr, cats[:6]))}{', ...' if len(cats) > 6 else ''})")
    return out, coding, notes


def unit_data(data: Any, items: Sequence[str], *, arm: str = "arm", mode: str = "sample",
              persona: bool = True, labels: Sequence[str] = ()) -> UnitData:
    """Build the unit-level table for ``items`` (see the module docstring).

    Parameters
    ----------
    data
        A log (SimLog, log DataFrame, path) or a unit-level DataFrame.
    items
        Items (or persona attributes / columns) to put in the table.
    labels
        Nominal items that the caller treats as factors: their column holds the unit's answer
        as a Categorical (categories = the item's options) instead of raising.

    Raises
    ------
    InvalidArgumentError
        A nominal item with more than two options is requested as a number (not in
        ``labels``); or a nominal item in ``labels`` is requested in distribution mode.
    MissingColumnError
        A name is neither an item nor a persona attribute of the log.
    """
    if not is_log_like(data):
        if not isinstance(data, pd.DataFrame):
            raise InvalidArgumentError(
                f"data must be a SimLog, a log DataFrame, a path, or a unit-level DataFrame; got {type(data).__name__}."
            )
        frame, coding, notes = frame_codes(data.reset_index(drop=True), items)
        ud = UnitData(frame, log=None, arm=arm, coding=coding, diagnostics=notes)
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
    frame = unit_design(log)
    coding: dict[str, str] = {}
    notes: list[str] = []
    for name in names:
        info = log.item(name)
        if info.scale == "numeric":
            col = item_unit_means(log, name, mode, value="value").rename(columns={"mean": name})
            coding[name] = "value"
        elif info.scale == "nominal" and (info.n_levels or 0) > 2:
            if name not in labels:
                raise InvalidArgumentError(order_unknown_message(name, info.options))
            if mode != "sample":
                raise InvalidArgumentError(
                    f"item {name!r} is nominal and is used as a factor, which needs one answer per unit; in "
                    f"mode={mode!r} a unit has a distribution over options. Fix: mode='sample', or give the "
                    "option order (an items table with scale 'ordinal') to use its expected code."
                )
            lab = item_unit_labels(log, name, mode)
            disagree = int((lab["n_labels"] > 1).sum())
            if disagree:
                notes.append(f"{disagree} unit(s) gave different answers to nominal item {name!r} across replicates: "
                             "they have no single level and are left out where the item is used")
            col = pd.DataFrame({"unit_id": lab["unit_id"],
                                name: pd.Categorical(lab["label"], categories=list(info.options or ()))})
            coding[name] = "labels"
        else:
            col = item_unit_means(log, name, mode, value="code").rename(columns={"mean": name})
            if info.scale == "nominal":
                opts = info.options or ("", "")
                coding[name] = "indicator"
                notes.append(f"two-option nominal item {name!r} is used as the 0/1 indicator of {opts[1]!r} "
                             f"(vs {opts[0]!r})")
            else:
                coding[name] = "code"
        frame = frame.merge(col, on="unit_id", how="left")
    if persona and attrs:
        wide = log.personas_wide()
        keep = [c for c in wide.columns if c == "unit_id" or c not in frame.columns]
        frame = frame.merge(wide[keep], on="unit_id", how="left")
    return UnitData(frame, log=log, arm="arm", coding=coding, diagnostics=notes)
