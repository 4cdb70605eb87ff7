"""Dialogue interventions: the assistant and the simulated user talk, turn by turn, before the items.

Each role writes with its own view of the conversation: the simulated user (the study's model) sees
its persona and the dialogue so far (:meth:`collectors.prompts.Prompts.user_view`); the assistant
(the same or another local model) sees its arm's instructions and the dialogue
(:func:`assistant_view`). Every message is sampled with its own seed, drawn from the names
(study, model, iteration, persona, arm, turn, role) by :mod:`collectors.plan`.

**Batched generation.** The units of a plan are cut, in plan order, into batches of
``dialogue.batch_size``; the messages of a batch are generated in lockstep in one multi-sequence
llama.cpp batch (one KV sequence per (unit, role), in one context per role with one KV buffer; every
step decodes the next token of every unit still writing, with full logits for each). A prefix units
share (a paired persona's preamble, an arm's instructions) is evaluated once and its KV cells copied. A unit's batch depends on its place in the plan, never on
which units a resumed run still lacks, and each batch starts from an empty KV cache: a run and its
resume write the same transcripts. Batched and one-at-a-time generation (``batch_size = 1``) are not
bit-identical on quantized models (the arithmetic of a decode depends on the batch's shape); each
reproduces itself.

A message ends at the end-of-generation token, at a newline in completion style (the next speaker's
line), at its role's stop marker (the marker is kept in the text) or after ``max_tokens``. Empty
messages are kept with ``valid = false``; a view that no longer fits the context ends the dialogue
with ``dialogue_end = 'error'`` (the message is kept, with no text, and the error).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collectors.plan import UnitPlan
from collectors.prompts import Turn
from collectors.study import DialogueSpec, StudyError

__all__ = ["Message", "RoleEngine", "SeqGenerator", "Transcript", "assistant_view", "batches", "run_dialogues",
           "sample_token"]


@dataclass(frozen=True)
class Message:
    """One generated message (a ``transcripts`` row before its hashes)."""

    role: str
    turn: int
    text: str | None
    tokens: int
    finish_reason: str  # eos, stop_marker, max_tokens, error
    valid: bool
    error: str | None
    model: str
    seed: int


@dataclass(frozen=True)
class Transcript:
    messages: tuple[Message, ...]
    end: str  # user_stop, assistant_stop, max_turns, error

    @property
    def turns(self) -> int:
        """Turns the dialogue ran (a turn counts once any role spoke in it)."""
        return self.messages[-1].turn + 1 if self.messages else 0

    @property
    def shown(self) -> list[Turn]:
        return [Turn(m.role, m.text) for m in self.messages]

    @property
    def generated_tokens(self) -> int:
        return sum(m.tokens for m in self.messages)


def batches(units: Sequence[UnitPlan], size: int) -> list[tuple[UnitPlan, ...]]:
    """The plan's units in plan order, cut into batches of ``size`` (the last may be shorter)."""
    return [tuple(units[i:i + size]) for i in range(0, len(units), size)]


def _pick(w: np.ndarray, u: float) -> int:
    """The index where the running sum of the weights ``w`` first exceeds ``u`` times their total (float64,
    in blocks: the vocabulary-wide pass is a block sum, the running sum runs inside one block)."""
    block = 512
    pad = (-w.size) % block
    wp = np.concatenate([w, np.zeros(pad, dtype=w.dtype)]) if pad else w
    sums = np.cumsum(wp.reshape(-1, block).sum(axis=1, dtype=np.float64))
    target = u * sums[-1]
    b = min(int(np.searchsorted(sums, target, side="right")), sums.size - 1)
    before = sums[b - 1] if b else 0.0
    inner = np.cumsum(wp[b * block:(b + 1) * block], dtype=np.float64) + before
    k = b * block + min(int(np.searchsorted(inner, target, side="right")), block - 1)
    while w[min(k, w.size - 1)] == 0 and k > 0:  # never a zero-weight (padding or underflow) token
        k -= 1
    return min(k, w.size - 1)


