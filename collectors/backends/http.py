"""OpenAI-compatible HTTP backend (llama.cpp's server, llama-cpp-python's server, vLLM).

A study scales out by pointing ``model.url`` at a server (a GPU box, a cluster behind a
load balancer). Per item:

* **distribution**: each option's continuation is scored with ``echo`` + ``logprobs`` on
  the completions endpoint (teacher forcing: ``log P(option tokens | prompt)``), and the
  scores are normalised over the options. The server caches the shared prompt prefix.
  (The in-process backend instead walks every tokenisation the constraint allows; here
  each option's canonical tokenisation is scored.)
* **sample**: one completion constrained server-side: a GBNF ``grammar`` (llama.cpp and
  llama-cpp-python) or ``guided_choice`` (vLLM), with the answer's ``seed``.

The answer is re-validated against the options either way.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from typing import Any, Literal

from collectors.backends.base import Elicited
from collectors.prompts import ItemPrompt

__all__ = ["HttpBackend"]


def _gbnf(labels: tuple[str, ...]) -> str:
    alts = " | ".join(json.dumps(lab) for lab in labels)
    return f"root ::= {alts}\n"


class HttpBackend:
    name = "openai-http"

    def __init__(self, url: str, *, model: str = "default", constraint: Literal["grammar", "guided_choice"] = "grammar",
                 timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.constraint = constraint
        self.timeout = timeout
        self.requests = 0

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise RuntimeError(f"{self.url}{path} answered {exc.code}: {detail}") from None

    def _score(self, prompt: str, continuation: str) -> float:
        """log P(continuation | prompt), summed over the continuation's tokens (echo + logprobs)."""
        out = self._post("/v1/completions", {"model": self.model, "prompt": prompt + continuation, "max_tokens": 1,
                                             "echo": True, "logprobs": 1, "temperature": 0.0})
        lp = out["choices"][0]["logprobs"]
        offsets, token_lp = lp["text_offset"], lp["token_logprobs"]
        start = len(prompt)
        total = 0.0
        for off, value in zip(offsets, token_lp, strict=False):
            if off >= start and off < len(prompt) + len(continuation) and value is not None:
                total += value
        return total

    def elicit_item(self, prefix_text: str, prompt: ItemPrompt, *, seed: int, temperature: float, top_p: float,
                    dist: bool) -> Elicited:
        full = prefix_text + prompt.text
        probs = None
        if dist:
            scores = [self._score(full, lab) for lab in prompt.labels]
            m = max(scores)
            w = [math.exp(s - m) for s in scores]
            z = sum(w)
            probs = dict.fromkeys(prompt.item.options, 0.0)
            for lab, wi in zip(prompt.labels, w, strict=True):
                probs[prompt.canonical(lab)] = wi / z  # type: ignore[index]
        body: dict[str, Any] = {"model": self.model, "prompt": full, "max_tokens": 8, "temperature": temperature,
                                "top_p": top_p, "seed": int(seed % (2**31))}
        if self.constraint == "grammar":
            body["grammar"] = _gbnf(prompt.labels)
        else:
            body["guided_choice"] = list(prompt.labels)
        text = self._post("/v1/completions", body)["choices"][0]["text"]
        option = prompt.canonical(text)
        error = None if option is not None else f"answer {text!r} is not one of the options {list(prompt.labels)}"
        return Elicited(text=text, option=option, error=error, probs=probs)

    def info(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.url + "/v1/models", timeout=self.timeout) as resp:
                models = json.loads(resp.read())
            model_id = models["data"][0]["id"] if models.get("data") else self.model
        except (urllib.error.URLError, KeyError, IndexError, json.JSONDecodeError):
            model_id = self.model
        return {"backend": self.name, "backend_version": json.dumps({"url": self.url, "constraint": self.constraint}),
                "model": str(model_id).rsplit("/", 1)[-1], "model_sha256": None}
