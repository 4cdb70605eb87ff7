"""NCO difference-in-differences: pairs bootstrap, several NCOs, degenerate inputs, project rules."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import driftstats as ds
from driftstats.errors import (
    DriftstatsError,
    InsufficientDataError,
    InvalidArgumentError,
    MonteCarloErrorWarning,
)


def paired_units(n: int, rng: np.random.Generator, *, tau: float = 0.5, persona_sd: float = 2.0) -> pd.DataFrame:
    """Each persona in both arms, with large persona effects on Y and on N (independent of each other), so
    Y - N keeps a persona component that only cancels between the arms within a pair."""
    a = rng.normal(0, persona_sd, n)
    b = rng.normal(0, persona_sd, n)
    rows = []
    for t in (0, 1):
        y = a + tau * t + rng.normal(0, 0.5, n)
        nco = b + rng.normal(0, 0.5, n)
        rows.append(pd.DataFrame({"persona_id": [f"p{i}" for i in range(n)], "t": t, "y": y, "n": nco}))
    return pd.concat(rows, ignore_index=True)


def proxy_units(n: int, rng: np.random.Generator, *, tau: float = 0.5, loadings=(1.0, 1.0)) -> pd.DataFrame:
    """U confounds T and Y; NCO k = loading_k * U + e. Additive DiD with NCO k is biased by
    (1 - loading_k) * (E[U | T=1] - E[U | T=0]) (unbiased for loading 1)."""
    u = rng.normal(size=2 * n)
    t = (rng.random(2 * n) < 1 / (1 + np.exp(-u))).astype(float)
    out = {"t": t, "y": tau * t + u + rng.normal(size=2 * n)}
    for k, lam in enumerate(loadings):
        out[f"n{k + 1}"] = lam * u + rng.normal(size=2 * n)
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- pairs bootstrap
def _naive_estimate(y, n, t, scale):
    """The scale-free DiD by its definition (a loop-friendly reference for the vectorised bootstrap)."""
    naive = y[t == 1].mean() - y[t == 0].mean()
    if scale == "location_scale":
        bias = y[t == 0].std(ddof=1) / n[t == 0].std(ddof=1) * (n[t == 1].mean() - n[t == 0].mean())
    else:
        srt = np.sort(n[t == 0])
        u = (np.searchsorted(srt, n, "left") + np.searchsorted(srt, n, "right")) / (2.0 * srt.size)
        m = np.quantile(y[t == 0], np.clip(u, 0, 1))
        bias = m[t == 1].mean() - m[t == 0].mean()
    return naive, bias


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("scale", ["location_scale", "qq"])
def test_vectorised_bootstrap_equals_resampling_by_hand(scale, paired) -> None:
    from driftstats.correct._pairs import boot_counts
    from driftstats.correct.did import _weighted_stats

    u = ds.simulate_latent_world(seed=15).sample_units(120, seed=16)
    y, n, t = u["y"].to_numpy(float), u["n"].to_numpy(float), u["t"].to_numpy(float)
    clusters = np.r_[np.arange(120), np.arange(120)] if paired else None
    w = boot_counts(np.random.default_rng(3), 8, t, clusters)
    assert (w[:, t == 1].sum(axis=1) == 120).all() or paired  # unpaired: arm sizes kept
    naive, bias = _weighted_stats(w, y, n[:, None], t, scale)
    for b in range(8):
        idx = np.repeat(np.arange(t.size), w[b])
        ref = _naive_estimate(y[idx], n[idx], t[idx], scale)
        assert naive[b] == pytest.approx(ref[0], abs=1e-12)
        assert bias[b, 0] == pytest.approx(ref[1], abs=1e-12)


def test_pairs_are_resampled_as_pairs_coverage_and_width() -> None:
    """Paired design with large persona effects: the pairs bootstrap SE matches the Monte Carlo SD and its
    intervals cover at ~95%. Resampling the arms independently (the old code) made the SE several times too
    large (coverage 1.0)."""
    rng = np.random.default_rng(31)
    reps, est, ses, cover = 60, [], [], 0
    for _ in range(reps):
        units = paired_units(100, rng)
        res = ds.did_nco(units, outcome="y", nco="n", arm="t", scale="location_scale", n_boot=300, seed=rng)
        r = res.tidy().set_index("measure").loc["did_location_scale"]
        est.append(r["estimate"])
        ses.append(r["std_error"])
        cover += r["conf_low"] <= 0.5 <= r["conf_high"]
    assert res.glance()["strata"].iloc[0] == "persona_id"
    assert res.glance()["vcov"].iloc[0] == "bootstrap (personas)"
    assert any("paired design detected" in d for d in res.diagnostics)
    ratio = np.mean(ses) / np.std(est, ddof=1)
    assert 0.8 < ratio < 1.25, ratio
    assert abs(cover / reps - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / reps) + 0.01


def test_paired_log_clusters_on_persona_id() -> None:
    units = paired_units(60, np.random.default_rng(2))
    rows = []
    for i, r in units.reset_index(drop=True).iterrows():
        arm = "treatment" if r["t"] == 1 else "control"
        for item in ("y", "n"):
            rows.append({"unit_id": f"u{i}", "arm": arm, "persona_id": r["persona_id"], "item": item,
                         "response": f"{r[item]:.6f}"})
    items = pd.DataFrame([{"item": "y", "options": None, "scale": "numeric", "role": "primary"},
                          {"item": "n", "options": None, "scale": "numeric", "role": "nco"}])
    log = ds.read_log(pd.DataFrame(rows), items=items)
    res = ds.did_nco(log, outcome="y", nco="n")
    assert res.glance()["strata"].iloc[0] == "persona_id"
    assert res.glance()["vcov"].iloc[0] == "cluster(persona_id)"
    unpaired = ds.did_nco(log, outcome="y", nco="n", cluster="unit")
    assert pd.isna(unpaired.glance()["strata"].iloc[0])
    paired_se = res.tidy().set_index("measure").loc["did_additive", "std_error"]
    unpaired_se = unpaired.tidy().set_index("measure").loc["did_additive", "std_error"]
    assert paired_se < 0.5 * unpaired_se  # the persona components of Y - N cancel within pairs


def test_bootstrap_default_is_cheap_and_reproducible() -> None:
    u = ds.simulate_latent_world(equi_confounding=True, seed=15).sample_units(500, seed=16)
    a = ds.did_nco(u, outcome="y", nco="n", arm="t", scale="qq")
    b = ds.did_nco(u, outcome="y", nco="n", arm="t", scale="qq")
    g = a.glance().iloc[0]
    assert (g["seed"], g["n_boot"]) == (0, 2000)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())
    assert dict(a.provenance.data)["data_sha256"]
    assert a.provenance.seed == 0


# ----------------------------------------------------------------------------- several NCOs
def test_heterogeneity_statistic_matches_its_definition() -> None:
    """With two NCOs, d_1 - d_2 is the mean difference of N2 - N1, so the Wald statistic is its squared
    HC1 z statistic (statsmodels)."""
    d = proxy_units(400, np.random.default_rng(4), loadings=(1.0, 0.3))
    res = ds.did_nco(d, outcome="y", nco=["n1", "n2"], arm="t")
    t = res.tidy()
    het = t[t["measure"] == "heterogeneity"].iloc[0]
    x = sm.add_constant(d["t"])
    ref = sm.OLS(d["n2"] - d["n1"], x).fit(cov_type="HC1")
    assert het["statistic"] == pytest.approx(float(ref.tvalues["t"]) ** 2, rel=1e-8)
    assert het["df"] == 1
    per = t[t["measure"] == "did_additive"].set_index("nco")["estimate"]
    assert het["estimate"] == pytest.approx(abs(per["n1"] - per["n2"]), rel=1e-12)
    assert het["p_value"] < 1e-3
    assert any("equi-confounding fails" in x for x in res.diagnostics)


def test_heterogeneity_size_power_and_sensitivity_coverage() -> None:
    """Both NCOs valid: the test holds its size. One invalid (loading 0.3): the test rejects, the invalid NCO's
    interval under-covers, and the sensitivity interval (union) still covers the effect."""
    rng = np.random.default_rng(5)
    reps = 80
    rej_null = rej_alt = cover_bad = cover_sens = 0
    for _ in range(reps):
        ok = ds.did_nco(proxy_units(300, rng), outcome="y", nco=["n1", "n2"], arm="t").tidy().set_index("measure")
        rej_null += ok.loc["heterogeneity", "p_value"] < 0.05
        bad = ds.did_nco(proxy_units(300, rng, loadings=(1.0, 0.3)), outcome="y", nco=["n1", "n2"], arm="t").tidy()
        rej_alt += bad.loc[bad["measure"] == "heterogeneity", "p_value"].iloc[0] < 0.05
        row2 = bad[(bad["measure"] == "did_additive") & (bad["nco"] == "n2")].iloc[0]
        cover_bad += row2["conf_low"] <= 0.5 <= row2["conf_high"]
        sens = bad[bad["measure"] == "sensitivity"].iloc[0]
        cover_sens += sens["conf_low"] <= 0.5 <= sens["conf_high"]
    assert rej_null / reps <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)
    assert rej_alt / reps > 0.9
    assert cover_bad / reps < 0.5
    assert cover_sens / reps >= 0.95 - 3 * np.sqrt(0.05 * 0.95 / reps)


def test_sensitivity_interval_widens_by_the_violation_bound() -> None:
    d = proxy_units(300, np.random.default_rng(6))
    t0 = ds.did_nco(d, outcome="y", nco="n1", arm="t").tidy().set_index("measure")
    t1 = ds.did_nco(d, outcome="y", nco="n1", arm="t", violation=0.2).tidy().set_index("measure")
    assert "sensitivity" not in t0.index
    assert t1.loc["sensitivity", "conf_low"] == pytest.approx(t0.loc["did_additive", "conf_low"] - 0.2)
    assert t1.loc["sensitivity", "conf_high"] == pytest.approx(t0.loc["did_additive", "conf_high"] + 0.2)
    with pytest.raises(InvalidArgumentError, match="violation must be"):
        ds.did_nco(d, outcome="y", nco="n1", arm="t", violation=-1)


def test_bootstrap_scales_test_heterogeneity_with_the_joint_bootstrap() -> None:
    d = proxy_units(300, np.random.default_rng(7), loadings=(1.0, 0.2))
    t = ds.did_nco(d, outcome="y", nco=["n1", "n2"], arm="t", scale="location_scale", n_boot=300).tidy()
    het = t[t["measure"] == "heterogeneity"].iloc[0]
    assert het["df"] == 1
    assert np.isfinite(het["statistic"])


# ----------------------------------------------------------------------------- rules and degenerate inputs
def test_unknown_by_column_is_an_error() -> None:
    u = ds.simulate_latent_world(seed=1).sample_units(50, seed=2)
    with pytest.raises(InvalidArgumentError, match=r"by=\['wave'\] names \['wave'\]"):
        ds.did_nco(u, outcome="y", nco="n", arm="t", by="wave")
    log = ds.simulate_latent_world(seed=1).sample_log(40, seed=2)
    with pytest.raises(InvalidArgumentError, match="not a column"):
        ds.did_nco(log, outcome="y", nco="n", by=["iterations"])


@pytest.mark.parametrize("scale", ["additive", "location_scale", "qq"])
def test_constant_nco_or_outcome_gives_not_testable_rows(scale) -> None:
    """The issue: did_nco(scale='location_scale') raised ZeroDivisionError on a constant NCO and killed audit."""
    u = ds.simulate_latent_world(seed=1).sample_units(60, seed=2).assign(n=1.0)
    t = ds.did_nco(u, outcome="y", nco="n", arm="t", scale=scale, n_boot=100).tidy().set_index("measure")
    if scale == "location_scale":
        assert np.isnan(t.loc["did_location_scale", "estimate"])
        assert "constant in the reference arm" in t.loc["did_location_scale", "note"]
    else:  # a constant NCO has no contrast: bias 0, the DiD is the naive contrast
        assert t.loc["bias", "estimate"] == 0
        assert np.isnan(t.loc["bias", "p_value"])
        assert "constant" in t.loc["bias", "note"]
    # constant outcome, varying NCO: location_scale used to raise ZeroDivisionError (bootstrap SE exactly 0)
    c = ds.simulate_latent_world(seed=1).sample_units(60, seed=2).assign(y=2.0)
    t = ds.did_nco(c, outcome="y", nco="n", arm="t", scale=scale, n_boot=100).tidy().set_index("measure")
    assert t.loc["naive", "estimate"] == 0.0
    assert np.isnan(t.loc["naive", "p_value"])
    assert "constant" in t.loc["naive", "note"]


def test_degenerate_inputs_raise_named_errors_or_give_notes() -> None:
    u = ds.simulate_latent_world(seed=1).sample_units(40, seed=2)
    one = u.groupby("t").head(1)
    t = ds.did_nco(one, outcome="y", nco="n", arm="t", scale="qq").tidy()
    assert t["p_value"].isna().all()
    assert t["note"].str.startswith("not testable").all()
    with pytest.raises(InsufficientDataError, match="no unit has both"):
        ds.did_nco(u.assign(y=np.nan), outcome="y", nco="n", arm="t")
    huge = u.assign(y=u["y"] * 1e200)
    t = ds.did_nco(huge, outcome="y", nco="n", arm="t").tidy()
    assert t["note"].str.contains("too large").all()
    with pytest.raises(InvalidArgumentError, match="not numeric"):
        ds.did_nco(u.assign(n=u["n"].astype(str)), outcome="y", nco="n", arm="t")
    with pytest.raises(InvalidArgumentError, match="includes the outcome"):
        ds.did_nco(u, outcome="y", nco=["n", "y"], arm="t")
    for scale in ("additive", "location_scale", "qq"):  # small arms: only named errors or valid results
        for n in (2, 3):
            sub = u.groupby("t").head(n)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MonteCarloErrorWarning)
                    res = ds.did_nco(sub, outcome="y", nco="n", arm="t", scale=scale, n_boot=50)
            except DriftstatsError:
                continue
            assert len(res.tidy()) == 3


def test_degenerate_bootstrap_resamples_are_counted() -> None:
    """NCO varying in only one reference-arm unit: some resamples leave it constant (undefined location-scale map)."""
    u = ds.simulate_latent_world(seed=1).sample_units(6, seed=2)
    u["n"] = 0.0
    u.loc[u.index[0], "n"] = 1.0  # the first reference-arm unit
    with pytest.warns(MonteCarloErrorWarning, match=r"\d+ of 200 bootstrap resample"):
        res = ds.did_nco(u, outcome="y", nco="n", arm="t", scale="location_scale", n_boot=200)
    assert any("bootstrap resample" in d for d in res.diagnostics)