def sample_token(logits: np.ndarray, rng: np.random.Generator, temperature: float, top_p: float) -> int:
    """One token from ``logits`` at ``temperature`` within the ``top_p`` nucleus (exact; one uniform draw).

    Runs once per generated token over the whole vocabulary (262,144 tokens for Gemma), so the
    vocabulary-wide steps are float32 and linear-time; every sum is float64.
    """
    if temperature == 0:
        return int(np.argmax(logits))
    z = np.asarray(logits, dtype=np.float32)
    if temperature != 1.0:
        z = z * np.float32(1.0 / temperature)
    w = np.exp(z - z.max())  # unnormalised probabilities, max 1
    if top_p >= 1.0:
        return _pick(w, rng.random())
    # the nucleus: the most probable tokens up to top_p of the mass. They lie among the k largest once those
    # carry top_p of it (every other token is less probable than all of them); grow k until they do.
    total = float(w.sum(dtype=np.float64))
    k = 64
    while True:
        top = np.argpartition(w, -k)[-k:] if k < w.size else np.arange(w.size)
        if k >= w.size or float(w[top].sum(dtype=np.float64)) >= top_p * total:
            break
        k *= 8
    top = top[np.argsort(-w[top], kind="stable")]
    cum = np.cumsum(w[top], dtype=np.float64) / total
    keep = top[: int(np.searchsorted(cum, top_p) + 1)]
    return int(keep[_pick(w[keep], rng.random())])


