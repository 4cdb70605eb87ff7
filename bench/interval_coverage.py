"""Coverage and width of the valid TVD interval (methods 3.2a), against an oracle and the old interval.

The interval under study is ``driftstats._kernels.tvd_ci`` (score band over events: pointwise
upper bound, sup-t lower bound with inequality selection; see its module docstring); the
independent grid calls ``tvd_conf_int_tables``, which gives the numbers of
``tvd_conf_int_counts`` table by table, faster. For each
cell, ``--reps`` replications (default 1000; the Monte Carlo SE of a coverage near 0.95 is then
about 0.007).

Grids
-----
1. Independent arms, one sampled answer per unit: K in {2, 5, 10}, n in {30, 50, 100, 500,
   2000} units per arm, true TVD in {0, 0.03, 0.1, 0.3}, two level distributions:
   ``uniform`` (the treatment arm is tilted towards level 1) and ``sparse`` (the reference arm
   has an empty last level and rare ones, and the drift moves mass *into* the empty level, as in
   the reproducer q0 = (1, 0), q1 = (.97, .03)). The old interval (Bonferroni projection of
   per-level Wald intervals, ``driftstats._kernels.tvd.projection_interval``) is run on the same
   data.
2. Matched pairs (paired=True): persona-specific level distributions (Dirichlet around q0,
   concentration 2), one answer per persona and arm, the arm-1 distribution of each persona
   tilted by the TVD; K in {2, 5, 10}, n in {30, 100, 500}, TVD in {0, 0.1, 0.3}, both bases.
3. Distribution mode: each unit contributes its probability vector (Dirichlet around the arm's
   distribution, concentration 5); K in {2, 5, 10}, n in {30, 100, 500}, TVD in {0, 0.1, 0.3}.

4. Equivalence tests at the margin (TV = margin, so any rejection is an error): exact size of
   both methods for K = 2 (every table enumerated; the methods coincide there), level-2 share in
   the reference arm {0, .01, .1, .45}, margin {.05, .1}, n {30, 50, 100, 200, 500}; and the
   rejection rate from 20000 multinomial draws for K in {5, 10} with the drift moving mass into
   an empty level (sparse) or to level 1 (uniform), n {50, 200, 1000}, margin .1.

Oracle width: the 2.5-97.5% spread of the plug-in TVD over the replications of the cell (the
width of the infeasible interval that knows the sampling law of the plug-in, bias included).
The width ratio is the mean width of the valid interval over that oracle width; the target is
<= 1.5 where TVD >= 0.05.

Prints the three tables and, last, the headlines; the very last line is the worst width ratio
where TVD >= 0.05, against the oracle.

Usage: nice -n 10 python bench/interval_coverage.py [--reps 1000] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats

from driftstats._kernels.equiv import iut_tost, projection_decision
from driftstats._kernels.tvd import projection_interval
from driftstats._kernels.tvd_ci import event_stats_counts, tvd_conf_int, tvd_conf_int_tables

LEVEL = 0.95
SPARSE = {2: [1.0, 0.0], 5: [0.55, 0.3, 0.1, 0.05, 0.0],
          10: [0.35, 0.2, 0.15, 0.1, 0.08, 0.05, 0.04, 0.02, 0.01, 0.0]}


def base(k: int, kind: str) -> tuple[np.ndarray, int]:
    """Reference distribution and the level the drift moves mass to."""
    if kind == "uniform":
        return np.full(k, 1.0 / k), 0
    return np.array(SPARSE[k]), k - 1


def tilt(q: np.ndarray, j: int, tv: float, q0: np.ndarray) -> np.ndarray:
    """``(1 - c) q + c e_j`` with ``c = tv / (1 - q0[j])``: TV(mean tilt, q0) = tv (row-wise on q)."""
    c = tv / (1.0 - q0[j])
    out = (1.0 - c) * q
    out[..., j] += c
    return out


def plug_in(x1: np.ndarray, x0: np.ndarray) -> float:
    return float(0.5 * np.abs(x1.mean(axis=0) - x0.mean(axis=0)).sum())


def summarise(rows: list[dict], tv: float, lo: np.ndarray, hi: np.ndarray, est: np.ndarray) -> dict:
    covered = (lo - 1e-12 <= tv) & (tv <= hi + 1e-12)
    oracle = float(np.diff(np.quantile(est, [0.025, 0.975]))[0])
    width = float(np.mean(hi - lo))
    return {"coverage": covered.mean(), "width": width, "oracle": oracle,
            "ratio": width / oracle if oracle > 0 else np.nan}


def grid_independent(reps: int, rng: np.random.Generator, quick: bool) -> pd.DataFrame:
    rows = []
    ns = (30, 100, 500) if quick else (30, 50, 100, 500, 2000)
    for kind in ("uniform", "sparse"):
        for k in (2, 5, 10):
            for n in ns:
                for tv in (0.0, 0.03, 0.1, 0.3):
                    q0, j = base(k, kind)
                    q1 = tilt(q0.copy(), j, tv, q0)
                    c1 = rng.multinomial(n, q1, size=reps)
                    c0 = rng.multinomial(n, q0, size=reps)
                    t0 = time.process_time()
                    ci = np.stack(tvd_conf_int_tables(c1, c0, LEVEL), axis=1)  # = tvd_conf_int_counts per table
                    ms = (time.process_time() - t0) / reps * 1000
                    h1, h0 = c1 / n, c0 / n
                    est = 0.5 * np.abs(h1 - h0).sum(axis=1)
                    se = np.sqrt(h1 * (1 - h1) / n + h0 * (1 - h0) / n)
                    old = np.array([projection_interval(a - b, s, LEVEL) for a, b, s in zip(h1, h0, se, strict=True)])
                    new = summarise(rows, tv, ci[:, 0], ci[:, 1], est)
                    old_cov = ((old[:, 0] - 1e-12 <= tv) & (tv <= old[:, 1] + 1e-12)).mean()
                    rows.append({"base": kind, "K": k, "n": n, "tvd": tv, **new, "old_coverage": old_cov,
                                 "old_width": float(np.mean(old[:, 1] - old[:, 0])), "ms": ms})
                    print(f"  done {kind} K={k} n={n} tvd={tv}: coverage {new['coverage']:.3f}", flush=True)
    return pd.DataFrame(rows)


def grid_paired(reps: int, rng: np.random.Generator, quick: bool) -> pd.DataFrame:
    rows = []
    for kind in ("uniform", "sparse"):
        for k in (2, 5, 10):
            for n in (30, 100) if quick else (30, 100, 500):
                for tv in (0.0, 0.1, 0.3):
                    q0, j = base(k, kind)
                    eye = np.eye(k)
                    lo, hi, est = np.empty(reps), np.empty(reps), np.empty(reps)
                    for r in range(reps):
                        alpha = 2.0 * q0 + 1e-9
                        p = rng.dirichlet(alpha, size=n)  # persona-specific distributions, mean q0
                        p1 = tilt(p.copy(), j, tv, q0)
                        x0 = eye[(rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1).clip(0, k - 1)]
                        x1 = eye[(rng.random((n, 1)) > np.cumsum(p1, axis=1)).sum(axis=1).clip(0, k - 1)]
                        lo[r], hi[r] = tvd_conf_int(x1, x0, LEVEL, paired=True)
                        est[r] = plug_in(x1, x0)
                    rows.append({"base": kind, "K": k, "n": n, "tvd": tv, **summarise(rows, tv, lo, hi, est)})
                    print(f"  done paired {kind} K={k} n={n} tvd={tv}", flush=True)
    return pd.DataFrame(rows)


def grid_dist(reps: int, rng: np.random.Generator, quick: bool) -> pd.DataFrame:
    rows = []
    for k in (2, 5, 10):
        for n in (30, 100) if quick else (30, 100, 500):
            for tv in (0.0, 0.1, 0.3):
                q0, j = base(k, "uniform")
                q1 = tilt(q0.copy(), j, tv, q0)
                lo, hi, est = np.empty(reps), np.empty(reps), np.empty(reps)
                for r in range(reps):
                    x1 = rng.dirichlet(5.0 * q1, size=n)
                    x0 = rng.dirichlet(5.0 * q0, size=n)
                    lo[r], hi[r] = tvd_conf_int(x1, x0, LEVEL)
                    est[r] = plug_in(x1, x0)
                rows.append({"K": k, "n": n, "tvd": tv, **summarise(rows, tv, lo, hi, est)})
                print(f"  done dist K={k} n={n} tvd={tv}", flush=True)
    return pd.DataFrame(rows)


def grid_equivalence_size(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for n in (30, 50, 100, 200, 500):
        x = np.arange(n + 1)
        a, b = np.meshgrid(x, x, indexing="ij")
        st = event_stats_counts(np.stack([n - a, a], -1).reshape(-1, 2), np.stack([n - b, b], -1).reshape(-1, 2))
        for margin in (0.05, 0.1):
            rej_iut = (iut_tost(st, margin)[0] < 0.05).reshape(n + 1, n + 1)
            rej_proj = projection_decision(st, margin, 0.95).reshape(n + 1, n + 1)
            for p0 in (0.0, 0.01, 0.1, 0.45):
                w = np.outer(stats.binom.pmf(x, n, p0 + margin), stats.binom.pmf(x, n, p0))
                rows.append({"K": 2, "base": f"p0={p0}", "n": n, "margin": margin, "how": "exact",
                             "size_iut": float((w * rej_iut).sum()), "size_projection": float((w * rej_proj).sum())})
    draws = 20000
    for k in (5, 10):
        for kind in ("uniform", "sparse"):
            q0, j = base(k, kind)
            q1 = tilt(q0.copy(), j, 0.1, q0)
            for n in (50, 200, 1000):
                st = event_stats_counts(rng.multinomial(n, q1, size=draws), rng.multinomial(n, q0, size=draws))
                rows.append({"K": k, "base": kind, "n": n, "margin": 0.1, "how": f"{draws} draws",
                             "size_iut": float((iut_tost(st, 0.1)[0] < 0.05).mean()),
                             "size_projection": float(projection_decision(st, 0.1, 0.95).mean())})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="smaller grids (a smoke run)")
    args = ap.parse_args()
    rng = np.random.default_rng(20261201)
    reps = args.reps
    ind = grid_independent(reps, rng, args.quick)
    par = grid_paired(max(reps // 2, 50), rng, args.quick)
    dis = grid_dist(max(reps // 2, 50), rng, args.quick)
    eq = grid_equivalence_size(rng)
    pd.set_option("display.width", 160)
    fmt = {"float_format": lambda v: f"{v:.3f}"}
    se = np.sqrt(LEVEL * (1 - LEVEL) / reps)
    print(f"\n1. independent arms, sampled answers ({reps} replications per cell; MC SE of a coverage "
          f"near {LEVEL} = {se:.3f})")
    print(ind.to_string(index=False, **fmt))
    print(f"\n2. matched pairs ({max(reps // 2, 50)} replications per cell)")
    print(par.to_string(index=False, **fmt))
    print(f"\n3. distribution mode ({max(reps // 2, 50)} replications per cell)")
    print(dis.to_string(index=False, **fmt))
    print("\n4. equivalence tests at the margin (TV = margin; nominal alpha = 0.05)")
    print(eq.to_string(index=False, **fmt))
    allc = pd.concat([ind.assign(grid="independent"), par.assign(grid="paired"), dis.assign(grid="dist")], ignore_index=True)
    worst = allc.loc[allc["coverage"].idxmin()]
    print("\nHeadlines")
    for name, t in (("independent", ind), ("paired", par), ("dist", dis)):
        w = t.loc[t["coverage"].idxmin()]
        print(f"coverage, {name}: worst cell {w['coverage']:.3f} (K={int(w['K'])}, n={int(w['n'])}, "
              f"tvd={w['tvd']}{', ' + w['base'] if 'base' in t else ''}); median {t['coverage'].median():.3f}")
    print(f"old projection interval, independent grid: worst coverage {ind['old_coverage'].min():.3f}; "
          f"width new / old (mean over cells) = {(ind['width'].sum() / ind['old_width'].sum()):.2f}; "
          f"K=10, n=100: {ind.loc[(ind.K == 10) & (ind.n == 100), 'width'].mean():.3f} vs "
          f"{ind.loc[(ind.K == 10) & (ind.n == 100), 'old_width'].mean():.3f}")
    print(f"equivalence size at the margin: worst IUT {eq['size_iut'].max():.4f}, worst projection "
          f"{eq['size_projection'].max():.4f} (alpha 0.05; simulated rows have MC SE about 0.0015)")
    big = ind[ind["tvd"] >= 0.05]
    for k in (2, 5, 10):
        b = big[big["K"] == k]
        print(f"width ratio to the oracle, independent, K={k}, tvd >= 0.05: median {b['ratio'].median():.2f}, "
              f"worst {b['ratio'].max():.2f}")
    print(f"cost (CPU, tables batched): median {ind['ms'].median():.2f} ms per interval "
          f"(K=10: {ind.loc[ind['K'] == 10, 'ms'].median():.2f} ms)")
    se_half = np.sqrt(LEVEL * (1 - LEVEL) / max(reps // 2, 50))
    se_w = se if worst["grid"] == "independent" else se_half
    print(f"overall worst coverage: {worst['coverage']:.3f} ({worst['grid']}) vs nominal {LEVEL} "
          f"(Monte Carlo SE of that cell about {se_w:.3f}; {(LEVEL - worst['coverage']) / se_w:.1f} SE below)")
    w = big.loc[big["ratio"].idxmax()]
    print(f"worst width ratio, valid interval vs oracle (independent grid, tvd >= 0.05; K={int(w['K'])}, "
          f"n={int(w['n'])}, tvd={w['tvd']}, {w['base']}): {w['width']:.3f} vs {w['oracle']:.3f} = "
          f"{w['ratio']:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
