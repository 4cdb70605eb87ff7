"""Persona fidelity: are the specified persona attributes still reported after the intervention?

For unit i with specified attributes P_i, re-elicited by items of role ``fidelity``:
``fid_i = (1/m_i) sum_j 1[reported_ij = specified_ij]`` (methods.md section 3.4). In
distribution mode the indicator is replaced by the probability of the specified option.
A fidelity difference across arms means drift has reached even the specified attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import mcnemar

from driftstats._args import as_columns, check_choice, check_conf_level
from driftstats._kernels.means import MeanDiff, paired_t, welch_t
from driftstats._result import Provenance, Result
from driftstats.errors import InsufficientDataError, InvalidArgumentError
from driftstats.log._sql import qi
from driftstats.log.simlog import SimLog, Source, as_log
from driftstats.nco._data import Pairs, resolve_pairs

__all__ = ["FidelityResult", "fidelity"]


@dataclass(frozen=True, slots=True, repr=False)
class FidelityResult(Result):
    """Fidelity per attribute (and ``overall``) x arm pair x group.

    ``share_1``/``share_0``: share of units reporting the specified value in ``arm`` /
    ``reference``; ``estimate``: their difference with a Wald (independent) or paired
    interval; ``p_value``: Welch t (independent) or McNemar (paired binary answers; paired t
    otherwise). The ``overall`` row compares the per-unit fidelity scores.
    """

    TITLE: ClassVar[str] = "Persona fidelity (specified attributes re-asked after the intervention)"
    DISPLAY: ClassVar[tuple[str, ...]] = ("arm", "reference", "share_1", "share_0", "estimate", "conf_low",
                                          "conf_high", "p_value")
    TIDY_EXTRAS: ClassVar[tuple[str, ...]] = ("arm", "reference", "measure", "n_1", "n_0", "share_1", "share_0", "df")
    GLANCE_EXTRAS: ClassVar[tuple[str, ...]] = ("n_tests",)
    ASSUMPTIONS: ClassVar[tuple[str, ...]] = (
        "The fidelity item's options use the same labels as the persona table's values.",
    )

    def shares(self) -> pd.DataFrame:
        """Fidelity share per arm, attribute and group (long format, for plots)."""
        t = self.table
        keep = ["term", *self.by]
        a = t[[*keep, "arm", "share_1", "n_1"]].rename(columns={"share_1": "share", "n_1": "n"})
        r = t[[*keep, "reference", "share_0", "n_0"]].rename(columns={"reference": "arm", "share_0": "share", "n_0": "n"})
        return pd.concat([r, a], ignore_index=True).drop_duplicates(subset=[*keep, "arm"]).reset_index(drop=True)

    def plot(self, **kwargs: Any) -> Any:
        """Fidelity by attribute and arm (paper Fig. 7); needs ``[plot]``."""
        from driftstats.plot import plot_fidelity

        return plot_fidelity(self, **kwargs)


def _scores(sl: SimLog, items: Sequence[str], by: Sequence[str], mode: str) -> pd.DataFrame:
    by_sql = "".join(f"a.{qi(b)} AS {qi('g_' + b)}, " for b in by)
    ph = ", ".join("?" for _ in items)
    q = f"""
        SELECT {by_sql} a.arm, a.unit_id, a.persona_id, i.attribute,
               sum(CASE WHEN a.response = p.value THEN coalesce(a.prob, 1.0) ELSE 0 END)
                 / sum(coalesce(a.prob, 1.0)) AS score
        FROM answers a
        JOIN items i ON i.item = a.item
        JOIN personas p ON p.unit_id = a.unit_id AND p.attribute = i.attribute AND p.specified
        WHERE a.valid AND a.mode = ? AND a.item IN ({ph})
        GROUP BY ALL
    """
    return sl.con.execute(q, [mode, *items]).df()


def _compare(s1: pd.DataFrame, s0: pd.DataFrame, paired: bool, binary: bool, conf_level: float) -> tuple[MeanDiff, float]:
    if paired:
        m = s1.merge(s0, on="persona_id", suffixes=("_1", "_0"))
        md = paired_t(m["score_1"].to_numpy() - m["score_0"].to_numpy(), conf_level)
        p = md.p_value
        if binary and len(m):
            a, b = m["score_1"].to_numpy() > 0.5, m["score_0"].to_numpy() > 0.5
            table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
            disc = table[0][1] + table[1][0]
            p = float(mcnemar(table, exact=disc < 25).pvalue) if disc else 1.0
        return md, p
    md = welch_t(s1["score"].to_numpy(), s0["score"].to_numpy(), conf_level)
    return md, md.p_value


def fidelity(
    log: SimLog | Source,
    *,
    items: str | Sequence[str] | None = None,
    by: str | Sequence[str] = ("iteration",),
    reference: str | None = None,
    pairs: Pairs = "reference",
    paired: bool | None = None,
    mode: Literal["sample", "dist"] = "sample",
    conf_level: float = 0.95,
) -> FidelityResult:
    """Share of specified persona attributes reported correctly, per arm, and arm differences.

    Parameters
    ----------
    items
        Fidelity items; default: every item with role ``fidelity``. Each item's ``attribute``
        names the persona attribute it re-asks (items inferred without one use their own name).
    paired
        Compare matched personas (same ``persona_id`` in both arms) with paired tests;
        default: paired whenever personas are matched across the compared arms.

    Returns
    -------
    FidelityResult

    Examples
    --------
    >>> import driftstats as ds
    >>> log = ds.simulate_fidelity_log(n_per_arm=80, fidelity=(0.9, 0.7), seed=3)
    >>> res = ds.fidelity(log)
    >>> res.tidy()["term"].tolist()
    ['age', 'party', 'overall']
    """
    conf_level = check_conf_level(conf_level)
    check_choice("mode", mode, Literal["sample", "dist"])
    sl = as_log(log)
    names = as_columns("items", items) or sl.item_names("fidelity")
    if not names:
        raise InvalidArgumentError(
            "this log has no fidelity items (role 'fidelity'); pass items=[...] naming the items that "
            "re-ask persona attributes."
        )
    infos = [sl.item(n) for n in names]
    missing = [i.item for i in infos if i.attribute is None]
    if missing:
        raise InvalidArgumentError(
            f"fidelity items {missing} do not name the persona attribute they re-ask (items.attribute). "
            "Fix: set the attribute column of the items table."
        )
    by_cols = as_columns("by", by)
    scores = _scores(sl, names, by_cols, mode)
    if scores.empty:
        raise InsufficientDataError(
            "no fidelity answers could be matched to specified persona values (personas table, "
            "specified = true, same attribute as items.attribute)."
        )
    binary = mode == "sample" and bool(scores["score"].isin([0.0, 1.0]).all())
    attr_order = list(dict.fromkeys(i.attribute for i in infos))
    group_cols = [f"g_{b}" for b in by_cols]
    rows: list[dict[str, Any]] = []
    grouped = scores.groupby(group_cols, sort=True) if group_cols else [((), scores)]
    for key, g in grouped:
        key = key if isinstance(key, tuple) else (key,)
        group = {b: (v.item() if hasattr(v, "item") else v) for b, v in zip(by_cols, key, strict=True)}
        overall = g.groupby(["arm", "unit_id", "persona_id"], dropna=False, as_index=False)["score"].mean()
        for arm1, arm0 in resolve_pairs(sl, "arm", reference, pairs):
            for term, frame in [*((a, g[g["attribute"] == a]) for a in attr_order), ("overall", overall)]:
                s1, s0 = frame[frame["arm"] == arm1], frame[frame["arm"] == arm0]
                if s1.empty or s0.empty:
                    continue
                is_paired = paired if paired is not None else bool(
                    s1["persona_id"].notna().all() and set(s1["persona_id"]) & set(s0["persona_id"]))
                md, p = _compare(s1, s0, is_paired, binary and term != "overall", conf_level)
                rows.append({**group, "term": term, "arm": arm1, "reference": arm0,
                             "measure": "paired difference" if is_paired else "difference",
                             "n_1": len(s1), "n_0": len(s0), "share_1": float(s1["score"].mean()),
                             "share_0": float(s0["score"].mean()), "estimate": md.estimate,
                             "std_error": md.std_error, "statistic": md.statistic, "df": md.df, "p_value": p,
                             "conf_low": md.conf_low, "conf_high": md.conf_high})
    info = {"method": "persona fidelity", "n_obs": len(scores), "n_groups": scores["unit_id"].nunique(),
            "conf_level": conf_level, "alternative": "two-sided", "n_tests": len(rows)}
    return FidelityResult.build(rows, info, by=by_cols, provenance=Provenance(call="fidelity"))
