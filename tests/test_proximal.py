"""Categorical proximal identification: the vectorised bootstrap, singular resamples, pairing, degenerate inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import driftstats as ds
from driftstats.errors import InsufficientDataError, InvalidArgumentError, MonteCarloErrorWarning


def reference_means(frame: pd.DataFrame, y="y", t="t", w="n", z="z") -> tuple[float, float]:
    """Miao et al.'s formula written out with pandas crosstabs (no covariates): r_t M_t^-1 p_W."""
    p_w = frame[w].value_counts(normalize=True).sort_index().to_numpy()
    out = []
    for tv in (1, 0):
        sub = frame[frame[t] == tv]
        m = pd.crosstab(sub[w], sub[z], normalize="columns").to_numpy()
        r = sub.groupby(z)[y].mean().sort_index().to_numpy()
        out.append(float(r @ np.linalg.solve(m, p_w)))
    return out[0], out[1]


def test_vectorised_formula_equals_the_formula_written_out() -> None:
    w = ds.simulate_latent_world(n_types=3, nco_levels=3, seed=5)
    u = w.sample_units(800, seed=1)
    res = ds.proximal_discrete(u, outcome="y", nco="n", nce="z", treatment="t", n_boot=0).tidy()
    m1, m0 = reference_means(u)
    got = res.set_index(["arm", "measure"])["estimate"]
    assert got[("1", "mean_do")] == pytest.approx(m1, rel=1e-10)
    assert got[("0", "mean_do")] == pytest.approx(m0, rel=1e-10)
    # a resample given as multiplicities equals the formula on the expanded rows
    from driftstats.correct.proximal import _codes, _means_batch

    rng = np.random.default_rng(2)
    counts = rng.multinomial(len(u), np.full(len(u), 1 / len(u)), size=3)
    wl, zl = np.unique(u["n"]), np.unique(u["z"])
    wi, zi, st = _codes(u, "n", "z", [], wl, zl)
    b1, b0, bad = _means_batch(counts.astype(float), u["y"].to_numpy(float), u["t"].to_numpy(float), wi, zi, st, 3)
    for b in range(3):
        expanded = u.iloc[np.repeat(np.arange(len(u)), counts[b])]
        assert (b1[b], b0[b]) == pytest.approx(reference_means(expanded), rel=1e-10)
    assert not bad.any()


def test_singular_resamples_are_counted_and_reported() -> None:
    """Small samples: some resamples leave a Z level empty in an arm. They used to be skipped silently."""
    w = ds.simulate_latent_world(n_types=3, nco_levels=3, seed=5)
    u = w.sample_units(40, seed=3)
    with pytest.warns(MonteCarloErrorWarning, match=r"\d+ of 400 bootstrap resample\(s\) had a singular M_t"):
        res = ds.proximal_discrete(u, outcome="y", nco="n", nce="z", treatment="t", n_boot=400, max_singular=0.5)
    g = res.glance().iloc[0]
    assert 0 < g["n_dropped"] <= 200
    assert any("singular M_t" in d for d in res.diagnostics)
    with pytest.warns(MonteCarloErrorWarning, match="no interval is reported"):
        strict = ds.proximal_discrete(u, outcome="y", nco="n", nce="z", treatment="t", n_boot=400, max_singular=0.0)
    t = strict.tidy()
    assert t["conf_low"].isna().all()
    assert t["note"].str.startswith("no interval").all()
    assert np.isfinite(t["estimate"]).all()  # the point estimate is still reported


