"""The result contract shared by every estimator and test.

``tidy()`` -> one row per term/contrast, canonical columns (see :mod:`driftstats._glossary`);
``glance()`` -> one row with a fixed schema; ``summary()`` -> a :class:`Summary` that
renders as text, HTML or LaTeX; ``repr`` and ``_repr_html_`` are deterministic (no
dates, no addresses) and show the same content.

Results are frozen dataclasses. Nothing on them is rounded; rounding happens only on
screen. Changing inference produces a new object via :func:`dataclasses.replace`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from driftstats._glossary import GLANCE, GLANCE_CORE, GLANCE_ORDER, TIDY, TIDY_CORE, TIDY_ORDER
from driftstats._version import __version__

__all__ = ["Provenance", "Result", "Summary", "fmt_num", "make_glance", "make_tidy"]

_PANDAS_DTYPE = {"str": "string", "float": "float64", "int": "Int64", "bool": "boolean"}


def _coerce(series: pd.Series, dtype: str) -> pd.Series:
    if dtype == "float":
        return pd.to_numeric(series, errors="raise").astype("float64")
    if dtype == "int":
        return pd.array(
            [pd.NA if v is None or (isinstance(v, float) and math.isnan(v)) else int(v) for v in series],
            dtype="Int64",
        )
    if dtype == "bool":
        return pd.array(
            [pd.NA if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v) for v in series],
            dtype="boolean",
        )
    return pd.array(
        [pd.NA if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in series],
        dtype="string",
    )


def make_tidy(
    rows: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    extras: Sequence[str] = (),
    by: Sequence[str] = (),
) -> pd.DataFrame:
    """Build a canonical tidy frame.

    ``rows`` may hold any subset of the core columns, the ``by`` columns and the
    declared ``extras``; the rest are filled with typed NA. Order: ``term``, the
    ``by`` columns, the other core columns, then ``extras`` in glossary order.
    """
    frame = pd.DataFrame(list(rows)) if not isinstance(rows, pd.DataFrame) else rows.copy()
    unknown = [c for c in extras if c not in TIDY]
    if unknown:
        raise ValueError(f"extras not in the glossary: {unknown}")
    extras_sorted = sorted(set(extras) - set(TIDY_CORE), key=TIDY_ORDER.__getitem__)
    stray = set(frame.columns) - set(TIDY_CORE) - set(extras_sorted) - set(by)
    if stray:
        raise ValueError(f"columns not declared as extras: {sorted(stray)}")
    out = {}
    n = len(frame)
    for name in ("term", *by, *TIDY_CORE[1:], *extras_sorted):
        if name in by:
            out[name] = frame[name].reset_index(drop=True) if name in frame else pd.Series([pd.NA] * n)
            continue
        col = TIDY[name]
        values = frame[name] if name in frame else pd.Series([np.nan] * n, dtype="float64")
        out[name] = _coerce(values.reset_index(drop=True), col.dtype)
    return pd.DataFrame(out)


def make_glance(values: Mapping[str, Any], *, extras: Sequence[str] = ()) -> pd.DataFrame:
    """Build the one-row glance frame: core fields, then declared extras in glossary order."""
    unknown = [c for c in (*values, *extras) if c not in GLANCE]
    if unknown:
        raise ValueError(f"glance fields not in the glossary: {unknown}")
    extras_sorted = sorted(set(extras) - set(GLANCE_CORE), key=GLANCE_ORDER.__getitem__)
    stray = set(values) - set(GLANCE_CORE) - set(extras_sorted)
    if stray:
        raise ValueError(f"glance fields not declared as extras: {sorted(stray)}")
    data = {}
    for name in (*GLANCE_CORE, *extras_sorted):
        v = values.get(name, None)
        data[name] = _coerce(pd.Series([v], dtype="object"), GLANCE[name].dtype)
    return pd.DataFrame(data)


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a result came from: the call, the library version, the seed, the data hashes."""

    call: str
    version: str = __version__
    seed: int | None = None
    data: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"call": self.call, "version": self.version, "seed": self.seed, **dict(self.data)}


