"""The backend interface and the elicitation of one item (distribution + constrained sample).

A backend exposes next-token logits after a token sequence (reusing whatever prefix it
already holds), a tokenizer, and the constraint machinery. Elicitation of one item is
then backend-independent:

* **distribution**: the exact probability of every option under the constraint, by
  walking the constraint's guide over the tokens it allows and scoring each branch
  (temperature 1; paths below ``prune`` probability are dropped and their mass reported);
* **sample**: step-by-step generation where each step's logits go through the outlines
  logits processor; if the processor fails, generation continues *unconstrained*, as it
  would inside llama.cpp, and re-validation flags the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from collectors.prompts import ItemPrompt

__all__ = ["Backend", "Elicited", "LogitsBackend", "elicit", "generate"]


class Backend(Protocol):
    """What the runner needs from a backend: item-level elicitation and provenance."""

    name: str

    def elicit_item(self, prefix_text: str, prompt: ItemPrompt, *, seed: int, temperature: float, top_p: float,
                    dist: bool) -> Elicited: ...

    def info(self) -> dict[str, Any]: ...


class LogitsBackend(Protocol):
    """A backend with next-token logits: elicitation runs through :func:`elicit` below."""

    def tokenize(self, text: str, *, bos: bool) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str: ...

    def logits_after(self, tokens: list[int], extra: int | None = None) -> np.ndarray: ...

    def processor(self, regex: str) -> Any: ...

    def guide(self, regex: str) -> Any: ...

    @property
    def eos(self) -> int: ...


@dataclass
class Elicited:
    text: str  # the generated continuation
    option: str | None  # canonical option it stands for (None: invalid)
    error: str | None
    probs: dict[str, float] | None = None  # canonical option -> probability
    extra: dict[str, float] = field(default_factory=dict)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


def _sample_token(logits: np.ndarray, rng: np.random.Generator, temperature: float, top_p: float) -> int:
    finite = np.isfinite(logits)
    if temperature == 0:
        return int(np.argmax(np.where(finite, logits, -np.inf)))
    idx = np.flatnonzero(finite)
    p = _softmax(logits[idx].astype(np.float64) / temperature)
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p) + 1)]
        mask = np.zeros_like(p, dtype=bool)
        mask[keep] = True
        p = np.where(mask, p, 0.0)
        p /= p.sum()
    return int(idx[rng.choice(idx.size, p=p)])


def distribution(backend: LogitsBackend, ctx: list[int], prompt: ItemPrompt, *, prune: float = 1e-7,
                 max_nodes: int = 64) -> tuple[dict[str, float], dict[str, float]]:
    """Exact option probabilities under the constraint (see module docstring)."""
    probs = dict.fromkeys(prompt.item.options, 0.0)
    pruned = 0.0
    nodes = 0
    root_mass = float("nan")
    stack: list[tuple[list[int], float]] = [([], 1.0)]
    while stack:
        path, mass = stack.pop()
        nodes += 1
        guide = backend.guide(prompt.regex)
        for t in path:
            guide.advance(t, return_tokens=False)
        allowed = np.asarray(guide.get_tokens(), dtype=np.int64)
        allowed = allowed[allowed != backend.eos]
        # a single continuation that does not yet complete an option (e.g. a lone space before the
        # letter) is decoded in the same batch as its parent
        pending = [int(t) for t in allowed if prompt.canonical(backend.detokenize([*path, int(t)])) is None]
        extra = pending[0] if len(pending) == 1 else None
        logits = backend.logits_after(ctx + path, extra=extra).astype(np.float64)
        if not path:
            full = _softmax(logits)
            root_mass = float(full[allowed].sum())
        p = _softmax(logits[allowed])
        for tok, pt in zip(allowed.tolist(), p.tolist(), strict=True):
            m = mass * pt
            text = backend.detokenize([*path, tok])
            opt = prompt.canonical(text)
            if opt is not None:
                probs[opt] += m
            elif m < prune or nodes >= max_nodes:
                pruned += m
            else:
                stack.append(([*path, tok], m))
    total = sum(probs.values())
    if total > 0:
        probs = {k: v / total for k, v in probs.items()}
    return probs, {"pruned_mass": pruned, "option_mass": root_mass, "nodes": float(nodes)}


def _constrained(backend: LogitsBackend, ctx: list[int], regex: str, rng: np.random.Generator, *,
                 temperature: float, top_p: float, max_tokens: int,
                 done: Callable[[list[int]], bool]) -> tuple[list[int], str | None, bool]:
    """Sample up to ``max_tokens`` through the outlines logits processor of ``regex``.

    Returns (tokens, error, finished): ``finished`` is false when ``max_tokens`` ran out first. A
    failing processor is reported in ``error`` and generation goes on unconstrained (re-validation
    then flags the text), as it would inside llama.cpp.
    """
    proc = backend.processor(regex)
    generated: list[int] = []
    error = None
    for _ in range(max_tokens):
        logits = backend.logits_after(ctx + generated).astype(np.float32)
        if proc is not None:
            try:
                ids = np.asarray([ctx + generated], dtype=np.intc)
                logits = np.asarray(proc(ids, logits[None, :].copy()))[0]
            except Exception as exc:
                error = f"constraint failed ({type(exc).__name__}: {exc}); generated unconstrained"
                proc = None
        tok = _sample_token(logits, rng, temperature, top_p)
        if tok == backend.eos:
            return generated, error, True
        generated.append(tok)
        if done(generated):
            return generated, error, True
    return generated, error, False


def sample(backend: LogitsBackend, ctx: list[int], prompt: ItemPrompt, rng: np.random.Generator, *,
           temperature: float, top_p: float, max_tokens: int = 8) -> tuple[str, str | None]:
    """Constrained sampling of one answer label; returns (text, error)."""
    tokens, error, _ = _constrained(backend, ctx, prompt.regex, rng, temperature=temperature, top_p=top_p,
                                    max_tokens=max_tokens,
                                    done=lambda g: prompt.canonical(backend.detokenize(g)) is not None)
    return backend.detokenize(tokens), error


def elicit(backend: LogitsBackend, prefix: list[int], prompt: ItemPrompt, rng: np.random.Generator, *,
           temperature: float, top_p: float, dist: bool) -> Elicited:
    """Ask one item in its own branch after ``prefix``: sample (and score) the answer."""
    ctx = prefix + backend.tokenize(prompt.text, bos=False)
    probs, extra = distribution(backend, ctx, prompt) if dist else (None, {})
    text, error = sample(backend, ctx, prompt, rng, temperature=temperature, top_p=top_p)
    option = prompt.canonical(text)
    if option is None:  # re-validation: never coerced, never dropped
        why = f"answer {text!r} is not one of the options {list(prompt.labels)}"
        error = f"{error}; {why}" if error else why
    return Elicited(text=text, option=option, error=error, probs=probs, extra=extra)


def generate(backend: LogitsBackend, prompt: str, regex: str, rng: np.random.Generator, *, temperature: float,
             top_p: float, max_tokens: int) -> tuple[str, str | None]:
    """Free text constrained to ``regex`` (e.g. a JSON schema's regex) after ``prompt``; (text, error).

    Stops at the end-of-sequence token (which the constraint allows once the text is complete) or
    after ``max_tokens`` (the text is then cut off, and the error says so). A failing constraint is
    reported, never hidden: generation goes on unconstrained and the caller re-validates.
    """
    tokens, error, finished = _constrained(backend, backend.tokenize(prompt, bos=True), regex, rng,
                                           temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                           done=lambda g: False)
    if not finished:
        error = f"{error}; " if error else ""
        error += f"stopped at max_tokens = {max_tokens} before the answer was complete"
    return backend.detokenize(tokens), error