def test_defaults_pairing_and_provenance() -> None:
    w = ds.simulate_latent_world(n_types=3, nco_levels=3, seed=5)
    u = w.sample_units(400, seed=4)
    with warnings.catch_warnings():  # this world's M_t is ill-conditioned: a resample or two may be singular
        warnings.simplefilter("ignore", MonteCarloErrorWarning)
        res = ds.proximal_discrete(u, outcome="y", nco="n", nce="z", treatment="t")
    g = res.glance().iloc[0]
    assert (g["seed"], g["n_boot"]) == (0, 2000)
    assert g["n_dropped"] <= 20
    assert pd.isna(g["strata"])
    assert dict(res.provenance.data)["data_sha256"]
    paired = u.assign(persona_id=[f"p{i % 400}" for i in range(len(u))])  # persona i in both arms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MonteCarloErrorWarning)
        pr = ds.proximal_discrete(paired, outcome="y", nco="n", nce="z", treatment="t", n_boot=200)
    assert pr.glance()["strata"].iloc[0] == "persona_id"
    assert any("paired design detected" in d for d in pr.diagnostics)


def test_degenerate_inputs_raise_named_errors() -> None:
    w = ds.simulate_latent_world(n_types=3, nco_levels=3, seed=5)
    u = w.sample_units(300, seed=5)
    with pytest.raises(InvalidArgumentError, match="single value"):
        ds.proximal_discrete(u.assign(n=0, z=1), outcome="y", nco="n", nce="z", treatment="t", n_boot=0)
    with pytest.raises(InsufficientDataError, match="no unit has all"):
        ds.proximal_discrete(u.assign(y=np.nan), outcome="y", nco="n", nce="z", treatment="t", n_boot=0)
    with pytest.raises(InvalidArgumentError, match="must be 0/1"):
        ds.proximal_discrete(u.assign(t=u["t"] * 2), outcome="y", nco="n", nce="z", treatment="t", n_boot=0)
    rng = np.random.default_rng(0)
    indep = u.assign(n=rng.integers(0, 3, len(u)), z=np.repeat([0, 1, 2], len(u) // 3))
    indep["n"] = indep["z"]  # W = Z exactly within each arm: M_t = I, fine; now make M_t singular:
    indep.loc[indep["z"] == 2, "n"] = 1
    indep.loc[indep.index[:3], "n"] = 2
    with pytest.raises(InsufficientDataError, match="singular"):
        ds.proximal_discrete(indep, outcome="y", nco="n", nce="z", treatment="t", n_boot=0)
    const = ds.proximal_discrete(u.assign(y=1.0), outcome="y", nco="n", nce="z", treatment="t", n_boot=50)
    assert const.tidy().set_index("measure").loc["ate", "estimate"] == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(InvalidArgumentError, match="max_singular"):
        ds.proximal_discrete(u, outcome="y", nco="n", nce="z", treatment="t", max_singular=1.5)


def test_mixed_type_proxy_is_a_named_error() -> None:
    """A proxy column mixing text and numbers has no level order: InvalidArgumentError (was TypeError)."""
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"y": rng.normal(size=40), "t": np.repeat([0.0, 1.0], 20), "w": rng.integers(0, 2, 40).astype(object),
                      "z": rng.integers(0, 2, 40)})
    d.loc[3, "w"] = "x"
    with pytest.raises(InvalidArgumentError, match="mixes values of types"):
        ds.proximal_discrete(d, outcome="y", nco="w", nce="z", treatment="t", n_boot=0)


def test_no_interval_when_the_estimate_lies_outside_its_bootstrap_distribution() -> None:
    """A near-singular M_t on 10 units: the percentile interval excluded the estimate (a fuzz finding)."""
    from tests.fuzz.harness import Recipe, build_input

    frame = build_input(Recipe(kind="frame", base="frame", size=10, seed=1, mutations=()))
    with pytest.warns(MonteCarloErrorWarning):
        r = ds.proximal_discrete(frame, outcome="y", nco="wd", nce="zd", treatment="t", n_boot=20)
    t = r.tidy()
    lo, hi, est = t["conf_low"].to_numpy(float), t["conf_high"].to_numpy(float), t["estimate"].to_numpy(float)
    shown = np.isfinite(lo) & np.isfinite(hi)
    assert ((lo[shown] <= est[shown]) & (est[shown] <= hi[shown])).all()
    hidden = t[~shown]
    assert len(hidden) >= 1
    assert hidden["note"].str.contains("outside the central 95% of its bootstrap distribution").all()
    assert any("not reported" in d for d in r.diagnostics)
