"""Queries for the unit-level tables (:mod:`driftstats._units`) and for retention.

One row per unit: the design columns (:func:`unit_design`), an item's value per unit
(:func:`item_unit_means`: the mean code or value over the unit's valid answers, weighted by
``prob`` in distribution mode), an item's single label per unit (:func:`item_unit_labels`, for
nominal items, whose codes are never averaged), and retention per arm (:func:`retention_by_arm`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import pandas as pd

if TYPE_CHECKING:
    from driftstats.log.simlog import SimLog

__all__ = ["item_unit_labels", "item_unit_means", "retention_by_arm", "unit_design"]


def unit_design(log: SimLog) -> pd.DataFrame:
    """``unit_id, arm, iteration, persona_id, model, study, run_id`` for every unit with an answer row."""
    return log.con.execute(
        "SELECT DISTINCT unit_id, arm, iteration, persona_id, model, study, run_id FROM answers ORDER BY unit_id"
    ).df()


def item_unit_means(log: SimLog, item: str, mode: str, *, value: Literal["code", "value"]) -> pd.DataFrame:
    """``unit_id, mean``: the unit's mean option code (``value="code"``) or numeric value.

    Valid answers of ``item`` in ``mode`` only; in distribution mode each row is weighted by
    its ``prob`` (the expected code under the model's option distribution).
    """
    column = "response_value" if value == "value" else "CAST(response_code AS DOUBLE)"
    return log.con.execute(
        f"SELECT unit_id, sum({column} * coalesce(prob, 1.0)) / sum(coalesce(prob, 1.0)) AS mean "
        "FROM answers WHERE valid AND item = ? AND mode = ? GROUP BY unit_id ORDER BY unit_id",
        [item, mode],
    ).df()


def item_unit_labels(log: SimLog, item: str, mode: str) -> pd.DataFrame:
    """``unit_id, label, n_labels``: the unit's answer when all its valid answers agree.

    ``label`` is NULL when the unit gave different answers across replicates (``n_labels > 1``).
    """
    return log.con.execute(
        "SELECT unit_id, CASE WHEN count(DISTINCT response) = 1 THEN any_value(response) END AS label, "
        "count(DISTINCT response) AS n_labels "
        "FROM answers WHERE valid AND item = ? AND mode = ? AND response IS NOT NULL GROUP BY unit_id ORDER BY unit_id",
        [item, mode],
    ).df()


def retention_by_arm(log: SimLog, item: str) -> pd.DataFrame:
    """Per arm: ``units``, ``retained`` (units with a valid sampled answer to ``item``) and
    ``mean_retained`` (mean over retained units of their mean option code)."""
    return log.con.execute(
        "SELECT a.arm, count(DISTINCT a.unit_id) AS units, "
        "count(DISTINCT a.unit_id) FILTER (WHERE b.unit_id IS NOT NULL) AS retained, avg(b.code) AS mean_retained "
        "FROM (SELECT DISTINCT unit_id, arm FROM answers) a LEFT JOIN "
        "(SELECT unit_id, avg(response_code) AS code FROM answers WHERE item = ? AND valid AND mode = 'sample' "
        " GROUP BY unit_id) b USING (unit_id) GROUP BY a.arm ORDER BY a.arm",
        [item],
    ).df()
