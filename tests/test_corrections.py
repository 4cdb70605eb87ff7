"""Effects, decomposition, NCO-DiD, proximal 2SLS, categorical proximal: references and simulation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import driftstats as ds
from driftstats.errors import InvalidArgumentError, WeakProxyWarning
from tests.conftest import require, shared_path

REF = Path(__file__).parent / "reference"


# ----------------------------------------------------------------------------- decomposition
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decomposition_identities_are_exact(seed) -> None:
    w = ds.simulate_latent_world(selection=1.5, selection_on_y=0.7, gamma=1.2, seed=seed)
    t = ds.decompose_world(w).tidy().set_index("term")["estimate"]
    for r in ("D0_residual", "D1_residual", "Dbar_residual", "selection_residual"):
        assert abs(t[r]) < 1e-12
    # tau values from the world directly
    assert t["tau(p0)"] == pytest.approx(w.tau(w.p[0]), abs=1e-12)
    assert t["tau(pbar)"] == pytest.approx(w.tau(w.p_pooled), abs=1e-12)
    # the variational bound (methods 2.4)
    assert t["|T_obs - tau(p0)|"] <= t["range(mu1) * TV"] + 1e-12
    # the observed contrast with selection is the selected populations' difference
    assert t["T_obs^S"] == pytest.approx(w.p_selected[1] @ w.mu_selected[1] - w.p_selected[0] @ w.mu_selected[0])


def test_decomposition_matches_sampled_contrast() -> None:
    w = ds.simulate_latent_world(gamma=1.0, seed=4)
    units = w.sample_units(40000, seed=5)
    observed = units.loc[units.t == 1, "y"].mean() - units.loc[units.t == 0, "y"].mean()
    t_obs = ds.decompose_world(w).tidy().set_index("term").loc["T_obs", "estimate"]
    assert observed == pytest.approx(t_obs, abs=0.04)


def test_retention_and_manski_bounds() -> None:
    w = ds.simulate_latent_world(selection=2.0, selection_on_y=1.0, seed=6)
    log = w.sample_log(300, seed=7)
    t = ds.retention(log, outcome="y").tidy()
    r = t[t["measure"] == "retention"].set_index("arm")
    assert (r["estimate"] < 1).all()
    assert (r["estimate"] > 0.5).all()
    b = t[t["measure"] == "effect_bounds"].iloc[0]
    truth = w.p[1] @ w.mu[1] - w.p[0] @ w.mu[0]  # the full-population contrast lies inside the bounds
    assert b["conf_low"] <= truth <= b["conf_high"]
    assert ds.manski_bounds(2.0, 0.5, 0.0, 4.0) == (1.0, 3.0)
    assert ds.manski_bounds(float("nan"), 0.0, 0.0, 4.0) == (0.0, 4.0)  # nothing retained: the whole range
    for bad in ((2.0, 0.0, 5.0, 1.0), (9.0, 0.5, 0.0, 4.0), (1.0, 0.5, 0.0, float("inf"))):  # were bounds out of order
        with pytest.raises(InvalidArgumentError, match=r"low|range"):
            ds.manski_bounds(*bad)
    with pytest.raises(InvalidArgumentError, match="reference='nope' is not an arm"):  # was KeyError
        ds.retention(log, outcome="y", reference="nope")


# ----------------------------------------------------------------------------- NCO-DiD
def test_did_unbiased_when_equi_confounding_holds() -> None:
    """Over many samples the additive DiD centres on tau(p_1) when mu_0(u) - nu(u) is constant."""
    w = ds.simulate_latent_world(equi_confounding=True, gamma=1.0, seed=11)
    truth = w.tau(w.p[1])
    rng = np.random.default_rng(12)
    est, cover = [], 0
    for _ in range(150):
        u = w.sample_units(400, seed=rng)
        r = ds.did_nco(u, outcome="y", nco="n", arm="t").tidy().set_index("measure").loc["did_additive"]
        est.append(r["estimate"])
        cover += r["conf_low"] <= truth <= r["conf_high"]
    se_mc = np.std(est) / np.sqrt(len(est))
    assert abs(np.mean(est) - truth) < 4 * se_mc
    assert abs(cover / 150 - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / 150)


def test_did_bias_equals_predicted_when_assumption_fails() -> None:
    """Without equi-confounding the DiD is off by sum_u [mu_0(u) - nu(u)] (p_1 - p_0)(u) (methods 4.2)."""
    w = ds.simulate_latent_world(equi_confounding=False, nco_strength=0.3, nco_levels=5, gamma=1.2, seed=13)
    predicted = float((w.mu[0] - w.nu) @ (w.p[1] - w.p[0]))
    population = (w.p[1] @ w.mu[1] - w.p[0] @ w.mu[0]) - (w.p[1] @ w.nu - w.p[0] @ w.nu)
    assert population - w.tau(w.p[1]) == pytest.approx(predicted, abs=1e-12)
    u = w.sample_units(40000, seed=14)
    r = ds.did_nco(u, outcome="y", nco="n", arm="t").tidy().set_index("measure").loc["did_additive"]
    assert abs(predicted) > 0.1
    assert r["estimate"] - w.tau(w.p[1]) == pytest.approx(predicted, abs=4 * r["std_error"])


def test_did_scale_free_versions_and_errors() -> None:
    w = ds.simulate_latent_world(equi_confounding=True, seed=15)
    u = w.sample_units(2000, seed=16)
    for scale in ("location_scale", "qq"):
        r = ds.did_nco(u, outcome="y", nco="n", arm="t", scale=scale, n_boot=200, seed=1).tidy()
        row = r.set_index("measure").loc[f"did_{scale}"]
        assert row["conf_low"] < row["estimate"] < row["conf_high"]
    with pytest.raises(InvalidArgumentError, match="scale must be one of"):
        ds.did_nco(u, outcome="y", nco="n", arm="t", scale="log")
    log = w.sample_log(100, seed=17)
    assert ds.did_nco(log, outcome="y", nco="n").tidy()["measure"].tolist() == ["naive", "bias", "did_additive"]


# ----------------------------------------------------------------------------- P2SLS
@pytest.mark.reference
@pytest.mark.parametrize(("vcov", "cov_type"), [("robust", "robust"), ("classic", "unadjusted")])
def test_p2sls_matches_linearmodels(vcov, cov_type) -> None:
    linearmodels = require("linearmodels")
    d = ds.simulate_proxy_data(800, n_u=2, seed=18)  # one confounder per W: a full-rank first stage
    ours = ds.p2sls("y ~ t + x | w1 + w2 ~ z1 + z2", d, vcov=vcov).tidy().set_index("term")
    ref = linearmodels.iv.IV2SLS(d["y"], sm.add_constant(d[["t", "x"]]), d[["w1", "w2"]], d[["z1", "z2"]]).fit(
        cov_type=cov_type)
    for name in ("t", "x", "w1", "w2"):
        assert ours.loc[name, "estimate"] == pytest.approx(ref.params[name], rel=1e-8, abs=1e-10)
        assert ours.loc[name, "std_error"] == pytest.approx(ref.std_errors[name], rel=1e-8)
    if vcov == "classic":  # linearmodels' partial F uses s^2 = RSS/n; ours the classical RSS/(n-k)
        fit = ds.p2sls("y ~ t + x | w1 + w2 ~ z1 + z2", d, vcov=vcov)
        n, k = 800, 5
        np.testing.assert_allclose(fit.first_stage["partial_f"] * n / (n - k),
                                   ref.first_stage.diagnostics["f.stat"].to_numpy(), rtol=1e-8)


def test_p2sls_recovers_truth_and_naive_se_undercovers() -> None:
    rng = np.random.default_rng(19)
    est, cover, cover_naive, ratio = [], 0, 0, []
    for _ in range(150):
        d = ds.simulate_proxy_data(600, tau=1.0, confounding=1.5, n_u=2, seed=rng)
        r = ds.p2sls(data=d, outcome="y", treatment="t", nco=["w1", "w2"], nce=["z1", "z2"], covariates="x").tidy().iloc[0]
        est.append(r["estimate"])
        cover += r["conf_low"] <= 1.0 <= r["conf_high"]
        cover_naive += abs(r["estimate"] - 1.0) <= 1.96 * r["naive_std_error"]
        ratio.append(r["naive_std_error"] / r["std_error"])
    assert abs(np.mean(est) - 1.0) < 4 * np.std(est) / np.sqrt(150)
    assert abs(cover / 150 - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / 150) + 0.01
    assert np.mean(ratio) < 0.95  # the naive stage-2 SE is too small
    assert cover_naive < cover


@pytest.mark.reference
def test_p2sls_on_rhc_reproduces_published_analysis() -> None:
    gold = pd.read_csv(REF / "p2sls" / "rhc_acic2025.csv", comment="#").set_index(["case", "quantity"])["value"]
    rhc = pd.read_csv(shared_path("reference-data", "rhc_atbounds_RHC.csv"))
    raw = pd.read_csv(shared_path("reference-data", "rhc.csv"))
    rhc["Y"] = np.minimum(raw["lstctdte"] - raw["sadmdte"], 30).to_numpy()
    xs = [c for c in rhc.columns[2:74] if c not in ("RHC", "pafi1", "paco21", "ph1", "hema1")]
    assert len(xs) == 68
    n = len(rhc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakProxyWarning)
        first3 = ds.p2sls(data=rhc, outcome="Y", treatment="RHC", nco=["ph1", "hema1"], nce=["pafi1", "paco21"],
                          covariates=xs[:3], vcov="classic").tidy().set_index("term").loc["RHC"]
    df_adj = np.sqrt(n / (n - 7))  # ivreg / lm divide the residual sum of squares by n - p, p = 7 here
    assert first3["estimate"] == pytest.approx(gold[("first3", "estimate")], abs=1e-6)
    assert first3["std_error"] * df_adj == pytest.approx(gold[("first3", "ivreg_se")], abs=1e-5)
    assert first3["naive_std_error"] * df_adj == pytest.approx(gold[("first3", "naive_se")], abs=1e-5)
    with warnings.catch_warnings():  # R ivreg's convention directly: residual variance over n - k
        warnings.simplefilter("ignore", WeakProxyWarning)
        deb = ds.p2sls(data=rhc, outcome="Y", treatment="RHC", nco=["ph1", "hema1"], nce=["pafi1", "paco21"],
                       covariates=xs[:3], vcov="classic", debiased=True).tidy().set_index("term").loc["RHC"]
    assert deb["std_error"] == pytest.approx(gold[("first3", "ivreg_se")], abs=1e-5)
    assert deb["naive_std_error"] == pytest.approx(gold[("first3", "naive_se")], abs=1e-5)
    assert deb["df"] == n - 7
    # ph1 and hema1 are each predicted by (pafi1, paco21) (partial F about 25) but not jointly: the conditional
    # (Sanderson-Windmeijer) F of hema1 and the Kleibergen-Paap F are below 10, and p2sls says so
    with pytest.warns(WeakProxyWarning, match=r"Sanderson-Windmeijer conditional F 4\.\d+ < 10\.0 for 'hema1'"):
        full = ds.p2sls(data=rhc, outcome="Y", treatment="RHC", nco=["ph1", "hema1"], nce=["pafi1", "paco21"],
                        covariates=xs, vcov="robust")
    row = full.tidy().set_index("term").loc["RHC"]
    assert round(row["estimate"], 2) == gold[("all68", "estimate_rounded_2dp")]
    assert row["conf_high"] < 0  # significant at 5%: RHC reduces 30-day survival time, as reported
    assert np.isfinite(full.glance()["first_stage_f"].iloc[0])


def test_p2sls_errors_and_weak_proxy_warning() -> None:
    d = ds.simulate_proxy_data(300, seed=20)
    with pytest.raises(InvalidArgumentError, match=r"dim Z >= dim W"):
        ds.p2sls("y ~ t | w1 + w2 ~ z1", d)
    with pytest.raises(InvalidArgumentError, match="formula must look like"):
        ds.p2sls("y ~ t + w1", d)
    weak = ds.simulate_proxy_data(300, proxy_strength=0.02, seed=21)
    with pytest.warns(WeakProxyWarning, match="first-stage partial F"):
        ds.p2sls("y ~ t | w1 ~ z1", weak)


# ----------------------------------------------------------------------------- categorical proximal
@pytest.mark.parametrize("seed", [5, 6, 7])
def test_proximal_discrete_exact_on_population_tables(seed) -> None:
    w = ds.simulate_latent_world(n_types=3, nco_levels=3, seed=seed)
    res = ds.proximal_discrete(w.population_table(), outcome="y", nco="w", nce="z", treatment="t",
                               weight="weight", n_boot=0).tidy()
    m = res.set_index(["arm", "measure"])["estimate"]
    assert m[("1", "mean_do")] == pytest.approx(w.p_pooled @ w.mu[1], abs=1e-9)
    assert m[("0", "mean_do")] == pytest.approx(w.p_pooled @ w.mu[0], abs=1e-9)
    assert m[("1", "ate")] == pytest.approx(w.tau(w.p_pooled), abs=1e-9)


def test_proximal_discrete_sampled_and_errors() -> None:
    w = ds.simulate_latent_world(n_types=3, nco_levels=3, seed=5)
    u = w.sample_units(6000, seed=22)
    res = ds.proximal_discrete(u, outcome="y", nco="n", nce="z", treatment="t", n_boot=150, seed=1).tidy()
    ate = res[res["measure"] == "ate"].iloc[0]
    assert ate["conf_low"] <= w.tau(w.p_pooled) <= ate["conf_high"]
    w4 = ds.simulate_latent_world(n_types=3, nco_levels=4, seed=5)
    with pytest.raises(InvalidArgumentError, match=r"\|W\| = \|Z\|"):
        ds.proximal_discrete(w4.sample_units(500, seed=1), outcome="y", nco="n", nce="z", treatment="t", n_boot=0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"mu": [[np.nan, 1.0], [1.0, 2.0]]}, "finite numbers"),
    ({"mu": [[1e308, 1.0], [-1e308, 2.0]]}, "too large"),
    ({"p": [[1.5, -0.5], [0.2, 0.8]]}, r"in \[0, 1\]"),
    ({"arm_share": 1.5}, "arm_share"),
    ({"mu": [["a", 1.0], [1.0, 2.0]]}, "numbers"),
], ids=["nan mu", "overflow", "negative p", "arm share", "text"])
def test_decomposition_rejects_inputs_without_a_meaning(kwargs, match) -> None:
    """NaN / overflowing means, probabilities outside [0, 1], an arm share above 1: named errors (were NaN rows)."""
    args = {"mu": [[1.0, 2.0], [1.5, 3.0]], "p": [[0.5, 0.5], [0.2, 0.8]], **kwargs}
    with pytest.raises(InvalidArgumentError, match=match):
        ds.decompose(args.pop("mu"), args.pop("p"), **args)
