"""Fuzz batch: generated malformed logs, frames and numbers for every public verb and the CLI.

Each example is one generated input (a log's four tables, a unit-level frame, control estimates,
or argument values, see ``tests/fuzz/harness.py``) and one to three verb calls on it (about one log
in ten also goes through ``driftstats validate | summary | audit`` in a file format of its own).
Every call must give either a valid result (all invariants of the harness hold, two identical
calls agree) or one of driftstats' named errors; anything else is a crash or nonsense, listed
with a minimal reproducer. Prints the counts per verb and writes them to ``bench/results/fuzz.txt``.

Usage: python bench/fuzz.py [--examples 10000] [--jobs 2] [--seed 20260101] [--cli 0.1] [--out bench/results/fuzz.txt]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _shard(seed: int, examples: int, cli: float, limit: float, shrink: bool, trace: Path | None,
           label: str) -> tuple[object, Counter[str]]:
    """One hypothesis batch of ``examples`` cases from ``seed``: its Tally and the harness' own errors."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    from tests.fuzz.harness import Tally, cases

    tally = Tally(shrink_failures=shrink, limit=limit)
    tally.on_failure = lambda f: print(f"  {label}NEW {f.outcome.status.upper()} {f.verb}: {f.outcome.detail[:300]} at "
                                       f"{f.outcome.where}\n    call: {f.outcome.kwargs[:300]}\n    recipe: "
                                       f"{f.minimal or f.recipe!r} seed {f.seed}", file=sys.stderr, flush=True)
    harness_errors: Counter[str] = Counter()
    t0 = time.perf_counter()
    done = [0]

    @hypothesis_seed(seed)
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=cases(cli=cli))
    def batch(case) -> None:
        start = time.perf_counter()
        if trace is not None:
            with trace.open("a", encoding="utf-8") as fh:
                fh.write(f"{case!r}\n")
        try:
            tally.run_case(case)
        except Exception as exc:  # a harness bug, reported apart (never a library outcome)
            harness_errors[f"{type(exc).__name__}: {exc} in {traceback.extract_tb(exc.__traceback__)[-1]}"] += 1
        if time.perf_counter() - start > 30:
            print(f"  {label}slow example ({time.perf_counter() - start:.0f} s): {case!r}", file=sys.stderr, flush=True)
        done[0] += 1
        if done[0] % 250 == 0:
            rate = done[0] / (time.perf_counter() - t0)
            print(f"  {label}{done[0]:,} examples, {tally.calls:,} calls, {tally.crashes} crashes, {tally.nonsense} "
                  f"nonsense [{time.perf_counter() - t0:.0f} s, {rate:.1f}/s]", file=sys.stderr, flush=True)

    batch()
    tally.on_failure = None  # the tally travels back to the parent process
    return tally, harness_errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=10_000, help="hypothesis examples in all (over every job)")
    ap.add_argument("--seed", type=int, default=20260101, help="job i draws its examples from seed + i")
    ap.add_argument("--jobs", type=int, default=1, help="processes, each running an equal share of the examples")
    ap.add_argument("--cli", type=float, default=0.1, help="share of log examples also run through the CLI")
    ap.add_argument("--limit", type=float, default=120.0, help="seconds one call may run (longer: a crash)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fuzz.txt")
    ap.add_argument("--trace", type=Path, default=None, help="write each example here before running it")
    ap.add_argument("--no-shrink", action="store_true", help="do not shrink failures to minimal reproducers")
    args = ap.parse_args()
    if args.jobs < 1 or args.examples < args.jobs:
        ap.error("--jobs must be >= 1 and at most --examples")

    import driftstats
    from tests.fuzz.harness import headline

    t0 = time.perf_counter()
    shares = [args.examples // args.jobs + (i < args.examples % args.jobs) for i in range(args.jobs)]
    jobs = [(args.seed + i, n, args.cli, args.limit, not args.no_shrink,
             None if args.trace is None else args.trace.with_suffix(f".{i}{args.trace.suffix}"),
             f"[job {i}] " if args.jobs > 1 else "") for i, n in enumerate(shares)]
    if args.jobs == 1:
        results = [_shard(*jobs[0])]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            results = list(pool.map(_shard, *zip(*jobs, strict=False)))
    tally, harness_errors = results[0]
    for other, errs in results[1:]:
        tally.merge(other)
        harness_errors.update(errs)
    elapsed = time.perf_counter() - t0
    seeds = f"seed {args.seed}" if args.jobs == 1 else f"seeds {args.seed}..{args.seed + args.jobs - 1}, {args.jobs} jobs"
    lines = [
        f"fuzz batch: {sum(tally.examples.values()):,} hypothesis examples ({seeds}, CLI share {args.cli:g}), "
        f"driftstats {driftstats.__version__}, {elapsed:.0f} s",
        tally.report(),
    ]
    if harness_errors:
        lines.append(f"harness errors (bugs of the harness, not of driftstats): {sum(harness_errors.values())}")
        lines.extend(f"  {n} x {k}" for k, n in harness_errors.most_common(10))
    lines.append(headline(tally))
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
