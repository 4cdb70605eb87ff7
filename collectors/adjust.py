"""The persona-augmentation loop's decisions: candidates, scores, selection, values, stopping rules.

methods.md section 4.1. Everything here is a pure function of the study and the data of earlier
iterations (read back from the store), so a resumed run takes exactly the decisions of an
uninterrupted one. The rules, stated once ([PROPOSAL] choices of this project):

* **Candidates** come from the population table (``population``: values are the real respondent's),
  the study file (``analyst``) and the model itself (``model``: a JSON answer constrained by a JSON
  schema, re-validated, de-duplicated, kept with its raw text even when invalid). Every candidate is
  asked as a probe item (role ``confounder``) after the intervention at every iteration.
* **Score** (from the previous iteration): ``sqrt(max(excess, 0) * V)``, where ``excess`` is the
  largest excess TVD of the probe between a non-control arm and the control arm (``nco_test``: the
  plug-in TVD minus its permutation-null mean: drift the intervention induced in that attribute) and
  ``V`` is Cramer's V between the probe and the outcome among control units (the attribute predicts
  the outcome). Both must be present for a high score: the attribute moved with the intervention
  *and* matters for the outcome. Ties are broken by ``V``, then by name.
* **Selection**: ``targeted`` adds the top ``per_iteration`` scores; ``untargeted`` the lowest (least
  relevant first); ``random`` a seeded random draw (keyed by study, model, path and iteration).
* **Values are set by design, identically across arms**: a population column from the respondent;
  any other attribute drawn (seed keyed by study, model, persona and attribute) from the option
  distribution the model itself gives that persona for the probe in the control arm at iteration 0
  (``values_from = 'model_control'``).
* **Stopping rules** after iteration k (all that hold are recorded; the path stops on the first of
  ``stop_on`` that holds, and always at K or when no candidate is left): ``equivalence``: every
  diagnostic NCO passes the equivalence test (intersection-union TOST) at ``margin`` in every
  non-control arm; ``no_change`` (k >= 1): the mean excess TVD over the diagnostic NCOs changed by
  less than 1.96 standard errors, ``|d| < 1.96 * sqrt(se_k^2 + se_{k-1}^2)``, each ``se`` the
  root-sum-square of the NCOs' interval half-widths / 1.96 divided by the number of NCOs;
  ``max_iterations``: k = K; ``no_candidates``: nothing left to add. The path is never assumed
  monotone: only these rules end it.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from collectors.plan import derive_rng
from collectors.population import Population
from collectors.study import CandidateSpec, ItemSpec, Study

__all__ = ["Candidate", "Diagnosis", "analyst_candidates", "cramers_v", "design_values", "diagnose",
           "parse_proposal", "population_candidates", "proposal_schema", "score_candidates", "select"]


@dataclass(frozen=True)
class Candidate:
    attribute: str
    source: str  # population | analyst | model
    item: ItemSpec | None  # the probe (None for an invalid proposal)
    values_from: str | None  # population | model_control
    raw: str | None = None
    note: str | None = None

    @property
    def valid(self) -> bool:
        return self.item is not None


def _probe(name: str, question: str, options: Sequence[str], item: str | None = None) -> ItemSpec:
    return ItemSpec(name=item or name, role="confounder", text=question, options=list(options), scale="nominal",
                    attribute=name)


def population_candidates(study: Study, population: Population) -> list[Candidate]:
    out = []
    for a in study.adjustment_population:
        attr = population.attributes[a]
        if not attr.question or not attr.options:
            raise ValueError(f"adjustment.population: {a!r} has no probe question or too many distinct values "
                             "(at most 26) to be asked as a probe")
        out.append(Candidate(a, "population", _probe(a, attr.question, attr.options), "population"))
    return out


def analyst_candidates(study: Study) -> list[Candidate]:
    assert study.adjustment is not None
    return [Candidate(c.name, "analyst", _probe(c.name, c.question, c.options), "model_control")
            for c in study.adjustment.candidates]


def proposal_schema(n: int) -> dict[str, Any]:
    """The JSON schema the model's proposal is constrained to: a list of {name, question, options}."""
    return {"type": "array", "minItems": 1, "maxItems": n, "items": {
        "type": "object", "additionalProperties": False, "required": ["name", "question", "options"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z][a-z_]{2,23}$"},
            "question": {"type": "string", "minLength": 10, "maxLength": 90},
            "options": {"type": "array", "minItems": 2, "maxItems": 4,
                        "items": {"type": "string", "minLength": 1, "maxLength": 24}}}}}


def proposal_prompt(study: Study) -> str:
    treated = [a.intervention for a in study.arms if a.kind == "treatment"] or [study.arms[-1].intervention]
    outcome = next(i for i in study.items if i.role == "primary")
    return ("A survey experiment shows people this text:\n\"" + treated[0] + "\"\nand then asks them: \""
            + outcome.text + "\"\nQuestion: which attributes of a person would change both how they react to this "
            "text and their answer to the question? Give each attribute a short snake_case name, the survey "
            "question that asks it, and its answer options, as a JSON list.\nAnswer: ")


