"""``driftstats audit LOG --report audit.html``: the product's main job."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["audit"]


def audit(
    log: Annotated[Path, typer.Argument(help="the log (.duckdb, .parquet, .csv, .jsonl; edsl with --format edsl)")],
    report: Annotated[Path, typer.Option("--report", "-r", help="HTML report to write")] = Path("audit.html"),
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="parquet | csv | jsonl | duckdb | edsl")] = None,
    arm: Annotated[str | None, typer.Option("--arm", help="column naming the arm (edsl: scenario.<key>)")] = None,
    nco: Annotated[list[str] | None, typer.Option("--nco", help="NCO item (repeatable)")] = None,
    primary: Annotated[list[str] | None, typer.Option("--primary", help="primary outcome item")] = None,
    margin: Annotated[float, typer.Option(help="equivalence margin on the TVD scale")] = 0.05,
    n_perm: Annotated[int, typer.Option(help="permutations per test")] = 2000,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    mode: Annotated[str, typer.Option(help="sample | dist")] = "sample",
) -> None:
    """Audit a simulation log and write a self-contained HTML report."""
    from driftstats.errors import DriftstatsError
    from driftstats.log import read_log
    from driftstats.report.audit import audit as run_audit

    console = Console()
    t0 = time.perf_counter()
    try:
        with console.status("reading and validating the log ...") as status:
            sl = read_log(log, format=fmt, arm=arm, nco=nco or None, primary=primary or None)  # type: ignore[arg-type]

            def progress(msg: str) -> None:
                status.update(f"{msg} ...  [{time.perf_counter() - t0:.0f} s]")
                console.log(msg)

            result = run_audit(sl, margin=margin, n_perm=n_perm, seed=seed, mode=mode, progress=progress)  # type: ignore[arg-type]
            status.update("rendering the report ...")
            result.write_html(report)
    except (DriftstatsError, FileNotFoundError) as exc:
        console.print(f"[bold red]error[/]: {type(exc).__name__}: {exc}")
        raise typer.Exit(code=2) from None
    console.print(f"[bold]Verdict[/] ({sl.n_rows} rows, {time.perf_counter() - t0:.1f} s):")
    for v in result.verdict:
        console.print(f"  - {v}", soft_wrap=True)
    console.print(f"report written to [bold]{report}[/]")
