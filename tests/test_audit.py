"""The audit as registered steps: needs and minimum sizes, an immutable result, a verdict with one bottom line."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import driftstats as ds
from driftstats.errors import InsufficientDataError, InvalidArgumentError
from driftstats.report.audit import AuditStepError
from driftstats.report.steps import STEPS, Step, register_step

SHIPPED = Path(__file__).parents[1] / "data" / "anes_tax.duckdb"


@pytest.fixture(scope="module")
def study_audit():
    return ds.audit(ds.simulate_study_log(n_per_arm=120, drift=1.0, seed=4), n_perm=199, n_boot=50, seed=1)


def test_audit_is_immutable_and_its_results_read_only(study_audit) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        study_audit.verdict = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        study_audit.results["nco"] = None  # type: ignore[index]
    assert {o.name for o in study_audit.steps} == {s.name for s in STEPS}
    assert study_audit.outcome("p2sls").status == "skipped"
    with pytest.raises(KeyError, match="p2sls"):
        study_audit["p2sls"]


def test_every_step_result_is_a_typed_result(study_audit) -> None:
    from driftstats._result import Result

    for o in study_audit.steps:
        if o.ok:
            assert isinstance(o.result, Result), o.name
            assert len(o.result.glance()) == 1
    did = study_audit["did"].tidy()
    assert set(did["nco"].dropna()) <= set(study_audit.log.item_names("nco"))
    assert {"did_location_scale", "heterogeneity"} <= set(did["measure"])


def test_settings_are_checked_before_any_work() -> None:
    log = ds.simulate_study_log(n_per_arm=20, seed=1)
    calls: list[str] = []
    for kwargs, match in (({"n_perm": 10}, "n_perm"), ({"margin": -1}, "margin"), ({"margin": 5}, "margin"),
                          ({"mode": "foo"}, "mode"), ({"conf_level": 1.5}, "conf_level"), ({"min_units": 0}, "min_units"),
                          ({"mode": "dist"}, "no answers in that mode"), ({"outcome": "nope"}, "nope")):
        with pytest.raises(InvalidArgumentError, match=match):
            ds.audit(log, progress=calls.append, **kwargs)
    assert "NCO drift tests" not in " ".join(calls)


def test_one_arm_log_is_an_error_not_a_verdict_about_no_ncos() -> None:
    frame = pd.DataFrame({"unit_id": [f"u{i}" for i in range(30)], "arm": "a", "item": "q",
                          "response": ["x", "y", "z"] * 10})
    with pytest.raises(InsufficientDataError, match="one arm"):
        ds.audit(ds.read_log(frame, nco="q"))


def test_below_minimum_sizes_every_section_says_it_cannot_conclude() -> None:
    a = ds.audit(ds.simulate_study_log(n_per_arm=3, seed=2), n_perm=99, n_boot=20)
    text = " ".join(a.verdict)
    assert "depending on the NCO" not in text
    assert "reported as specified by" not in text
    for name in ("nco", "equivalence", "fidelity", "effect", "did", "calibration"):
        o = a.outcome(name)
        assert o.status == "skipped", name
        assert o.reason.startswith("cannot conclude"), (name, o.reason)
        assert "below the minimum of 10 per arm" in o.reason
    assert a.verdict.bottom_line.startswith("Bottom line: drift could not be assessed")
    # a lower stated minimum lets them run
    b = ds.audit(ds.simulate_study_log(n_per_arm=3, seed=2), n_perm=99, n_boot=20, min_units=3)
    assert b.outcome("nco").ok


def test_a_log_whose_answers_are_all_invalid_says_so() -> None:
    log = ds.simulate_study_log(n_per_arm=20, n_placebo=0, seed=3)
    answers = log.to_pandas()
    answers["valid"] = False
    answers["error"] = "refused"
    bad = ds.read_log(answers, items=log.items, arms=log.arms, personas=log.personas)
    a = ds.audit(bad, n_perm=99, n_boot=0)
    assert "0 NCOs" not in " ".join(a.verdict)
    assert "invalid" in a.outcome("nco").reason
    assert "every answer" in a.verdict.bottom_line


def test_failed_step_raises_unless_keep_going() -> None:
    def boom(c):
        raise ValueError("the model exploded")

    step = register_step(Step("boom", lambda c: "a step that fails", (), boom))
    try:
        log = ds.simulate_study_log(n_per_arm=20, n_placebo=0, seed=5)
        with pytest.raises(AuditStepError, match="the model exploded"):
            ds.audit(log, n_perm=99, n_boot=0)
        a = ds.audit(log, n_perm=99, n_boot=0, keep_going=True)
        first = next(iter(a.verdict))
        assert first.startswith("Not computed: a step that fails (ValueError: the model exploded)")
        assert a.failed[0].name == "boom"
    finally:
        STEPS.remove(step)


def test_step_warnings_travel_with_the_outcome() -> None:
    import warnings

    def warns(c):
        warnings.warn("something is off (3 rows)", ds.errors.MonteCarloErrorWarning, stacklevel=1)
        return ds.nco_test(c.log, n_perm=99, n_boot=0)

    step = register_step(Step("warns", lambda c: "a step that warns", ("nco",), warns))
    try:
        a = ds.audit(ds.simulate_study_log(n_per_arm=20, n_placebo=0, seed=6), n_perm=99, n_boot=0)
        assert a.outcome("warns").warnings == ("MonteCarloErrorWarning: something is off (3 rows)",)
        assert "something is off" in a.to_html()
    finally:
        STEPS.remove(step)


def test_step_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown needs"):
        Step("x", lambda c: "x", ("no_such_input",), lambda c: None)
    with pytest.raises(ValueError, match="already registered"):
        register_step(Step("nco", lambda c: "x", (), lambda c: None))


def test_verdict_uses_the_stated_level_and_margin(study_audit) -> None:
    log = study_audit.log
    strict = ds.audit(log, n_perm=199, n_boot=0, conf_level=0.999, margin=0.2, seed=1)
    text = " ".join(strict.verdict)
    assert "family-wise p < 0.001" in text or "family-wise level 0.001" in text
    assert "0.05" not in strict.verdict.bottom_line


def test_shipped_log_verdict_names_the_mode_of_every_drift_line() -> None:
    a = ds.audit(SHIPPED, n_perm=199, n_boot=0, seed=1)
    bottom = a.verdict.bottom_line
    assert bottom.startswith("Bottom line: the arms are not comparable.")
    assert "option probabilities (distribution mode)" in bottom
    assert "Placebo arms drift too" in bottom
    drift_lines = [v for v in a.verdict.lines if "drift" in v.lower() and "NCO" in v]
    assert drift_lines
    assert all(v.startswith(("In the sampled answers:", "In the option probabilities")) for v in drift_lines), drift_lines
    assert any("sampled answers" in v and "absence of evidence" in v for v in drift_lines)
    assert np.isfinite(a["nco_dist"].tidy()["estimate"]).all()


def test_with_adjustment_iterations_the_bottom_line_is_about_the_last() -> None:
    a = ds.audit(ds.simulate_study_log(n_per_arm=80, iterations=2, seed=3), n_perm=199, n_boot=0)
    assert a.verdict.bottom_line.startswith("Bottom line (last adjustment iteration, 1): ")
    assert all(v.startswith("Iteration ") for v in a.verdict.lines if "NCOs between" in v)


def test_degenerate_calibration_never_reaches_the_verdict_as_a_finding(study_audit) -> None:
    """Issue 9 item 3: with 2 placebo contrasts the null is not estimable; the verdict says so, prints no interval."""
    text = " ".join(study_audit.verdict)
    assert "Calibrated against" not in text
    assert "Empirical calibration is not reported: only 2 usable placebo contrast(s)" in text


def test_did_line_reports_the_agreement_test_across_ncos(study_audit) -> None:
    did = study_audit["did"].tidy()
    het = did[(did["measure"] == "heterogeneity") & (did["arm"] == "treatment")].iloc[0]
    line = next(v for v in study_audit.verdict.lines if v.startswith("NCO difference-in-differences moves the estimate "
                                                                       "for treatment"))
    if het["p_value"] < 0.05:
        assert "The NCOs disagree" in line
    else:
        assert "consistent with, but does not prove, equi-confounding" in line


def test_inconclusive_verdict_says_how_many_users_would_do() -> None:
    q = ds.audit(ds.simulate_study_log(n_per_arm=150, drift=0.0, n_placebo=0, seed=3), n_perm=199, n_boot=0)
    assert q.verdict.bottom_line.startswith("Bottom line: inconclusive.")
    k = max(q.log.item(n).n_levels for n in q.log.item_names("nco"))
    n = ds.nco_sample_size(margin=0.05, n_levels=k, power=0.8, method="projection", draws=2000)
    assert f"about {float(f'{n:.2g}'):,.0f} per arm would give 80%" in q.verdict.bottom_line


def test_fidelity_line_without_checkable_units_in_an_arm_shows_no_nan() -> None:
    """Every treatment persona value outside its item's options: the line says so (was 'nan% in treatment')."""
    log = ds.simulate_study_log(n_per_arm=20, n_placebo=0, seed=3)
    p = log.personas.copy()
    p.loc[p["unit_id"].str.endswith("treatment"), "value"] = "not an option"
    bad = ds.read_log(log.to_pandas(), items=log.items, arms=log.arms, personas=p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ds.audit(bad, n_perm=99, n_boot=0)
    text = " ".join(a.verdict)
    assert "nan" not in text.lower()
    assert "Persona fidelity cannot be compared between control and treatment (no test: not testable" in text
