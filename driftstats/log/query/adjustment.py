"""Queries of :func:`driftstats.adjustment_path`: per-run answer weights, unit counts and NCO answers
with the personas' latent true values. Runs are keyed by ``study, model, run_id, iteration``."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from driftstats.log._sql import qi
from driftstats.log.simlog import SimLog

__all__ = ["answer_weights", "answers_with_truth", "units_answering"]

RUN_KEYS: tuple[str, ...] = ("study", "model", "run_id", "iteration")
_KEYS = ", ".join(qi(k) for k in RUN_KEYS)


def answer_weights(log: SimLog, *, mode: str) -> pd.DataFrame:
    """``RUN_KEYS, arm, item, response, w``: the summed weight (probability in mode 'dist', 1 per
    sampled answer) of each valid response per run, arm and item."""
    return log.sql(f"SELECT {_KEYS}, arm, item, response, sum(coalesce(prob, 1.0)) AS w FROM answers "
                   "WHERE valid AND mode = ? AND response IS NOT NULL GROUP BY ALL", [mode])


def units_answering(log: SimLog, *, mode: str) -> pd.DataFrame:
    """``RUN_KEYS, arm, item, n``: units with a valid answer to each item, per run and arm."""
    return log.sql(f"SELECT {_KEYS}, arm, item, count(DISTINCT unit_id) AS n FROM answers WHERE valid AND mode = ? "
                   "AND response IS NOT NULL GROUP BY ALL", [mode])


def answers_with_truth(log: SimLog, *, mode: str, items: Sequence[str]) -> pd.DataFrame:
    """``RUN_KEYS, arm, unit_id, persona_id, item, code, w, truth``: each unit's valid answers to
    ``items`` with the unit's latent true value of the attribute the item is named after (NULL when
    the personas table has none)."""
    keys = ", ".join(f"a.{qi(k)}" for k in RUN_KEYS)
    return log.sql(
        f"SELECT {keys}, a.arm, a.unit_id, a.persona_id, a.item, a.response_code AS code, "
        "sum(coalesce(a.prob, 1.0)) AS w, any_value(p.value) AS truth "
        "FROM answers a LEFT JOIN personas p ON p.unit_id = a.unit_id AND p.attribute = a.item AND NOT p.specified "
        "WHERE a.valid AND a.mode = ? AND a.response_code IS NOT NULL AND a.item IN (SELECT unnest(?)) "
        "GROUP BY ALL ORDER BY ALL", [mode, list(items)])
