"""Iterating over the groups of a frame (``by=`` columns): one helper for every verb.

``iter_groups(frame, by)`` yields ``(group, sub)`` where ``group`` maps each ``by`` column to
a plain Python scalar (so it can go straight into a result row) and ``sub`` is the slice of
``frame``. Without ``by`` it yields the whole frame once with an empty group. Groups come in
sorted order; missing values form their own group (never dropped silently).

``resolve_by(by, log=..., columns=...)`` is the one rule for every verb's ``by=``: ``"auto"`` (the
default) groups by the log's *runs*, i.e. ``iteration`` plus whichever of ``study``, ``model`` and
``run_id`` take more than one value, so answers of different models, adjustment paths or
iterations are never pooled unless the caller asks (``by="iteration"``, ``by=()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from driftstats._args import check_by
from driftstats.log.query.design import RUN_COLUMNS, varying_run_columns

if TYPE_CHECKING:
    from driftstats.log.simlog import SimLog

__all__ = ["AUTO_BY", "iter_groups", "plain", "resolve_by"]

#: The default of every verb's ``by=``: one group per run of the study (see :func:`resolve_by`).
AUTO_BY = "auto"


def resolve_by(by: str | Iterable[str] | None, *, log: SimLog | None, columns: Iterable[str],
               frame: pd.DataFrame | None = None) -> tuple[str, ...]:
    """The grouping columns of a verb: ``by`` checked against ``columns``, or the runs for ``"auto"``.

    ``"auto"``: ``iteration`` (when it is a column) plus each of ``study``, ``model`` and ``run_id``
    that varies, in the log (when given) or else in ``frame``: a run is never pooled with another.

    Examples
    --------
    >>> f = pd.DataFrame({"model": ["a", "b"], "iteration": [0, 0], "run_id": ["r", "r"]})
    >>> resolve_by("auto", log=None, columns=f.columns, frame=f)
    ('model', 'iteration')
    >>> resolve_by("auto", log=None, columns=["arm"], frame=None)
    ()
    >>> resolve_by(["model"], log=None, columns=f.columns)
    ('model',)
    """
    columns = list(columns)
    if not (isinstance(by, str) and by == AUTO_BY):
        return check_by(by, columns)
    if log is not None:
        varying = set(varying_run_columns(log))
    elif frame is not None:
        varying = {c for c in RUN_COLUMNS if c in frame.columns and frame[c].nunique(dropna=False) > 1}
    else:
        varying = set()
    return tuple(c for c in RUN_COLUMNS if c in columns and (c in varying or c == "iteration"))


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
