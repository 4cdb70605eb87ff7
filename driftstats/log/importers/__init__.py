"""Importers of foreign multi-turn logs (agent evaluations, chat logs) into the driftstats schema.

An importer reads one or more files of one foreign format and returns the log's tables as
pandas DataFrames: ``answers`` (required), and whichever of ``items``, ``personas``, ``arms`` and
``transcripts`` the format holds. :func:`driftstats.read_log` with ``format=<name>`` calls it, then
validates the tables like any other log. Files are data: nothing in them is evaluated.

An importer is registered under its format name::

    @register("tau2")
    def read_tau2(sources: list[Path], *, arms: list[str | None], **options) -> dict[str, pd.DataFrame]: ...

``sources`` are the files (one arm per file unless the format names arms itself); ``arms`` holds the
arm name given for each file (``None``: taken from the file).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

__all__ = ["IMPORTERS", "Importer", "register"]

Importer = Callable[..., dict[str, pd.DataFrame]]

#: format name -> importer (filled by the modules of this package when they are imported).
IMPORTERS: dict[str, Importer] = {}


def register(name: str) -> Callable[[Importer], Importer]:
    """Register ``fn`` as the importer of ``format=name``."""

    def deco(fn: Importer) -> Importer:
        if name in IMPORTERS:
            raise ValueError(f"an importer for format {name!r} is already registered")
        IMPORTERS[name] = fn
        return fn

    return deco



# The importers register themselves on import (after ``register`` exists).
from driftstats.log.importers import chat, simulator_arena, tau1, tau2  # noqa: E402

__all__ += ["chat", "simulator_arena", "tau1", "tau2"]
