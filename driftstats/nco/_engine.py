"""The exact drift engine: one arm pair in one group, all NCOs on the same permutations.

Units are relabelled B times (within strata when given); every NCO's statistic is computed on
the same relabellings, so the family-wise min-p adjustment sees their joint law. Sampled
answers are integer counts (one-hot, or replicate counts scaled to a common denominator):
the arm sums are exact, and the TVD of a labelling is computed as one division of exact
integers (:func:`~driftstats._kernels.tvd.block_tvd`), so two labellings with the same TVD tie
exactly, as the documented p-value formula (and :func:`scipy.stats.permutation_test`) counts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftstats._kernels import tvd_ci
from driftstats._kernels.means import MeanDiff, paired_t, welch_t
from driftstats._kernels.perm import StrataLayout, layout, log_n_relabellings, perm_chunks
from driftstats._kernels.tvd import block_tvd, minp_fwer, pearson_chi2, perm_pvalue
from driftstats.nco._data import PairData

__all__ = ["PairOutcome", "analyse_pair", "boot_tvd", "not_testable_note", "null_summary"]

CHUNK_ELEMENTS = 4_000_000
#: float32 products of 0/1 memberships with integer features are exact while every sum stays below 2**24
_F32_EXACT = 2**24


@dataclass(slots=True)
class PairOutcome:
    rows: list[dict[str, Any]]
    null: np.ndarray  # (B, J) permutation statistics of every NCO (categorical then numeric)
    observed: np.ndarray  # (J,) observed statistics, NaN where a row is not testable
    layout_kind: str
    distributions: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    #: natural log of the number of distinct relabellings of the design (how small a p-value can be)
    log_n_relabellings: float = math.inf


def _chunk(n: int) -> int:
    return int(max(1, min(512, CHUNK_ELEMENTS // max(n, 1))))


def not_testable_note(arm1: str, arm0: str, n1: int, n0: int) -> str | None:
    """The ``note`` of a row whose NCO lacks valid answers in an arm (None when it is testable)."""
    if n1 > 0 and n0 > 0:
        return None
    if n1 == 0 and n0 == 0:
        return f"not testable: arms {arm1!r} and {arm0!r} have no valid answers to this NCO"
    return f"not testable: arm {arm1 if n1 == 0 else arm0!r} has no valid answers to this NCO"


def null_summary(null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95th percentile of each column over its defined (finite) permutation statistics."""
    j = null.shape[1]
    mean = np.full(j, np.nan)
    q95 = np.full(j, np.nan)
    for col in range(j):
        x = null[:, col]
        x = x[np.isfinite(x)]
        if x.size:
            mean[col] = x.mean()
            q95[col] = np.quantile(x, 0.95)
    return mean, q95