class SeqGenerator:
    """A llama.cpp context with ``n_seq`` KV sequences on a loaded model (weights shared with ``backend``).

    :meth:`logits` takes the token sequence each KV sequence should hold, keeps the longest prefix it
    already holds, and decodes what is new for every sequence in one multi-sequence batch (split into
    ``n_batch`` chunks), returning the next-token logits of each.
    """

    def __init__(self, backend: Any, n_seq: int, n_ctx_seq: int) -> None:
        import llama_cpp
        from llama_cpp import _internals
        from llama_cpp._utils import suppress_stdout_stderr

        llm = backend.llm
        params = llama_cpp.llama_context_default_params()
        for name in ("n_batch", "n_ubatch", "n_threads", "n_threads_batch"):
            setattr(params, name, getattr(llm.context_params, name))
        params.n_seq_max = n_seq
        # one KV buffer for every sequence: prefixes are shared by copying cells (seq_cp), and decode steps
        # ran faster than with a stream per sequence in our measurements (see bench/dialogue.py)
        params.kv_unified = True
        params.n_ctx = n_ctx_seq * n_seq
        if n_seq > llama_cpp.llama_max_parallel_sequences():
            raise StudyError(f"dialogue.batch_size: {n_seq} KV sequences exceed llama.cpp's maximum of "
                             f"{llama_cpp.llama_max_parallel_sequences()}; lower dialogue.batch_size")
        with suppress_stdout_stderr(disable=False):
            self.ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._llama_cpp = llama_cpp
        self.n_seq = int(llama_cpp.llama_n_seq_max(self.ctx.ctx))
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx(self.ctx.ctx)) // self.n_seq
        self.n_batch = int(params.n_batch)
        self.batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self.mem = llama_cpp.llama_get_memory(self.ctx.ctx)
        self.n_vocab = backend.llm.n_vocab()
        self.cached: list[list[int]] = [[] for _ in range(self.n_seq)]
        self.decoded_tokens = 0
        self.decode_calls = 0
        self.shared_tokens = 0  # prefix tokens copied from another sequence instead of evaluated
        self.share_min = 16  # copy a prefix only when it saves at least this many tokens

    def clear(self) -> None:
        """Empty every sequence (each batch of units starts from an empty cache)."""
        self._llama_cpp.llama_memory_clear(self.mem, True)
        self.cached = [[] for _ in range(self.n_seq)]

    def logits(self, wants: Mapping[int, list[int]]) -> dict[int, np.ndarray]:
        """Next-token logits after ``wants[seq]`` for every sequence ``seq`` (in one batch).

        A sequence with a long run of new tokens (a message's first view) first copies the longest
        prefix another sequence holds or evaluates in this call (paired personas share their preamble,
        units of an arm their instructions): a copy of KV cells, not a second evaluation.
        """
        lc = self._llama_cpp
        order = sorted(wants)
        first: list[tuple[int, int, list[int]]] = []  # (seq, first new position, new tokens)
        second: list[tuple[int, int, list[int]]] = []  # the same, after copying a prefix from another sequence
        copies: list[tuple[int, int, int]] = []  # (source, destination, shared length)
        in_first: set[int] = set()
        for seq in order:
            want = wants[seq]
            if len(want) > self.n_ctx_seq:
                raise StudyError(f"a dialogue view of {len(want)} tokens exceeds the context of "
                                 f"{self.n_ctx_seq} tokens per sequence; raise model.n_ctx")
            own = min(_lcp(self.cached[seq], want), len(want) - 1)  # at least the last token: its logits
            src, shared = None, own
            if len(want) - own >= self.share_min:
                for other in range(self.n_seq):
                    if other == seq or (other in wants and other not in in_first):
                        continue
                    held = wants[other] if other in in_first else self.cached[other]
                    k = min(_lcp(held, want), len(want) - 1)
                    if k >= shared + self.share_min:
                        src, shared = other, k
            if src is None:
                if own < len(self.cached[seq]):
                    lc.llama_memory_seq_rm(self.mem, seq, own, -1)
                first.append((seq, own, want[own:]))
                in_first.add(seq)
            else:
                lc.llama_memory_seq_rm(self.mem, seq, 0, -1)
                copies.append((src, seq, shared))
                second.append((seq, shared, want[shared:]))
        out = self._decode(first)
        for src, dst, k in copies:
            lc.llama_memory_seq_cp(self.mem, src, dst, 0, k)
        self.shared_tokens += sum(k for _, _, k in copies)
        out.update(self._decode(second))
        for seq in order:
            self.cached[seq] = list(wants[seq])
        return out

    def _decode(self, todo: list[tuple[int, int, list[int]]]) -> dict[int, np.ndarray]:
        lc = self._llama_cpp
        out: dict[int, np.ndarray] = {}
        b = self.batch.batch
        n = 0
        last: list[tuple[int, int]] = []  # (index in batch, seq) of the rows whose logits are read
        flat = [(seq, p0 + k, t, k == len(toks) - 1) for seq, p0, toks in todo for k, t in enumerate(toks)]
        for j, (seq, pos, tok, is_last) in enumerate(flat):
            b.token[n], b.pos[n], b.n_seq_id[n], b.logits[n] = tok, pos, 1, is_last
            b.seq_id[n][0] = seq
            if is_last:
                last.append((n, seq))
            n += 1
            if n == self.n_batch or j == len(flat) - 1:
                b.n_tokens = n
                rc = lc.llama_decode(self.ctx.ctx, b)
                if rc != 0:
                    raise RuntimeError(f"llama_decode returned {rc} on a batch of {n} tokens")
                self.decode_calls += 1
                self.decoded_tokens += n
                for i, s in last:
                    out[s] = np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx.ctx, i),
                                                   shape=(self.n_vocab,)).copy()
                n, last = 0, []
        return out


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class RoleEngine:
    """How one role writes: its generator, its KV sequence per unit, its view, its model and stop marker."""

    role: str
    gen: SeqGenerator
    seq_of: Callable[[int], int]  # unit's index in the batch -> KV sequence
    view: Callable[[UnitPlan, list[Turn]], str]
    tokenize: Callable[[str], list[int]]
    detokenize: Callable[[list[int]], str]
    is_eog: Callable[[int], bool]
    model: str
    style: str
    stop: str | None
    reserve: int = 0  # tokens kept free after the view (the items asked after the dialogue)
    generated: int = field(default=0)


def assistant_view(dlg: DialogueSpec, *, style: str, render: Any, instructions: str, dialogue: Sequence[Turn],
                   ) -> str:
    """What the assistant's model continues to write its next message."""
    if style == "chat":
        msgs = [{"role": "system", "content": instructions}] + [
            {"role": t.role, "content": t.text} for t in dialogue if t.text is not None]
        return render(msgs, add_generation_prompt=True)
    label = {"user": dlg.user_label, "assistant": dlg.assistant_label}
    lines = "".join(f"\n{label[t.role]}:{t.text}" for t in dialogue if t.text is not None)
    return dlg.assistant_frame.replace("{instructions}", instructions) + lines + f"\n{dlg.assistant_label}:"


