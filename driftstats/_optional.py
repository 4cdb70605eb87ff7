"""Optional dependency layering: heavy layers load lazily and name their extra."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_optional"]

_PIP_NAME = {"matplotlib": "matplotlib", "pymc": "PyMC", "arviz": "ArviZ", "jinja2": "Jinja2",
             "llama_cpp": "llama-cpp-python", "outlines": "outlines", "linearmodels": "linearmodels"}


def import_optional(module: str, *, extra: str, purpose: str = "this feature") -> ModuleType:
    """Import ``module`` or raise an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        name = _PIP_NAME.get(top, top)
        raise ImportError(
            f"{purpose} needs {name}, which is not installed: pip install 'driftstats[{extra}]'"
        ) from exc