def _ks_prep(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    present = np.flatnonzero(~np.isnan(x))
    order = present[np.argsort(x[present], kind="stable")]
    xs = x[order]
    ends = np.flatnonzero(np.r_[xs[1:] != xs[:-1], True])  # last index of each tie group
    return order, ends


def _ks(m: np.ndarray, order: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """KS distance of every labelling in ``m``: ``max_t |c1 n0 - c0 n1| / (n1 n0)`` in exact integers."""
    if order.size == 0:
        return np.full(m.shape[0], np.nan)
    ms = m[:, order].astype(np.float64)
    c1 = np.cumsum(ms, axis=1)
    n1 = c1[:, -1:]
    k = np.arange(1, order.size + 1, dtype=np.float64)[None, :]
    c0 = k - c1
    n0 = order.size - n1
    num = np.abs(c1 * n0 - c0 * n1)[:, ends].max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = num / (n1[:, 0] * n0[:, 0])
    return np.where((n1[:, 0] > 0) & (n0[:, 0] > 0), d, np.nan)


class _Features:
    """The unit x feature matrix ``[scaled shares | presence]`` and how to turn arm sums into TVDs."""

    def __init__(self, pdata: PairData) -> None:
        self.pdata = pdata
        jc = len(pdata.cat_items)
        blocks = pdata.blocks
        H = np.asarray(pdata.H, dtype=np.float64)
        scale = np.zeros(jc, dtype=np.int64) if pdata.scale is None else np.asarray(pdata.scale, dtype=np.int64)
        self.scale = np.where(scale > 0, scale, 1).astype(np.float64)
        self.exact = bool(jc == 0 or np.all(scale > 0))
        Hs = H.copy()
        for j in range(jc):
            if scale[j] > 0:
                sl = blocks.slices[j]
                Hs[:, sl] = np.rint(H[:, sl] * scale[j])
        F = np.hstack([Hs, np.asarray(pdata.P, dtype=np.float64)])
        biggest = float(F.sum(axis=0).max()) if F.size else 0.0
        self.dtype = np.float32 if self.exact and biggest < _F32_EXACT else np.float64
        self.F = F.astype(self.dtype)
        self.D = int(blocks.sizes.sum())
        self.tot = F.sum(axis=0)
        self.ks_prep = [_ks_prep(pdata.X[:, j]) for j in range(len(pdata.num_items))]

    def stats(self, m: np.ndarray) -> np.ndarray:
        """``(c, J)`` statistics (TVD of every categorical NCO, KS of every numeric one) of ``c`` labellings."""
        parts = []
        pdata = self.pdata
        if pdata.cat_items:
            s = (m.astype(self.dtype, copy=False) @ self.F).astype(np.float64)
            s1, n1 = s[:, : self.D], s[:, self.D:]
            s0, n0 = self.tot[None, : self.D] - s1, self.tot[None, self.D:] - n1
            parts.append(block_tvd(s1, n1, s0, n0, pdata.blocks, scale=self.scale))
        if self.ks_prep:
            parts.append(np.stack([_ks(m, o, e) for o, e in self.ks_prep], axis=1))
        return np.concatenate(parts, axis=1) if parts else np.zeros((m.shape[0], 0))


def _unique_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``x`` and how many times each occurs."""
    if x.shape[0] == 0:
        return x, np.zeros(0, dtype=np.int64)
    pat, counts = np.unique(x, axis=0, return_counts=True)
    return pat, counts


def boot_tvd(h: np.ndarray, present: np.ndarray, lay: StrataLayout, n_boot: int,
             rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` bootstrap TVDs of one NCO: units resampled within arm (pairs as pairs).

    A resample of ``n_a`` units with replacement is a multinomial draw over the distinct
    (share vector, presence) patterns of the arm, so the cost is ``n_boot x patterns``, not
    ``n_boot x units``. Resamples in which an arm has no answer give NaN.
    """
    k = h.shape[1]
    x = np.hstack([h * present[:, None], present[:, None].astype(np.float64)])
    if lay.kind == "pairs":
        pat, counts = _unique_rows(np.hstack([x[lay.pair1], x[lay.pair0]]))
        draws = rng.multinomial(int(counts.sum()), counts / counts.sum(), size=n_boot).astype(np.float64)
        s = draws @ pat
        s1, m1, s0, m0 = s[:, :k], s[:, k], s[:, k + 1: 2 * k + 1], s[:, 2 * k + 1]
    else:
        sums = []
        for mask in (lay.arm1, ~lay.arm1):
            pat, counts = _unique_rows(x[mask])
            draws = rng.multinomial(int(counts.sum()), counts / counts.sum(), size=n_boot).astype(np.float64)
            sums.append(draws @ pat)
        s1, m1, s0, m0 = sums[0][:, :k], sums[0][:, k], sums[1][:, :k], sums[1][:, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = 0.5 * np.abs(s1 / m1[:, None] - s0 / m0[:, None]).sum(axis=1)
    return np.where((m1 > 0) & (m0 > 0), t, np.nan)


def basic_bootstrap(est: float, boot: np.ndarray, conf_level: float) -> tuple[float, float, float]:
    """Basic-bootstrap interval (floored at 0, capped at 1) and bias-corrected estimate; NaN without draws."""
    tb = boot[np.isfinite(boot)]
    if tb.size == 0 or not math.isfinite(est):
        return math.nan, math.nan, math.nan
    alpha = 1 - conf_level
    qlo, qhi = np.quantile(tb, [alpha / 2, 1 - alpha / 2])
    return (max(2 * est - float(qhi), 0.0), min(max(2 * est - float(qlo), 0.0), 1.0),
            max(2 * est - float(tb.mean()), 0.0))


def _mean_diff(x: np.ndarray, present: np.ndarray, lay: StrataLayout, conf_level: float) -> MeanDiff:
    if lay.kind == "pairs":
        ok = present[lay.pair1] & present[lay.pair0]
        return paired_t(x[lay.pair1[ok]] - x[lay.pair0[ok]], conf_level)
    a1 = lay.arm1 & present
    a0 = ~lay.arm1 & present
    return welch_t(x[a1], x[a0], conf_level)


def _interval(h: np.ndarray, present: np.ndarray, lay: StrataLayout, conf_level: float,
              term: str, notes: list[str]) -> tuple[float, float]:
    """The valid interval (:func:`~driftstats._kernels.tvd_ci.tvd_conf_int`), paired when every pair is complete."""
    if lay.kind == "pairs":
        ok = present[lay.pair1] & present[lay.pair0]
        if ok.all():
            return tvd_ci.tvd_conf_int(h[lay.pair1], h[lay.pair0], conf_level, paired=True)
        notes.append(f"{term}: {int((~ok).sum())} of {ok.size} pairs lack an answer in one arm, so its interval "
                     "treats the arms as independent (conservative when answers correlate positively within pairs)")
    return tvd_ci.tvd_conf_int(h[lay.arm1 & present], h[~lay.arm1 & present], conf_level)


def analyse_pair(
    pdata: PairData,
    *,
    n_perm: int,
    n_boot: int,
    conf_level: float,
    rng: np.random.Generator,
) -> PairOutcome:
    """Every NCO of one comparison: TVD / KS, permutation null, p-values (marginal and min-p), intervals."""
    lay = layout(pdata.arm1_mask, pdata.strata)
    n = pdata.n_units
    feats = _Features(pdata)
    m_obs = pdata.arm1_mask.astype(np.float64)[None, :]
    observed_all = feats.stats(m_obs)[0]
    arm1 = lay.arm1
    jc = len(pdata.cat_items)
    counts = [(int((arm1 & (pdata.P[:, j] > 0)).sum()), int((~arm1 & (pdata.P[:, j] > 0)).sum()))
              for j in range(jc)]
    counts += [(int((arm1 & ~np.isnan(pdata.X[:, j])).sum()), int((~arm1 & ~np.isnan(pdata.X[:, j])).sum()))
               for j in range(len(pdata.num_items))]
    notes_row = [not_testable_note(pdata.arm1, pdata.arm0, n1, n0) for n1, n0 in counts]
    testable = np.array([nt is None for nt in notes_row], dtype=bool)
    observed = np.where(testable, observed_all, np.nan)
    chunk = _chunk(n)
    null = np.concatenate(
        [feats.stats(m) for m in perm_chunks(lay, n_perm, rng, chunk, dtype=feats.dtype)], axis=0
    )
    p_perm = perm_pvalue(null, observed)
    p_fwer = minp_fwer(null, observed)
    null_mean, null_q95 = null_summary(np.where(testable[None, :], null, np.nan))

    rows: list[dict[str, Any]] = []
    dists: list[dict[str, Any]] = []
    notes: list[str] = []
    for j, item in enumerate(pdata.cat_items):
        sl = pdata.blocks.slices[j]
        present = pdata.P[:, j] > 0
        h = np.asarray(pdata.H[:, sl], dtype=np.float64)
        m1, m0 = arm1 & present, ~arm1 & present
        n1, n0 = counts[j]
        q1 = h[m1].mean(axis=0) if n1 else np.full(h.shape[1], np.nan)
        q0 = h[m0].mean(axis=0) if n0 else np.full(h.shape[1], np.nan)
        ok = bool(testable[j])
        low, high = _interval(h, present, lay, conf_level, item.item, notes) if ok else (math.nan, math.nan)
        est = float(observed_all[j]) if ok else math.nan
        b_low = b_high = bc = math.nan
        if ok and n_boot > 0:
            b_low, b_high, bc = basic_bootstrap(est, boot_tvd(h, present, lay, n_boot, rng), conf_level)
        if item.scale == "ordinal" and ok:
            codes = np.arange(h.shape[1], dtype=float)
            md = _mean_diff(h @ codes, present, lay, conf_level)
        else:
            md = MeanDiff(*(math.nan,) * 7)
        table = np.vstack([h[m1].sum(axis=0), h[m0].sum(axis=0)])
        rows.append({
            "term": item.item, "arm": pdata.arm1, "reference": pdata.arm0, "measure": "tvd",
            "n_1": n1, "n_0": n0, "n_levels": h.shape[1],
            "estimate": est, "statistic": pearson_chi2(table) if ok else math.nan, "p_value": float(p_perm[j]),
            "conf_low": low, "conf_high": high,
            "null_mean": float(null_mean[j]), "null_q95": float(null_q95[j]),
            "excess": max(est - float(null_mean[j]), 0.0) if ok else math.nan,
            "estimate_bc": bc, "conf_low_approx": b_low, "conf_high_approx": b_high,
            "p_value_fwer": float(p_fwer[j]),
            "mean_shift": md.estimate, "mean_shift_low": md.conf_low, "mean_shift_high": md.conf_high,
            "note": notes_row[j],
        })
        for arm_name, q, cnt in ((pdata.arm1, q1, n1), (pdata.arm0, q0, n0)):
            for k, level in enumerate(item.options or ()):
                dists.append({**pdata.group, "item": item.item, "arm": arm_name, "level": level,
                              "position": k, "share": float(q[k]), "n": cnt})
    for jn, item in enumerate(pdata.num_items):
        j = jc + jn
        x = pdata.X[:, jn]
        present = ~np.isnan(x)
        ok = bool(testable[j])
        md = _mean_diff(x, present, lay, conf_level) if ok else MeanDiff(*(math.nan,) * 7)
        est = float(observed_all[j]) if ok else math.nan
        rows.append({
            "term": item.item, "arm": pdata.arm1, "reference": pdata.arm0, "measure": "ks",
            "n_1": counts[j][0], "n_0": counts[j][1], "n_levels": None,
            "estimate": est, "statistic": est, "p_value": float(p_perm[j]),
            "conf_low": math.nan, "conf_high": math.nan,
            "null_mean": float(null_mean[j]), "null_q95": float(null_q95[j]),
            "excess": max(est - float(null_mean[j]), 0.0) if ok else math.nan,
            "p_value_fwer": float(p_fwer[j]),
            "mean_shift": md.estimate, "mean_shift_low": md.conf_low, "mean_shift_high": md.conf_high,
            "note": notes_row[j],
        })
    return PairOutcome(rows=rows, null=null, observed=observed, layout_kind=lay.kind, distributions=dists,
                       notes=notes, log_n_relabellings=log_n_relabellings(lay))
