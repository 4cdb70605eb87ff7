"""The public API: lazy exports resolve to callables, layering holds, optional layers name their extra."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import driftstats
from driftstats._optional import import_optional


def test_every_export_is_a_callable_or_class_even_after_importing_all_submodules() -> None:
    for mod in pkgutil.walk_packages(driftstats.__path__, prefix="driftstats."):
        importlib.import_module(mod.name)  # importing a submodule must not shadow an export
    for name in driftstats.__all__:
        obj = getattr(driftstats, name)
        assert not isinstance(obj, type(sys)) or name == "errors", f"driftstats.{name} is a module"


def test_core_import_is_light_and_never_imports_collectors() -> None:
    code = (
        "import sys, driftstats as ds; ds.nco_test; ds.read_log; ds.audit; "
        "heavy = [m for m in ('collectors', 'matplotlib', 'llama_cpp', 'outlines', 'pymc', 'jinja2') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    core = subprocess.run([sys.executable, "-c",
                           "import sys, driftstats.nco, driftstats.correct, driftstats.calibrate, driftstats.report; "
                           "print('collectors' in sys.modules)"], capture_output=True, text=True, check=True)
    assert core.stdout.strip() == "False"


def test_missing_optional_layer_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r"pip install 'driftstats\[plot\]'"):
        import_optional("matplotlib_that_is_not_installed", extra="plot", purpose="driftstats.plot")


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        driftstats.nope  # noqa: B018
