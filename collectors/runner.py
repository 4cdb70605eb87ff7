"""Run a study: personas x arms x items on a backend, written unit by unit to DuckDB.

Reproducibility: every random choice is drawn from a generator seeded by the study seed
and the *keys* of what it decides (persona, arm, item, replicate), never by the order of
execution, so a resumed run writes exactly the rows of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collectors.population import load_population
from collectors.prompts import Prompts
from collectors.store import Store, StoreLock
from collectors.study import Study

__all__ = ["RunSummary", "make_backend", "run_study", "study_hash"]


@dataclass(frozen=True)
class RunSummary:
    out: Path
    units_total: int
    units_done_before: int
    units_run: int
    answers: int
    invalid: int
    seconds: float
    evaluated_tokens: int
    answers_run: int

    @property
    def answers_per_second(self) -> float:
        """Sampled answers written by this run per second of wall time."""
        return self.answers_run / self.seconds if self.seconds else 0.0

    def as_text(self) -> str:
        rate = self.answers_per_second
        return (f"{self.out}: {self.units_run} unit(s) run ({self.units_done_before} already done, "
                f"{self.units_total} in the study); {self.answers} answers in the store, {self.invalid} invalid; "
                f"{self.seconds:.1f} s, {rate:.2f} answers/s")


def study_hash(study: Study) -> str:
    return hashlib.sha256(study.model_dump_json().encode()).hexdigest()


def _seed(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(keys)))


def _answer_seed(*keys: int) -> int:
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def make_backend(study: Study) -> Any:
    m = study.model
    if m.backend == "http":
        from collectors.backends.http import HttpBackend

        return HttpBackend(m.url, model=m.path, constraint=m.http_constraint)  # type: ignore[arg-type]
    from collectors.backends.llama import LlamaBackend, resolve_model_path

    return LlamaBackend(resolve_model_path(m.path), n_ctx=m.n_ctx, n_threads=m.n_threads, n_gpu_layers=m.n_gpu_layers)


def _design_tables(study: Study) -> tuple[pd.DataFrame, pd.DataFrame]:
    items = pd.DataFrame([{"item": i.name, "text": i.text, "options": json.dumps(i.options), "scale": i.scale,
                           "role": i.role, "attribute": i.attribute} for i in study.items])
    arms = pd.DataFrame([{"arm": a.name, "kind": a.kind, "intervention": a.text} for a in study.arms])
    return items, arms


def run_study(
    study: Study,
    out: str | Path,
    *,
    backend: Any = None,
    base_dir: Path | None = None,
    overwrite: bool = False,
    max_units: int | None = None,
    on_unit: Callable[[int, int, int], None] | None = None,
) -> RunSummary:
    """Run (or resume) ``study`` into the DuckDB file ``out``.

    Parameters
    ----------
    study
        The study.
    out
        The store (resumed when it exists; see :mod:`collectors.store`).
    backend
        A backend object (default: the study's ``model``, loaded here).
    base_dir
        Directory relative population paths are read from.
    overwrite
        Start over: the existing store is deleted, but only once the lock is held and the
        backend has started (a bad model path leaves the old store as it was).
    max_units
        Stop after that many new units (for tests and benchmarks).
    on_unit
        Called after every unit with (units done, units total, answers written so far).

    Returns
    -------
    RunSummary

    Raises
    ------
    StoreLockedError
        Another collector is writing ``out`` (nothing is touched).
    StudyError
        ``out`` holds another study or is not a store; a setting does not fit the model.
    FileNotFoundError
        No model or population file.

    Notes
    -----
    Order: lock ``out`` -> check an existing store belongs to this study -> start the backend
    -> open (or overwrite) the store, ``status = 'running'`` -> units -> ``'complete'`` when every
    unit is done. If anything raises, a store this run created with no finished unit is
    removed; otherwise the store keeps its units with ``status = 'failed'``. The exception is
    re-raised unchanged.
    """
    t0 = time.perf_counter()
    h = study_hash(study)
    lock = StoreLock(out)  # one writer per store, before anything is deleted or opened
    try:
        if not overwrite:
            Store.check_resumable(out, study_name=study.name, study_hash=h)
        population = load_population(study.population, base_dir=base_dir)
        backend = backend or make_backend(study)
        info = backend.info()
    except BaseException:
        lock.release()
        raise
    store = Store(out, study_name=study.name, study_hash=h, overwrite=overwrite, lock=lock)
    try:
        summary = _run(study, store, backend, info, population, h, max_units=max_units, on_unit=on_unit)
    except BaseException as exc:
        store.abort(exc)
        raise
    return RunSummary(out=Path(out), seconds=time.perf_counter() - t0,
                      evaluated_tokens=getattr(backend, "evaluated_tokens", 0), **summary)


def _run(study: Study, store: Store, backend: Any, info: dict[str, Any], population: Any, h: str, *,
         max_units: int | None, on_unit: Callable[[int, int, int], None] | None) -> dict[str, Any]:
    d = study.design
    total = d.units_per_arm * len(study.arms)
    store.begin(units_total=total)
    store.set_meta("backend", json.dumps(info, sort_keys=True))
    items_t, arms_t = _design_tables(study)
    store.write_design(items_t, arms_t)
    seed = d.seed
    style = study.model.prompt_style
    if style == "auto":
        style = "chat" if getattr(backend, "has_chat_template", False) else "completion"
    prompts = Prompts(study, style=style, chat_render=backend.chat_renderer() if style == "chat" else None)
    store.set_meta("prompt_style", style)

    rows_by_arm = {}
    if d.paired:
        shared = population.sample_rows(d.units_per_arm, study.population, _seed(seed, 0))
        rows_by_arm = {a.name: shared for a in study.arms}
    else:
        rows_by_arm = {a.name: population.sample_rows(d.units_per_arm, study.population, _seed(seed, 0, ai))
                       for ai, a in enumerate(study.arms)}
    run_id = f"{study.name}-{h[:10]}"
    done = store.done_units()
    before = len(done)
    sampling = json.dumps({"temperature": study.model.temperature, "top_p": study.model.top_p,
                           "prompt_style": style, "answer_format": "letter"}, sort_keys=True)
    n_new = 0
    answers_run = 0
    progress_done = before
    for p in range(d.units_per_arm):  # persona-major: one persona prefix serves every arm
        for ai, arm in enumerate(study.arms):
            row = int(rows_by_arm[arm.name][p])
            unit_id = f"{study.name}-i{d.iteration}-p{p:04d}-{arm.name}"
            if unit_id in done:
                continue
            if max_units is not None and n_new >= max_units:
                break
            persona = population.persona(row, study.population)
            persona_id = f"{study.name}-i{d.iteration}-p{p:04d}" if d.paired else f"{unit_id}"
            prefix_text = prompts.prefix(persona, arm)
            answers: list[dict[str, Any]] = []
            for ii, item in enumerate(study.items):
                k = len(item.options)
                rev = d.counterbalance == "reverse" and _seed(seed, 1, p if d.paired else ai * 100000 + p, ii).random() < 0.5
                order = tuple(range(k - 1, -1, -1)) if rev else tuple(range(k))
                prompt = prompts.item(persona, arm, item, order)
                full_prompt = prefix_text + prompt.text
                for rep in range(d.replicates):
                    aseed = _answer_seed(seed, 2, p, ai, ii, rep)
                    res = backend.elicit_item(prefix_text, prompt, seed=aseed,
                                              temperature=study.model.temperature, top_p=study.model.top_p,
                                              dist=study.model.distribution)
                    now = pd.Timestamp.now(tz="UTC")
                    common = {
                        "study": study.name, "run_id": run_id, "iteration": d.iteration, "model": info["model"],
                        "unit_id": unit_id, "arm": arm.name, "item": item.name, "replicate": rep,
                        "persona_id": persona_id, "role": item.role, "option_order": prompt.option_order,
                        "model_sha256": info["model_sha256"],
                        "prompt_sha256": hashlib.sha256(full_prompt.encode()).hexdigest(),
                        "grammar_sha256": hashlib.sha256(prompt.regex.encode()).hexdigest(),
                        "seed": aseed, "temperature": study.model.temperature, "top_p": study.model.top_p,
                        "backend": info["backend"], "backend_version": info["backend_version"], "created_at": now,
                    }
                    answers.append({**common, "mode": "sample", "sampling": sampling,
                                    "response": res.option if res.option is not None else res.text,
                                    "valid": res.option is not None, "error": res.error})
                    if res.probs is not None:
                        extra = json.dumps({**json.loads(sampling), **{k2: round(v, 10) for k2, v in res.extra.items()}},
                                           sort_keys=True)
                        for opt, pr in res.probs.items():
                            answers.append({**common, "mode": "dist", "sampling": extra, "response": opt,
                                            "prob": pr, "valid": True, "error": None})
            personas = [{"unit_id": unit_id, "attribute": a, "value": v, "specified": True}
                        for a, v in persona.specified.items()]
            personas += [{"unit_id": unit_id, "attribute": a, "value": v, "specified": False}
                         for a, v in persona.latent.items()]
            store.write_unit(unit_id, answers, personas)
            n_new += 1
            answers_run += sum(1 for a in answers if a["mode"] == "sample")
            progress_done += 1
            if on_unit is not None:
                on_unit(progress_done, total, answers_run)
        if max_units is not None and n_new >= max_units:
            break
    counts = store.counts()
    finished = len(store.done_units())
    store.close(status="complete" if finished >= total else None)  # stopped early: stays 'running'
    return {"units_total": total, "units_done_before": before, "units_run": n_new, "answers": counts["answers"],
            "invalid": counts["invalid"], "answers_run": answers_run}
