"""Extract unit-level NCO data from a log for the drift kernels.

Every unit contributes, for each categorical NCO, its vector of level shares (one-hot for
a sampled answer, the option probabilities in distribution mode, averaged over
replicates) and, for numeric NCOs, its mean value. Units are the exchangeable objects of
the permutation test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftstats._args import as_columns, check_choice
from driftstats._kernels.tvd import Blocks
from driftstats.errors import InsufficientDataError, InvalidArgumentError
from driftstats.log._sql import qi
from driftstats.log.simlog import ItemInfo, SimLog

__all__ = ["PairData", "Pairs", "extract", "extract_wide", "resolve_items", "resolve_pairs", "wide_eligible"]

Pairs = Literal["reference", "all"]


@dataclass(slots=True)
class PairData:
    """One comparison: a group (``by`` values) and an arm pair, at the unit level."""

    group: dict[str, Any]
    arm1: str
    arm0: str
    arm1_mask: np.ndarray  # (n,) bool
    strata: np.ndarray | None  # (n,) stratum labels or None
    cat_items: list[ItemInfo]
    blocks: Blocks
    H: np.ndarray  # (n, D) float32 unit share vectors, zeros where missing
    P: np.ndarray  # (n, Jc) float32 1 where the unit answered the item
    num_items: list[ItemInfo]
    X: np.ndarray  # (n, Jn) float64 unit mean values, NaN where missing
    n_dropped: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_units(self) -> int:
        return int(self.arm1_mask.size)


def resolve_items(log: SimLog, names: str | Sequence[str] | None, *, role: str, arg: str) -> list[ItemInfo]:
    chosen = as_columns(arg, names) or log.item_names(role)
    if not chosen:
        raise InvalidArgumentError(
            f"this log declares no items with role {role!r}; pass {arg}=[...] with item names "
            f"(items: {sorted(log.item_names())}), or declare roles when reading the log."
        )
    return [log.item(n) for n in chosen]


def resolve_pairs(log: SimLog, arm: str, reference: str | None, pairs: str) -> list[tuple[str, str]]:
    check_choice("pairs", pairs, Pairs)
    if arm != "arm":
        raise InvalidArgumentError("arm must be 'arm' (the schema column); map foreign arm columns with read_log(mapping=...).")
    arms = list(log.arm_names)
    ref = reference if reference is not None else log.reference_arm
    if ref not in arms:
        raise InvalidArgumentError(f"reference={ref!r} is not an arm of this log; arms: {arms}.")
    if len(arms) < 2:
        raise InsufficientDataError(f"drift tests need at least two arms; this log has {arms}.")
    if pairs == "reference":
        return [(a, ref) for a in arms if a != ref]
    return [(arms[i], arms[j]) for j in range(len(arms)) for i in range(j + 1, len(arms))]


def _strata_sql(log: SimLog, strata: str | None) -> tuple[str, list[Any]]:
    if strata is None:
        return "NULL", []
    if strata in log.columns():
        return f"CAST(a.{qi(strata)} AS VARCHAR)", []
    attrs = set(log.personas["attribute"])
    if strata in attrs:
        return "(SELECT p.value FROM personas p WHERE p.unit_id = a.unit_id AND p.attribute = ?)", [strata]
    raise InvalidArgumentError(
        f"strata={strata!r} is neither a column of the answers nor a persona attribute; "
        f"use e.g. strata='persona_id' for paired designs. Persona attributes: {sorted(attrs)}."
    )


def extract(
    log: SimLog,
    items: list[ItemInfo],
    arm_pairs: list[tuple[str, str]],
    *,
    by: Sequence[str],
    strata: str | None,
    mode: str,
) -> list[PairData]:
    """Pull the valid answers of ``items`` once and build one :class:`PairData` per group x pair."""
    for b in by:
        if b not in log.columns():
            raise InvalidArgumentError(f"by={b!r} is not a column of the answers; columns: {list(log.columns())}.")
    names = [i.item for i in items]
    arms = sorted({a for p in arm_pairs for a in p})
    strata_sql, sparams = _strata_sql(log, strata)
    by_sql = "".join(f"a.{qi(b)} AS {qi('g_' + b)}, " for b in by)
    item_ph = ", ".join("?" for _ in names)
    arm_ph = ", ".join("?" for _ in arms)
    query = (
        f"SELECT {by_sql} a.arm, a.unit_id, {strata_sql} AS stratum, a.item, a.valid, a.response_code, "
        f"coalesce(a.prob, 1.0) AS w, a.response_value "
        f"FROM answers a WHERE a.mode = ? AND a.item IN ({item_ph}) AND a.arm IN ({arm_ph})"
    )
    rows = log.con.execute(query, [*sparams, mode, *names, *arms]).df()
    if rows.empty:
        raise InsufficientDataError(
            f"no answers in mode {mode!r} for items {names} in arms {arms}. "
            f"Modes in this log: {list(log.modes)}."
        )
    n_invalid_all = int((~rows["valid"].astype(bool)).sum())
    rows = rows[rows["valid"].astype(bool)]
    if strata is not None and rows["stratum"].isna().any():
        bad = rows.loc[rows["stratum"].isna(), "unit_id"].unique()[:3].tolist()
        raise InvalidArgumentError(f"strata={strata!r} is missing for units {bad}; every unit needs a stratum.")
    group_cols = [f"g_{b}" for b in by]
    out: list[PairData] = []
    grouped = rows.groupby(group_cols, sort=True, dropna=False) if group_cols else [((), rows)]
    cat = [i for i in items if i.scale != "numeric"]
    num = [i for i in items if i.scale == "numeric"]
    blocks = Blocks([i.n_levels or 0 for i in cat]) if cat else Blocks([])
    cat_index = {i.item: j for j, i in enumerate(cat)}
    num_index = {i.item: j for j, i in enumerate(num)}
    for key, g in grouped:
        key = key if isinstance(key, tuple) else (key,)
        group = {b: (v.item() if hasattr(v, "item") else v) for b, v in zip(by, key, strict=True)}
        for arm1, arm0 in arm_pairs:
            sub = g[g["arm"].isin([arm1, arm0])]
            if sub.empty:
                continue
            units, uidx = np.unique(sub["unit_id"].to_numpy(dtype=object), return_inverse=True)
            n = units.size
            unit_arm = pd.Series(sub["arm"].to_numpy(), index=uidx).groupby(level=0).first().to_numpy()
            arm1_mask = unit_arm == arm1
            if arm1_mask.all() or (~arm1_mask).all():
                missing = arm0 if arm1_mask.all() else arm1
                out.append(_empty(group, arm1, arm0, cat, num, blocks, f"arm {missing!r} has no valid answers"))
                continue
            stratum = None
            if strata is not None:
                stratum = pd.Series(sub["stratum"].to_numpy(), index=uidx).groupby(level=0).first().to_numpy()
            H = np.zeros((n, int(blocks.sizes.sum())), dtype=np.float64)
            R = np.zeros((n, len(cat)), dtype=np.float64)
            X = np.full((n, len(num)), np.nan)
            if cat:
                is_cat = sub["item"].isin(cat_index).to_numpy()
                cs = sub[is_cat]
                j = cs["item"].map(cat_index).to_numpy(dtype=int)
                col = blocks.starts[j] + cs["response_code"].to_numpy(dtype=np.int64)
                w = cs["w"].to_numpy(dtype=float)
                u = uidx[is_cat]
                np.add.at(H, (u, col), w)
                np.add.at(R, (u, j), w)
                with np.errstate(invalid="ignore", divide="ignore"):
                    H = np.where(R[:, blocks.owner] > 0, H / R[:, blocks.owner], 0.0)
            if num:
                is_num = sub["item"].isin(num_index).to_numpy()
                ns = sub[is_num]
                frame = pd.DataFrame({"u": uidx[is_num], "j": ns["item"].map(num_index).to_numpy(),
                                      "x": ns["response_value"].to_numpy(dtype=float)})
                means = frame.groupby(["u", "j"])["x"].mean()
                X[means.index.get_level_values(0), means.index.get_level_values(1)] = means.to_numpy()
            out.append(PairData(
                group=group, arm1=arm1, arm0=arm0, arm1_mask=arm1_mask, strata=stratum,
                cat_items=cat, blocks=blocks, H=H.astype(np.float32), P=(R > 0).astype(np.float32),
                num_items=num, X=X, n_dropped=0,
            ))
    if n_invalid_all:
        for pd_ in out:
            pd_.notes.append(f"{n_invalid_all} invalid answer row(s) left out")
    return out


def _empty(group: dict[str, Any], arm1: str, arm0: str, cat: list[ItemInfo], num: list[ItemInfo],
           blocks: Blocks, why: str) -> PairData:
    return PairData(group=group, arm1=arm1, arm0=arm0, arm1_mask=np.zeros(0, bool), strata=None,
                    cat_items=cat, blocks=blocks, H=np.zeros((0, int(blocks.sizes.sum())), np.float32),
                    P=np.zeros((0, len(cat)), np.float32), num_items=num, X=np.zeros((0, len(num))),
                    notes=[why])


def pair_from_codes(
    codes1: np.ndarray,
    codes0: np.ndarray,
    n_levels: int | Sequence[int],
    *,
    strata1: np.ndarray | None = None,
    strata0: np.ndarray | None = None,
) -> PairData:
    """A :class:`PairData` from arrays of level codes (units x NCOs), for array-level use.

    ``codes1``/``codes0``: ``(n1, J)`` / ``(n0, J)`` integer codes (or 1-d for one NCO);
    ``-1`` marks a missing answer.
    """
    c1 = np.atleast_2d(np.asarray(codes1).T).T if np.ndim(codes1) == 1 else np.asarray(codes1)
    c0 = np.atleast_2d(np.asarray(codes0).T).T if np.ndim(codes0) == 1 else np.asarray(codes0)
    codes = np.vstack([c1, c0]).astype(int)
    n, j = codes.shape
    sizes = [int(n_levels)] * j if np.isscalar(n_levels) else [int(k) for k in n_levels]
    blocks = Blocks(sizes)
    H = np.zeros((n, int(sum(sizes))), dtype=np.float32)
    present = codes >= 0
    rows, cols = np.nonzero(present)
    H[rows, blocks.starts[cols] + codes[rows, cols]] = 1.0
    items = [ItemInfo(f"nco_{i + 1}", None, tuple(f"L{k + 1}" for k in range(sizes[i])), "nominal", "nco", None)
             for i in range(j)]
    strata = None
    if strata1 is not None or strata0 is not None:
        strata = np.concatenate([np.asarray(strata1), np.asarray(strata0)])
    return PairData(group={}, arm1="arm1", arm0="arm0",
                    arm1_mask=np.r_[np.ones(c1.shape[0], bool), np.zeros(c0.shape[0], bool)],
                    strata=strata, cat_items=items, blocks=blocks, H=H, P=present.astype(np.float32),
                    num_items=[], X=np.zeros((n, 0)))


def wide_eligible(log: SimLog, items: list[ItemInfo], mode: str, strata: str | None) -> str | None:
    """Why the count-table engine cannot be used (None when it can)."""
    if mode != "sample":
        return "it needs sampled answers (mode='sample')"
    if strata is not None:
        return "it permutes without strata"
    if any(i.scale == "numeric" for i in items):
        return "it handles categorical NCOs only"
    reps = log.con.execute(
        f"SELECT max(replicate) FROM answers WHERE mode = 'sample' AND item IN ({', '.join('?' for _ in items)})",
        [i.item for i in items]).fetchall()[0][0]
    if reps:
        return "units answered some NCOs more than once (replicates)"
    return None


def extract_wide(log: SimLog, items: list[ItemInfo], arms: list[str], *, by: Sequence[str]) -> pd.DataFrame:
    """One row per unit: the ``by`` columns, ``arm`` and one response-code column per NCO (NaN: no answer).

    One aggregation in DuckDB, so logs on disk are never pulled row by row into pandas.
    """
    for b in by:
        if b not in log.columns():
            raise InvalidArgumentError(f"by={b!r} is not a column of the answers; columns: {list(log.columns())}.")
    cols = ", ".join(f"max(response_code) FILTER (WHERE item = ?) AS {qi('c_' + str(j))}" for j in range(len(items)))
    by_sql = "".join(f"{qi(b)}, " for b in by)
    q = (f"SELECT {by_sql}arm, {cols} FROM answers WHERE valid AND mode = 'sample' "
         f"AND item IN ({', '.join('?' for _ in items)}) AND arm IN ({', '.join('?' for _ in arms)}) "
         f"GROUP BY {by_sql}arm, unit_id")
    names = [i.item for i in items]
    return log.con.execute(q, [*names, *names, *arms]).df()
