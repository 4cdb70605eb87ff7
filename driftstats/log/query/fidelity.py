"""Queries for persona fidelity (:func:`driftstats.fidelity`).

:func:`fidelity_answers` matches each valid fidelity answer to the unit's *specified* persona
value of the attribute the item re-asks, and sorts the units into three sets:

* matched: the specified value is one of the item's options (or the item is numeric), so the
  answer can be right or wrong; these rows carry the per-unit hit counts;
* ``not_option``: the specified value is not one of the item's options (a persona table that
  spells values differently from the items table); such units can never report the value,
  so they are left out of the fidelity share rather than counted as failures;
* ``no_spec``: the unit answered the item but has no specified value for its attribute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from driftstats.log._sql import qi

if TYPE_CHECKING:
    from driftstats.log.simlog import SimLog

__all__ = ["FidelityAnswers", "fidelity_answers"]


@dataclass(frozen=True)
class FidelityAnswers:
    """Per unit x item: ``hits`` (weighted matches), ``weight``, ``n_answers``; plus the left-out units."""

    rows: pd.DataFrame  # g_<by>..., arm, unit_id, persona_id, item, attribute, hits, weight, n_answers
    not_option: pd.DataFrame  # item, attribute, units, answers, example_value, options
    no_spec: pd.DataFrame  # item, attribute, units, answers


def fidelity_answers(log: SimLog, items: Sequence[str], by: Sequence[str], mode: str) -> FidelityAnswers:
    """Valid answers of ``items`` in ``mode``, matched to the units' specified persona values.

    ``hits`` sums ``prob`` (1 per sampled answer) over answers equal to the specified value;
    ``weight`` sums ``prob`` over all the unit's answers to the item (distribution mode: the
    probability of the specified option is ``hits / weight``).
    """
    by_sql = "".join(f"a.{qi(b)} AS {qi('g_' + b)}, " for b in by)
    query = f"""
        SELECT {by_sql} a.arm, a.unit_id, a.persona_id, a.item, i.attribute, p.value AS specified,
               sum(CASE WHEN a.response = p.value THEN coalesce(a.prob, 1.0) ELSE 0 END) AS hits,
               sum(coalesce(a.prob, 1.0)) AS weight,
               count(*) AS n_answers
        FROM answers a
        JOIN items i ON i.item = a.item
        LEFT JOIN personas p ON p.unit_id = a.unit_id AND p.attribute = i.attribute AND p.specified
        WHERE a.valid AND a.mode = ? AND a.item IN (SELECT unnest(?))
        GROUP BY ALL
        ORDER BY ALL
    """
    raw = log.con.execute(query, [mode, list(items)]).df()
    options = {name: log.item(name).options for name in items}
    no_spec_mask = raw["specified"].isna()
    in_options = pd.Series(
        [opts is None or spec in opts for opts, spec in zip(raw["item"].map(options), raw["specified"], strict=True)],
        index=raw.index, dtype=bool)
    not_option_mask = ~no_spec_mask & ~in_options

    def summary(mask: pd.Series, example: bool) -> pd.DataFrame:
        sub = raw[mask]
        cols = ["item", "attribute", "units", "answers", *(["example_value", "options"] if example else [])]
        if sub.empty:
            return pd.DataFrame(columns=cols)
        out = sub.groupby(["item", "attribute"], sort=True).agg(
            units=("unit_id", "nunique"), answers=("n_answers", "sum"),
            example_value=("specified", "first")).reset_index()
        if example:
            out["options"] = out["item"].map(lambda i: list(options[i] or ()))
        return out[cols]

    rows = raw[~no_spec_mask & in_options].drop(columns=["specified"]).reset_index(drop=True)
    return FidelityAnswers(rows=rows, not_option=summary(not_option_mask, True), no_spec=summary(no_spec_mask, False))
