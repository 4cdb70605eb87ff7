"""The count-table drift engine for large logs of sampled answers (no strata, or matched pairs).

Every categorical statistic depends only on how many units of each arm show each answer
*pattern*: the counts of a unit's valid replicates over the K levels (one-hot without
replicates, so the patterns are the levels). Per NCO the permutation null is exact:

* without strata, relabelling units with the arm sizes fixed makes the arm-1 pattern counts
  multivariate hypergeometric, drawn with ``Generator.hypergeometric`` pattern by pattern and
  vectorised over permutations (when some units skipped the NCO, the number of arm-1 units
  among those who answered is itself hypergeometric);
* within matched pairs, each pair swaps its labels with probability 1/2, so the number of
  swapped pairs of each (arm-1 pattern, arm-0 pattern) type is binomial.

Cost: O(B x patterns) per NCO, whatever the number of rows, with R replicates as cheap as one
answer (``C(R + K - 1, K - 1)`` patterns at most). The TVD of a draw is computed from exact
integer sums exactly as in the unit-level engine, so the two engines tie identically.

The family-wise (min-p) adjustment needs the *joint* permutation law of all NCOs. For the
large samples this engine is used for, that law is Gaussian with the exact finite-population
covariance of the arm-1 sums: ``n1 n0 / (n (n - 1)) sum_u (h_u - hbar)(h_u - hbar)'`` of the
units' share vectors (with presence indicators) without strata, ``1/4 sum_i d_i d_i'`` of the
within-pair differences with pairs; the family-wise p-values use Gaussian draws with that
covariance (and are never below the exact marginal p-value); the result's diagnostics say so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from driftstats._kernels import tvd_ci
from driftstats._kernels.means import MeanDiff, paired_t, welch_from_stats
from driftstats._kernels.tvd import Blocks, block_tvd, minp_fwer, pearson_chi2, perm_pvalue
from driftstats.nco._data import CountData
from driftstats.nco._engine import PairOutcome, basic_bootstrap, not_testable_note, null_summary

__all__ = ["analyse_count_data", "analyse_counts"]

def _mvhg(rng: np.random.Generator, totals: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Multivariate hypergeometric counts for each entry of ``draws`` (vectorised over draws)."""
    out = np.zeros((draws.size, totals.size), dtype=np.int64)
    left_total = int(totals.sum())
    left = draws.astype(np.int64).copy()
    for k in range(totals.size - 1):
        good = int(totals[k])
        bad = left_total - good
        x = rng.hypergeometric(good, bad, left) if good and bad else (left if not bad else np.zeros_like(left))
        out[:, k] = x
        left -= x
        left_total = bad
    if totals.size:
        out[:, -1] = left
    return out


