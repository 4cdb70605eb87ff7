"""Benchmark: collector throughput vs a naive loop, and vs the prefill-bound limit (CPU).

Same study (the shipped ``collectors/studies/anes_tax.toml``, first ``--personas`` personas in
all four arms), same model (embedded Gemma 3 270M), same machine, same run:

* **collector**: ``run_study`` (persona prefix shared by the arms, arm prefix shared by the
  items, each item in its own branch; sampled answer + exact option distribution);
* **naive**: one ``outlines.Generator(model, Regex)`` call per question with the full prompt
  (persona + intervention + question) re-evaluated each time (outlines resets llama.cpp after
  every call); sampled answers only;
* **prefill limit**: the prompt tokens the study needs with perfect prefix sharing (each
  persona prefix once, each arm text once per unit, each item once per answer), divided by
  llama.cpp's measured prefill rate on a 512-token prompt.

Usage: python bench/collect.py [--personas 6] [--naive-units 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from collectors.backends.llama import LlamaBackend, prefill_rate, resolve_model_path
from collectors.plan import persona_rows, plan_iteration
from collectors.population import load_population
from collectors.prompts import Prompts
from collectors.runner import run_study
from collectors.study import load_study

STUDY = Path(__file__).parents[1] / "collectors" / "studies" / "anes_tax.toml"


def branch_strategies(backend: LlamaBackend, prefix_tokens: int = 160, item_tokens: int = 45,
                      items: int = 10) -> tuple[float, float]:
    """Seconds per item branch: KV truncation back to the prefix vs llama.cpp state save/restore."""
    text = " ".join(["A respondent who is 45 years old and identifies as a weak Democrat read the notice."] * 20)
    toks = backend.tokenize(text, bos=True)
    prefix, item = toks[:prefix_tokens], toks[prefix_tokens:prefix_tokens + item_tokens]
    llm = backend.llm
    llm.reset()
    llm.eval(prefix)
    t = time.perf_counter()
    for _ in range(items):
        llm.n_tokens = len(prefix)  # eval() removes KV cells past n_tokens
        llm.eval(item)
    truncate = (time.perf_counter() - t) / items
    llm.reset()
    llm.eval(prefix)
    state = llm.save_state()
    t = time.perf_counter()
    for _ in range(items):
        llm.load_state(state)
        llm.eval(item)
    restore = (time.perf_counter() - t) / items
    backend.reset()
    return truncate, restore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--personas", type=int, default=6)
    ap.add_argument("--naive-units", type=int, default=4)
    args = ap.parse_args()
    full = load_study(STUDY)
    study = full.model_copy(update={"design": full.design.model_copy(update={"units_per_arm": args.personas})})
    backend = LlamaBackend(resolve_model_path(study.model.path), n_ctx=study.model.n_ctx, n_threads=2)
    rate = prefill_rate(backend)
    print(f"prefill rate of llama.cpp: {rate:.0f} tokens/s (512-token prompt, 2 threads)")
    trunc, restore = branch_strategies(backend)
    print(f"branching from a 160-token prefix to a 45-token item: KV truncation {trunc * 1e3:.1f} ms vs state "
          f"save/restore {restore * 1e3:.1f} ms per branch (the collector truncates)")

    # warm-up (outlines vocabulary/index, numba JIT) outside the timed runs
    with tempfile.TemporaryDirectory() as tmp:
        warm = study.model_copy(update={"design": study.design.model_copy(update={"units_per_arm": 1})})
        run_study(warm, Path(tmp) / "warm.duckdb", backend=backend)
        backend.reset()
        backend.evaluated_tokens = 0
        t = time.perf_counter()
        summary = run_study(study, Path(tmp) / "bench.duckdb", backend=backend)
        ours_s = time.perf_counter() - t
    ours_rate = summary.answers_run / ours_s

    # prompt tokens the study needs with perfect prefix sharing, over the collector's own plan
    pop = load_population(study.population)
    prompts = Prompts(study, style="completion")
    plan = plan_iteration(study, pop, prompts, persona_rows(study, pop), model="bench",
                          items=[(i, i.role) for i in study.items])
    needed = 0
    naive_prompts = []
    seen: set[str] = set()
    for n_unit, unit in enumerate(plan, start=1):
        if unit.persona_key not in seen:  # each persona prefix once
            seen.add(unit.persona_key)
            needed += len(backend.tokenize(study.preamble.replace("{persona}", unit.persona.description), bos=True))
        needed += len(backend.tokenize(study.intervention.replace("{text}", unit.arm.text), bos=False))
        for task in unit.tasks:
            needed += len(backend.tokenize(task.prompt.text, bos=False))
            if n_unit <= args.naive_units:  # the naive loop asks the first units' questions
                naive_prompts.append((unit.prefix + task.prompt.text, task.prompt.regex))
    limit_s = needed / rate

    # naive: one outlines call per question, full prompt each time
    import outlines
    from outlines.types import Regex

    model = outlines.from_llamacpp(backend.llm, chat_mode=False)
    gens = {}
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for prompt, regex in naive_prompts:
        gen = gens.setdefault(regex, outlines.Generator(model, Regex(regex)))
        gen(prompt, max_tokens=8, temperature=1.0, seed=int(rng.integers(1 << 30)))
    naive_s = time.perf_counter() - t
    naive_rate = len(naive_prompts) / naive_s

    print(f"study: {args.personas} personas x {len(study.arms)} arms x {len(study.items)} items = "
          f"{summary.answers_run} answers (+ exact option distributions); prompt tokens needed "
          f"{needed:,}, evaluated by the collector {backend.evaluated_tokens:,}")
    print(f"prefill limit: {limit_s:.1f} s vs collector {ours_s:.1f} s = {limit_s / ours_s:.0%} of the limit "
          f"(target >= 80%)")
    print(f"collect: {ours_rate:.2f} answers/s vs naive outlines loop {naive_rate:.2f} answers/s "
          f"({len(naive_prompts)} answers) = {ours_rate / naive_rate:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
