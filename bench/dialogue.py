"""Benchmark: dialogue generation batched (units in lockstep) vs one at a time, against the prefill bound.

Same dialogues (the shipped ``collectors/studies/anes_tax_dialogue.toml``: its first ``--personas``
personas in both arms, its seeds and settings), same model, same machine, same run, for Gemma 3
270M and SmolLM2-135M:

* **one at a time**: ``dialogue.batch_size = 1`` (each unit's messages decoded token by token, one
  KV sequence per role);
* **batched**: ``dialogue.batch_size = --batch`` (the units of a batch decoded in lockstep in one
  multi-sequence llama.cpp batch, full logits for every sequence at every step);
* **bound**: llama.cpp's prefill rate on a 512-token prompt, measured here. A decode step of B
  sequences evaluates B tokens in one batch, as prefill does; it cannot beat prefill (it also reads
  the KV cache and needs B full logit rows), so prefill is the ceiling batching approaches.

Only the dialogues are generated and timed (the items after them do not depend on the batching).
The two modes give different transcripts (quantized arithmetic depends on the batch's shape), so
each rate is its own generated tokens over its own wall time. The last line reads
``dialogue: <batched tok/s> vs <one-at-a-time tok/s> = <ratio>x (target 2.5)`` for Gemma 3 270M.

Usage: python bench/dialogue.py [--personas 8] [--batch 16] [--threads 2] [--max-tokens 40]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from collectors.backends.llama import LlamaBackend, prefill_rate, resolve_model_path
from collectors.dialogue import DialogueRun, batches
from collectors.plan import persona_rows, plan_iteration
from collectors.population import load_population
from collectors.prompts import Prompts
from collectors.study import load_study

STUDY = Path(__file__).parents[1] / "collectors" / "studies" / "anes_tax_dialogue.toml"


def generate(study, backend: LlamaBackend, model_path: str, batch_size: int) -> tuple[int, float, int]:
    """(tokens generated, seconds, messages) for every dialogue of ``study`` at ``batch_size``."""
    s = study.model_copy(update={"dialogue": study.dialogue.model_copy(update={"batch_size": batch_size})})
    pop = load_population(s.population)
    style = "chat" if s.model.prompt_style == "chat" or (
        s.model.prompt_style == "auto" and backend.has_chat_template) else "completion"
    prompts = Prompts(s, style=style, chat_render=backend.chat_renderer() if style == "chat" else None)
    plan = plan_iteration(s, pop, prompts, persona_rows(s, pop), model=Path(model_path).name,
                          items=[(i, i.role) for i in s.items])
    dr = DialogueRun(s, backend, prompts, model=backend.path.name, style=style)
    messages = 0
    for batch in batches(plan.units, batch_size):
        messages += sum(len(t.messages) for t in dr.generate(batch))
    return dr.generated_tokens, dr.seconds, messages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--personas", type=int, default=8, help="personas (units = 2 x personas)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-tokens", type=int, default=None, help="default: the study's")
    args = ap.parse_args()
    base = load_study(STUDY)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} at start; {args.threads} thread(s)")
    last = ""
    for path in ("smollm2-135m", "gemma3-270m"):
        dlg = base.dialogue.model_copy(update={"max_tokens": args.max_tokens or base.dialogue.max_tokens})
        style = "completion" if path == "gemma3-270m" else "auto"
        study = base.model_copy(update={
            "design": base.design.model_copy(update={"units_per_arm": args.personas}),
            "model": base.model.model_copy(update={"path": path, "prompt_style": style, "n_threads": args.threads}),
            "dialogue": dlg})
        backend = LlamaBackend(resolve_model_path(path), n_ctx=study.model.n_ctx, n_threads=args.threads)
        bound = prefill_rate(backend)
        one_tok, one_s, one_m = generate(study, backend, path, 1)
        bat_tok, bat_s, bat_m = generate(study, backend, path, args.batch)
        r1, rb = one_tok / one_s, bat_tok / bat_s
        print(f"{path}: {2 * args.personas} dialogues, {dlg.max_turns} turns, <= {dlg.max_tokens} tokens/message")
        print(f"  one at a time: {one_tok} tokens in {one_m} messages, {one_s:.1f} s = {r1:.1f} tok/s")
        print(f"  batched ({args.batch} units in lockstep): {bat_tok} tokens in {bat_m} messages, {bat_s:.1f} s "
              f"= {rb:.1f} tok/s")
        print(f"  bound: prefill {bound:.0f} tok/s (512-token prompt); batched reaches {rb / bound:.0%} of it, "
              f"one at a time {r1 / bound:.0%}")
        last = f"dialogue: {rb:.1f} vs {r1:.1f} = {rb / r1:.2f}x (target 2.5)"
        if path != "gemma3-270m":
            print(f"  {path} " + last)
        del backend
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} at the end")
    print(last)


if __name__ == "__main__":
    main()