class _Nco:
    """One NCO's patterns: integer level counts ``V``, their exact scaling to a common denominator, shares."""

    def __init__(self, patterns: np.ndarray, k: int) -> None:
        V = np.asarray(patterns, dtype=np.int64).reshape(-1, k)
        r = V.sum(axis=1)
        lcm = 1
        for v in np.unique(r[r > 0]):
            lcm = math.lcm(lcm, int(v))
        self.k = k
        self.one_hot = bool(np.all(r == 1))
        self.scale = float(lcm)
        self.Vs = (V * (lcm // np.where(r > 0, r, 1))[:, None]).astype(np.float64)  # shares x lcm, integers
        self.S = V / np.where(r > 0, r, 1)[:, None]  # share vectors
        self.V = V
        self.n_patterns = V.shape[0]
        # lookup tables indexed by code + 1 (row 0: no answer)
        self.S_ext = np.vstack([np.zeros((1, k)), self.S])
        self.Vs_ext = np.vstack([np.zeros((1, k)), self.Vs])
        self.blocks = Blocks([k])

    def tvd(self, s1: np.ndarray, n1: np.ndarray, s0: np.ndarray, n0: np.ndarray) -> np.ndarray:
        """Exact TVD of ``(c, K)`` scaled sums and ``(c,)`` answer counts."""
        return block_tvd(s1, n1[:, None], s0, n0[:, None], self.blocks, scale=np.array([self.scale]))[:, 0]


def _cross_moments(codes_a: np.ndarray, codes_b: np.ndarray, ncos: list[_Nco]) -> np.ndarray:
    """``sum_i h(a_i) h(b_i)'`` of the unit vectors ``h = [shares of every NCO | presence]``.

    Computed from integer joint count tables of the pattern ids (one ``bincount`` per pair of
    NCOs), never from the ``n x width`` matrix: exact, O(n J^2) and free of BLAS threading.
    """
    J = len(ncos)
    starts = np.cumsum([0] + [c.k for c in ncos])
    d = int(starts[-1])
    width = d + J
    out = np.zeros((width, width))
    # A_j: one row per pattern id + 1 (row 0: no answer): [share vector | presence]
    A = [np.hstack([c.S_ext, np.r_[0.0, np.ones(c.n_patterns)][:, None]]) for c in ncos]
    idx = [np.r_[np.arange(starts[j], starts[j + 1]), d + j] for j in range(J)]
    symmetric = codes_a is codes_b
    for j in range(J):
        for jj in range(j if symmetric else 0, J):
            size = ncos[jj].n_patterns + 1
            table = np.bincount((codes_a[:, j] + 1) * size + codes_b[:, jj] + 1,
                                minlength=(ncos[j].n_patterns + 1) * size).reshape(-1, size)
            block = A[j].T @ table.astype(np.float64) @ A[jj]
            out[np.ix_(idx[j], idx[jj])] = block
            if symmetric:
                out[np.ix_(idx[jj], idx[j])] = block.T
    return out


def _gaussian_null(mean: np.ndarray, cov: np.ndarray, ncos: list[_Nco], stot: np.ndarray, n_perm: int,
                   rng: np.random.Generator) -> np.ndarray:
    """TVDs of ``n_perm`` Gaussian draws of the arm-1 sums (shares | presence)."""
    blocks = Blocks([c.k for c in ncos])
    d = int(blocks.sizes.sum())
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    z = rng.standard_normal((n_perm, w.size)) * np.sqrt(np.clip(w, 0, None))
    s1 = mean[None, :] + z @ v.T
    return block_tvd(s1[:, :d], s1[:, d:], stot[None, :d] - s1[:, :d], stot[None, d:] - s1[:, d:], blocks)


def analyse_count_data(cd: CountData, *, n_perm: int, n_boot: int, conf_level: float,
                       rng: np.random.Generator) -> PairOutcome:
    """:func:`analyse_counts` of one :class:`~driftstats.nco._data.CountData`."""
    return analyse_counts(cd.codes, cd.arm1_mask, cd.items, cd.group, (cd.arm1, cd.arm0), n_perm=n_perm,
                          n_boot=n_boot, conf_level=conf_level, rng=rng, patterns=cd.patterns, pairs=cd.pairs)


def analyse_counts(
    codes: np.ndarray,
    arm1: np.ndarray,
    items: list[Any],
    group: dict[str, Any],
    names: tuple[str, str],
    *,
    n_perm: int,
    n_boot: int,
    conf_level: float,
    rng: np.random.Generator,
    patterns: list[np.ndarray] | None = None,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> PairOutcome:
    """``codes``: (n, J) pattern ids (-1: no answer); ``arm1``: (n,) bool.

    ``patterns[j]``: (n_patterns, K_j) level counts of NCO j's patterns (default: one-hot, so
    ``codes`` are response codes); ``pairs``: (arm-1 unit, arm-0 unit) index arrays of matched
    pairs, permuted within pair (default: no strata).
    """
    codes = np.asarray(codes, dtype=np.int64)
    arm1 = np.asarray(arm1, dtype=bool)
    n = arm1.size
    n1_all = int(arm1.sum())
    n0_all = n - n1_all
    J = len(items)
    if patterns is None:
        patterns = [np.eye(int(it.n_levels), dtype=np.int64) for it in items]
    ncos = [_Nco(patterns[j], int(items[j].n_levels)) for j in range(J)]
    observed = np.full(J, np.nan)
    null = np.full((n_perm, J), np.nan)
    boots: list[np.ndarray] = [np.empty(0)] * J
    c1s: list[np.ndarray] = []
    c0s: list[np.ndarray] = []
    row_notes: list[str | None] = []
    pair_counts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for j, c in enumerate(ncos):
        code = codes[:, j]
        present = code >= 0
        tot = np.bincount(code[present], minlength=c.n_patterns)
        c1 = np.bincount(code[arm1 & present], minlength=c.n_patterns)
        c0 = tot - c1
        c1s.append(c1)
        c0s.append(c0)
        m1, m0 = int(c1.sum()), int(c0.sum())
        note = not_testable_note(names[0], names[1], m1, m0)
        row_notes.append(note)
        if pairs is not None:
            a = code[pairs[0]] + 1
            b = code[pairs[1]] + 1
            pp = np.bincount(a * (c.n_patterns + 1) + b, minlength=(c.n_patterns + 1) ** 2)
            kind = np.flatnonzero(pp)
            pair_counts.append((kind // (c.n_patterns + 1), kind % (c.n_patterns + 1), pp[kind]))
        if note is not None:
            continue
        s1 = (c1 @ c.Vs)[None, :]
        s0 = (c0 @ c.Vs)[None, :]
        observed[j] = c.tvd(s1, np.array([float(m1)]), s0, np.array([float(m0)]))[0]
        stot = tot @ c.Vs
        if pairs is None:
            m = int(tot.sum())
            draws = rng.hypergeometric(n1_all, n0_all, np.full(n_perm, m)) if m < n else np.full(n_perm, n1_all)
            x1 = _mvhg(rng, tot, draws).astype(np.float64)
            ns1 = draws.astype(np.float64)
            ss1 = x1 @ c.Vs
        else:
            ia, ib, cnt = pair_counts[-1]
            moves = ia != ib  # pairs whose two members differ: a swap changes the sums
            ia, ib, cnt = ia[moves], ib[moves], cnt[moves]
            flips = rng.binomial(cnt[None, :], 0.5, size=(n_perm, cnt.size)).astype(np.float64)
            delta = c.Vs_ext[ia] - c.Vs_ext[ib]
            dpres = (ia > 0).astype(np.float64) - (ib > 0).astype(np.float64)
            ss1 = s1 - flips @ delta
            ns1 = m1 - flips @ dpres
        null[:, j] = c.tvd(ss1, ns1, stot[None, :] - ss1, (m1 + m0) - ns1)
        if n_boot:
            boots[j] = _boot(c, c1, c0, n1_all, n0_all, pair_counts[-1] if pairs is not None else None, n_boot, rng)
    p_perm = perm_pvalue(null, observed)
    null_mean, null_q95 = null_summary(null)

    # Gaussian joint law of the arm-1 sums (shares + presence), for the family-wise min-p
    fwer = np.full(J, np.nan)
    if np.isfinite(observed).any():
        stot = np.concatenate([np.concatenate([(c1s[j] + c0s[j]) @ c.S for j, c in enumerate(ncos)]),
                               np.array([(c1s[j] + c0s[j]).sum() for j in range(J)], dtype=np.float64)])
        if pairs is None:
            mom = _cross_moments(codes, codes, ncos)
            hbar = stot / n
            cov = (n1_all * n0_all / (n * (n - 1.0))) * (mom - n * np.outer(hbar, hbar))
            mean = n1_all * hbar
        else:
            a, b = codes[pairs[0]], codes[pairs[1]]
            m10 = _cross_moments(a, b, ncos)  # not symmetric: a and b are different arrays
            cov = (_cross_moments(a, a, ncos) + _cross_moments(b, b, ncos) - m10 - m10.T) / 4.0
            mean = stot / 2.0
        g_null = _gaussian_null(mean, cov, ncos, stot, n_perm, rng)
        fwer = np.maximum(minp_fwer(g_null, observed), p_perm)

    rows_out = []
    dists = []
    notes: list[str] = []
    for j, item in enumerate(items):
        c = ncos[j]
        c1, c0 = c1s[j], c0s[j]
        m1, m0 = int(c1.sum()), int(c0.sum())
        ok = row_notes[j] is None
        sh1, sh0 = c1 @ c.S, c0 @ c.S  # summed shares per level
        with np.errstate(invalid="ignore", divide="ignore"):
            q1, q0 = sh1 / m1, sh0 / m0
        low = high = b_low = b_high = bc = math.nan
        md = MeanDiff(*(math.nan,) * 7)
        if ok:
            low, high = _interval(c, c1, c0, pair_counts[j] if pairs is not None else None, conf_level,
                                  item.item, notes)
            if n_boot:
                b_low, b_high, bc = basic_bootstrap(float(observed[j]), boots[j], conf_level)
            if item.scale == "ordinal":
                md = _mean_shift(c, c1, c0, pair_counts[j] if pairs is not None else None, conf_level)
        est = float(observed[j])
        rows_out.append({
            "term": item.item, "arm": names[0], "reference": names[1], "measure": "tvd",
            "n_1": m1, "n_0": m0, "n_levels": c.k, "estimate": est,
            "statistic": pearson_chi2(np.vstack([sh1, sh0])) if ok else math.nan, "p_value": float(p_perm[j]),
            "conf_low": low, "conf_high": high, "null_mean": float(null_mean[j]),
            "null_q95": float(null_q95[j]), "excess": max(est - float(null_mean[j]), 0.0) if ok else math.nan,
            "estimate_bc": bc, "conf_low_approx": b_low, "conf_high_approx": b_high,
            "mean_shift": md.estimate, "mean_shift_low": md.conf_low, "mean_shift_high": md.conf_high,
            "p_value_fwer": float(fwer[j]), "note": row_notes[j],
        })
        for arm_name, q, cnt in ((names[0], q1, m1), (names[1], q0, m0)):
            for kk, level in enumerate(item.options or ()):
                dists.append({**group, "item": item.item, "arm": arm_name, "level": level, "position": kk,
                              "share": float(q[kk]), "n": int(cnt)})
    return PairOutcome(rows=rows_out, null=null, observed=observed, layout_kind="pairs" if pairs is not None
                       else "counts", distributions=dists, notes=notes,
                       log_n_relabellings=_log_relabellings(n, n1_all, pairs))


def _log_relabellings(n: int, n1: int, pairs: tuple[np.ndarray, np.ndarray] | None) -> float:
    if pairs is not None:
        return float(pairs[0].size * math.log(2.0))
    return math.lgamma(n + 1) - math.lgamma(n1 + 1) - math.lgamma(n - n1 + 1)


def _boot(c: _Nco, c1: np.ndarray, c0: np.ndarray, n1_all: int, n0_all: int,
          pc: tuple[np.ndarray, np.ndarray, np.ndarray] | None, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap TVDs: units resampled within arm (a multinomial over patterns, 'no answer' included),
    or pairs resampled as pairs (a multinomial over pair types)."""
    if pc is None:
        sums = []
        for cnt, size in ((c1, n1_all), (c0, n0_all)):
            p = np.r_[cnt, size - cnt.sum()] / size
            draws = rng.multinomial(size, p, size=n_boot)[:, :-1].astype(np.float64)
            sums.append((draws @ c.S, draws.sum(axis=1)))
        (s1, m1), (s0, m0) = sums
    else:
        ia, ib, cnt = pc
        draws = rng.multinomial(int(cnt.sum()), cnt / cnt.sum(), size=n_boot).astype(np.float64)
        s1, m1 = draws @ c.S_ext[ia], draws @ (ia > 0).astype(np.float64)
        s0, m0 = draws @ c.S_ext[ib], draws @ (ib > 0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = 0.5 * np.abs(s1 / m1[:, None] - s0 / m0[:, None]).sum(axis=1)
    return np.where((m1 > 0) & (m0 > 0), t, np.nan)


def _interval(c: _Nco, c1: np.ndarray, c0: np.ndarray, pc: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
              conf_level: float, term: str, notes: list[str]) -> tuple[float, float]:
    """The valid interval from :mod:`driftstats._kernels.tvd_ci` (count tables when answers are one-hot)."""
    if pc is not None:
        ia, ib, cnt = pc
        complete = (ia > 0) & (ib > 0)
        if complete.all():
            return tvd_ci.tvd_conf_int(np.repeat(c.S_ext[ia], cnt, axis=0), np.repeat(c.S_ext[ib], cnt, axis=0),
                                conf_level, paired=True)
        notes.append(f"{term}: {int(cnt[~complete].sum())} of {int(cnt.sum())} pairs lack an answer in one arm, "
                     "so its interval treats the arms as independent (conservative when answers correlate "
                     "positively within pairs)")
    if c.one_hot:
        return tvd_ci.tvd_conf_int_counts(c1 @ c.V, c0 @ c.V, conf_level)
    return tvd_ci.tvd_conf_int(np.repeat(c.S, c1, axis=0), np.repeat(c.S, c0, axis=0), conf_level)


def _mean_shift(c: _Nco, c1: np.ndarray, c0: np.ndarray, pc: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                conf_level: float) -> MeanDiff:
    """Difference in mean response code: Welch from pattern counts, or paired t over complete pairs."""
    score = c.S @ np.arange(c.k, dtype=float)
    if pc is not None:
        ia, ib, cnt = pc
        complete = (ia > 0) & (ib > 0)
        d = score[ia[complete] - 1] - score[ib[complete] - 1]
        return paired_t(np.repeat(d, cnt[complete]), conf_level)
    m1, m0 = int(c1.sum()), int(c0.sum())
    if m1 < 2 or m0 < 2:
        return MeanDiff(*(math.nan,) * 7)
    mu1, mu0 = (c1 @ score) / m1, (c0 @ score) / m0
    return welch_from_stats(mu1, float(c1 @ (score - mu1) ** 2) / (m1 - 1), m1,
                            mu0, float(c0 @ (score - mu0) ** 2) / (m0 - 1), m0, conf_level)
