"""Iterating over the groups of a frame (``by=`` columns): one helper for every verb.

``iter_groups(frame, by)`` yields ``(group, sub)`` where ``group`` maps each ``by`` column to
a plain Python scalar (so it can go straight into a result row) and ``sub`` is the slice of
``frame``. Without ``by`` it yields the whole frame once with an empty group. Groups come in
sorted order; missing values form their own group (never dropped silently).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

__all__ = ["iter_groups", "plain"]


def plain(value: Any) -> Any:
    """A numpy / pandas scalar as the Python scalar it holds (``np.int64(1)`` -> ``1``)."""
    return value.item() if hasattr(value, "item") else value


def iter_groups(frame: pd.DataFrame, by: Sequence[str], *, columns: Sequence[str] | None = None
                ) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """Yield ``({by_col: value, ...}, sub_frame)`` per group of ``frame`` by ``by``.

    ``columns`` names the frame's columns for each ``by`` entry when they differ (e.g. a
    query that prefixes grouping columns with ``g_``); the yielded keys are the ``by`` names.

    Examples
    --------
    >>> f = pd.DataFrame({"it": [1, 0, 1], "x": [1.0, 2.0, 3.0]})
    >>> [(g, len(s)) for g, s in iter_groups(f, ["it"])]
    [({'it': 0}, 1), ({'it': 1}, 2)]
    >>> [(g, len(s)) for g, s in iter_groups(f, [])]
    [({}, 3)]
    """
    by = list(by)
    cols = list(columns) if columns is not None else by
    if len(cols) != len(by):
        raise ValueError("columns must name one frame column per by entry")
    if not by:
        yield {}, frame
        return
    for key, sub in frame.groupby(cols, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield {b: plain(v) for b, v in zip(by, key, strict=True)}, sub
