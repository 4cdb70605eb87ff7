"""Empirical calibration: the MCMC null, degenerate and few-control calibration, the shared control arm."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

import driftstats as ds
import driftstats.calibrate as cal
from driftstats.calibrate import calibrate_effects, calibrate_p, fit_null
from driftstats.calibrate.null import _one_sided
from driftstats.errors import ConvergenceWarning, InsufficientDataError, InvalidArgumentError
from tests.conftest import shared_path

REF = Path(__file__).parent / "reference" / "calibrate"


def golden(name: str) -> dict[str, float]:
    path = REF / name
    assert path.exists(), f"missing golden file {path}"
    frame = pd.read_csv(path, comment="#")
    return dict(zip(frame["quantity"], frame["value"], strict=True))


@pytest.fixture(scope="module")
def sccs():
    d = pd.read_csv(shared_path("reference-data", "ec_sccs.csv"))
    neg, pos = d[d["groundTruth"] == 0], d[d["groundTruth"] == 1]
    return neg, pos, fit_mcmc_null(neg["logRr"], neg["seLogRr"])  # defaults: 100,000 iterations, seed 0


def fit_mcmc_null(*args, **kwargs):
    return cal.fit_mcmc_null(*args, **kwargs)


def calibrate_p_interval(*args, **kwargs):
    return cal.calibrate_p_interval(*args, **kwargs)


def _ours(null, pos) -> dict[str, tuple[float, float]]:
    """Posterior quantiles with Monte Carlo SEs (spread of the per-chain quantile across the 10 chains)."""
    out = {}
    for par, col in (("mean", 0), ("precision", 1)):
        for q, tag in ((0.5, "median"), (0.025, "q025"), (0.975, "q975")):
            out[f"{par}_{tag}"] = (float(np.quantile(null.chain[:, col], q)), null.mcse(par, quantile=q))
    upper, lower = _one_sided(null, np.asarray(pos["logRr"], float), np.asarray(pos["seLogRr"], float))
    p = 2 * np.minimum(upper, lower)[:, 0].reshape(null.draws.shape[:2])
    for q, tag in ((0.5, "median"), (0.025, "q025"), (0.975, "q975")):
        per_chain = np.quantile(p, q, axis=0)
        out[f"calibrated_p_{tag}"] = (float(np.quantile(p, q)), float(per_chain.std(ddof=1) / math.sqrt(p.shape[1])))
    return out


@pytest.mark.reference
def test_sccs_mcmc_null_matches_the_exact_posterior(sccs) -> None:
    """The sampler's posterior quantiles against the posterior computed by quadrature, within 4 MCSE."""
    _neg, pos, null = sccs
    exact = golden("sccs_mcmc_exact.csv")
    assert null.converged
    assert 0.2 < null.acceptance < 0.5
    assert null.n_used == 45
    for name, (value, mcse) in _ours(null, pos).items():
        assert abs(value - exact[name]) <= 4 * mcse, (name, value, exact[name], mcse)
    p_pred = calibrate_p(null, pos["logRr"], pos["seLogRr"], summary="predictive")[0]
    assert p_pred == pytest.approx(exact["calibrated_p_predictive"], abs=0.005)


@pytest.mark.reference
def test_sccs_r_mcmc_output_is_within_monte_carlo_error(sccs) -> None:
    """EmpiricalCalibration's printed MCMC numbers (methods 4.4) against the exact posterior: R ran one chain of
    the same length, so its Monte Carlo SE is taken as 1.5 x ours (one chain mixes no better than ten)."""
    _neg, pos, null = sccs
    exact, r_out = golden("sccs_mcmc_exact.csv"), golden("sccs_mcmc_r.csv")
    for name, (_, mcse) in _ours(null, pos).items():
        assert abs(r_out[name] - exact[name]) <= 4 * 1.5 * mcse, (name, r_out[name], exact[name], mcse)
    ours = calibrate_p_interval(null, pos["logRr"], pos["seLogRr"]).iloc[0]
    assert ours["p_value"] == pytest.approx(float(calibrate_p(null, pos["logRr"], pos["seLogRr"])[0]))
    assert ours["conf_low"] < ours["p_value"] < ours["conf_high"]


