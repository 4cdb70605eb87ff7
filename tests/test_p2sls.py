"""Proximal 2SLS: joint weak identification, the debiased (ivreg) convention, degenerate designs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import driftstats as ds
from driftstats.errors import (
    DriftstatsError,
    InsufficientDataError,
    InvalidArgumentError,
    WeakProxyWarning,
)

GOLD = Path(__file__).parent / "reference" / "p2sls" / "weak_id.csv"
CASES = {  # the generator's designs (tests/reference/generate/p2sls_weak_id.py)
    "rank1_2w2z": {"n": 800, "n_w": 2, "n_z": 2, "n_u": 1, "seed": 18},
    "full_2w2z": {"n": 800, "n_w": 2, "n_z": 2, "n_u": 2, "seed": 18},
    "full_3w4z": {"n": 600, "n_w": 3, "n_z": 4, "n_u": 3, "seed": 7},
    "one_w_2z": {"n": 300, "n_w": 1, "n_z": 2, "n_u": 1, "seed": 3},
}
# closed-form linear algebra (rtol 1e-8 in conventions.md); the rank-1 design's statistics are ~1e-3 and come
# out of near-cancellations, so they get 1e-6
RTOL = {"rank1_2w2z": 1e-6, "full_2w2z": 1e-8, "full_3w4z": 1e-8, "one_w_2z": 1e-8}


def golden() -> pd.Series:
    assert GOLD.exists(), f"missing golden file {GOLD}"
    return pd.read_csv(GOLD, comment="#").set_index(["case", "quantity"])["value"]


def fit(case: str, **kw):
    args = CASES[case]
    d = ds.simulate_proxy_data(**args)
    ws = " + ".join(f"w{i + 1}" for i in range(args["n_w"]))
    zs = " + ".join(f"z{i + 1}" for i in range(args["n_z"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakProxyWarning)
        return ds.p2sls(f"y ~ t + x | {ws} ~ {zs}", d, **kw)


@pytest.mark.reference
@pytest.mark.parametrize("case", sorted(CASES))
def test_first_stage_statistics_match_their_definitions(case) -> None:
    g = golden().loc[case]
    res = fit(case)
    fs = res.first_stage.set_index("proxy")
    for w in fs.index:
        assert fs.loc[w, "sw_f"] == pytest.approx(g[f"sw_f_{w}"], rel=RTOL[case])
        assert fs.loc[w, "partial_r2"] == pytest.approx(g[f"partial_r2_{w}"], rel=RTOL[case])
        assert fs.loc[w, "shea_r2"] == pytest.approx(g[f"shea_r2_{w}"], rel=RTOL[case] * 100)
    gl = res.glance().iloc[0]
    assert gl["cragg_donald_f"] == pytest.approx(g["cragg_donald_f"], rel=RTOL[case])
    assert gl["kp_f"] == pytest.approx(g["kp_f"], rel=RTOL[case] * 10)
    assert gl["sw_f"] == pytest.approx(fs["sw_f"].min())


@pytest.mark.reference
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("vcov", ["classic", "robust"])
def test_debiased_matches_linearmodels_debiased(case, vcov) -> None:
    g = golden().loc[case]
    row = fit(case, vcov=vcov, debiased=True).tidy().set_index("term").loc["t"]
    assert row["std_error"] == pytest.approx(g[f"se_t_{vcov}_debiased"], rel=1e-8)
    assert row["p_value"] == pytest.approx(g[f"p_t_{vcov}_debiased"], rel=1e-6)
    n, k = CASES[case]["n"], 3 + CASES[case]["n_w"]
    assert row["df"] == n - k
    plain = fit(case, vcov=vcov).tidy().set_index("term").loc["t"]
    assert row["std_error"] == pytest.approx(plain["std_error"] * np.sqrt(n / (n - k)), rel=1e-10)
    assert np.isnan(plain["df"])


def test_one_endogenous_identities() -> None:
    """With one W the Sanderson-Windmeijer F and the Cragg-Donald F are the first-stage F."""
    res = fit("one_w_2z")
    fs = res.first_stage.iloc[0]
    assert fs["sw_f"] == pytest.approx(fs["partial_f"], rel=1e-12)
    assert res.glance()["cragg_donald_f"].iloc[0] == pytest.approx(fs["partial_f"], rel=1e-10)
    assert fs["sw_df_num"] == fs["df_num"] == 2


def test_joint_under_identification_warns_although_each_f_is_large() -> None:
    """The issue's design: two W and two Z driven by one scalar U. Per-proxy F ~ 180-500, no warning in 400 runs
    before; the joint statistics flag every run. A design with one confounder per W never warns."""
    rng = np.random.default_rng(40)
    runs, warned, warned_strong, min_f, sw = 30, 0, 0, [], []
    for _ in range(runs):
        for n_u in (1, 2):
            d = ds.simulate_proxy_data(800, n_u=n_u, seed=rng)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = ds.p2sls("y ~ t + x | w1 + w2 ~ z1 + z2", d)
            hit = any(issubclass(w.category, WeakProxyWarning) for w in caught)
            if n_u == 1:
                warned += hit
                min_f.append(res.glance()["first_stage_f"].iloc[0])
                sw.append(res.glance()["sw_f"].iloc[0])
            else:
                warned_strong += hit
    assert min(min_f) > 100  # each W alone looks strong
    assert np.median(sw) < 2  # under rank deficiency the conditional F is ~ F(1, n - 5)
    assert warned == runs
    assert warned_strong == 0


@pytest.mark.slow
def test_weak_identification_warning_rates_400_runs() -> None:
    rng = np.random.default_rng(41)
    rates = {}
    for n_u in (1, 2):
        hits = 0
        for _ in range(400):
            d = ds.simulate_proxy_data(800, n_u=n_u, seed=rng)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ds.p2sls("y ~ t + x | w1 + w2 ~ z1 + z2", d)
            hits += any(issubclass(w.category, WeakProxyWarning) for w in caught)
        rates[n_u] = hits / 400
    assert rates == {1: 1.0, 2: 0.0}


def test_warning_message_names_the_joint_statistic() -> None:
    d = ds.simulate_proxy_data(800, seed=1)
    with pytest.warns(WeakProxyWarning, match="Sanderson-Windmeijer conditional F .* Kleibergen-Paap rk Wald F"):
        res = ds.p2sls("y ~ t + x | w1 + w2 ~ z1 + z2", d)
    assert any("jointly weak" in x for x in res.diagnostics)
    with pytest.warns(WeakProxyWarning, match="Cragg-Donald F"):
        ds.p2sls("y ~ t + x | w1 + w2 ~ z1 + z2", d, vcov="classic")


def test_wald_rows_and_provenance() -> None:
    d = ds.simulate_proxy_data(500, n_u=2, seed=3)
    res = ds.p2sls("y ~ t + x | w1 + w2 ~ z1 + z2", d)
    r = res.tidy().iloc[0]
    assert r["statistic"] == pytest.approx(r["estimate"] / r["std_error"])
    assert r["conf_high"] - r["estimate"] == pytest.approx(1.959963984540054 * r["std_error"])
    assert dict(res.provenance.data)["data_sha256"]
    with pytest.raises(InvalidArgumentError, match="debiased must be True or False"):
        ds.p2sls("y ~ t + x | w1 ~ z1", d, debiased="yes")


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda d: d.assign(w1=1.0), InsufficientDataError, r"\['w1'\] is constant"),
        (lambda d: d.assign(z2=3.0), InsufficientDataError, r"\['z2'\] is constant"),
        (lambda d: d.assign(t=1.0), InsufficientDataError, r"\['t'\] is constant"),
        (lambda d: d.assign(z2=2 * d["z1"] + 1), InsufficientDataError, "collinear"),
        (lambda d: d.assign(w2=d["w1"] - d["x"]), InsufficientDataError, "collinear"),
        (lambda d: d.assign(z1=np.random.default_rng(0).normal(size=len(d)),
                            z2=np.random.default_rng(1).normal(size=len(d)), w1=d["x"] * 0 + np.arange(len(d)) % 2),
         None, None),
        (lambda d: d.assign(y=np.nan), InsufficientDataError, "0 complete rows"),
        (lambda d: d.head(4), InsufficientDataError, "complete rows"),
        (lambda d: d.assign(y=d["y"] * 1e200), InvalidArgumentError, "rescale"),
        (lambda d: d.assign(x=np.inf), InvalidArgumentError, "infinite"),
        (lambda d: d.assign(w1="a"), InvalidArgumentError, "not numeric"),
    ],
)
def test_degenerate_designs_raise_named_errors(change, error, match) -> None:
    d = change(ds.simulate_proxy_data(200, n_u=2, seed=5))
    if error is None:  # irrelevant proxies: a valid result with a weak-proxy warning
        with pytest.warns(WeakProxyWarning):
            res = ds.p2sls("y ~ t + x | w1 + w2 ~ z1 + z2", d)
        assert np.isfinite(res.tidy()["estimate"]).all()
        return
    with pytest.raises(error, match=match):
        ds.p2sls("y ~ t + x | w1 + w2 ~ z1 + z2", d)
    assert issubclass(error, DriftstatsError)