def parse_proposal(raw: str, *, taken: Mapping[str, str], model_key: str) -> list[Candidate]:
    """Re-validate the model's JSON answer; every entry is kept, invalid or duplicate ones with a note.

    ``taken`` maps names already in use (spec, candidates, diagnostics, items) to what they are.
    """
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return [Candidate("_proposal", "model", None, None, raw=raw, note=f"not valid JSON: {exc}")]
    if not isinstance(data, list):
        return [Candidate("_proposal", "model", None, None, raw=raw, note="not a JSON list")]
    out: list[Candidate] = []
    seen = dict(taken)
    for i, entry in enumerate(data):
        text = json.dumps(entry)
        name = entry.get("name") if isinstance(entry, dict) and isinstance(entry.get("name"), str) else f"_entry{i}"
        try:
            spec = CandidateSpec.model_validate(entry)
        except ValidationError as exc:
            why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            out.append(Candidate(name if name not in seen else f"{name}_{i}", "model", None, None, raw=text,
                                 note=f"invalid: {why}"))
            continue
        if spec.name in seen:
            out.append(Candidate(f"{spec.name}_{i}", "model", None, None, raw=text,
                                 note=f"duplicate: {spec.name!r} is already {seen[spec.name]}"))
            continue
        seen[spec.name] = "a model proposal"
        out.append(Candidate(spec.name, "model", _probe(spec.name, spec.question, spec.options,
                                                        item=f"{spec.name}.{model_key}"),
                             "model_control", raw=text))
    return out


def cramers_v(x: pd.Series, y: pd.Series) -> float:
    """Cramer's V of two categorical series (0 when either takes one value)."""
    table = pd.crosstab(x, y).to_numpy(float)
    if table.shape[0] < 2 or table.shape[1] < 2:
        return 0.0
    n = table.sum()
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return math.sqrt(chi2 / (n * (min(table.shape) - 1)))


def _answers_wide(log: Any, items: Sequence[str]) -> pd.DataFrame:
    a = log.to_pandas("answers")
    a = a[(a["mode"] == "sample") & a["valid"] & a["item"].isin(items) & (a["replicate"] == 0)]
    return a.pivot_table(index=["unit_id", "arm"], columns="item", values="response", aggfunc="first").reset_index()


def _control(log: Any) -> str:
    return log.arms_of_kind("control")[0]


def score_candidates(log: Any, probes: Mapping[str, str], *, outcome: str, seed: int, n_perm: int,
                     ) -> dict[str, dict[str, Any]]:
    """Score of each candidate (attribute -> probe item) on the data of one iteration (see the module doc)."""
    import driftstats as ds

    if not probes:
        return {}
    with warnings.catch_warnings(record=True) as caught:  # small-sample warnings: recorded in the detail
        warnings.simplefilter("always")
        drift = ds.nco_test(log, nco=list(probes.values()), n_perm=n_perm, n_boot=0, seed=seed, by=()).tidy()
    said = sorted({str(w.message) for w in caught})
    wide = _answers_wide(log, [outcome, *probes.values()])
    control = wide[wide["arm"] == _control(log)]
    out = {}
    for attr, item in probes.items():
        rows = drift[drift["term"] == item]
        excess = rows["excess"].to_numpy(float)
        excess = excess[np.isfinite(excess)]
        top = rows.iloc[int(np.argmax(rows["excess"].fillna(-np.inf).to_numpy()))] if len(rows) else None
        e = float(excess.max()) if excess.size else float("nan")
        pair = control[[outcome, item]].dropna() if item in control else pd.DataFrame()
        v = cramers_v(pair[item], pair[outcome]) if len(pair) >= 2 else float("nan")
        score = math.sqrt(max(e, 0.0) * v) if math.isfinite(e) and math.isfinite(v) else float("nan")
        out[attr] = {"score": score, "excess": e, "tvd": float(top["estimate"]) if top is not None else float("nan"),
                     "p_value": float(top["p_value"]) if top is not None else float("nan"),
                     "arm": str(top["arm"]) if top is not None else None, "assoc": v, "assoc_measure": "cramers_v",
                     "n_control": len(pair), **({"warnings": said} if said else {})}
    return out