def test_mcmc_null_reports_non_convergence() -> None:
    c = ds.simulate_controls(8, mean=0.1, sd=0.2, seed=4)
    with pytest.warns(ConvergenceWarning, match=r"did not converge \(split R-hat"):
        null = fit_mcmc_null(c["estimate"], c["std_error"], n_iter=200, n_chains=4, seed=1)
    assert not null.converged
    with pytest.raises(InvalidArgumentError, match="McmcNullDistribution"):
        calibrate_p_interval(fit_null(c["estimate"], c["std_error"]), 0.1, 0.1)


# ----------------------------------------------------------------------------- degenerate calibration (issue 3)
def test_two_placebo_contrasts_are_not_calibrated() -> None:
    """With 2 placebo contrasts the verdict printed a calibrated effect whose SE equalled the raw one."""
    log = ds.simulate_placebo_log(n_placebo=2, n_per_arm=60, seed=1)
    res = ds.calibrate_effect(log, outcome="y")
    t = res.tidy().set_index("calibrated")
    assert not res.calibrated
    assert "min_controls=5" in res.not_calibrated
    assert np.isnan(t.loc[True, ["estimate", "std_error", "p_value", "conf_low", "conf_high"]].astype(float)).all()
    assert t.loc[True, "note"].startswith("not calibrated: only 2 usable placebo contrast(s)")
    assert np.isfinite(t.loc[False, "p_value"])  # the raw contrast is still reported, as raw
    assert pd.isna(res.glance()["converged"].iloc[0])
    assert res.glance()["n_tests"].iloc[0] == 1
    assert any("NOT CALIBRATED" in d for d in res.diagnostics)
    ok = ds.calibrate_effect(log, outcome="y", min_controls=2, null="asymptotic")
    assert ok.calibrated  # the minimum is an argument


def test_a_failed_fit_warns_and_is_not_reported(monkeypatch) -> None:
    log = ds.simulate_placebo_log(n_placebo=25, n_per_arm=40, bias_sd=0.3, seed=2)
    real = optimize.minimize

    def failing(*args, **kwargs):
        out = real(*args, **{**kwargs, "options": {"maxiter": 3}})
        out.success = False
        return out

    monkeypatch.setattr(optimize, "minimize", failing)
    with pytest.warns(ConvergenceWarning, match="empirical-null fit did not converge"):
        res = ds.calibrate_effect(log, outcome="y", null="asymptotic")
    assert not res.calibrated
    assert not res.glance()["converged"].iloc[0]
    assert res.tidy().query("calibrated")["estimate"].isna().all()
    with pytest.warns(ConvergenceWarning, match="fit_null: Nelder-Mead did not converge"):
        null = fit_null([0.5, -0.6, 0.9, -0.7, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1])
    assert not null.converged


def test_boundary_null_is_found_exactly() -> None:
    """Controls that spread less than their SEs explain: the maximum is at sd = 0 (where Nelder-Mead used to wander
    for 40,000 evaluations and stop at sd ~ 1e-8 without converging)."""
    est, se = np.array([0.10, 0.12, 0.08, 0.11]), np.array([0.1, 0.2, 0.1, 0.15])
    null = fit_null(est, se)
    assert null.converged
    assert null.at_boundary
    assert null.sd == 0.0
    w = 1 / se**2
    assert null.mean == pytest.approx(float(w @ est / w.sum()), rel=1e-12)
    for sd in (1e-4, 0.01, 0.05):  # no interior point does better
        for mu in (null.mean - 0.01, null.mean, null.mean + 0.01):
            v = sd**2 + se**2
            assert -0.5 * np.sum(np.log(2 * np.pi * v) + (est - mu) ** 2 / v) <= null.log_lik + 1e-12
    assert ds.ease(null) == pytest.approx(abs(null.mean))


# ----------------------------------------------------------------------------- few controls (issue 21)
def _size_study(j: int, reps: int, rng: np.random.Generator, n_iter: int) -> dict[str, float]:
    """Null effect with systematic error N(0.2, 0.15^2) and SEs U(0.05, 0.2): rejection rates at 0.05."""
    rej = {"asymptotic": 0, "mcmc": 0}
    for _ in range(reps):
        se = rng.uniform(0.05, 0.2, j + 1)
        est = rng.normal(0.2, 0.15, j + 1) + rng.normal(0, se)
        controls = pd.DataFrame({"term": "y", "arm": "p", "reference": "c", "estimate": est[:j], "std_error": se[:j]})
        effect = pd.DataFrame({"term": ["y"], "arm": ["t"], "reference": ["c"], "estimate": [est[j]],
                               "std_error": [se[j]]})
        for null in rej:
            r = calibrate_effects(effect, controls, null=null, n_iter=n_iter, seed=rng).tidy()
            rej[null] += r.loc[r["calibrated"].astype(bool), "p_value"].iloc[0] < 0.05
    return {k: v / reps for k, v in rej.items()}


