"""The adjustment loop on one model: iteration 0, then each path iteration by iteration.

Each iteration is planned (:func:`collectors.plan.plan_iteration`) from decisions recomputed from
the store (:mod:`collectors.adjust`), run, diagnosed, and recorded in the ``iterations`` and
``adjustments`` tables. Iteration 0 (the base spec) is run once and shared by every path; the
full-information reference spec, when asked for, is run once per model as path ``reference``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from collectors.adjust import (
    Candidate,
    Diagnosis,
    analyst_candidates,
    design_values,
    diagnose,
    parse_proposal,
    population_candidates,
    proposal_prompt,
    proposal_schema,
    rules_fired,
    score_candidates,
    select,
)
from collectors.plan import IterationPlan, SpecState, derive_rng, derive_seed, plan_iteration
from collectors.population import Population
from collectors.prompts import Prompts
from collectors.record import adjustment_row, iteration_row
from collectors.study import ModelSpec, Study, StudyError

__all__ = ["run_adjustment"]

STOP_ORDER = ("equivalence", "no_change", "max_iterations", "no_candidates")


def _propose(study: Study, run: Any, backend: Any, m: ModelSpec, tag: str, style: str, taken: dict[str, str],
             ) -> list[Candidate]:
    """The model's own candidates: asked once per model, its raw answer kept in the store's meta."""
    adj = study.adjustment
    assert adj is not None
    if not adj.propose:
        return []
    key = f"proposal:{tag}"
    stored = run.store.get_meta(key)
    if stored is None and not hasattr(backend, "generate"):
        raise StudyError(f"adjustment.propose = {adj.propose} asks model {tag!r} for candidates, but its backend "
                         f"({getattr(backend, 'name', type(backend).__name__)}) has no constrained free-text "
                         "generation: use model.backend = 'llama.cpp' or set adjustment.propose = 0")
    if stored is None:
        from outlines_core.json_schema import build_regex_from_schema

        prompt = proposal_prompt(study)
        if style == "chat":
            prompt = backend.chat_renderer()([{"role": "user", "content": prompt}], add_generation_prompt=True)
        regex = build_regex_from_schema(json.dumps(proposal_schema(adj.propose)))
        text, error = backend.generate(prompt, regex, seed=derive_seed(study.design.seed, "propose",
                                                                       study=study.name, model=tag),
                                       temperature=m.temperature, top_p=m.top_p, max_tokens=adj.propose_max_tokens)
        run.store.set_meta(key, json.dumps({"text": text, "error": error}))
    else:
        got = json.loads(stored)
        text, error = got["text"], got["error"]
    out = parse_proposal(text, taken=taken, model_key=tag)
    if error:
        out = [Candidate(c.attribute, c.source, c.item, c.values_from, c.raw,
                         f"{c.note}; {error}" if c.note else error) for c in out]
    return out


def _log(run: Any, name: str, run_ids: list[str]) -> Any:
    import driftstats as ds

    return ds.read_log(run.store.tables_of(model=name, run_ids=run_ids))


def _values(run: Any, name: str, plan0: IterationPlan, c: Candidate, study: Study) -> tuple[dict[str, str], str | None]:
    """Design values of a non-population candidate, one per persona (see ``adjust.design_values``)."""
    control = next(a.name for a in study.arms if a.kind == "control")
    keys = {u.unit_id: u.persona_key for u in plan0 if u.arm.name == control}
    a = run.store.tables_of(model=name, run_ids=[plan0.run_id])["answers"]
    a = a[(a["item"] == c.item.name) & a["unit_id"].isin(list(keys)) & a["valid"]].copy()
    a["persona_key"] = a["unit_id"].map(keys)
    dist, sample = a[a["mode"] == "dist"], a[a["mode"] == "sample"]
    personas = sorted(set(keys.values()))
    values = design_values(dist, sample, attribute=c.attribute, item=c.item.name, persona_keys=personas,
                           seed=study.design.seed, study=study.name, model=name)
    missing = [p for p in personas if p not in values]
    note = None
    for p in missing:  # no answer at all for this persona: a uniform draw over the options, said in the note
        rng = derive_rng(study.design.seed, "design_value_uniform", study=study.name, model=name, persona=p,
                         attribute=c.attribute)
        values[p] = c.item.options[int(rng.integers(len(c.item.options)))]
    if missing:
        note = f"{len(missing)} persona(s) had no valid control answer: their value was drawn uniformly"
    return values, note


def run_adjustment(study: Study, run: Any, population: Population, prompts: Prompts, rows: Mapping[str, np.ndarray],
                   *, backend: Any, model: ModelSpec, name: str, tag: str, info: Mapping[str, Any],
                   style: str) -> None:
    adj = study.adjustment
    assert adj is not None
    seed = study.design.seed
    base_items = [(i, i.role) for i in study.items]
    outcome = next(i.name for i in study.items if i.role == "primary")
    fixed = population_candidates(study, population) + analyst_candidates(study)
    taken = {a: "in the base spec" for a in study.population.specified}
    taken |= {d: "a diagnostic NCO" for d in adj.diagnostic}
    taken |= {i.name: "an item" for i in study.items}
    taken |= {c.attribute: f"a {c.source} candidate" for c in fixed}
    proposed = _propose(study, run, backend, model, tag, style, taken)
    cands = [c for c in fixed + proposed if c.valid]
    invalid = [c for c in proposed if not c.valid]
    probes = [(c.item, "confounder") for c in cands]
    if probes:
        from collectors.runner import _design_tables

        run.store.add_items(_design_tables([c.item for c in cands], study)[0])
    items = base_items + probes
    by_attr = {c.attribute: c for c in cands}

    def rows_for(path: str, iteration: int, added: list[str], scores: Mapping[str, Mapping[str, Any]],
                 chosen: list[str], notes: Mapping[str, str]) -> list[dict]:
        out = []
        for a in study.population.specified:
            out.append(adjustment_row(study=study.name, model=name, path=path, iteration=iteration, attribute=a,
                                      status="specified", source="base", values_from="population"))
        for c in cands:
            s = scores.get(c.attribute)
            status = "added" if c.attribute in chosen else "specified" if c.attribute in added else "candidate"
            out.append(adjustment_row(
                study=study.name, model=name, path=path, iteration=iteration, attribute=c.attribute, status=status,
                source=c.source, score=None if s is None or not np.isfinite(s["score"]) else float(s["score"]),
                score_detail=None if s is None else json.dumps(s, sort_keys=True, default=float),
                values_from=c.values_from, item=c.item.name, question=c.item.text,
                options=json.dumps(c.item.options), raw=c.raw, note=notes.get(c.attribute)))
        for c in invalid:
            out.append(adjustment_row(study=study.name, model=name, path=path, iteration=iteration,
                                      attribute=c.attribute, status="invalid", source="model", raw=c.raw, note=c.note))
        return out

    def record(path: str, plan: IterationPlan, select_rule: str | None, fired: list[str], detail: dict,
               stop_on: tuple[str, ...]) -> str | None:
        stopped = next((r for r in STOP_ORDER if r in fired and r in stop_on), None)
        run.store.write_rows("iterations", [iteration_row(
            study=study.name, model=name, path=path, iteration=plan.iteration, run_id=plan.run_id,
            select=select_rule, spec=json.dumps(list(plan.spec)), units=len(plan), rules_fired=json.dumps(fired),
            stopped_by=stopped, stop_detail=json.dumps(detail, sort_keys=True, default=float))],
            "model = ? AND path = ? AND iteration = ?", [name, path, plan.iteration])
        return stopped

    def diag(plan: IterationPlan) -> tuple[Any, Diagnosis]:
        log = _log(run, name, [plan.run_id])
        return log, diagnose(log, diagnostic=adj.diagnostic, margin=adj.margin, seed=seed, n_perm=adj.n_perm)

    stop_on = (*adj.stop_on, "max_iterations", "no_candidates")
    plan0 = plan_iteration(study, population, prompts, rows, model=name, items=items, path="", iteration=0,
                           tag=f"{tag}-base", run_id=f"{study.name}-{tag}-base")
    run.execute(plan0, backend, model, info, style, f"{tag} iteration 0 (base spec)")
    log0, d0 = diag(plan0)
    design: dict[str, tuple[dict[str, str], str | None]] = {}

    if adj.reference and study.adjustment_population:
        ref_added = list(study.adjustment_population)
        plan_r = plan_iteration(study, population, prompts, rows, model=name, items=items, path="reference",
                                iteration=0, spec=SpecState(added=tuple(ref_added)), tag=f"{tag}-reference",
                                run_id=f"{study.name}-{tag}-reference")
        run.execute(plan_r, backend, model, info, style, f"{tag} reference spec")
        _, dr = diag(plan_r)
        fired, detail = rules_fired(dr, None, iteration=0, max_iterations=adj.iterations, candidates_left=1)
        run.store.write_rows("adjustments", rows_for("reference", 0, ref_added, {}, [], {}),
                             "model = ? AND path = ? AND iteration = ?", [name, "reference", 0])
        record("reference", plan_r, "reference", fired, detail, ())
        run.lines.append(f"  {name} reference: spec {list(plan_r.spec)}, mean excess TVD {dr.mean_excess:.3f}")

    for path in adj.paths:
        added: list[str] = []
        prev_log, prev = log0, d0
        fired, detail = rules_fired(d0, None, iteration=0, max_iterations=adj.iterations, candidates_left=len(cands))
        run.store.write_rows("adjustments", rows_for(path, 0, [], {}, [], {}),
                             "model = ? AND path = ? AND iteration = ?", [name, path, 0])
        stopped = record(path, plan0, None, fired, detail, stop_on)
        run.lines.append(f"  {name} {path} i0: mean excess TVD {d0.mean_excess:.3f}; rules {fired}")
        k = 0
        while stopped is None:
            k += 1
            remaining = [c.attribute for c in cands if c.attribute not in added]
            scores = score_candidates(prev_log, {a: by_attr[a].item.name for a in remaining}, outcome=outcome,
                                      seed=seed, n_perm=adj.n_perm)
            chosen = select(scores, remaining, rule=path, n=adj.per_iteration,
                            rng=derive_rng(seed, "select", study=study.name, model=name, path=path, iteration=k))
            notes = {}
            for a in chosen:
                c = by_attr[a]
                if c.values_from == "model_control" and a not in design:
                    design[a] = _values(run, name, plan0, c, study)
                if c.values_from == "model_control" and design[a][1]:
                    notes[a] = design[a][1]
            added = added + chosen
            values: dict[str, dict[str, str]] = {}
            for a in added:
                if by_attr[a].values_from == "model_control":
                    for p, v in design[a][0].items():
                        values.setdefault(p, {})[a] = v
            run.store.write_rows("adjustments", rows_for(path, k, added, scores, chosen, notes),
                                 "model = ? AND path = ? AND iteration = ?", [name, path, k])
            plan = plan_iteration(study, population, prompts, rows, model=name, items=items, path=path, iteration=k,
                                  spec=SpecState(added=tuple(added), values=values), tag=f"{tag}-{path}",
                                  run_id=f"{study.name}-{tag}-{path}-i{k}")
            run.execute(plan, backend, model, info, style, f"{tag} {path} iteration {k} (+{', '.join(chosen)})")
            log_k, dk = diag(plan)
            fired, detail = rules_fired(dk, prev, iteration=k, max_iterations=adj.iterations,
                                        candidates_left=len(remaining) - len(chosen))
            detail["scores"] = {a: scores[a]["score"] for a in remaining if a in scores}
            stopped = record(path, plan, path, fired, detail, stop_on)
            run.lines.append(f"  {name} {path} i{k}: +{chosen}, mean excess TVD {dk.mean_excess:.3f}; rules {fired}"
                             + (f"; stopped by {stopped}" if stopped else ""))
            prev_log, prev = log_k, dk

