"""How the command line reports errors: one line, a non-zero exit, a traceback only with ``--debug``.

User errors (driftstats' named errors, unreadable or missing files, unwritable paths) exit with
code 2; a failed computation exits with code 1. Messages from logs are printed as plain text
(no console markup is interpreted in them).
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from driftstats.errors import DriftstatsError

__all__ = ["DebugOpt", "fail", "log_source", "user_errors"]

DebugOpt = Annotated[bool, typer.Option("--debug", help="show the Python traceback of an error")]

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(exc: BaseException, debug: bool, *, code: int = 2) -> NoReturn:
    """Print ``error: <Type>: <message>`` (and the traceback with ``debug``) and exit with ``code``."""
    if debug:
        _err.print("".join(traceback.format_exception(exc)), markup=False)
    if isinstance(exc, OSError) and not isinstance(exc, DriftstatsError):
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        text = f"{type(exc).__name__}: {exc.strerror or exc}{where}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    _err.print("error: " + text, markup=False)
    raise typer.Exit(code=code)


@contextlib.contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """Turn driftstats' named errors and file-system errors into a one-line message and exit code 2."""
    try:
        yield
    except (DriftstatsError, OSError) as exc:
        fail(exc, debug, code=2)


def log_source(logs: Sequence[Path], fmt: str | None) -> Path | list[Path]:
    """What ``read_log`` reads from the LOG arguments: one path, or several files of an importer format."""
    from driftstats.errors import InvalidArgumentError
    from driftstats.log.simlog import importer_formats

    if len(logs) == 1:
        return logs[0]
    if fmt not in importer_formats():
        raise InvalidArgumentError(
            f"{len(logs)} LOG files given; several files are read together only by an importer format "
            f"(--format {' | '.join(importer_formats())}: one file per arm). Fix: pass one log, or --format.")
    return list(logs)
