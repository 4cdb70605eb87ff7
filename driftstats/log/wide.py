"""Wide tables (one row per unit, one column per question) melted into the long log schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from driftstats._args import as_columns
from driftstats.errors import InvalidArgumentError, MissingColumnError
from driftstats.log.io import _as_text, _text_categorical, as_arrow
from driftstats.log.simlog import SimLog, _read_log

__all__ = ["from_wide"]

_NOT_HERE = ("mapping", "arm", "table", "format")


def from_wide(
    frame: Any,
    *,
    unit: str,
    arm: str,
    items: str | Sequence[str],
    persona: str | Sequence[str] | None = None,
    item_table: Any = None,
    **read_kwargs: Any,
) -> SimLog:
    """Read a wide table (one row per unit, one column per question) as a log.

    Each cell of an item column becomes one answer row (``unit_id``, ``arm``, ``item`` =
    the column name, ``response`` = the cell as text). Every other column is repeated on
    the unit's answer rows: schema columns (``persona_id``, ``model``, ``iteration``, ...)
    keep their meaning, ``persona`` columns move to the personas table, and the rest are
    kept as extra columns. The long table is then read and validated by
    :func:`~driftstats.log.read_log`.

    Parameters
    ----------
    frame
        A pandas or polars DataFrame or a pyarrow Table with one row per unit.
    unit
        The column that identifies the unit (becomes ``unit_id``; unique per row).
    arm
        The column that names the arm.
    items
        The question columns, in order. An ordered pandas ``Categorical`` column (or ordered
        Arrow dictionary) gives its item the categories as options, in order, with scale
        ``'ordinal'`` (when no items table is given).
    persona
        Columns holding persona attributes (moved to the personas table).
    item_table
        An items table (``read_log(items=...)``: texts, options in order, scales); its
        ``item`` values are the names of the item columns.
    **read_kwargs
        Passed on to :func:`~driftstats.log.read_log`: ``personas``, ``arms``, ``nco``,
        ``primary``, ``fidelity``, ``roles``, ``missing``, ``likert``.

    Returns
    -------
    SimLog

    Raises
    ------
    MissingColumnError
        ``unit``, ``arm``, an item or a persona column is not in the frame.
    InvalidArgumentError
        The arguments overlap, ``unit`` is not unique, or a read option that makes no sense
        for a wide table is given (``mapping``, ``arm``, ``table``, ``format``).
    LogValidationError
        Whatever :func:`~driftstats.log.read_log` raises for the long table; empty cells are
        missing answers (``missing="invalid"`` keeps them as invalid rows).

    Examples
    --------
    >>> import pandas as pd
    >>> from driftstats.log import from_wide
    >>> wide = pd.DataFrame({"id": ["a", "b", "c", "d"], "group": ["control", "control", "t", "t"],
    ...                      "q1": ["Yes", "No", "No", "Yes"], "q2": [1, 2, None, 3]})
    >>> log = from_wide(wide, unit="id", arm="group", items=["q1", "q2"], missing="invalid", nco="q1")
    >>> log.n_rows, int(log.to_pandas()["valid"].sum())
    (8, 7)
    >>> log.to_pandas()[["unit_id", "item", "response"]].head(3).values.tolist()
    [['a', 'q1', 'Yes'], ['a', 'q2', '1'], ['b', 'q1', 'No']]
    """
    table = as_arrow(frame)
    if table is not None:
        frame = table.to_pandas()
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgumentError(
            f"from_wide reads a pandas or polars DataFrame or a pyarrow Table; got {type(frame).__name__}.")
    bad = sorted(set(read_kwargs) & set(_NOT_HERE))
    if bad:
        raise InvalidArgumentError(
            f"from_wide does not take {bad}: name the unit and arm columns with unit= and arm=, and the "
            "question columns with items=.")
    for name, value in (("unit", unit), ("arm", arm)):
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{name} must be a column name; got {value!r}.")
    item_cols = as_columns("items", items)
    persona_cols = as_columns("persona", persona)
    if not item_cols:
        raise InvalidArgumentError("items must name at least one question column.")
    if len(set(item_cols)) != len(item_cols):
        raise InvalidArgumentError(f"items names a column twice: {list(item_cols)}.")
    columns = [str(c) for c in frame.columns]
    missing = [c for c in (unit, arm, *item_cols, *persona_cols) if c not in columns]
    if missing:
        raise MissingColumnError(f"from_wide: column(s) {missing} are not in the frame. Columns: {columns}.")
    overlap = sorted(set(item_cols) & {unit, arm, *persona_cols})
    if overlap or unit == arm:
        raise InvalidArgumentError(
            f"from_wide: a column is given two parts ({overlap or [unit]}): the unit, the arm, the items and the "
            "persona columns must be different columns.")
    if frame[unit].isna().any() or frame[unit].duplicated().any():
        dup = frame[unit][frame[unit].duplicated() | frame[unit].isna()].iloc[0]
        raise InvalidArgumentError(
            f"from_wide: the unit column {unit!r} must be unique and filled (one row per unit); {dup!r} is "
            "not. Fix: one row per unit, or read the long format with read_log.")
    carried = [c for c in frame.columns if c not in set(item_cols)]
    names = ["unit_id" if c == unit else "arm" if c == arm else str(c) for c in carried]
    clash = sorted({n for n in names if names.count(n) > 1} | ({"item", "response"} & set(names)))
    if clash:
        raise InvalidArgumentError(
            f"from_wide: column(s) {clash} would clash with the long format's columns (unit_id, arm, item, "
            "response). Fix: rename or drop them first.")
    n, m = len(frame), len(item_cols)
    long = pd.DataFrame({name: frame[c].repeat(m).reset_index(drop=True) for c, name in zip(carried, names,
                                                                                            strict=True)})
    long["item"] = pd.array(np.tile(np.asarray(item_cols, dtype=object), n), dtype="string")
    cells = np.empty((n, m), dtype=object)
    levels: dict[str, tuple[str, ...]] = {}
    for j, c in enumerate(item_cols):
        col = frame[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            text, (cats, ordered) = _text_categorical(col)
            if ordered:
                levels[c] = cats
            cells[:, j] = [None if v is pd.NA else v for v in text.tolist()]
        else:
            cells[:, j] = [_as_text(v) for v in col.tolist()]
    long["response"] = pd.array(cells.ravel(), dtype="string")
    note = (f"wide table melted: {n} unit(s) x {m} item column(s) = {n * m} answer rows "
            f"(unit {unit!r} -> unit_id, arm {arm!r} -> arm)")
    return _read_log(long, items=item_table, persona=persona_cols or None, item_levels=levels, notes=(note,),
                     **read_kwargs)