def fmt_num(value: Any, digits: int = 4) -> str:
    """Format a value for display only (stored values are never rounded)."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == 0:
            return "0"
        if abs(value) < 1e-4 or abs(value) >= 1e6:
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def _display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda col: col.map(fmt_num)).astype(object)


@dataclass(frozen=True, slots=True)
class Summary:
    """A rendered summary; ``as_text``, ``as_html``, ``as_latex``, ``to_frame``."""

    title: str
    table: pd.DataFrame
    info: pd.DataFrame
    assumptions: tuple[str, ...] = ()
    diagnostics: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """The displayed table (the full table is the result's ``tidy()``)."""
        return self.table.copy()

    def as_text(self, *, max_rows: int = 40) -> str:
        lines = [self.title, "=" * len(self.title)]
        g = self.info.iloc[0]
        lines.append(
            "  ".join(f"{k}: {fmt_num(v)}" for k, v in g.items() if fmt_num(v) != "")
        )
        shown = _display_frame(self.table.head(max_rows))
        lines.append(shown.to_string(index=False) if len(shown) else "(no rows)")
        if len(self.table) > max_rows:
            lines.append(f"... {len(self.table) - max_rows} more rows (see .tidy())")
        if self.assumptions:
            lines.append("Assumptions:")
            lines.extend(f"  - {a}" for a in self.assumptions)
        if self.diagnostics:
            lines.append("Diagnostics:")
            lines.extend(f"  - {d}" for d in self.diagnostics)
        return "\n".join(lines)

    def as_html(self, *, max_rows: int = 40) -> str:
        e = html.escape
        g = self.info.iloc[0]
        meta = " &middot; ".join(
            f"<b>{e(str(k))}</b>: {e(fmt_num(v))}" for k, v in g.items() if fmt_num(v) != ""
        )
        shown = _display_frame(self.table.head(max_rows))
        head = "".join(f"<th>{e(str(c))}</th>" for c in shown.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>"
            for row in shown.itertuples(index=False)
        )
        parts = [
            f"<div class='driftstats-result'><h4>{e(self.title)}</h4><p>{meta}</p>",
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        ]
        if len(self.table) > max_rows:
            parts.append(f"<p>... {len(self.table) - max_rows} more rows (see .tidy())</p>")
        for label, items in (("Assumptions", self.assumptions), ("Diagnostics", self.diagnostics)):
            if items:
                parts.append(f"<p><b>{label}</b></p><ul>")
                parts.extend(f"<li>{e(a)}</li>" for a in items)
                parts.append("</ul>")
        parts.append("</div>")
        return "".join(parts)

    def as_latex(self) -> str:
        shown = _display_frame(self.table)
        cols = list(shown.columns)

        def tex(s: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                         ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
                s = s.replace(a, b)
            return s

        rows = [" & ".join(tex(str(v)) for v in r) + r" \\" for r in shown.itertuples(index=False)]
        return "\n".join(
            [
                r"\begin{tabular}{" + "l" * len(cols) + "}",
                r"\hline",
                " & ".join(tex(c) for c in cols) + r" \\",
                r"\hline",
                *rows,
                r"\hline",
                r"\end{tabular}",
            ]
        )

    def __str__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        return self.as_html()


@dataclass(frozen=True, slots=True, repr=False)
class Result:
    """Base of every driftstats result.

    Subclasses declare ``TIDY_EXTRAS`` / ``GLANCE_EXTRAS`` (glossary names) so their
    column sets never depend on the input, and a ``TITLE``.
    """

    TITLE: ClassVar[str] = "driftstats result"
    # columns shown by repr / summary (tidy() always has them all); empty = the core columns
    DISPLAY: ClassVar[tuple[str, ...]] = ()
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ()
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ()
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = ()

    table: pd.DataFrame
    info: Mapping[str, Any]
    by: tuple[str, ...] = ()
    diagnostics: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: Provenance(call=""))

    @classmethod
    def build(
        cls,
        rows: pd.DataFrame | Sequence[Mapping[str, Any]],
        info: Mapping[str, Any],
        *,
        by: Sequence[str] = (),
        diagnostics: Sequence[str] = (),
        provenance: Provenance | None = None,
        **fields: Any,
    ) -> Any:
        table = make_tidy(rows, extras=cls.TIDY_EXTRAS, by=tuple(by))
        make_glance(info, extras=cls.GLANCE_EXTRAS)  # validate early
        return cls(
            table=table,
            info=dict(info),
            by=tuple(by),
            diagnostics=tuple(diagnostics),
            provenance=provenance or Provenance(call=cls.__name__),
            **fields,
        )

    # -- the three verbs ------------------------------------------------------------
    def tidy(self) -> pd.DataFrame:
        """One row per term; canonical columns (see the glossary)."""
        return self.table.copy()

    def glance(self) -> pd.DataFrame:
        """One row describing the whole result."""
        return make_glance(self.info, extras=self.GLANCE_EXTRAS)

    @property
    def assumptions(self) -> tuple[str, ...]:
        """Identifying or modelling conditions the data cannot confirm."""
        return self.ASSUMPTIONS

    def summary(self) -> Summary:
        """A :class:`Summary` (text, HTML, LaTeX); it never prints."""
        cols = ["term", *self.by, *(self.DISPLAY or TIDY_CORE[1:])]
        return Summary(
            title=self.TITLE,
            table=self.table[[c for c in dict.fromkeys(cols) if c in self.table.columns]],
            info=self.glance(),
            assumptions=self.assumptions,
            diagnostics=self.diagnostics,
        )

    def __repr__(self) -> str:
        return self.summary().as_text(max_rows=20)

    def _repr_html_(self) -> str:
        return self.summary().as_html(max_rows=20)
