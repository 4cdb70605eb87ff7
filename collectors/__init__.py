"""Simulated survey experiments on local LLMs, written in the driftstats log schema.

Optional layer (``pip install 'driftstats[collect]'``); the statistical core never imports it.
"""

from collectors.study import Study, StudyError, load_study

__all__ = ["Study", "StudyError", "load_study", "run_study"]


def __getattr__(name: str):
    if name == "run_study":
        from collectors.runner import run_study

        return run_study
    raise AttributeError(name)
