"""Extract unit-level NCO data from a log for the drift kernels.

Every unit contributes, for each categorical NCO, its vector of level shares (one-hot for
a sampled answer, the option probabilities in distribution mode, averaged over
replicates) and, for numeric NCOs, its mean value. Units are the exchangeable objects of
the permutation test.

Two views: :class:`PairData` (unit x feature matrices, for the exact engine) and
:class:`CountData` (one answer-pattern id per unit and NCO, for the count-table engine).
The data come from :mod:`driftstats.log.query.nco`; nothing here writes SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftstats._args import as_columns, check_by, check_choice
from driftstats._groups import iter_groups
from driftstats._kernels.tvd import Blocks
from driftstats.errors import InsufficientDataError, InvalidArgumentError
from driftstats.log.query import nco as q
from driftstats.log.simlog import ItemInfo, SimLog

__all__ = [
    "CountData",
    "PairData",
    "Pairs",
    "counts_eligible",
    "extract",
    "extract_counts",
    "pair_from_codes",
    "resolve_items",
    "resolve_pairs",
    "strata_source",
]

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
    H: np.ndarray  # (n, D) float64 unit share vectors, zeros where missing
    P: np.ndarray  # (n, Jc) float64 1 where the unit answered the item
    num_items: list[ItemInfo]
    X: np.ndarray  # (n, Jn) float64 unit mean values, NaN where missing
    n_dropped: int = 0
    notes: list[str] = field(default_factory=list)
    #: (Jc,) int: ``H[:, block j] * scale[j]`` is integer-valued (one-hot answers: 1; R replicates: R,
    #: or the lcm of the replicate counts); 0 where it is not (option probabilities). None: unknown.
    scale: np.ndarray | None = None

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


def strata_source(log: SimLog, strata: str | None) -> q.StrataSource | None:
    """Where ``strata`` lives (a column of the answers or a persona attribute); an error if neither."""
    if strata is None:
        return None
    if strata in log.columns():
        return "column"
    attrs = q.persona_attributes(log)
    if strata in attrs:
        return "attribute"
    raise InvalidArgumentError(
        f"strata={strata!r} is neither a column of the answers nor a persona attribute; "
        f"use e.g. strata='persona_id' for paired designs, or strata=None for an unpaired test. "
        f"Persona attributes: {sorted(attrs)}."
    )


#: Largest common replicate denominator kept on the exact integer path.
MAX_SCALE = 2**20


def _lcm_scale(r: np.ndarray) -> int:
    """lcm of the (positive, integer) replicate counts ``r``; 0 when they are not integers or too many."""
    r = r[r > 0]
    if r.size == 0:
        return 1
    ri = np.rint(r)
    if np.any(np.abs(r - ri) > 1e-9):
        return 0
    out = 1
    for v in np.unique(ri.astype(np.int64)):
        out = math.lcm(out, int(v))
        if out > MAX_SCALE:
            return 0
    return out


def extract(
    log: SimLog,
    items: list[ItemInfo],
    arm_pairs: list[tuple[str, str]],
    *,
    by: Sequence[str],
    strata: str | None,
    mode: str,
) -> list[PairData]:
    """Pull the valid answers of ``items`` once and build one :class:`PairData` per group x pair.

    A group in which an arm of a pair has no valid answer at all gives an empty
    :class:`PairData` (``n_units == 0``) whose ``notes`` say which arm.
    """
    by = check_by(by, log.columns())
    names = [i.item for i in items]
    arms = sorted({a for p in arm_pairs for a in p})
    source = strata_source(log, strata)
    rows = q.unit_answers(log, names, arms, by=by, mode=mode, strata=strata, strata_source=source)
    n_invalid_all = q.count_nco_answers(log, names, arms, mode, valid=False)
    if rows.empty:
        if n_invalid_all:
            raise InsufficientDataError(
                f"all {n_invalid_all} answer row(s) in mode {mode!r} for items {names} in arms {arms} are invalid "
                f"(valid = false); nothing can be tested. See the log's data section for the validation errors.")
        raise InsufficientDataError(
            f"no answers in mode {mode!r} for items {names} in arms {arms}. "
            f"Modes in this log: {list(log.modes)}."
        )
    if strata is not None and rows["stratum"].isna().any():
        bad = rows.loc[rows["stratum"].isna(), "unit_id"].unique()[:3].tolist()
        raise InvalidArgumentError(f"strata={strata!r} is missing for units {bad}; every unit needs a stratum.")
    group_cols = [f"g_{b}" for b in by]
    out: list[PairData] = []
    cat = [i for i in items if i.scale != "numeric"]
    num = [i for i in items if i.scale == "numeric"]
    blocks = Blocks([i.n_levels or 0 for i in cat]) if cat else Blocks([])
    cat_index = {i.item: j for j, i in enumerate(cat)}
    num_index = {i.item: j for j, i in enumerate(num)}
    for group, g in iter_groups(rows, by, columns=group_cols):
        for arm1, arm0 in arm_pairs:
            sub = g[g["arm"].isin([arm1, arm0])]
            present_arms = set(sub["arm"].unique())
            if len(present_arms) < 2:
                missing = [a for a in (arm1, arm0) if a not in present_arms]
                why = (f"arm {missing[0]!r} has no valid answers" if len(missing) == 1 else
                       f"arms {missing[0]!r} and {missing[1]!r} have no valid answers")
                out.append(_empty(group, arm1, arm0, cat, num, blocks, why + " in this group"))
                continue
            units, uidx = np.unique(sub["unit_id"].to_numpy(dtype=object), return_inverse=True)
            n = units.size
            unit_arm = pd.Series(sub["arm"].to_numpy(), index=uidx).groupby(level=0).first().to_numpy()
            arm1_mask = unit_arm == arm1
            stratum = None
            if strata is not None:
                stratum = pd.Series(sub["stratum"].to_numpy(), index=uidx).groupby(level=0).first().to_numpy()
            H = np.zeros((n, int(blocks.sizes.sum())), dtype=np.float64)
            R = np.zeros((n, len(cat)), dtype=np.float64)
            X = np.full((n, len(num)), np.nan)
            scale = np.zeros(len(cat), dtype=np.int64)
            if cat:
                is_cat = sub["item"].isin(cat_index).to_numpy()
                cs = sub[is_cat]
                j = cs["item"].map(cat_index).to_numpy(dtype=int)
                col = blocks.starts[j] + cs["code"].to_numpy(dtype=np.int64)
                w = cs["w"].to_numpy(dtype=float)
                u = uidx[is_cat]
                np.add.at(H, (u, col), w)
                np.add.at(R, (u, j), w)
                with np.errstate(invalid="ignore", divide="ignore"):
                    H = np.where(R[:, blocks.owner] > 0, H / R[:, blocks.owner], 0.0)
                if mode == "sample":
                    scale = np.array([_lcm_scale(R[:, jj]) for jj in range(len(cat))], dtype=np.int64)
            if num:
                is_num = sub["item"].isin(num_index).to_numpy()
                ns = sub[is_num]
                frame = pd.DataFrame({"u": uidx[is_num], "j": ns["item"].map(num_index).to_numpy(),
                                      "x": ns["x"].to_numpy(dtype=float)})
                means = frame.groupby(["u", "j"])["x"].mean()
                X[means.index.get_level_values(0), means.index.get_level_values(1)] = means.to_numpy()
            out.append(PairData(
                group=group, arm1=arm1, arm0=arm0, arm1_mask=arm1_mask, strata=stratum,
                cat_items=cat, blocks=blocks, H=H, P=(R > 0).astype(np.float64),
                num_items=num, X=X, n_dropped=0, scale=scale,
            ))
    if n_invalid_all:
        for pd_ in out:
            pd_.n_dropped = n_invalid_all
            pd_.notes.append(f"{n_invalid_all} invalid answer row(s) left out")
    return out


def _empty(group: dict[str, Any], arm1: str, arm0: str, cat: list[ItemInfo], num: list[ItemInfo],
           blocks: Blocks, why: str) -> PairData:
    return PairData(group=group, arm1=arm1, arm0=arm0, arm1_mask=np.zeros(0, bool), strata=None,
                    cat_items=cat, blocks=blocks, H=np.zeros((0, int(blocks.sizes.sum()))),
                    P=np.zeros((0, len(cat))), num_items=num, X=np.zeros((0, len(num))),
                    notes=[why], scale=np.ones(len(cat), dtype=np.int64))


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
    H = np.zeros((n, int(sum(sizes))), dtype=np.float64)
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
                    strata=strata, cat_items=items, blocks=blocks, H=H, P=present.astype(np.float64),
                    num_items=[], X=np.zeros((n, 0)), scale=np.ones(j, dtype=np.int64))


# ----------------------------------------------------------------------------- the count-table view
@dataclass(slots=True)
class CountData:
    """One comparison (group x arm pair) of categorical NCOs, as pattern ids per unit.

    A unit's answers to NCO ``j`` are one *pattern*: the counts of its valid sampled replicates
    over the K levels (one-hot without replicates). ``codes[u, j]`` is the index of unit ``u``'s
    pattern in ``patterns[j]`` (``-1``: no valid answer); the unit's share vector is
    ``patterns[j][codes[u, j]] / patterns[j][codes[u, j]].sum()``. With ``pairs``, units are
    matched 1:1 (``pair1[i]`` in ``arm1``, ``pair0[i]`` in ``arm0``) and permuted within pairs.
    """

    group: dict[str, Any]
    arm1: str
    arm0: str
    items: list[ItemInfo]
    codes: np.ndarray  # (n, J) int64
    arm1_mask: np.ndarray  # (n,) bool
    patterns: list[np.ndarray]  # per NCO (n_patterns_j, K_j) int64 level counts
    pairs: tuple[np.ndarray, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_units(self) -> int:
        return int(self.arm1_mask.size)


def counts_eligible(items: list[ItemInfo], mode: str, replicates: int) -> tuple[str | None, int | None]:
    """``(why not, base)``: why the count-table engine cannot be used (None when it can), and the
    pattern base (None: one sampled answer per unit and NCO; else replicates are encoded in this base).

    ``replicates``: an upper bound on the valid answers of one unit to one NCO
    (:func:`~driftstats.log.query.nco.answer_counts`)."""
    if mode != "sample":
        return "it needs sampled answers (mode='sample')", None
    if any(i.scale == "numeric" for i in items):
        return "it handles categorical NCOs only", None
    if replicates <= 1:
        return None, None
    base = replicates + 1
    kmax = max(int(i.n_levels or 0) for i in items)
    if float(base) ** kmax > q.MAX_PATTERN_KEY:
        return (f"up to {replicates} replicates over {kmax} levels are too many patterns to encode exactly "
                f"({base}**{kmax} > 2**53)"), None
    return None, base


def _decode(keys: np.ndarray, base: int | None, k: int) -> np.ndarray:
    """Level counts (n, k) of pattern keys: the code itself (one-hot) or base-``base`` digits."""
    keys = keys.astype(np.int64)
    if base is None:
        return np.eye(k, dtype=np.int64)[keys]
    digits = np.empty((keys.size, k), dtype=np.int64)
    rest = keys.copy()
    for lev in range(k):
        digits[:, lev] = rest % base
        rest //= base
    return digits


def extract_counts(
    log: SimLog,
    items: list[ItemInfo],
    arm_pairs: list[tuple[str, str]],
    *,
    by: Sequence[str],
    strata: str | None,
    base: int | None,
) -> list[CountData] | None:
    """One :class:`CountData` per group x arm pair, from one DuckDB aggregation (no unit rows in pandas).

    With ``strata``, every stratum of every comparison must hold exactly one unit of each arm
    (matched pairs); otherwise None is returned (the caller uses the exact engine).
    """
    by = check_by(by, log.columns())
    names = [i.item for i in items]
    arms = sorted({a for p in arm_pairs for a in p})
    source = strata_source(log, strata)
    wide = q.unit_patterns(log, names, arms, by=by, base=base, strata=strata, strata_source=source)
    if wide.empty:
        n_invalid = q.count_nco_answers(log, names, arms, "sample", valid=False)
        what = f"all {n_invalid} answer row(s) are invalid" if n_invalid else "there are no answers"
        raise InsufficientDataError(f"{what} in mode 'sample' for items {names} in arms {arms}; nothing can be "
                                    f"tested. Modes in this log: {list(log.modes)}.")
    if strata is not None and wide["stratum"].isna().any():
        raise InvalidArgumentError(f"strata={strata!r} is missing for some units; every unit needs a stratum.")
    code_cols = [f"c_{j}" for j in range(len(items))]
    all_codes = np.full((len(wide), len(items)), -1, dtype=np.int64)
    patterns = []
    for j, col in enumerate(code_cols):
        keys = wide[col].to_numpy(dtype=np.float64)
        ok = ~np.isnan(keys)
        uniq, inv = np.unique(keys[ok], return_inverse=True)
        all_codes[ok, j] = inv
        patterns.append(_decode(uniq, base, int(items[j].n_levels or 0)))
    out: list[CountData] = []
    for group, g in iter_groups(wide, by):
        idx = g.index.to_numpy()
        arm_col = g["arm"].to_numpy()
        for a1, a0 in arm_pairs:
            sel = (arm_col == a1) | (arm_col == a0)
            rows = idx[sel]
            mask = arm_col[sel] == a1
            pairs = None
            if strata is not None and mask.any() and (~mask).any():
                pairs = _pairs(g["stratum"].to_numpy()[sel], mask)
                if pairs is None:
                    return None
            cd = CountData(group=group, arm1=a1, arm0=a0, items=items, codes=all_codes[rows], arm1_mask=mask,
                           patterns=patterns, pairs=pairs)
            if mask.all() or not mask.any():
                missing = a0 if mask.all() else a1
                cd.notes.append(f"arm {missing!r} has no valid answers in this group")
            out.append(cd)
    return out


def _pairs(stratum: np.ndarray, arm1: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Indices (arm-1 unit, arm-0 unit) of every stratum when each holds one unit of each arm, else None."""
    codes, inv = np.unique(stratum.astype(str), return_inverse=True)
    sizes = np.bincount(inv, minlength=codes.size)
    ones = np.bincount(inv, weights=arm1.astype(float), minlength=codes.size)
    if not (np.all(sizes == 2) and np.all(ones == 1)):
        return None
    order = np.argsort(inv, kind="stable")
    first, second = order[0::2], order[1::2]
    swap = ~arm1[first]
    return np.where(swap, second, first), np.where(swap, first, second)
