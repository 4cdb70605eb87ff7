"""The ``driftstats`` command line.

``validate LOG`` and ``summary LOG`` read and check a log; ``audit LOG --report FILE``
runs the audit and writes the HTML report. Optional layers add sub-commands through
the ``driftstats.commands`` entry-point group (``collectors`` adds ``simulate``), so
the core never imports them by name.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from driftstats.cli_errors import DebugOpt, user_errors
from driftstats.errors import DriftstatsError

app = typer.Typer(
    name="driftstats",
    help="Audit experiments run on LLM-simulated users (negative-control drift tests, corrections).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

def _format_help() -> str:
    from driftstats.log.simlog import importer_formats

    return " | ".join(("parquet", "csv", "jsonl", "duckdb", "edsl", *importer_formats())) + " (default: from the suffix)"


FormatOpt = Annotated[str | None, typer.Option("--format", "-f", help=_format_help())]
MapOpt = Annotated[
    list[str] | None,
    typer.Option("--map", "-m", help="map a foreign column: THEIR_NAME=schema_name (repeatable)"),
]
ArmOpt = Annotated[str | None, typer.Option("--arm", help="column naming the arm (edsl: scenario.<key>)")]
NcoOpt = Annotated[list[str] | None, typer.Option("--nco", help="item to treat as an NCO (repeatable)")]
PrimaryOpt = Annotated[list[str] | None, typer.Option("--primary", help="primary outcome item (repeatable)")]


def _mapping(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs or []:
        if "=" not in p:
            raise typer.BadParameter(f"--map expects THEIR_NAME=schema_name, got {p!r}", param_hint="--map")
        k, v = p.split("=", 1)
        out[k] = v
    return out


def _read(log: Path, fmt: str | None, mapping: list[str] | None, arm: str | None,
          nco: list[str] | None, primary: list[str] | None, debug: bool):
    """The validated log, or exit 2 with the reason in one line (the exception's name and message)."""
    from rich.markup import escape

    from driftstats.log import read_log

    with user_errors(debug), console.status(f"reading and validating {escape(str(log))} ..."):
        return read_log(log, format=fmt, mapping=_mapping(mapping) or None, arm=arm,  # type: ignore[arg-type]
                        nco=nco or None, primary=primary or None)


@app.command()
def validate(
    log: Annotated[Path, typer.Argument(help="the log file")],
    fmt: FormatOpt = None,
    mapping: MapOpt = None,
    arm: ArmOpt = None,
    nco: NcoOpt = None,
    primary: PrimaryOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Validate LOG against the schema; exit 0 when valid, 2 with the reason when not."""
    sl = _read(log, fmt, mapping, arm, nco, primary, debug)
    console.print(f"valid: {sl!r}", markup=False)
    for d in sl.diagnostics:
        console.print(f"  note: {d}", markup=False)


@app.command()
def summary(
    log: Annotated[Path, typer.Argument(help="the log file")],
    fmt: FormatOpt = None,
    mapping: MapOpt = None,
    arm: ArmOpt = None,
    nco: NcoOpt = None,
    primary: PrimaryOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Validate LOG and print its sizes, invalid answers and provenance completeness."""
    sl = _read(log, fmt, mapping, arm, nco, primary, debug)
    s = sl.summary()
    console.print(s.source, style="bold", markup=False)
    console.print("  ".join(f"{k}: {v}" for k, v in s.facts.items()), markup=False)
    for title, frame in (("Arms", s.sizes), ("Items", s.items), ("Provenance: rows missing", s.provenance)):
        t = Table(title=title, title_justify="left")
        for c in frame.columns:
            t.add_column(Text(str(c)))
        for row in frame.itertuples(index=False):  # log content is shown as text, never as console markup
            t.add_row(*[Text("" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)) for v in row])
        console.print(t)
    for d in s.diagnostics:
        console.print(f"note: {d}", markup=False)


def _register_plugins() -> None:
    for ep in entry_points(group="driftstats.commands"):
        try:
            func = ep.load()
        except ImportError:  # an optional layer whose package is absent
            continue
        app.command(name=ep.name)(func)


def _register_audit() -> None:
    try:
        from driftstats.report.cli import audit
    except ImportError:
        return
    app.command(name="audit")(audit)


_register_audit()
_register_plugins()


def main() -> None:
    try:
        app()
    except DriftstatsError as exc:  # pragma: no cover - commands handle their own
        err_console.print(f"error: {type(exc).__name__}: {exc}", markup=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
