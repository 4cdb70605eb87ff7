"""``driftstats audit LOG --report audit.html``: the product's main job.

Exit codes: 0 the audit ran (every step computed or skipped with a stated reason); 1 a step
failed (with ``--keep-going``: 0, and the failed steps lead the verdict as not computed);
2 a user error (an argument out of range, an unreadable or invalid log, an unwritable report
path), reported in one line before any work is done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from driftstats.cli_errors import DebugOpt, fail, log_source, user_errors

__all__ = ["audit"]


def audit(
    log: Annotated[list[Path], typer.Argument(help="the log (.duckdb, .parquet, .csv, .jsonl; edsl with --format edsl), "
                                               "or several files of an importer format (one per arm)")],
    report: Annotated[Path, typer.Option("--report", "-r", help="HTML report to write")] = Path("audit.html"),
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="parquet | csv | jsonl | duckdb | edsl, or an "
                                            "importer: tau2 | tau1 | simulator_arena | chat")] = None,
    arm: Annotated[str | None, typer.Option("--arm", help="column naming the arm (edsl: scenario.<key>)")] = None,
    nco: Annotated[list[str] | None, typer.Option("--nco", help="NCO item (repeatable)")] = None,
    primary: Annotated[list[str] | None, typer.Option("--primary", help="primary outcome item")] = None,
    outcome: Annotated[str | None, typer.Option("--outcome", help="the outcome item (default: the single primary item)")] = None,
    margin: Annotated[float, typer.Option(help="equivalence margin on the TVD scale, in (0, 1)")] = 0.05,
    n_perm: Annotated[int, typer.Option(help="permutations per test (>= 19)")] = 2000,
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples per interval (0: none)")] = 2000,
    conf_level: Annotated[float, typer.Option(help="confidence level; 1 - conf_level is the significance level")] = 0.95,
    min_units: Annotated[int, typer.Option(help="units per arm below which a step says it cannot conclude")] = 10,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    mode: Annotated[str, typer.Option(help="sample | dist")] = "sample",
    keep_going: Annotated[bool, typer.Option("--keep-going", help="list failed steps as not computed and exit 0")] = False,
    debug: DebugOpt = False,
) -> None:
    """Audit a simulation log and write a self-contained HTML report."""
    from driftstats._args import check_choice, check_conf_level, check_margin, check_positive_int
    from driftstats.log import read_log
    from driftstats.report.audit import AuditStepError, check_report_path
    from driftstats.report.audit import audit as run_audit

    console = Console(highlight=False)
    t0 = time.perf_counter()
    with user_errors(debug):
        # every argument is checked before any work starts
        check_margin(margin, name="--margin")
        check_choice("--mode", mode, Literal["sample", "dist"])
        check_positive_int("--n-perm", n_perm, minimum=19)
        check_positive_int("--n-boot", n_boot, minimum=0)
        check_positive_int("--min-units", min_units, minimum=2)
        check_conf_level(conf_level, name="--conf-level")
        report = check_report_path(report)
        source = log_source(log, fmt)
        with console.status("reading and validating the log ...") as status:
            sl = read_log(source, format=fmt, arm=arm, nco=nco or None, primary=primary or None)  # type: ignore[arg-type]

            def progress(msg: str) -> None:
                status.update(f"{escape(msg)} ...  [{time.perf_counter() - t0:.0f} s]")
                console.log(msg, markup=False)

            try:
                result = run_audit(sl, outcome=outcome, margin=margin, n_perm=n_perm, n_boot=n_boot,
                                   conf_level=conf_level, min_units=min_units, seed=seed, mode=mode,  # type: ignore[arg-type]
                                   keep_going=keep_going, progress=progress)
            except AuditStepError as exc:
                fail(exc, debug, code=1)
            status.update("rendering the report ...")
            result.write_html(report)
    console.print(f"[bold]Verdict[/] ({sl.n_rows} rows, {time.perf_counter() - t0:.1f} s):")
    for v in result.verdict:
        console.print(f"  - {v}", soft_wrap=True, markup=False)
    console.print(f"report written to [bold]{escape(str(report))}[/]")