def select(scores: Mapping[str, Mapping[str, Any]], remaining: Sequence[str], *, rule: str, n: int,
           rng: np.random.Generator) -> list[str]:
    """The ``n`` attributes ``rule`` adds next, from ``remaining`` (see the module doc)."""
    if rule == "random":
        order = list(rng.permutation(sorted(remaining)))
        return [str(a) for a in order[:n]]

    def key(a: str) -> tuple[float, float, str]:
        s = scores.get(a, {})
        sc, v = s.get("score", float("nan")), s.get("assoc", float("nan"))
        sc = sc if isinstance(sc, float) and math.isfinite(sc) else -1.0
        v = v if isinstance(v, float) and math.isfinite(v) else -1.0
        return (sc, v, a)

    ranked = sorted(remaining, key=key, reverse=True)  # highest first; names break ties (reverse order)
    if rule == "untargeted":
        ranked = sorted(remaining, key=lambda a: (key(a)[0], key(a)[1], a))
    return ranked[:n]


@dataclass(frozen=True)
class Diagnosis:
    """Drift on the diagnostic NCOs after one iteration and the stopping rules it implies."""

    mean_excess: float
    se: float
    rows: list[dict[str, Any]]
    equivalent: bool
    warnings: tuple[str, ...] = ()


def diagnose(log: Any, *, diagnostic: Sequence[str], margin: float, seed: int, n_perm: int) -> Diagnosis:
    import driftstats as ds

    with warnings.catch_warnings(record=True) as caught:  # small-sample warnings: recorded in stop_detail
        warnings.simplefilter("always")
        t = ds.nco_test(log, nco=list(diagnostic), n_perm=n_perm, n_boot=n_perm, seed=seed, by=()).tidy()
        eq = ds.equivalence_test(log, margin=margin, nco=list(diagnostic), method="iut", by=()).tidy()
    rows = []
    for _, r in t.iterrows():
        e = eq[(eq["term"] == r["term"]) & (eq["arm"] == r["arm"])]
        rows.append({"nco": str(r["term"]), "arm": str(r["arm"]), "tvd": float(r["estimate"]),
                     "excess": float(r["excess"]), "conf_low": float(r["conf_low"]),
                     "conf_high": float(r["conf_high"]),
                     "equivalent": bool(e["equivalent"].iloc[0]) if len(e) and pd.notna(e["equivalent"].iloc[0])
                     else False})
    excess = np.array([r["excess"] for r in rows], float)
    half = np.array([(r["conf_high"] - r["conf_low"]) / (2 * 1.96) for r in rows], float)
    ok = np.isfinite(excess) & np.isfinite(half)
    mean = float(excess[ok].mean()) if ok.any() else float("nan")
    se = float(math.sqrt(float((half[ok] ** 2).sum())) / ok.sum()) if ok.any() else float("nan")
    return Diagnosis(mean_excess=mean, se=se, rows=rows, equivalent=bool(rows) and all(r["equivalent"] for r in rows),
                     warnings=tuple(sorted({str(w.message) for w in caught})))


def rules_fired(d: Diagnosis, previous: Diagnosis | None, *, iteration: int, max_iterations: int,
                candidates_left: int) -> tuple[list[str], dict[str, Any]]:
    """Which stopping rules hold after ``iteration`` (in the order of STOP_RULES) and the numbers behind them."""
    fired = []
    detail: dict[str, Any] = {"mean_excess": d.mean_excess, "se": d.se, "diagnostic": d.rows}
    if d.warnings:
        detail["warnings"] = list(d.warnings)
    if d.equivalent:
        fired.append("equivalence")
    if previous is not None:
        change = d.mean_excess - previous.mean_excess
        noise = 1.96 * math.sqrt(d.se ** 2 + previous.se ** 2)
        detail |= {"change": change, "noise": noise}
        if math.isfinite(change) and math.isfinite(noise) and abs(change) < noise:
            fired.append("no_change")
    if iteration >= max_iterations:
        fired.append("max_iterations")
    if candidates_left == 0:
        fired.append("no_candidates")
    return fired, detail


def design_values(control_dist: pd.DataFrame, control_sample: pd.DataFrame, *, attribute: str, item: str,
                  persona_keys: Sequence[str], seed: int, study: str, model: str) -> dict[str, str]:
    """Values set by design for a non-population attribute: one draw per persona from the model's own
    option distribution for that persona's probe in the control arm at iteration 0 (the sampled
    answer when no distribution was logged). ``control_*`` have columns persona_key, item, response
    (and prob)."""
    out = {}
    for p in persona_keys:
        rng = derive_rng(seed, "design_value", study=study, model=model, persona=p, attribute=attribute)
        d = control_dist[(control_dist["persona_key"] == p) & (control_dist["item"] == item)]
        if len(d) and d["prob"].sum() > 0:
            d = d.sort_values("response")
            probs = d["prob"].to_numpy(float)
            out[p] = str(d["response"].iloc[int(rng.choice(len(d), p=probs / probs.sum()))])
            continue
        s = control_sample[(control_sample["persona_key"] == p) & (control_sample["item"] == item)]
        if len(s):
            out[p] = str(s["response"].iloc[0])
    return out
