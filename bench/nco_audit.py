"""Benchmark: the NCO audit of a 10M-row log against a naive loop and a single DuckDB scan.

A synthetic log (10 NCOs x 2 arms x 5 iterations, 100,000 units per arm and iteration,
10,000,000 answer rows) is written to Parquet (zstd) once under bench/out/. In this run we time:

* the full audit: ``read_log`` (every validation) + ``nco_test`` with 2,000 permutations;
* one plain DuckDB ``GROUP BY`` count over the same columns (the cost of reading the data once);
* a naive row-level loop (pandas ``value_counts`` inside ``scipy.stats.permutation_test``) on a
  subsample of one NCO x iteration, extrapolated linearly to all rows and 2,000 permutations;
* peak traced memory of ``nco_test`` with 200 and 2,000 permutations (must not grow with permutations);
* a log with replicates (R = 3 sampled answers per unit and NCO, 5 NCOs, 200,000 units, 3,000,000 rows):
  ``nco_test`` (count-table engine over answer patterns) against the unit-level exact engine, which
  replicate logs used to fall to, on the same log in the same run (the exact engine at 200
  permutations, scaled linearly to 2,000: its cost is linear in the number of permutations);
* the bootstrap at its default (``n_boot=2000``) on the 10M-row log.

Usage: python bench/nco_audit.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats

import driftstats as ds

OUT = Path(__file__).parent / "out"
N_NCO, N_ITER, K = 10, 5, 5
LEVELS = [f"L{k + 1}" for k in range(K)]


def make_log(rows: int, path: Path, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    units_per_iter = rows // (N_NCO * N_ITER)
    n_units = units_per_iter * N_ITER
    unit = np.repeat(np.arange(n_units), N_NCO)
    item = np.tile(np.arange(N_NCO), n_units)
    it = unit // units_per_iter
    arm = (unit % 2).astype(np.int8)  # alternate arms
    # drift: in iterations 0-1 the treatment arm moves 3% of mass to level 0 on NCOs 0-2
    p = np.full((2, K), 1 / K)
    codes = (rng.random(unit.size)[:, None] > np.cumsum(p[0])[None, :]).sum(axis=1)
    drift = (arm == 1) & (it < 2) & (item < 3) & (rng.random(unit.size) < 0.03)
    codes = np.where(drift, 0, codes).clip(max=K - 1)
    table = pa.table({
        "iteration": pa.array(it.astype(np.int64)),
        "unit_id": pa.DictionaryArray.from_arrays(pa.array(unit.astype(np.int32)),
                                                  pa.array([f"u{u:07d}" for u in range(n_units)])),
        "arm": pa.DictionaryArray.from_arrays(pa.array(arm), pa.array(["control", "treatment"])),
        "item": pa.DictionaryArray.from_arrays(pa.array(item.astype(np.int8)),
                                               pa.array([f"nco_{j + 1}" for j in range(N_NCO)])),
        "response": pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int8)), pa.array(LEVELS)),
    })
    pq.write_table(table, path, compression="zstd")
    items = pd.DataFrame({"item": [f"nco_{j + 1}" for j in range(N_NCO)], "options": [json.dumps(LEVELS)] * N_NCO,
                          "scale": "nominal", "role": "nco"})
    items.to_parquet(path.with_name(path.stem + ".items.parquet"))
    pd.DataFrame({"arm": ["control", "treatment"], "kind": ["control", "treatment"]}).to_parquet(
        path.with_name(path.stem + ".arms.parquet"))


def make_replicate_log(path: Path, units: int = 200_000, n_nco: int = 5, reps: int = 3, seed: int = 2) -> None:
    """``units`` units (alternating arms), ``n_nco`` NCOs with K levels, ``reps`` sampled answers each."""
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(units), n_nco * reps)
    item = np.tile(np.repeat(np.arange(n_nco), reps), units)
    rep = np.tile(np.arange(reps), units * n_nco)
    arm = (unit % 2).astype(np.int8)
    q = rng.dirichlet(np.ones(K), size=units)  # unit-specific answer distributions: replicates correlate
    cum = np.cumsum(q, axis=1)[unit]
    codes = (rng.random(unit.size)[:, None] > cum).sum(axis=1).clip(max=K - 1)
    drift = (arm == 1) & (item == 0) & (rng.random(unit.size) < 0.01)
    codes = np.where(drift, 0, codes)
    table = pa.table({
        "iteration": pa.array(np.zeros(unit.size, dtype=np.int64)),
        "unit_id": pa.DictionaryArray.from_arrays(pa.array(unit.astype(np.int32)),
                                                  pa.array([f"u{u:07d}" for u in range(units)])),
        "arm": pa.DictionaryArray.from_arrays(pa.array(arm), pa.array(["control", "treatment"])),
        "item": pa.DictionaryArray.from_arrays(pa.array(item.astype(np.int8)),
                                               pa.array([f"nco_{j + 1}" for j in range(n_nco)])),
        "replicate": pa.array(rep.astype(np.int64)),
        "response": pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int8)), pa.array(LEVELS)),
    })
    pq.write_table(table, path, compression="zstd")
    items = pd.DataFrame({"item": [f"nco_{j + 1}" for j in range(n_nco)], "options": [json.dumps(LEVELS)] * n_nco,
                          "scale": "nominal", "role": "nco"})
    items.to_parquet(path.with_name(path.stem + ".items.parquet"))
    pd.DataFrame({"arm": ["control", "treatment"], "kind": ["control", "treatment"]}).to_parquet(
        path.with_name(path.stem + ".arms.parquet"))


def scan(path: Path) -> float:
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(f"SELECT iteration, arm, item, response, count(*) FROM read_parquet('{path}') GROUP BY ALL").fetchall()
    return time.perf_counter() - t


def naive(path: Path, sub_rows: int = 20_000, perms: int = 40) -> tuple[float, float]:
    """Seconds per (row x permutation) of a row-level pandas + scipy loop, and its extrapolation."""
    con = duckdb.connect()
    df = con.execute(f"SELECT arm, response FROM read_parquet('{path}') WHERE item = 'nco_1' AND iteration = 0 "
                     f"LIMIT {sub_rows}").df()
    x1 = df.loc[df["arm"] == "treatment", "response"].to_numpy()
    x0 = df.loc[df["arm"] == "control", "response"].to_numpy()

    def tvd(a, b):
        qa = pd.Series(a).value_counts(normalize=True)
        qb = pd.Series(b).value_counts(normalize=True)
        return 0.5 * qa.sub(qb, fill_value=0).abs().sum()

    t = time.perf_counter()
    stats.permutation_test((x1, x0), tvd, permutation_type="independent", n_resamples=perms, vectorized=False,
                           alternative="greater", random_state=0)
    per = (time.perf_counter() - t) / (perms * len(df))
    total_rows = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]
    return per, per * total_rows * 2000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    path = OUT / f"nco_{args.rows}.parquet"
    if not path.exists():
        t = time.perf_counter()
        make_log(args.rows, path)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s")
    scan_s = min(scan(path) for _ in range(3))
    t0 = time.perf_counter()
    log = ds.read_log(path)
    log.fingerprint()  # the content hash every result's provenance carries (one scan, cached)
    t1 = time.perf_counter()
    res = ds.nco_test(log, n_perm=2000, n_boot=0, seed=1)
    t2 = time.perf_counter()
    audit_s = t2 - t0
    print(f"rows: {log.n_rows:,}; read + validate + fingerprint {t1 - t0:.2f} s; nco_test (2,000 permutations, "
          f"{len(res.tidy())} tests) {t2 - t1:.2f} s; engine: {res.diagnostics[0].split(':')[0]}")
    drifted = res.tidy().query("p_value_fwer < 0.05")[["iteration", "term"]].values.tolist()
    print(f"drift found (family-wise p < 0.05): {drifted}")
    mem = {}
    for b in (200, 2000):
        tracemalloc.start()
        with warnings.catch_warnings():  # 200 permutations are deliberately coarse here
            warnings.simplefilter("ignore", ds.errors.MonteCarloErrorWarning)
            ds.nco_test(log, n_perm=b, n_boot=0, seed=1)
        mem[b] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    print(f"peak traced memory of nco_test: {mem[200]:.0f} MB at 200 permutations, {mem[2000]:.0f} MB at 2,000 "
          f"(ratio {mem[2000] / mem[200]:.2f})")
    t = time.perf_counter()
    boot = ds.nco_test(log, n_perm=2000, seed=1)
    print(f"nco_test with the default bootstrap (n_boot={int(boot.glance()['n_boot'].iloc[0])}): "
          f"{time.perf_counter() - t:.2f} s (vs {t2 - t1:.2f} s without)")
    rpath = OUT / "nco_replicates.parquet"
    if not rpath.exists():
        make_replicate_log(rpath)
    rlog = ds.read_log(rpath)
    t = time.perf_counter()
    fast = ds.nco_test(rlog, n_perm=2000, n_boot=0, seed=1)
    fast_s = time.perf_counter() - t
    t = time.perf_counter()
    exact = ds.nco_test(rlog, n_perm=200, n_boot=0, seed=1, engine="exact")
    exact_s = (time.perf_counter() - t) * 10
    agree = np.allclose(fast.tidy()["estimate"], exact.tidy()["estimate"], rtol=1e-12)
    print(f"replicates: {rlog.n_rows:,} rows (200,000 units x 5 NCOs x 3 replicates): nco_test {fast_s:.2f} s "
          f"({fast.diagnostics[0].split(':')[0]}) vs the exact unit-level engine {exact_s:.1f} s (200 permutations "
          f"x 10) = {exact_s / fast_s:,.0f}x; estimates agree: {agree}")
    per, naive_s = naive(path)
    print(f"scan: audit {audit_s:.2f} s vs one DuckDB GROUP BY scan {scan_s:.2f} s = {audit_s / scan_s:.1f}x "
          f"(target <= 2x)")
    print(f"nco_audit: {audit_s:.1f} s vs naive loop {naive_s:,.0f} s (extrapolated from {per * 1e9:.0f} ns per "
          f"row-permutation) = {naive_s / audit_s:,.0f}x (target >= 100x, audit <= 30 s)")


if __name__ == "__main__":
    main()
