"""Run a study: plan -> elicit -> record, unit by unit into one DuckDB store.

:mod:`collectors.plan` decides which units, personas, seeds and prompts an iteration runs,
:mod:`collectors.elicit` asks them on a backend, :mod:`collectors.record` builds the log rows
from the schema's fields, and :class:`collectors.store.Store` writes each unit atomically. A
study with ``[[models]]`` runs once per model; a study with ``[adjustment]`` runs the
persona-augmentation loop (:mod:`collectors.adjust`) on every model, every path and every
iteration, all into the same store.

Reproducibility: every random choice is drawn from the study seed and the *names* of what it
decides (study, model, iteration, persona, arm, item, replicate), never from the order of
execution, and every decision of the loop is recomputed from the rows already in the store, so
a resumed run writes exactly the rows of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from collectors.elicit import elicit_unit
from collectors.plan import IterationPlan, persona_rows, plan_iteration
from collectors.population import Population, load_population
from collectors.prompts import Prompts
from collectors.record import answer_rows, dialogue_rows, persona_rows_of, transcript_rows
from collectors.store import Store, StoreLock
from collectors.study import ItemSpec, ModelSpec, Study, StudyError

__all__ = ["RunSummary", "make_backend", "model_tag", "run_study", "study_hash"]


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
    iterations: tuple[str, ...] = ()  # one line per (model, path, iteration) of an adjustment study
    dialogue_tokens: int = 0  # tokens generated in the dialogues by this run
    dialogue_seconds: float = 0.0  # wall time spent generating them

    @property
    def answers_per_second(self) -> float:
        """Sampled answers written by this run per second of wall time."""
        return self.answers_run / self.seconds if self.seconds else 0.0

    def as_text(self) -> str:
        rate = self.answers_per_second
        text = (f"{self.out}: {self.units_run} unit(s) run ({self.units_done_before} already done, "
                f"{self.units_total} in the study); {self.answers} answers in the store, {self.invalid} invalid; "
                f"{self.seconds:.1f} s, {rate:.2f} answers/s")
        if self.dialogue_tokens:
            text += (f"; dialogues: {self.dialogue_tokens} tokens in {self.dialogue_seconds:.1f} s "
                     f"({self.dialogue_tokens / max(self.dialogue_seconds, 1e-9):.1f} tokens/s)")
        return "\n".join([text, *self.iterations])


#: Study fields added after stores were first written: left out of the hash while unused (None), so a
#: store written before them resumes under the same hash. Top-level fields, and fields of every arm.
_LATER_FIELDS = ("dialogue",)
_LATER_ARM_FIELDS = ("assistant",)


def study_hash(study: Study) -> str:
    """sha256 of the study as JSON: what a store records, and resumes only under."""
    d = study.model_dump(mode="json")
    for k in _LATER_FIELDS:
        if d.get(k) is None:
            d.pop(k, None)
    for arm in d.get("arms") or []:
        for k in _LATER_ARM_FIELDS:
            if arm.get(k) is None:
                arm.pop(k, None)
    return hashlib.sha256(json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def model_tag(m: ModelSpec) -> str:
    """The model's name in unit ids and run ids: ``name``, or the model path's stem."""
    return m.name or Path(m.path).stem


def make_backend(study: Study | ModelSpec) -> Any:
    m = study.model if isinstance(study, Study) else study
    if m.backend == "http":
        from collectors.backends.http import HttpBackend

        return HttpBackend(m.url, model=m.path, constraint=m.http_constraint)  # type: ignore[arg-type]
    from collectors.backends.llama import LlamaBackend, resolve_model_path

    return LlamaBackend(resolve_model_path(m.path), n_ctx=m.n_ctx, n_threads=m.n_threads, n_gpu_layers=m.n_gpu_layers)


def _check_models(study: Study) -> None:
    """Every model file exists (before a store is opened): a typo leaves an existing store untouched."""
    for m in study.all_models:
        if m.backend == "llama.cpp":
            from collectors.backends.llama import resolve_model_path

            resolve_model_path(m.path)


def _design_tables(items: list[ItemSpec], study: Study) -> tuple[pd.DataFrame, pd.DataFrame]:
    items_t = pd.DataFrame([{"item": i.name, "text": i.text, "options": json.dumps(i.options), "scale": i.scale,
                             "role": i.role, "attribute": i.attribute} for i in items])
    arms = pd.DataFrame([{"arm": a.name, "kind": a.kind, "intervention": a.intervention} for a in study.arms])
    if study.dialogue is not None:
        from driftstats.log.dialogue import dialogue_items

        extra = dialogue_items(max_turns=study.dialogue.max_turns)
        extra["options"] = [None if o is None else json.dumps(list(o)) for o in extra["options"]]
        items_t = pd.concat([items_t, extra], ignore_index=True)
    return items_t, arms


class _Stop(Exception):
    """max_units reached: the run ends early and stays resumable."""


@dataclass
class _Run:
    """What one call of run_study has done so far, and its callbacks."""

    store: Store
    done: set[str]
    max_units: int | None
    on_unit: Callable[[int, int, int], None] | None
    on_iteration: Callable[[str, int, int], None] | None
    planned: int = 0
    n_new: int = 0
    answers_run: int = 0
    lines: list[str] = field(default_factory=list)
    dialogue: Any = None  # collectors.dialogue.DialogueRun of the current model (dialogue studies)
    dialogue_stats: list[tuple[int, float]] = field(default_factory=list)  # (tokens, seconds) of models done

    def dialogue_totals(self) -> tuple[int, float]:
        stats = [*self.dialogue_stats] + ([(self.dialogue.generated_tokens, self.dialogue.seconds)]
                                          if self.dialogue is not None else [])
        return sum(t for t, _ in stats), sum(s for _, s in stats)

    def execute(self, plan: IterationPlan, backend: Any, m: ModelSpec, info: Mapping[str, Any], style: str,
                label: str) -> None:
        """Elicit and record every unit of ``plan`` not yet in the store."""
        self.planned += len(plan)
        self.store.begin(units_total=self.planned)
        left = [u for u in plan if u.unit_id not in self.done]
        already = len(plan) - len(left)
        if self.on_iteration is not None:
            self.on_iteration(label, len(plan), already)
        if self.dialogue is not None:
            self._execute_dialogues(plan, backend, m, info, style, already)
            return
        for i, unit in enumerate(left):
            if self.max_units is not None and self.n_new >= self.max_units:
                raise _Stop
            results = elicit_unit(backend, unit, m)
            rows = answer_rows(unit, results, study=plan.study, run_id=plan.run_id, iteration=plan.iteration,
                               model=plan.model, info=info, temperature=m.temperature, top_p=m.top_p, style=style)
            self.store.write_unit(unit.unit_id, rows, persona_rows_of(unit))
            self.done.add(unit.unit_id)
            self.n_new += 1
            self.answers_run += sum(1 for r in rows if r["mode"] == "sample")
            if self.on_unit is not None:
                self.on_unit(already + i + 1, len(plan), self.answers_run)


    def _execute_dialogues(self, plan: IterationPlan, backend: Any, m: ModelSpec, info: Mapping[str, Any],
                           style: str, already: int) -> None:
        """Dialogue units, batch by batch: a batch with any unit left is generated whole (its composition is
        the plan's, so a resumed run writes the transcripts of an uninterrupted one), then each unit left is
        asked its items after its own transcript and written with it in one transaction."""
        from collectors.dialogue import batches

        dr = self.dialogue
        count = already
        for k, batch in enumerate(batches(plan.units, dr.dlg.batch_size)):
            if all(u.unit_id in self.done for u in batch):
                continue
            if self.max_units is not None and self.n_new >= self.max_units:
                raise _Stop
            sampling = dr.sampling(k)
            for unit, tr in zip(batch, dr.generate(batch), strict=True):
                if unit.unit_id in self.done:
                    continue
                if self.max_units is not None and self.n_new >= self.max_units:
                    raise _Stop
                shown = tr.shown
                after = dataclasses.replace(
                    unit, prefix=dr.prompts.prefix(unit.persona, unit.arm, shown),
                    tasks=tuple(dataclasses.replace(t, prompt=dr.prompts.item(unit.persona, unit.arm, t.item,
                                                                             t.prompt.order, shown))
                                for t in unit.tasks))
                t_rows = transcript_rows(unit.unit_id, tr.messages)
                chain = t_rows[-1]["dialogue_sha256"] if t_rows else None
                rows = answer_rows(after, elicit_unit(backend, after, m), study=plan.study, run_id=plan.run_id,
                                   iteration=plan.iteration, model=plan.model, info=info, temperature=m.temperature,
                                   top_p=m.top_p, style=style, dialogue_sha256=chain, sampling_extra=sampling)
                rows += dialogue_rows(unit, turns=tr.turns, end=tr.end, dialogue_sha256=chain, study=plan.study,
                                      run_id=plan.run_id, iteration=plan.iteration, model=plan.model, info=info,
                                      sampling=sampling)
                self.store.write_unit(unit.unit_id, rows, persona_rows_of(unit), t_rows)
                self.done.add(unit.unit_id)
                self.n_new += 1
                count += 1
                self.answers_run += sum(1 for r in rows if r["mode"] == "sample")
                if self.on_unit is not None:
                    self.on_unit(count, len(plan), self.answers_run)


def run_study(
    study: Study,
    out: str | Path,
    *,
    backend: Any = None,
    backends: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
    overwrite: bool = False,
    max_units: int | None = None,
    on_unit: Callable[[int, int, int], None] | None = None,
    on_iteration: Callable[[str, int, int], None] | None = None,
    assistant_backend: Any = None,
) -> RunSummary:
    """Run (or resume) ``study`` into the DuckDB file ``out``: every model, path and iteration.

    Parameters
    ----------
    study
        The study. With ``[[models]]`` it runs on each model; with ``[adjustment]`` it runs the
        persona-augmentation loop (see :mod:`collectors.adjust` for its rules).
    out
        The store (resumed when it exists; see :mod:`collectors.store`).
    backend
        A backend object for a single-model study (default: the study's ``model``, loaded here).
    backends
        Backend objects by model tag (:func:`model_tag`); models without one are loaded here,
        one at a time.
    base_dir
        Directory relative population paths are read from.
    overwrite
        Start over: the existing store is deleted, but only once the lock is held and every model
        file was found (a bad model path leaves the old store as it was).
    max_units
        Stop after that many new units (for tests and benchmarks); the store stays resumable.
    on_unit
        Called after every unit with (units of this iteration done, units in it, answers written).
    on_iteration
        Called when an iteration starts with (label, units in it, units already done).
    assistant_backend
        A loaded backend for ``dialogue.assistant_model`` (default: loaded here).

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
    Order: lock ``out`` -> check an existing store belongs to this study -> find every model file
    (and start the first backend) -> open (or overwrite) the store, ``status = 'running'`` -> units
    -> ``'complete'`` when every unit is done. If anything raises, a store this run created with no
    finished unit is removed; otherwise the store keeps its units with ``status = 'failed'``. The
    exception is re-raised unchanged. The store is closed in every case.
    """
    t0 = time.perf_counter()
    h = study_hash(study)
    models = study.all_models
    if backend is not None and len(models) > 1:
        raise StudyError(f"backend= serves a single-model study; this one has {len(models)} models: pass "
                         "backends={model_tag: backend, ...}")
    given = dict(backends or {})
    if backend is not None:
        given[model_tag(models[0])] = backend
    lock = StoreLock(out)  # one writer per store, before anything is deleted or opened
    try:
        if not overwrite:
            Store.check_resumable(out, study_name=study.name, study_hash=h)
        population = load_population(study.population, base_dir=base_dir, extra=study.adjustment_population)
        _check_models(study)
        first = model_tag(models[0])
        if first not in given:
            given[first] = make_backend(models[0])
        given[first].info()
    except BaseException:
        lock.release()
        raise
    store = Store(out, study_name=study.name, study_hash=h, overwrite=overwrite, lock=lock)
    status = None
    run = None
    try:
        run = _Run(store=store, done=store.done_units(), max_units=max_units, on_unit=on_unit,
                   on_iteration=on_iteration)
        before = len(run.done)
        try:
            _run(study, run, population, given, h, assistant_backend)
            status = "complete"
        except _Stop:
            pass  # stopped early: stays 'running', resumable
        counts = store.counts()
    except BaseException as exc:
        store.abort(exc)
        raise
    finally:
        if store.con is not None:
            store.close(status=status)
    evaluated = sum(getattr(b, "evaluated_tokens", 0) for b in given.values())
    return RunSummary(out=Path(out), seconds=time.perf_counter() - t0, evaluated_tokens=evaluated,
                      units_total=run.planned, units_done_before=before, units_run=run.n_new,
                      answers=counts["answers"], invalid=counts["invalid"], answers_run=run.answers_run,
                      iterations=tuple(run.lines),
                      dialogue_tokens=run.dialogue_totals()[0], dialogue_seconds=run.dialogue_totals()[1])


def _run(study: Study, run: _Run, population: Population, backends: dict[str, Any], h: str,
         assistant_backend: Any = None) -> None:
    store = run.store
    items_t, arms_t = _design_tables(list(study.items), study)
    store.write_design(items_t, arms_t)
    rows = persona_rows(study, population)
    models = study.all_models
    for m in models:
        tag = model_tag(m)
        backend = backends.get(tag)
        if backend is None:
            backend = backends[tag] = make_backend(m)
        info = backend.info()
        name = m.name or info["model"]
        suffix = "" if len(models) == 1 else f":{tag}"
        store.set_meta("backend" + suffix, json.dumps(info, sort_keys=True))
        style = m.prompt_style
        if style == "auto":
            style = "chat" if getattr(backend, "has_chat_template", False) else "completion"
        store.set_meta("prompt_style" + suffix, style)
        prompts = Prompts(study, style=style, chat_render=backend.chat_renderer() if style == "chat" else None)
        if study.dialogue is not None:
            from collectors.dialogue import DialogueRun

            run.dialogue = DialogueRun(study, backend, prompts, model=name, style=style,
                                       assistant_backend=assistant_backend)
            if study.dialogue.assistant_model is not None:
                store.set_meta("assistant_backend" + suffix,
                               json.dumps(run.dialogue.assistant_backend.info(), sort_keys=True))
        if study.adjustment is None:
            tagged = len(models) > 1
            plan = plan_iteration(study, population, prompts, rows, model=name,
                                  items=[(i, i.role) for i in study.items], iteration=study.design.iteration,
                                  tag=tag if tagged else "",
                                  run_id=f"{study.name}-{tag}-{h[:10]}" if tagged else f"{study.name}-{h[:10]}")
            run.execute(plan, backend, m, info, style, f"{study.name} {tag}" if tagged else study.name)
        else:
            from collectors.loop import run_adjustment

            run_adjustment(study, run, population, prompts, rows, backend=backend, model=m, name=name, tag=tag,
                           info=info, style=style)
        if len(models) > 1:  # one model in memory at a time
            backends.pop(tag, None)
            del backend
            if run.dialogue is not None:
                run.dialogue_stats.append((run.dialogue.generated_tokens, run.dialogue.seconds))
                run.dialogue = None
            gc.collect()

