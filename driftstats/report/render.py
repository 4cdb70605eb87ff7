"""Render an :class:`~driftstats.report.audit.Audit` as one self-contained HTML page.

Sections come from a registry (:data:`SECTIONS`); each turns the audit into *blocks*
(text, headings, tables, figures, assumptions, skipped notes). A later section (say, a
Bayesian drift model) is added with :func:`register_section` without touching the others.
Everything taken from the log is escaped: Jinja2 autoescaping for text, ``markupsafe.escape``
for every table header and cell; figures are PNG data URIs; the page has no script and loads nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from driftstats._optional import import_optional
from driftstats._result import fmt_num
from driftstats._version import __version__

__all__ = ["SECTIONS", "Block", "Section", "register_section", "render_html"]


@dataclass
class Block:
    kind: str  # text | heading | table | figure | assumptions | skipped
    value: Any
    alt: str = ""


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    number: int = 0


SectionBuilder = Callable[[Any], Section | None]
SECTIONS: list[SectionBuilder] = []


def register_section(builder: SectionBuilder, *, position: int | None = None) -> SectionBuilder:
    """Add a section builder (a function ``audit -> Section | None``) to the report."""
    if position is None:
        SECTIONS.append(builder)
    else:
        SECTIONS.insert(position, builder)
    return builder


def table(frame: pd.DataFrame, columns: list[str] | None = None, *, rename: dict[str, str] | None = None) -> Block:
    """An HTML table; every header and cell is escaped, numeric columns are right-aligned."""
    from markupsafe import Markup, escape

    shown = frame[columns] if columns else frame
    rename = rename or {}
    numeric = [pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in shown.dtypes]

    def cell(tag: str, value: Any, num: bool) -> str:
        return f'<{tag} class="{"num" if num else "txt"}">{escape(value)}</{tag}>'

    head = "".join(cell("th", rename.get(c, c), n) for c, n in zip(shown.columns, numeric, strict=True))
    body = "".join(
        "<tr>" + "".join(cell("td", fmt_num(v), n) for v, n in zip(row, numeric, strict=True)) + "</tr>"
        for row in shown.itertuples(index=False, name=None)
    )
    return Block("table", Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"))


def figure(fig: Any, alt: str) -> Block:
    from driftstats.plot.figures import figure_png

    return Block("figure", base64.b64encode(figure_png(fig)).decode("ascii"), alt=alt)


def render_html(audit: Any) -> str:
    jinja2 = import_optional("jinja2", extra="report", purpose="the HTML report")
    import_optional("matplotlib", extra="report", purpose="the HTML report")
    from importlib.resources import files

    from driftstats.report import sections  # noqa: F401  (registers the built-in sections)

    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(files("driftstats.report").joinpath("templates/report.html.j2").read_text())
    built = []
    for builder in SECTIONS:
        s = builder(audit)
        if s is not None:
            s.number = len(built) + 1
            built.append(s)
    return template.render(source=audit.summary.source, version=__version__, settings=audit.settings,
                           verdict=audit.verdict, sections=built)
