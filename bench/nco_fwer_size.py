"""Simulation study: family-wise size of the NCO drift tests (min-p), both engines.

Under H0 (no drift on any NCO) the chance that *any* NCO of a family is declared drifted at
level alpha must not exceed alpha. Designs (all seeded): correlated NCOs (a shared base answer
plus noise), independent arms and matched pairs (persona-specific answer distributions),
dense and sparse cells (rare categories, small n), J = 3 and J = 10 NCOs, B = 199 permutations.
The exact engine runs every design; the count-table engine the independent ones at large n
(the regime it is used for). Each line: the rejection rate of min_j p_fwer <= alpha at
alpha = .05 and .01 with its binomial Monte Carlo SE.

Usage: python bench/nco_fwer_size.py [--reps 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from driftstats._kernels.tvd import minp_fwer
from driftstats.log.simlog import ItemInfo
from driftstats.nco._data import pair_from_codes
from driftstats.nco._engine import analyse_pair
from driftstats.nco._engine_counts import analyse_counts

ALPHAS = (0.05, 0.01)
B = 199


def correlated_codes(rng: np.random.Generator, n: int, q: np.ndarray, j: int, noise: float = 0.3) -> np.ndarray:
    """(n, j) codes: NCO 0 is a draw from q, NCOs 1.. copy it except a fraction ``noise`` redrawn."""
    k = q.size
    base = rng.choice(k, size=n, p=q)
    cols = [base]
    for _ in range(1, j):
        cols.append(np.where(rng.random(n) < noise, rng.choice(k, size=n, p=q), base))
    return np.stack(cols, axis=1)


def paired_codes(rng: np.random.Generator, n: int, q: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Two (n, j) code arrays for n persona pairs: each persona has its own distribution."""
    k = q.size
    qp = rng.dirichlet(2.0 * k * q, size=n)
    cum = np.cumsum(qp, axis=1)

    def arm() -> np.ndarray:
        base = (rng.random((n, 1)) > cum).sum(axis=1).clip(max=k - 1)
        cols = [base]
        for _ in range(1, j):
            redraw = (rng.random((n, 1)) > cum).sum(axis=1).clip(max=k - 1)
            cols.append(np.where(rng.random(n) < 0.3, redraw, base))
        return np.stack(cols, axis=1)

    return arm(), arm()


def fwer_of(out) -> np.ndarray:
    fw = [r.get("p_value_fwer") for r in out.rows]
    if any(f is None for f in fw):  # engines that leave the family-wise step to the caller
        fw = minp_fwer(out.null, out.observed)
    return np.asarray(fw, dtype=float)


def study(reps: int, make, engine: str, rng: np.random.Generator) -> np.ndarray:
    """Rejection rates of min_j p_fwer <= alpha for every alpha in ALPHAS."""
    hits = np.zeros(len(ALPHAS))
    for _ in range(reps):
        if engine == "exact":
            out = analyse_pair(make(), n_perm=B, n_boot=0, conf_level=0.95, rng=rng)
        else:
            codes, arm1, items = make()
            out = analyse_counts(codes, arm1, items, {}, ("t", "c"), n_perm=B, n_boot=0, conf_level=0.95, rng=rng)
        fw = np.nanmin(fwer_of(out))
        hits += np.array([fw <= a for a in ALPHAS])
    return hits / reps


def designs(rng: np.random.Generator) -> list[tuple[str, str, object]]:
    """(engine, name, maker) of every design of the grid."""
    dense = np.full(3, 1 / 3)
    sparse = np.array([0.70, 0.20, 0.05, 0.03, 0.01, 0.01])

    def independent(n1: int, n0: int, q: np.ndarray, j: int):
        return lambda: pair_from_codes(correlated_codes(rng, n1, q, j), correlated_codes(rng, n0, q, j), q.size)

    def paired(n: int, q: np.ndarray, j: int):
        def make():
            c1, c0 = paired_codes(rng, n, q, j)
            return pair_from_codes(c1, c0, q.size, strata1=np.arange(n), strata0=np.arange(n))
        return make

    def counts(n: int, q: np.ndarray, j: int):
        items = [ItemInfo(f"n{i}", None, tuple(f"L{k}" for k in range(q.size)), "nominal", "nco", None)
                 for i in range(j)]

        def make():
            arm1 = np.zeros(n, bool)
            arm1[: n // 2] = True
            return correlated_codes(rng, n, q, j), arm1, items
        return make

    return [
        ("exact", "independent, J=3, K=3, n=60+60", independent(60, 60, dense, 3)),
        ("exact", "independent, J=10, K=3, n=60+60", independent(60, 60, dense, 10)),
        ("exact", "independent sparse, J=3, K=6, n=20+25", independent(20, 25, sparse, 3)),
        ("exact", "paired, J=3, K=3, 50 pairs", paired(50, dense, 3)),
        ("exact", "paired, J=10, K=3, 50 pairs", paired(50, dense, 10)),
        ("exact", "paired sparse, J=3, K=6, 20 pairs", paired(20, sparse, 3)),
        ("counts", "independent, J=3, K=3, n=300+300", counts(600, dense, 3)),
        ("counts", "independent, J=10, K=3, n=300+300", counts(600, dense, 10)),
        ("counts", "independent sparse, J=3, K=6, n=300+300", counts(600, sparse, 3)),
    ]


def run_grid(reps: int, seed: int = 20260101, report=None) -> list[np.ndarray]:
    """Rates per design (in :func:`designs` order); ``report(line)`` is called after each design."""
    rng = np.random.default_rng(seed)
    se = np.sqrt(np.array(ALPHAS) * (1 - np.array(ALPHAS)) / reps)
    out = []
    for engine, name, make in designs(rng):
        t = time.perf_counter()
        rate = study(reps, make, engine, rng)
        out.append(rate)
        if report is not None:
            cells = "  ".join(f"FWER@{a:.2f} = {r:.3f} (SE {s:.3f})" for a, r, s in zip(ALPHAS, rate, se, strict=True))
            report(f"{engine:6s} {name:44s} {cells}  [{time.perf_counter() - t:.0f} s]")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2000)
    args = ap.parse_args()
    print(f"family-wise size of min-p at B = {B}, {args.reps} replications per design (seed 20260101)", flush=True)
    run_grid(args.reps, report=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
