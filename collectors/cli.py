"""``driftstats simulate STUDY --out runs.duckdb`` (registered through an entry point).

Exit codes: 0 done (or stopped by ``--max-units``); 2 a user error (study file, model path,
a store of another study, a store another collector is writing); 1 a run that failed (a backend
error); 130 / 143 interrupted (Ctrl-C / SIGTERM). Errors are one line on stderr, no traceback.
"""

from __future__ import annotations

import signal
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


class Terminated(BaseException):
    """SIGTERM, raised as an exception so the run ends like an interrupt (the store records it)."""

    def __str__(self) -> str:
        return "terminated by SIGTERM"


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # a message is one line, however it was built
    return text or type(exc).__name__


def _units_in(out: Path) -> str:
    """Finished units in a store (read after the run released it); '?' when it cannot be read."""
    import duckdb

    try:
        con = duckdb.connect(str(out), read_only=True)
        try:
            return str(con.execute("SELECT count(*) FROM units_done").fetchone()[0])
        finally:
            con.close()
    except Exception:
        return "?"


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
    errors = Console(stderr=True, soft_wrap=True, highlight=False)

    def fail(code: int, message: str) -> typer.Exit:
        errors.print("[bold red]error[/]: ", end="")
        errors.print(message, markup=False)
        return typer.Exit(code=code)

    try:
        spec = load_study(study)
    except (StudyError, FileNotFoundError) as exc:
        raise fail(2, _one_line(exc)) from None
    state: dict[str, object] = {"done": None}
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("units"),
               TextColumn("{task.fields[rate]:.2f} answers/s"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    try:
        previous, restore = signal.signal(signal.SIGTERM, _on_sigterm), True
    except ValueError:  # not the main thread: leave signals alone
        previous, restore = None, False
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            bar: dict[str, object] = {"task": None, "t": None, "answers": 0}

            def on_iteration(label: str, total: int, already: int) -> None:
                import time

                bar["task"] = progress.add_task(label, total=total, completed=already, rate=0.0)
                bar["t"], bar["answers"] = time.perf_counter(), None

            def on_unit(done: int, total: int, answers: int) -> None:
                import time

                state["done"] = int(state["done"] or 0) + 1
                now = time.perf_counter()
                if bar["answers"] is None:
                    bar["t"], bar["answers"] = now, answers
                elapsed = now - float(bar["t"])  # type: ignore[arg-type]
                rate = (answers - int(bar["answers"])) / elapsed if elapsed > 0 else 0.0  # type: ignore[arg-type]
                progress.update(bar["task"], completed=done, rate=rate)  # type: ignore[arg-type]

            summary = run_study(spec, out, base_dir=study.parent, overwrite=overwrite, max_units=max_units,
                                on_unit=on_unit, on_iteration=on_iteration)
    except (StudyError, FileNotFoundError) as exc:
        raise fail(2, _one_line(exc)) from None
    except (Exception, KeyboardInterrupt, Terminated) as exc:
        if not out.exists():
            left = "no store was left behind"
        elif state["done"] is not None:
            n = _units_in(out)
            total = spec.design.units_per_arm * len(spec.arms) * len(spec.all_models)
            kept = f"{n} of {total} units" if spec.adjustment is None else f"{n} units"
            left = f"{out} keeps {kept}: run the same command to resume"
        else:
            left = f"{out} keeps the units it held: run the same command to resume"
        if isinstance(exc, KeyboardInterrupt | Terminated):
            raise fail(130 if isinstance(exc, KeyboardInterrupt) else 143,
                       f"interrupted ({_one_line(exc) if str(exc) else 'Ctrl-C'}); {left}.") from None
        raise fail(1, f"the run failed: {type(exc).__name__}: {_one_line(exc)}; {left}.") from None
    finally:
        if restore:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    console.print(summary.as_text())
    if summary.invalid:
        console.print(f"[yellow]{summary.invalid} invalid answer(s) kept with valid = false (see the error column)[/]")