def test_few_controls_mcmc_is_not_anti_conservative() -> None:
    """J = 10 controls: the asymptotic null's calibrated p is anti-conservative; the MCMC null's posterior
    predictive p is not (few replications here; the slow test measures the sizes)."""
    rates = _size_study(10, 40, np.random.default_rng(10), 20000)
    assert rates["mcmc"] <= rates["asymptotic"]
    assert rates["mcmc"] <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 40)


@pytest.mark.slow
@pytest.mark.parametrize("j", [10, 50])
def test_size_of_calibrated_p_asymptotic_vs_mcmc(j) -> None:
    reps = 400
    rates = _size_study(j, reps, np.random.default_rng(j), 20000)
    print(f"J = {j}: rejection rates at 0.05 over {reps} replications: {rates}")
    mcse = math.sqrt(0.05 * 0.95 / reps)
    if j == 10:
        assert rates["asymptotic"] > 0.05 + 2.5 * mcse  # measured 0.115 (400 reps)
    else:
        assert abs(rates["asymptotic"] - 0.05) <= 3 * mcse + 0.01
    assert abs(rates["mcmc"] - 0.05) <= 3 * mcse + 0.01


def test_auto_null_and_the_few_controls_diagnostic() -> None:
    log = ds.simulate_placebo_log(n_placebo=10, n_per_arm=40, bias_sd=0.2, seed=3)
    auto = ds.calibrate_effect(log, outcome="y", n_iter=20000)
    assert auto.glance()["method"].iloc[0] == "empirical calibration (MCMC null)"
    assert auto.glance()["seed"].iloc[0] == 0
    assert isinstance(auto.null, cal.McmcNullDistribution)
    assert any("null='auto'" in d for d in auto.diagnostics)
    asym = ds.calibrate_effect(log, outcome="y", null="asymptotic")
    assert any("anti-conservative below 20 controls" in d for d in asym.diagnostics)
    wide = ds.calibrate_effect(log, outcome="y", null="mcmc", n_iter=20000).tidy().query("calibrated")
    assert wide["std_error"].iloc[0] > asym.tidy().query("calibrated")["std_error"].iloc[0]


# ----------------------------------------------------------------------------- the shared control arm (issue 21)
def placebo_units(rng: np.random.Generator, *, j: int = 20, n: int = 40, bias_sd: float = 0.0,
                  effect: float = 0.0) -> pd.DataFrame:
    arms = ["control", "treatment", *[f"p{k:02d}" for k in range(j)]]
    parts = []
    for a in arms:
        b = 0.0 if a == "control" else rng.normal(0, bias_sd)
        parts.append(pd.DataFrame({"arm": a, "y": rng.normal(b + (effect if a == "treatment" else 0.0), 1.0, n)}))
    return pd.concat(parts, ignore_index=True)


def test_shared_control_is_modelled_size_is_nominal() -> None:
    """Every contrast shares the control arm's mean. Treated as independent, the control arm's noise is counted
    twice (once in the null's spread, once in the effect's SE): size 0.0025 for a nominal 0.05 when placebos carry
    no systematic error. Modelling the covariance restores the size."""
    rng = np.random.default_rng(21)
    reps, rej, rej_indep = 120, 0, 0
    placebos = [f"p{k:02d}" for k in range(20)]
    for _ in range(reps):
        units = placebo_units(rng)
        res = ds.calibrate_effect(units, outcome="y", placebo=placebos, reference="control", null="asymptotic")
        rej += res.tidy().query("calibrated")["p_value"].iloc[0] < 0.05
        raw = res.tidy().query("not calibrated")
        indep = calibrate_effects(raw, res.controls.assign(term="y"), null="asymptotic").tidy().query("calibrated")
        rej_indep += indep["p_value"].iloc[0] < 0.05
    mcse = math.sqrt(0.05 * 0.95 / reps)
    assert abs(rej / reps - 0.05) <= 3 * mcse
    assert rej_indep / reps < 0.02
    assert any("share the control arm" in d for d in res.diagnostics)


