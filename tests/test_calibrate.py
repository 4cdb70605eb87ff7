"""Empirical calibration: the OHDSI reference numbers, simulated recovery and coverage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import driftstats as ds
from driftstats.calibrate import (
    calibrate_ci,
    calibrate_p,
    ease,
    fit_null,
    fit_systematic_error_model,
)
from driftstats.errors import InsufficientDataError, InvalidArgumentError
from tests.conftest import shared_path

REF = Path(__file__).parent / "reference" / "calibrate"


def golden(name: str) -> dict[str, float]:
    path = REF / name
    assert path.exists(), f"missing golden file {path}"
    frame = pd.read_csv(path, comment="#")
    return dict(zip(frame["quantity"], frame["value"], strict=True))


@pytest.mark.reference
def test_sccs_fixture() -> None:
    g = golden("sccs.csv")
    d = pd.read_csv(shared_path("reference-data", "ec_sccs.csv"))
    neg, pos = d[d["groundTruth"] == 0], d[d["groundTruth"] == 1]
    null = fit_null(neg["logRr"], neg["seLogRr"])
    assert null.converged
    assert null.n_used == 45
    assert null.mean == pytest.approx(g["null_mean"], abs=1e-3)
    assert null.sd == pytest.approx(g["null_sd"], abs=1e-3)
    p = calibrate_p(null, pos["logRr"], pos["seLogRr"])[0]
    assert p == pytest.approx(g["calibrated_p_sertraline"], abs=1e-3)
    assert ease(null) == pytest.approx(g["ease"], abs=1e-3)


@pytest.mark.reference
def test_southworth_documented_output() -> None:
    g = golden("southworth.csv")
    d = pd.read_csv(shared_path("reference-data", "ec_southworthReplication.csv"))
    controls = d[d["trueLogRr"].notna()]
    m = fit_systematic_error_model(controls["logRr"], controls["seLogRr"], controls["trueLogRr"])
    np.testing.assert_allclose(m.params(), [g["meanIntercept"], g["meanSlope"], g["sdIntercept"], g["sdSlope"]],
                               atol=1e-4)
    ooi = d[d["trueLogRr"].isna()]
    ci = calibrate_ci(m, ooi["logRr"], ooi["seLogRr"]).iloc[0]
    assert ci["estimate"] == pytest.approx(g["gibleed_logRr"], abs=1e-4)
    assert ci["conf_low"] == pytest.approx(g["gibleed_logLb95Rr"], abs=1e-4)
    assert ci["conf_high"] == pytest.approx(g["gibleed_logUb95Rr"], abs=1e-4)
    assert ci["std_error"] == pytest.approx(g["gibleed_seLogRr"], abs=1e-4)


def test_null_only_calibrated_ci_reduces_to_closed_form() -> None:
    null = fit_null([0.1, 0.3, -0.1, 0.2, 0.15, 0.05], [0.1, 0.05, 0.1, 0.2, 0.1, 0.1])
    ci = calibrate_ci(null, 0.8, 0.1).iloc[0]
    half = 1.959963984540054 * np.sqrt(null.sd**2 + 0.1**2)
    assert ci["estimate"] == pytest.approx(0.8 - null.mean, abs=1e-8)
    assert (ci["conf_low"], ci["conf_high"]) == pytest.approx((0.8 - null.mean - half, 0.8 - null.mean + half), abs=1e-8)


def test_fit_null_recovers_simulated_null() -> None:
    c = ds.simulate_controls(400, mean=0.2, sd=0.15, seed=1)
    null = fit_null(c["estimate"], c["std_error"])
    assert null.mean == pytest.approx(0.2, abs=0.03)
    assert null.sd == pytest.approx(0.15, abs=0.03)


def test_calibrated_intervals_cover_under_systematic_error() -> None:
    """With systematic error N(0.2, 0.15^2), calibrated 95% intervals cover the true effect ~95% of the time
    (300 studies, 3 binomial SEs) while uncalibrated intervals do not."""
    rng = np.random.default_rng(2)
    reps, cal, raw = 300, 0, 0
    for _ in range(reps):
        controls = ds.simulate_controls(50, mean=0.2, sd=0.15, seed=rng)
        null = fit_null(controls["estimate"], controls["std_error"])
        se = rng.uniform(0.01, 0.2)
        est = 0.0 + rng.normal(0.2, 0.15) + rng.normal(0, se)
        ci = calibrate_ci(null, est, se).iloc[0]
        cal += ci["conf_low"] <= 0 <= ci["conf_high"]
        raw += est - 1.96 * se <= 0 <= est + 1.96 * se
    assert abs(cal / reps - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / reps) + 0.01
    assert raw / reps < 0.6


def test_evaluate_calibration_on_southworth_controls() -> None:
    d = pd.read_csv(shared_path("reference-data", "ec_southworthReplication.csv"))
    c = d[d["trueLogRr"].notna()]
    ev = ds.evaluate_calibration(c["logRr"], c["seLogRr"], c["trueLogRr"], groups=c["outcomeName"]).set_index("conf_level")
    assert ev.loc[0.95, "coverage_calibrated"] > ev.loc[0.95, "coverage_uncalibrated"] + 0.2
    assert ev.loc[0.95, "coverage_calibrated"] > 0.85


def test_dropping_and_errors_are_counted_and_named() -> None:
    null = fit_null([0.1, 0.2, np.nan, 10.0, 0.3], [0.1, 0.1, 0.1, 0.1, np.inf])
    assert (null.n_used, null.n_dropped) == (2, 3)
    kept = fit_null([0.1, 0.2, 10.0], [0.1, 0.1, 0.1], max_abs=None)
    assert kept.n_used == 3
    with pytest.raises(InsufficientDataError, match="at least 2 usable"):
        fit_null([0.1], [0.1])
    with pytest.raises(InvalidArgumentError, match="same length"):
        fit_null([0.1, 0.2], [0.1])


def test_calibrate_effect_on_placebo_log() -> None:
    log = ds.simulate_placebo_log(n_placebo=25, n_per_arm=80, effect=0.5, bias_mean=0.3, bias_sd=0.1,
                                  treatment_bias=0.3, seed=3)
    t = ds.calibrate_effect(log, outcome="y").tidy().set_index("calibrated")
    # uncalibrated estimate carries the systematic error (0.3); calibration removes it
    assert t.loc[False, "estimate"] == pytest.approx(0.8, abs=0.25)
    assert t.loc[True, "conf_low"] <= 0.5 <= t.loc[True, "conf_high"]
    assert t.loc[True, "estimate"] == pytest.approx(0.5, abs=0.25)
    with pytest.raises(InvalidArgumentError, match="placebo arms"):
        ds.calibrate_effect(ds.simulate_latent_world().sample_log(20, seed=1), outcome="y")


# ------------------------------------------------------------------- malformed inputs (found by tests/fuzz)
@pytest.mark.parametrize("call", [
    lambda: fit_null([0.1, 0.2, 0.3], [0.1, 0.1, "x"]),
    lambda: ds.fit_mcmc_null([0.1, 0.2, 0.3], ["a", 0.1, 0.1], n_iter=200),
    lambda: fit_systematic_error_model([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], []),
    lambda: fit_systematic_error_model([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], [0.0, "one", 1.0]),
    lambda: calibrate_p(fit_null([0.1, -0.2, 0.3], [0.1, 0.1, 0.2]), [0.1, 0.2, 0.3], [0.1, 0.2]),
    lambda: calibrate_ci(fit_null([0.1, -0.2, 0.3], [0.1, 0.1, 0.2]), [0.1, 0.2, 0.3], [0.1, 0.2]),
    lambda: calibrate_ci(fit_null([0.1, -0.2, 0.3], [0.1, 0.1, 0.2]), ["x"], [0.1]),
    lambda: ds.evaluate_calibration([0.1, 0.2, 0.3, 0.0], [], []),
    lambda: ds.evaluate_calibration([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], [0.0, 0.0, "x"]),
], ids=["fit_null text", "mcmc text", "sem no truths", "sem text truth", "p lengths", "ci lengths", "ci text",
        "evaluate lengths", "evaluate text"])
def test_malformed_numbers_raise_named_errors(call) -> None:
    """Text, lengths that disagree: InvalidArgumentError naming the argument (was ValueError / IndexError)."""
    with pytest.raises(InvalidArgumentError, match="must"):
        call()


def test_evaluate_calibration_needs_two_groups() -> None:
    with pytest.raises(InsufficientDataError, match="at least 2 groups"):
        ds.evaluate_calibration([0.1], [0.1], [0.0])


def test_standard_errors_whose_square_overflows_are_dropped() -> None:
    """SE 1e200 (variance inf) or 1e-200 (variance 0) carries no weight: dropped and counted (was ZeroDivisionError)."""
    est = np.array([0.1, -0.2, 0.3, 0.05, 0.2])
    se = np.array([0.1, 0.1, 0.2, 0.1, 0.15])
    ref = fit_null(est, se)
    for bad in (1e200, 1e-200):
        null = fit_null(np.r_[est, 0.4], np.r_[se, bad])
        assert (null.n_used, null.n_dropped) == (5, 1)
        assert null.mean == pytest.approx(ref.mean, rel=1e-12)
    with pytest.raises(InsufficientDataError, match="at least 2 usable"):
        ease(fit_null(est, np.full(5, 1e300)))


def test_calibrate_effect_frame_with_missing_arms() -> None:
    """Units without an arm belong to no contrast: left out and counted (was TypeError while sorting the arms)."""
    rng = np.random.default_rng(2)
    arms = np.repeat(["control", "treatment", "p0", "p1", "p2"], 10).astype(object)
    d = pd.DataFrame({"arm": arms, "y": rng.normal(size=arms.size)})
    d.loc[[3, 17], "arm"] = None
    res = ds.calibrate_effect(d, outcome="y", placebo=["p0", "p1", "p2"], reference="control", null="asymptotic",
                              min_controls=2)
    assert any("2 unit(s) without an arm" in x for x in res.diagnostics)
    assert res.tidy()["arm"].tolist() == ["treatment", "treatment"]


def test_calibrate_effects_rows_that_are_not_numbers() -> None:
    """Text in an estimate column is a named error; an infinite effect row is not testable (was ValueError / -inf)."""
    c = ds.simulate_controls(12, mean=0.2, sd=0.1, seed=1).assign(term="y", arm="p", reference="c")
    e = pd.DataFrame({"term": "y", "arm": "t", "reference": "c", "estimate": [0.5, -np.inf], "std_error": [0.1, 0.2]})
    res = ds.calibrate_effects(e, c, null="asymptotic")
    raw = res.tidy().query("not calibrated")
    assert np.isnan(raw["estimate"].iloc[1])
    assert "not a finite number" in raw["note"].iloc[1]
    assert np.isfinite(raw["estimate"].iloc[0])
    with pytest.raises(InvalidArgumentError, match=r"controls\['estimate'\] must hold numbers"):
        ds.calibrate_effects(e, c.assign(estimate=c["estimate"].astype(object).where(c.index != 2, "x")))


def test_error_model_needs_two_different_true_effects() -> None:
    """Controls that all share one true effect cannot identify the slope (was slope -76, reversed intervals)."""
    c = ds.simulate_controls(15, mean=0.2, sd=0.1, seed=1)
    with pytest.raises(InsufficientDataError, match="at least 2 different true effects"):
        fit_systematic_error_model(c["estimate"], c["std_error"], np.zeros(15))
    from driftstats.calibrate import SystematicErrorModel

    reversed_model = SystematicErrorModel(0.1, -1.0, 0.1, 0.0, 15, 0, 0.0, True)
    with pytest.raises(InvalidArgumentError, match="mean slope"):
        calibrate_ci(reversed_model, [0.5], [0.1])