def _cut(text: str, *, style: str, stop: str | None) -> tuple[str, str | None]:
    """The message within ``text`` and why it ended there (None: it has not ended)."""
    at_stop = text.find(stop) if stop else -1
    at_nl = text.find("\n") if style == "completion" else -1
    if at_stop >= 0 and (at_nl < 0 or at_stop < at_nl):
        return text[:at_stop + len(stop)], "stop_marker"  # type: ignore[arg-type]
    if at_nl >= 0:
        return text[:at_nl], "eos"
    return text, None


def run_dialogues(units: Sequence[UnitPlan], engines: Mapping[str, RoleEngine], dlg: DialogueSpec) -> list[Transcript]:
    """The dialogues of one batch of units, generated in lockstep (see the module docstring)."""
    for e in {id(e.gen): e.gen for e in engines.values()}.values():
        e.clear()
    n = len(units)
    shown: list[list[Turn]] = [[] for _ in range(n)]
    msgs: list[list[Message]] = [[] for _ in range(n)]
    ended: list[str | None] = [None] * n
    for m in range(2 * dlg.max_turns):
        active = [i for i in range(n) if ended[i] is None]
        if not active:
            break
        turn, role = units[0].dialogue.speaker(m)  # type: ignore[union-attr]
        eng = engines[role]
        prompt: dict[int, list[int]] = {}
        rng: dict[int, np.random.Generator] = {}
        seeds: dict[int, int] = {}
        done: dict[int, Message] = {}
        toks: dict[int, list[int]] = {i: [] for i in active}
        for i in active:
            seeds[i] = units[i].dialogue.seeds[(turn, role)]  # type: ignore[union-attr]
            prompt[i] = eng.tokenize(eng.view(units[i], shown[i]))
            rng[i] = np.random.default_rng(seeds[i])
            need = len(prompt[i]) + dlg.max_tokens + eng.reserve
            if need > eng.gen.n_ctx_seq:
                done[i] = Message(role, turn, None, 0, "error", False,
                                  f"the {role}'s view of {len(prompt[i])} tokens plus max_tokens = {dlg.max_tokens} "
                                  f"(and {eng.reserve} for the items) exceeds n_ctx = {eng.gen.n_ctx_seq}: raise "
                                  "n_ctx or lower dialogue.max_turns / max_tokens", eng.model, seeds[i])
        while pending := [i for i in active if i not in done]:
            logits = eng.gen.logits({eng.seq_of(i): prompt[i] + toks[i] for i in pending})
            for i in pending:
                tok = sample_token(logits[eng.seq_of(i)], rng[i], dlg.temperature, dlg.top_p)
                reason = None
                if eng.is_eog(tok):
                    reason = "eos"
                    text = eng.detokenize(toks[i])
                else:
                    toks[i].append(tok)
                    text, reason = _cut(eng.detokenize(toks[i]), style=eng.style, stop=eng.stop)
                    if reason is None and len(toks[i]) >= dlg.max_tokens:
                        reason = "max_tokens"
                if reason is None:
                    continue
                eng.generated += len(toks[i])
                empty = not text.strip()
                done[i] = Message(role, turn, text, len(toks[i]), reason, not empty,
                                  "empty message" if empty else None, eng.model, seeds[i])
        for i in active:
            msg = done[i]
            msgs[i].append(msg)
            shown[i].append(Turn(role, msg.text))
            if msg.finish_reason == "error":
                ended[i] = "error"
            elif msg.finish_reason == "stop_marker":
                ended[i] = f"{role}_stop"
    return [Transcript(tuple(msgs[i]), ended[i] or "max_turns") for i in range(n)]


