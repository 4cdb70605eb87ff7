"""The adjustment loop's study section and decisions, without a model: validation, seeds, proposals,
scores, selection and every stopping rule on constructed cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import driftstats as ds
from collectors.adjust import (
    Diagnosis,
    cramers_v,
    design_values,
    parse_proposal,
    proposal_schema,
    rules_fired,
    score_candidates,
    select,
)
from collectors.plan import derive_seed
from collectors.study import StudyError, load_study, parse_study

BASE = {
    "name": "adj",
    "population": {"source": "anes96", "specified": ["age", "party"], "latent": ["education", "tv_news"]},
    "design": {"units_per_arm": 3, "paired": True, "seed": 7},
    "arms": [
        {"name": "control", "kind": "control", "text": "The library opens at nine."},
        {"name": "treatment", "kind": "treatment", "text": "Taxes on the rich should rise."},
    ],
    "items": [
        {"name": "support", "role": "primary", "text": "Support?", "options": ["No", "Yes"]},
        {"name": "religion", "role": "nco", "text": "Religion?", "options": ["Never", "Often"]},
        {"name": "tv_news", "role": "nco", "text": "TV news days?", "options": [str(i) for i in range(8)]},
    ],
    "adjustment": {"iterations": 2, "diagnostic": ["religion", "tv_news"]},
}


def study(**adjustment) -> dict:
    d = json.loads(json.dumps(BASE))
    d["adjustment"].update(adjustment)
    return d


def test_shipped_adjustment_study_is_valid() -> None:
    from pathlib import Path

    s = load_study(Path(__file__).parents[1] / "collectors" / "studies" / "anes_tax_adjust.toml")
    assert s.adjustment is not None
    assert len(s.all_models) == 2
    assert not set(s.adjustment.diagnostic) & {*s.adjustment_population, *s.population.specified}


def test_default_population_candidates_leave_the_diagnostics_out() -> None:
    s = parse_study(study())
    assert s.adjustment_population == ["education"]  # tv_news is a diagnostic: never a candidate


@pytest.mark.parametrize(("over", "needle"), [
    ({"population": ["tv_news"]}, "disjoint from the adjusted attributes: ['tv_news']"),
    ({"candidates": [{"name": "religion", "question": "q?", "options": ["a", "b"]}]},
     "disjoint from the adjusted attributes: ['religion']"),
    ({"diagnostic": ["support"]}, "'support' is not an item with role = 'nco'"),
    ({"population": ["age"]}, "already specified"),
    ({"paths": ["targeted", "targeted"]}, "must not repeat"),
])
def test_a_study_that_breaks_the_rules_is_rejected_with_the_reason(over, needle) -> None:
    with pytest.raises(StudyError) as e:
        parse_study(study(**over))
    assert needle in str(e.value)


def test_a_diagnostic_that_is_stated_in_the_base_spec_is_rejected() -> None:
    d = study()
    d["population"]["specified"] = ["age", "party", "tv_news"]
    d["population"]["latent"] = ["education"]
    with pytest.raises(StudyError, match="disjoint from the adjusted attributes: \\['tv_news'\\]"):
        parse_study(d)


def test_adjustment_needs_paired_personas_and_one_outcome() -> None:
    d = study()
    d["design"]["paired"] = False
    with pytest.raises(StudyError, match="paired = true"):
        parse_study(d)
    d = study()
    d["items"][0]["role"] = "other"
    with pytest.raises(StudyError, match="exactly one item with role = 'primary'"):
        parse_study(d)


def test_model_and_models_are_exclusive_and_models_need_distinct_names() -> None:
    d = study()
    d["model"] = {"path": "gemma3-270m"}
    d["models"] = [{"path": "smollm2-135m"}]
    with pytest.raises(StudyError, match="either \\[model\\] or \\[\\[models\\]\\]"):
        parse_study(d)
    d = study()
    d["models"] = [{"path": "smollm2-135m"}, {"path": "smollm2-135m"}]
    with pytest.raises(StudyError, match="distinct names"):
        parse_study(d)


def test_seeds_are_keyed_by_names_not_positions() -> None:
    a = derive_seed(1, "answer", study="s", model="m", iteration=1, persona="p0001", arm="control", item="x",
                    replicate=0)
    same = derive_seed(1, "answer", item="x", replicate=0, arm="control", persona="p0001", iteration=1, model="m",
                       study="s")
    assert a == same  # keyword order does not matter
    for change in ({"iteration": 2}, {"model": "m2"}, {"item": "y"}, {"arm": "treatment"}, {"persona": "p0002"}):
        keys = {"study": "s", "model": "m", "iteration": 1, "persona": "p0001", "arm": "control", "item": "x",
                "replicate": 0} | change
        assert derive_seed(1, "answer", **keys) != a, change


# --------------------------------------------------------------------------- model proposals
TAKEN = {"age": "in the base spec", "religion": "a diagnostic NCO"}


def test_a_valid_proposal_becomes_probe_candidates() -> None:
    raw = json.dumps([{"name": "union_member", "question": "Are you in a union?", "options": ["Yes", "No"]}])
    (c,) = parse_proposal(raw, taken=TAKEN, model_key="m")
    assert c.valid
    assert c.attribute == "union_member"
    assert c.source == "model"
    assert c.values_from == "model_control"
    assert c.item.name == "union_member.m"
    assert c.item.role == "confounder"
    assert c.item.attribute == "union_member"
    assert json.loads(c.raw)["question"] == "Are you in a union?"


def test_invalid_and_duplicate_proposals_are_kept_with_their_raw_text_and_why() -> None:
    raw = json.dumps([
        {"name": "religion", "question": "Do you pray?", "options": ["Yes", "No"]},  # a diagnostic
        {"name": "wealth", "question": "Are you rich?", "options": ["Yes", "Yes"]},  # options not distinct
        {"name": "wealth2", "question": "Are you rich?", "options": ["Yes", "No"]},
        {"name": "wealth2", "question": "Again?", "options": ["a", "b"]},  # a duplicate of the previous one
    ])
    got = parse_proposal(raw, taken=TAKEN, model_key="m")
    assert [c.valid for c in got] == [False, False, True, False]
    assert "duplicate: 'religion' is already a diagnostic NCO" in got[0].note
    assert "options must be distinct" in got[1].note
    assert "already a model proposal" in got[3].note
    assert all(c.raw for c in got)
    bad = parse_proposal('[{"name": "x"', taken=TAKEN, model_key="m")
    assert len(bad) == 1
    assert not bad[0].valid
    assert bad[0].raw == '[{"name": "x"'
    assert "not valid JSON" in bad[0].note


def test_the_proposal_schema_compiles_to_a_constraint() -> None:
    from outlines_core.json_schema import build_regex_from_schema

    assert build_regex_from_schema(json.dumps(proposal_schema(3)))


# --------------------------------------------------------------------------- scores and selection
def _world_log(n: int = 200, seed: int = 0):
    """C drifts with the arm and predicts the outcome; Z does neither; D drifts but is irrelevant."""
    rng = np.random.default_rng(seed)
    rows = []
    for arm in ("control", "treatment"):
        for u in range(n):
            c = int(rng.random() < (0.3 if arm == "control" else 0.7))
            z = int(rng.random() < 0.5)
            dd = int(rng.random() < (0.3 if arm == "control" else 0.7))
            y = int(rng.random() < (0.2 + 0.6 * c))
            unit = f"{arm}-{u}"
            for item, v in (("y", y), ("c", c), ("z", z), ("d", dd)):
                rows.append({"unit_id": unit, "arm": arm, "item": item, "response": ["no", "yes"][v],
                             "persona_id": f"p{u}"})
    items = pd.DataFrame({"item": ["y", "c", "z", "d"], "options": ['["no", "yes"]'] * 4,
                          "role": ["primary", "confounder", "confounder", "confounder"], "scale": "nominal"})
    arms = pd.DataFrame({"arm": ["control", "treatment"], "kind": ["control", "treatment"]})
    return ds.read_log({"answers": pd.DataFrame(rows), "items": items, "arms": arms})


def test_targeted_scores_rank_the_true_confounder_first_and_untargeted_last() -> None:
    log = _world_log()
    scores = score_candidates(log, {"c": "c", "z": "z", "d": "d"}, outcome="y", seed=0, n_perm=200)
    assert scores["c"]["score"] > scores["d"]["score"]
    assert scores["c"]["score"] > scores["z"]["score"]
    assert scores["c"]["assoc"] > 0.3
    assert scores["d"]["assoc"] < 0.2
    rng = np.random.default_rng(0)
    assert select(scores, ["c", "z", "d"], rule="targeted", n=1, rng=rng) == ["c"]
    assert select(scores, ["c", "z", "d"], rule="untargeted", n=1, rng=rng) != ["c"]
    picked = {select(scores, ["c", "z", "d"], rule="random", n=1, rng=np.random.default_rng(s))[0] for s in range(20)}
    assert len(picked) > 1


def test_cramers_v_matches_scipy() -> None:
    from scipy.stats.contingency import association

    rng = np.random.default_rng(3)
    x = pd.Series(rng.integers(0, 3, 300))
    y = pd.Series((x + rng.integers(0, 2, 300)) % 4)
    assert cramers_v(x, y) == pytest.approx(association(pd.crosstab(x, y).to_numpy(), method="cramer"))


def test_design_values_draw_from_the_persona_s_own_control_distribution() -> None:
    dist = pd.DataFrame({"persona_key": ["p0"] * 2 + ["p1"] * 2, "item": "q", "response": ["a", "b"] * 2,
                         "prob": [1.0, 0.0, 0.0, 1.0]})
    got = design_values(dist, dist.iloc[:0], attribute="q", item="q", persona_keys=["p0", "p1"], seed=1,
                        study="s", model="m")
    assert got == {"p0": "a", "p1": "b"}
    again = design_values(dist, dist.iloc[:0], attribute="q", item="q", persona_keys=["p1", "p0"], seed=1,
                          study="s", model="m")
    assert again == got


# --------------------------------------------------------------------------- stopping rules
def _d(mean: float, se: float, equivalent: bool) -> Diagnosis:
    return Diagnosis(mean_excess=mean, se=se, rows=[], equivalent=equivalent)


def test_every_stopping_rule_fires_on_its_constructed_case() -> None:
    fired, _ = rules_fired(_d(0.01, 0.01, True), None, iteration=0, max_iterations=3, candidates_left=2)
    assert fired == ["equivalence"]
    fired, detail = rules_fired(_d(0.10, 0.01, False), _d(0.105, 0.01, False), iteration=1, max_iterations=3,
                               candidates_left=2)
    assert fired == ["no_change"]
    assert detail["noise"] == pytest.approx(1.96 * np.sqrt(2) * 0.01)
    fired, _ = rules_fired(_d(0.02, 0.01, False), _d(0.10, 0.01, False), iteration=1, max_iterations=3,
                           candidates_left=2)
    assert fired == []  # a drop well beyond the noise: the loop goes on
    fired, _ = rules_fired(_d(0.20, 0.01, False), _d(0.10, 0.01, False), iteration=3, max_iterations=3,
                           candidates_left=2)
    assert fired == ["max_iterations"]  # drift rose (non-monotone): only K ends the path
    fired, _ = rules_fired(_d(0.20, 0.01, False), _d(0.10, 0.01, False), iteration=2, max_iterations=3,
                           candidates_left=0)
    assert fired == ["no_candidates"]
