"""``driftstats simulate STUDY --out runs.duckdb`` (registered through an entry point)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["simulate"]


def simulate(
    study: Annotated[Path, typer.Argument(help="study file (.toml or .yaml)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="DuckDB file to write (resumed when it exists)")],
    overwrite: Annotated[bool, typer.Option(help="start over instead of resuming")] = False,
    max_units: Annotated[int | None, typer.Option(help="stop after this many new units")] = None,
) -> None:
    """Run a simulated experiment on a local model and write the log (crash-safe; resumable)."""
    from collectors.runner import run_study
    from collectors.study import StudyError, load_study

    console = Console()
    try:
        spec = load_study(study)
    except (StudyError, FileNotFoundError) as exc:
        console.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(code=2) from None
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("units"),
               TextColumn("{task.fields[rate]:.2f} answers/s"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(spec.name, total=spec.design.units_per_arm * len(spec.arms), rate=0.0)
        start = {"t": None, "done": None}

        def on_unit(done: int, total: int, answers: int) -> None:
            import time

            now = time.perf_counter()
            if start["t"] is None:
                start["t"], start["done"] = now, answers
            elapsed = now - start["t"]
            rate = answers / elapsed if elapsed > 0 else 0.0
            progress.update(task, completed=done, rate=rate)

        try:
            summary = run_study(spec, out, base_dir=study.parent, overwrite=overwrite, max_units=max_units,
                                on_unit=on_unit)
        except (StudyError, FileNotFoundError, ValueError) as exc:
            console.print(f"[bold red]error[/]: {exc}")
            raise typer.Exit(code=2) from None
        progress.update(task, completed=summary.units_done_before + summary.units_run)
    console.print(summary.as_text())
    if summary.invalid:
        console.print(f"[yellow]{summary.invalid} invalid answer(s) kept with valid = false (see the error column)[/]")