class DialogueRun:
    """The dialogues of one model's run: engines for both roles, batches, and generation statistics.

    ``backend`` is the simulated user's :class:`~collectors.backends.llama.LlamaBackend` (the study's
    model, which also answers the items afterwards); the assistant writes with the same model unless
    ``dialogue.assistant_model`` names another, loaded here.
    """

    def __init__(self, study: Any, backend: Any, prompts: Any, *, model: str, style: str,
                 assistant_backend: Any = None) -> None:
        import time

        dlg = study.dialogue
        assert dlg is not None
        if not hasattr(backend, "llm"):
            raise StudyError("dialogue: generation needs the in-process llama.cpp backend (model.backend = "
                             f"'llama.cpp'); got {getattr(backend, 'name', type(backend).__name__)}")
        self.dlg = dlg
        self.prompts = prompts
        self._time = time.perf_counter
        b = dlg.batch_size
        spec = dlg.assistant_model
        if spec is None:
            a_backend, a_style, a_model = backend, style, model
        else:
            if assistant_backend is None:
                from collectors.backends.llama import LlamaBackend, resolve_model_path

                assistant_backend = LlamaBackend(resolve_model_path(spec.path), n_ctx=spec.n_ctx,
                                                 n_threads=spec.n_threads)
            a_backend = assistant_backend
            a_style = spec.prompt_style
            if a_style == "auto":
                a_style = "chat" if getattr(a_backend, "has_chat_template", False) else "completion"
            a_model = spec.name or a_backend.path.name
        self.assistant_backend = a_backend
        self.assistant_model = a_model
        self.assistant_style = a_style
        # one context per role, its sequences numbered 0..batch_size-1: llama.cpp's graph spans the stream ids
        # up to the highest one in a batch, so one role's units on ids B..2B-1 would pay for 2B streams
        u_gen, a_gen = SeqGenerator(backend, b, backend.n_ctx), SeqGenerator(a_backend, b, a_backend.n_ctx)
        u_seq = a_seq = (lambda i: i)
        a_render = a_backend.chat_renderer() if a_style == "chat" else None

        def engine(role: str, be: Any, gen: SeqGenerator, seq: Callable[[int], int], view: Callable, name: str,
                   st: str, stop: str | None, reserve: int) -> RoleEngine:
            import llama_cpp

            vocab = be.llm._model.vocab
            special = st == "chat"  # a chat view's control tokens are the template's own
            return RoleEngine(
                role=role, gen=gen, seq_of=seq, view=view, model=name, style=st, stop=stop, reserve=reserve,
                tokenize=lambda text: list(be.llm.tokenize(text.encode("utf-8"), add_bos=True, special=special)),
                detokenize=be.detokenize, is_eog=lambda t: bool(llama_cpp.llama_vocab_is_eog(vocab, t)))

        reserve = 0
        for item in study.items:  # the longest item branch must fit after the dialogue
            q = study.question.replace("{question}", item.text).replace(
                "{options}", "\n".join(f"X. {o}" for o in item.options))
            reserve = max(reserve, len(backend.tokenize(q, bos=False)) + 16)
        self.engines = {
            "user": engine("user", backend, u_gen, u_seq,
                           lambda u, shown: prompts.user_view(u.persona, u.arm, shown), model, style, dlg.user_stop,
                           reserve),
            "assistant": engine("assistant", a_backend, a_gen, a_seq,
                                lambda u, shown: assistant_view(dlg, style=a_style, render=a_render,
                                                                instructions=u.dialogue.instructions, dialogue=shown),
                                a_model, a_style, dlg.assistant_stop, 0),
        }
        self.seconds = 0.0
        self.batches_run = 0

    @property
    def generated_tokens(self) -> int:
        return sum(e.generated for e in self.engines.values())

    def sampling(self, batch: int) -> dict[str, Any]:
        """The dialogue's settings as recorded in answers.sampling (under the key ``dialogue``)."""
        d = self.dlg
        return {"dialogue": {"batch_size": d.batch_size, "batch": batch, "max_turns": d.max_turns,
                             "max_tokens": d.max_tokens, "temperature": d.temperature, "top_p": d.top_p,
                             "first": d.first, "assistant_model": self.assistant_model,
                             "assistant_prompt_style": self.assistant_style}}

    def generate(self, units: Sequence[UnitPlan]) -> list[Transcript]:
        t0 = self._time()
        try:
            return run_dialogues(units, self.engines, self.dlg)
        finally:
            self.seconds += self._time() - t0
            self.batches_run += 1