def test_calibrated_estimate_removes_systematic_error_with_shared_control() -> None:
    rng = np.random.default_rng(22)
    placebos = [f"p{k:02d}" for k in range(30)]
    cover = 0
    for _ in range(40):
        units = placebo_units(rng, j=30, bias_sd=0.2, effect=0.5)
        units.loc[units["arm"] != "control", "y"] += 0.3  # every non-control arm shares a systematic shift
        r = ds.calibrate_effect(units, outcome="y", placebo=placebos, reference="control",
                                null="asymptotic").tidy().query("calibrated").iloc[0]
        cover += r["conf_low"] <= 0.5 <= r["conf_high"]
    assert cover / 40 >= 0.85


@pytest.mark.slow
def test_shared_control_size_paired_logs() -> None:
    """Paired design (personas in every arm, persona effect sd 1): clustered covariance, size ~ nominal."""
    rng = np.random.default_rng(23)
    reps, rej = 300, 0
    for _ in range(reps):
        log = ds.simulate_placebo_log(n_placebo=25, n_per_arm=40, effect=0.0, bias_sd=0.1, paired=True,
                                      persona_sd=1.0, seed=rng)
        res = ds.calibrate_effect(log, outcome="y", null="asymptotic")
        rej += res.tidy().query("calibrated")["p_value"].iloc[0] < 0.05
    assert res.glance()["strata"].iloc[0] == "persona_id"
    assert abs(rej / reps - 0.05) <= 3 * math.sqrt(0.05 * 0.95 / reps) + 0.01


def test_paired_log_uses_persona_clusters() -> None:
    log = ds.simulate_placebo_log(n_placebo=20, n_per_arm=30, paired=True, persona_sd=1.0, seed=5)
    res = ds.calibrate_effect(log, outcome="y", null="asymptotic")
    assert res.glance()["strata"].iloc[0] == "persona_id"
    assert any("paired design detected" in d for d in res.diagnostics)
    flat = ds.calibrate_effect(log, outcome="y", null="asymptotic", cluster="unit")
    raw_p = res.tidy().query("not calibrated")["std_error"].iloc[0]
    raw_u = flat.tidy().query("not calibrated")["std_error"].iloc[0]
    assert raw_p < raw_u  # the persona effect cancels within pairs


# ----------------------------------------------------------------------------- rules and degenerate inputs
def test_calibrate_effect_rules_and_degenerate_inputs() -> None:
    log = ds.simulate_placebo_log(n_placebo=6, n_per_arm=20, seed=6)
    with pytest.raises(InvalidArgumentError, match="not a column"):
        ds.calibrate_effect(log, outcome="y", by="wave")
    with pytest.raises(InvalidArgumentError, match="null must be one of"):
        ds.calibrate_effect(log, outcome="y", null="bayes")
    res = ds.calibrate_effect(log, outcome="y", null="asymptotic", min_controls=5)
    assert dict(res.provenance.data)["data_sha256"] == log.fingerprint()
    rng = np.random.default_rng(7)
    placebos = ["p00", "p01", "p02", "p03", "p04", "p05"]
    const = placebo_units(rng, j=6).assign(y=1.0)
    r = ds.calibrate_effect(const, outcome="y", placebo=placebos, reference="control")
    assert not r.calibrated
    assert r.tidy()["p_value"].isna().all()
    one = placebo_units(rng, j=6, n=1)
    r = ds.calibrate_effect(one, outcome="y", placebo=placebos, reference="control")
    assert not r.calibrated
    assert r.tidy().loc[0, "note"].startswith("not testable")
    with pytest.raises(InsufficientDataError, match="no unit has a valid answer"):
        ds.calibrate_effect(placebo_units(rng, j=6).assign(y=np.nan), outcome="y", placebo=placebos,
                            reference="control")
    huge = placebo_units(rng, j=6).assign(y=lambda d: d["y"] * 1e300)
    with pytest.raises(InvalidArgumentError, match="rescale it"):
        ds.calibrate_effect(huge, outcome="y", placebo=placebos, reference="control", null="asymptotic")
    with pytest.raises(InvalidArgumentError, match="placebo arms"):
        ds.calibrate_effect(placebo_units(rng, j=2), outcome="y", reference="control")
