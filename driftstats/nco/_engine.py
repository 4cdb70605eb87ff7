"""The exact drift engine: one arm pair in one group, all NCOs on the same permutations."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftstats._kernels.means import MeanDiff, paired_t, welch_t
from driftstats._kernels.perm import StrataLayout, boot_chunks, layout, perm_chunks
from driftstats._kernels.tvd import block_tvd, pearson_chi2, perm_pvalue, projection_interval
from driftstats.nco._data import PairData

__all__ = ["PairOutcome", "analyse_pair"]

CHUNK_ELEMENTS = 4_000_000


@dataclass(slots=True)
class PairOutcome:
    rows: list[dict[str, Any]]
    null: np.ndarray  # (B, J) permutation statistics of every NCO (categorical then numeric)
    observed: np.ndarray  # (J,)
    layout_kind: str
    distributions: list[dict[str, Any]]


def _chunk(n: int) -> int:
    return int(max(1, min(512, CHUNK_ELEMENTS // max(n, 1))))


def _ks_prep(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    present = np.flatnonzero(~np.isnan(x))
    order = present[np.argsort(x[present], kind="stable")]
    xs = x[order]
    ends = np.flatnonzero(np.r_[xs[1:] != xs[:-1], True])  # last index of each tie group
    return order, ends


def _ks(m: np.ndarray, order: np.ndarray, ends: np.ndarray) -> np.ndarray:
    ms = m[:, order]
    c1 = np.cumsum(ms, axis=1, dtype=np.float64)
    n1 = c1[:, -1:]
    k = np.arange(1, order.size + 1, dtype=np.float64)[None, :]
    c0 = k - c1
    n0 = order.size - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.abs(c1 / n1 - c0 / n0)[:, ends]
    return d.max(axis=1)


def _stats(m: np.ndarray, pdata: PairData, stot: np.ndarray, ntot: np.ndarray,
           ks_prep: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    parts = []
    if pdata.cat_items:
        s1 = m @ pdata.H
        n1 = m @ pdata.P
        parts.append(block_tvd(s1, n1, stot - s1, ntot - n1, pdata.blocks))
    if ks_prep:
        parts.append(np.stack([_ks(m, o, e) for o, e in ks_prep], axis=1))
    return np.concatenate(parts, axis=1)


def _mean_diff(x: np.ndarray, present: np.ndarray, lay: StrataLayout, conf_level: float) -> MeanDiff:
    if lay.kind == "pairs":
        ok = present[lay.pair1] & present[lay.pair0]
        return paired_t(x[lay.pair1[ok]] - x[lay.pair0[ok]], conf_level)
    a1 = lay.arm1 & present
    a0 = ~lay.arm1 & present
    return welch_t(x[a1], x[a0], conf_level)


def analyse_pair(
    pdata: PairData,
    *,
    n_perm: int,
    n_boot: int,
    conf_level: float,
    rng: np.random.Generator,
) -> PairOutcome:
    lay = layout(pdata.arm1_mask, pdata.strata)
    n = pdata.n_units
    chunk = _chunk(n)
    stot = pdata.H.sum(axis=0, dtype=np.float64).astype(np.float32)
    ntot = pdata.P.sum(axis=0, dtype=np.float64).astype(np.float32)
    ks_prep = [_ks_prep(pdata.X[:, j]) for j in range(len(pdata.num_items))]
    m_obs = pdata.arm1_mask.astype(np.float32)[None, :]
    # p-values compare the observed statistic with permuted ones computed on the same (float32)
    # arithmetic path, so exact ties stay ties; estimates are reported from a float64 computation
    observed = _stats(m_obs, pdata, stot, ntot, ks_prep)[0]
    pdata64 = PairData(group=pdata.group, arm1=pdata.arm1, arm0=pdata.arm0, arm1_mask=pdata.arm1_mask,
                       strata=pdata.strata, cat_items=pdata.cat_items, blocks=pdata.blocks,
                       H=pdata.H.astype(np.float64), P=pdata.P.astype(np.float64), num_items=pdata.num_items,
                       X=pdata.X)
    observed64 = _stats(m_obs.astype(np.float64), pdata64, pdata64.H.sum(axis=0), pdata64.P.sum(axis=0), ks_prep)[0]
    null = np.concatenate(
        [_stats(m, pdata, stot, ntot, ks_prep) for m in perm_chunks(lay, n_perm, rng, chunk)], axis=0
    )
    p_perm = perm_pvalue(null, observed)
    null_mean = null.mean(axis=0)
    null_q95 = np.quantile(null, 0.95, axis=0)

    jc = len(pdata.cat_items)
    boot = np.empty((0, jc))
    if jc and n_boot > 0:
        draws = []
        for w1, w0 in boot_chunks(lay, n_boot, rng, chunk):
            s1, n1 = w1 @ pdata.H, w1 @ pdata.P
            s0, n0 = w0 @ pdata.H, w0 @ pdata.P
            draws.append(block_tvd(s1, n1, s0, n0, pdata.blocks))
        boot = np.concatenate(draws, axis=0)

    rows: list[dict[str, Any]] = []
    dists: list[dict[str, Any]] = []
    alpha = 1 - conf_level
    arm1 = lay.arm1
    for j, item in enumerate(pdata.cat_items):
        sl = pdata.blocks.slices[j]
        present = pdata.P[:, j] > 0
        h = pdata.H[:, sl].astype(np.float64)
        m1, m0 = arm1 & present, ~arm1 & present
        n1, n0 = int(m1.sum()), int(m0.sum())
        q1 = h[m1].mean(axis=0) if n1 else np.full(h.shape[1], np.nan)
        q0 = h[m0].mean(axis=0) if n0 else np.full(h.shape[1], np.nan)
        if lay.kind == "pairs":
            ok = present[lay.pair1] & present[lay.pair0]
            diff = h[lay.pair1[ok]] - h[lay.pair0[ok]]
            se = diff.std(axis=0, ddof=1) / math.sqrt(max(ok.sum(), 1)) if ok.sum() > 1 else np.full(h.shape[1], np.nan)
        else:
            v1 = h[m1].var(axis=0) if n1 else np.nan
            v0 = h[m0].var(axis=0) if n0 else np.nan
            se = np.sqrt(v1 / max(n1, 1) + v0 / max(n0, 1))
        low, high = projection_interval(q1 - q0, se, conf_level) if n1 and n0 else (math.nan, math.nan)
        est = float(observed64[j])
        if boot.size:
            tb = boot[:, j]
            tb = tb[np.isfinite(tb)]
            qlo, qhi = np.quantile(tb, [alpha / 2, 1 - alpha / 2])
            b_low, b_high = max(2 * est - qhi, 0.0), min(max(2 * est - qlo, 0.0), 1.0)
            bc = max(2 * est - float(tb.mean()), 0.0)
        else:
            b_low = b_high = bc = math.nan
        if item.scale == "ordinal":
            codes = np.arange(h.shape[1], dtype=float)
            md = _mean_diff(h @ codes, present, lay, conf_level)
        else:
            md = MeanDiff(*(math.nan,) * 7)
        table = np.vstack([h[m1].sum(axis=0), h[m0].sum(axis=0)])
        rows.append({
            "term": item.item, "arm": pdata.arm1, "reference": pdata.arm0, "measure": "tvd",
            "n_1": n1, "n_0": n0, "n_levels": h.shape[1],
            "estimate": est, "statistic": pearson_chi2(table), "p_value": float(p_perm[j]),
            "conf_low": low, "conf_high": high,
            "null_mean": float(null_mean[j]), "null_q95": float(null_q95[j]),
            "excess": max(est - float(null_mean[j]), 0.0),
            "estimate_bc": bc, "conf_low_approx": b_low, "conf_high_approx": b_high,
            "mean_shift": md.estimate, "mean_shift_low": md.conf_low, "mean_shift_high": md.conf_high,
        })
        for arm_name, q, cnt in ((pdata.arm1, q1, n1), (pdata.arm0, q0, n0)):
            for k, level in enumerate(item.options or ()):
                dists.append({**pdata.group, "item": item.item, "arm": arm_name, "level": level,
                              "position": k, "share": float(q[k]), "n": cnt})
    for jn, item in enumerate(pdata.num_items):
        j = jc + jn
        x = pdata.X[:, jn]
        present = ~np.isnan(x)
        md = _mean_diff(x, present, lay, conf_level)
        est = float(observed64[j])
        rows.append({
            "term": item.item, "arm": pdata.arm1, "reference": pdata.arm0, "measure": "ks",
            "n_1": int((arm1 & present).sum()), "n_0": int((~arm1 & present).sum()), "n_levels": None,
            "estimate": est, "statistic": est, "p_value": float(p_perm[j]),
            "conf_low": math.nan, "conf_high": math.nan,
            "null_mean": float(null_mean[j]), "null_q95": float(null_q95[j]),
            "excess": max(est - float(null_mean[j]), 0.0),
            "mean_shift": md.estimate, "mean_shift_low": md.conf_low, "mean_shift_high": md.conf_high,
        })
    return PairOutcome(rows=rows, null=null, observed=observed, layout_kind=lay.kind, distributions=dists)
