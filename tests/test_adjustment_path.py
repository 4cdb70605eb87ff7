"""adjustment_path on simulated adjustment studies with known truth (methods 4.1).

Value tests against the simulator's truth (targeted path: drift gone, effect on the true effect;
untargeted: drift and bias remain), against direct recomputation from the log (iteration 0
shared, reference difference, TVD to the personas' true values), and on constructed paths
(non-monotone, an NCO in the spec).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import driftstats as ds
from driftstats.errors import InsufficientDataError, InvalidArgumentError

pytestmark = pytest.mark.filterwarnings("ignore::driftstats.errors.MonteCarloErrorWarning")


@pytest.fixture(scope="module")
def sim():
    log, truth = ds.simulate_adjustment_log(n_personas=250, seed=11)
    return log, truth, ds.adjustment_path(log, n_perm=499, n_boot=500, seed=3)


def _last(frame: pd.DataFrame, path: str) -> pd.DataFrame:
    sub = frame[frame["path"] == path]
    return sub[sub["iteration"] == sub["iteration"].max()]


def test_targeted_path_removes_drift_and_recovers_the_true_effect(sim) -> None:
    _, truth, res = sim
    last = _last(res.drift, "targeted")
    assert len(last) == 3
    assert last["diagnostic"].all()
    assert (last["p_value_fwer"] >= 0.05).all()
    assert (last["excess_low"] == 0).all()  # the excess interval includes 0: drift within noise
    first = res.drift.query("path == 'targeted' and iteration == 0")
    assert (first["p_value_fwer"] < 0.05).all()
    tau = truth.query("path == 'targeted' and iteration == 2 and quantity == 'true_effect'")["value"].iloc[0]
    e = _last(res.effects, "targeted").iloc[0]
    assert e["conf_low"] <= tau <= e["conf_high"]
    e0 = res.effects.query("path == 'targeted' and iteration == 0").iloc[0]
    assert not e0["conf_low"] <= tau <= e0["conf_high"]  # the base contrast is biased by drift


def test_untargeted_path_keeps_drift_and_bias(sim) -> None:
    _, truth, res = sim
    last = _last(res.drift, "untargeted")
    assert (last["excess_low"] > 0).all()  # the excess interval excludes 0 on every NCO
    assert (last["p_value_fwer"] < 0.05).all()
    tau = truth.query("path == 'untargeted' and iteration == 2 and quantity == 'true_effect'")["value"].iloc[0]
    e = _last(res.effects, "untargeted").iloc[0]
    assert e["conf_low"] > tau
    exact = truth.query("path == 'untargeted' and iteration == 2 and quantity == 'expected_contrast'")["value"].iloc[0]
    assert e["conf_low"] <= exact <= e["conf_high"]


def test_findings_say_drift_fell_on_targeted_and_not_on_untargeted(sim) -> None:
    _, _, res = sim
    p = res.paths.set_index("path")
    assert bool(p.loc["targeted", "drift_fell"])
    assert not bool(p.loc["untargeted", "drift_fell"])
    assert bool(p.loc["targeted", "effect_moved"])
    assert not bool(p.loc["untargeted", "effect_moved"])
    assert p.loc["targeted", "drift_change"] < -p.loc["targeted", "drift_noise"]
    assert p.loc["targeted", "noise_from"] == "bootstrap"
    lines = {line.split(" (")[0]: line for line in res.lines}
    assert "drift fell beyond its noise" in lines["Path targeted"]
    assert "no diagnostic NCO drifts" in lines["Path targeted"]
    assert "drift did not fall beyond its noise" in lines["Path untargeted"]
    assert "3 of 3 NCOs still drift at iteration 2" in lines["Path untargeted"]
    assert "ideology" in lines["Path targeted"]
    assert "(the real respondents' values) follow their design " \
        "distribution" in lines["Path targeted"]
    text = res.summary().as_text()
    assert lines["Path targeted"] in text
    assert res.audit_line().startswith("Adjustment iterations: drift fell beyond its noise on targeted; it did not "
                                       "fall beyond its noise on untargeted.")


def test_drift_rows_are_nco_test_numbers_and_iteration_zero_is_shared(sim) -> None:
    log, _, res = sim
    d = res.drift
    zero = d[d["iteration"] == 0]
    a = zero[zero["path"] == "targeted"].drop(columns="path").reset_index(drop=True)
    b = zero[zero["path"] == "untargeted"].drop(columns="path").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    # the plug-in TVD of one cell, recomputed from the answers
    ans = log.to_pandas()
    sub = ans[(ans["run_id"] == "sim-model:targeted:1") & (ans["item"] == "area")]
    shares = sub.groupby("arm")["response"].value_counts(normalize=True).unstack(fill_value=0)
    tvd = 0.5 * float(np.abs(shares.loc["treatment"] - shares.loc["control"]).sum())
    row = d.query("path == 'targeted' and iteration == 1 and nco == 'area'").iloc[0]
    assert row["estimate"] == pytest.approx(tvd, abs=1e-12)
    assert row["excess"] == pytest.approx(max(row["estimate"] - row["null_mean"], 0.0), abs=1e-12)


def test_reference_comparison(sim) -> None:
    _, _, res = sim
    e = res.effects
    ref = e[e["path"] == "reference"].iloc[0]
    assert np.isnan(ref["vs_reference"])
    own = e[e["path"] != "reference"]
    np.testing.assert_allclose(own["vs_reference"], own["estimate"] - ref["estimate"], rtol=0, atol=1e-12)
    half = 1.959963984540054 * np.sqrt(own["std_error"] ** 2 + ref["std_error"] ** 2)
    np.testing.assert_allclose(own["vs_reference_high"] - own["vs_reference"], half, rtol=1e-9)
    t, u = _last(e, "targeted").iloc[0], _last(e, "untargeted").iloc[0]
    assert t["vs_reference_low"] <= 0 <= t["vs_reference_high"]
    assert u["vs_reference_low"] > 0
    assert any("full-information reference spec (a reference, not ground truth)" in line for line in res.lines)
    log, _ = ds.simulate_adjustment_log(n_personas=40, n_nco=1, reference=False, seed=2)
    plain = ds.adjustment_path(log, n_perm=99, n_boot=0)
    assert plain.effects["vs_reference"].isna().all()
    assert not any("reference spec" in line for line in plain.lines)


def test_truth_comparison_against_the_personas_true_values(sim) -> None:
    log, truth, res = sim
    tr = res.truth
    zero = tr[(tr["path"] == "targeted") & (tr["iteration"] == 0)].set_index(["nco", "arm"])
    for nco in ("religiosity", "area", "news"):
        assert zero.loc[(nco, "treatment"), "estimate"] > zero.loc[(nco, "control"), "estimate"]
        assert bool(zero.loc[(nco, "control"), "closest"])
        exact = truth.query("path == 'targeted' and iteration == 0 and quantity == 'tvd_to_population' and "
                            "arm == 'treatment' and item == @nco")["value"].iloc[0]
        assert abs(zero.loc[(nco, "treatment"), "estimate"] - exact) < 0.12
    last = _last(tr, "targeted")
    assert (last["vs_reference"].dropna().abs() < 0.1).all()
    # one cell recomputed: answers of the treatment arm at iteration 0 against the same units' true values
    ans = log.to_pandas()
    pers = log.personas
    sub = ans[(ans["run_id"] == "sim-model:base") & (ans["arm"] == "treatment") & (ans["item"] == "news")]
    true = pers[(pers["attribute"] == "news") & ~pers["specified"].astype(bool)].set_index("unit_id")["value"]
    opts = log.item("news").options
    a = sub["response"].value_counts(normalize=True).reindex(opts, fill_value=0)
    b = true.loc[sub["unit_id"]].value_counts(normalize=True).reindex(opts, fill_value=0)
    assert zero.loc[("news", "treatment"), "estimate"] == pytest.approx(0.5 * float(np.abs(a - b).sum()), abs=1e-12)
    agree = float((sub.set_index("unit_id")["response"] == true.loc[sub["unit_id"]]).mean())
    assert zero.loc[("news", "treatment"), "agreement"] == pytest.approx(agree, abs=1e-12)
    ok = last.dropna(subset=["conf_low_approx"])
    assert len(ok)
    assert (ok["conf_low_approx"] <= ok["conf_high_approx"]).all()


def test_spec_and_stops_come_from_the_tables(sim) -> None:
    log, _, res = sim
    st = res.stops.set_index(["path", "iteration"])
    assert json.loads(st.loc[("targeted", 1), "added"]) == ["ideology"]
    assert json.loads(st.loc[("untargeted", 2), "added"]) == ["season"]
    assert st.loc[("targeted", 2), "stopped_by"] == "max_iterations"
    assert len(res.spec) == len(log.adjustments)
    assert set(res.spec.columns) == set(log.adjustments.columns)
    assert res.distributions.groupby(["model", "path", "iteration", "arm", "item"])["share"].sum().round(12).eq(1).all()


def _frames(log: ds.SimLog) -> dict[str, pd.DataFrame]:
    return {"answers": log.to_pandas(), "items": log.items, "personas": log.personas, "arms": log.arms,
            "iterations": log.iterations, "adjustments": log.adjustments}


def _zigzag(log: ds.SimLog) -> ds.SimLog:
    """A path 'zigzag': base run, then the targeted run (drift gone), then the base run again (drift back)."""
    t = _frames(log)
    ans, pers = t["answers"], t["personas"]
    base = ans[ans["run_id"] == "sim-model:base"].copy()
    base["unit_id"] = "zz-" + base["unit_id"].astype(str)
    base["run_id"], base["iteration"] = "sim-model:zigzag:2", 2
    p = pers[pers["unit_id"].isin(ans.loc[ans["run_id"] == "sim-model:base", "unit_id"])].copy()
    p["unit_id"] = "zz-" + p["unit_id"].astype(str)
    it = t["iterations"]
    rows = it[(it["path"] == "targeted") & (it["iteration"] <= 1)].copy()
    rows["path"] = "zigzag"
    two = rows.iloc[[-1]].copy()
    two["iteration"], two["run_id"], two["spec"] = 2, "sim-model:zigzag:2", json.dumps(["age", "pet"])
    t["iterations"] = pd.concat([it, rows, two], ignore_index=True)
    t["answers"] = pd.concat([ans, base], ignore_index=True)
    t["personas"] = pd.concat([pers, p], ignore_index=True)
    return ds.read_log(t)


def test_non_monotone_path_is_detected_and_located(sim) -> None:
    log, _, res0 = sim
    res = ds.adjustment_path(_zigzag(log), n_perm=499, n_boot=500, seed=3)
    p = res.paths.set_index("path")
    assert bool(p.loc["zigzag", "non_monotone"])
    assert p.loc["zigzag", "where"] == ("drift fell at iteration 1, rose at iteration 2; the effect moved down at "
                                        "iteration 1, up at iteration 2")
    assert not bool(p.loc["targeted", "non_monotone"])
    assert pd.isna(p.loc["targeted", "where"])
    line = next(ln for ln in res.lines if ln.startswith("Path zigzag"))
    assert "Non-monotone: drift fell at iteration 1, rose at iteration 2" in line
    assert "No reversal beyond noise" in next(ln for ln in res.lines if ln.startswith("Path targeted"))
    assert "non-monotone: zigzag" in res.audit_line()
    # the other paths' numbers do not depend on the added path
    pd.testing.assert_frame_equal(res.effects[res.effects["path"] != "zigzag"].reset_index(drop=True),
                                  res0.effects.reset_index(drop=True))


def test_an_nco_in_the_spec_is_not_a_diagnostic(sim) -> None:
    log, _, _ = sim
    t = _frames(log)
    it = t["iterations"].copy()
    sel = (it["path"] == "targeted") & (it["iteration"] == 2)
    it.loc[sel, "spec"] = json.dumps(["age", "ideology", "pet", "area"])
    t["iterations"] = it
    res = ds.adjustment_path(ds.read_log(t), n_perm=199, n_boot=200)
    d = res.drift.query("path == 'targeted' and iteration == 2").set_index("nco")
    assert not bool(d.loc["area", "diagnostic"])
    assert pd.isna(d.loc["area", "note"])  # it carries its test; it is only not a diagnostic here
    assert d.drop(index="area")["diagnostic"].all()
    assert int(res.paths.set_index("path").loc["targeted", "n_nco"]) == 2
    assert any("fidelity checks, not diagnostics" in x and "targeted/2" in x for x in res.diagnostics)
    flags = res.drift.query("path == 'targeted' and nco == 'area'")["diagnostic"].tolist()
    assert flags == [True, True, False]


def test_two_models_each_with_their_own_iteration_zero() -> None:
    log, truth = ds.simulate_adjustment_log(n_personas=60, models=("m1", "m2"), drift=(1.5, 0.0), n_nco=2, seed=5)
    res = ds.adjustment_path(log, n_perm=199, n_boot=200)
    assert len(res.paths) == 4
    z = res.drift[res.drift["iteration"] == 0]
    m1 = z[(z["model"] == "m1") & (z["path"] == "targeted")]["estimate"].to_numpy()
    m2 = z[(z["model"] == "m2") & (z["path"] == "targeted")]["estimate"].to_numpy()
    assert not np.allclose(m1, m2)
    assert truth.query("model == 'm2' and quantity == 'nco_tvd'")["value"].max() == 0  # no drift in m2
    p = res.paths.set_index(["model", "path"])
    assert not bool(p.loc[("m2", "targeted"), "drift_fell"])
    assert all(line.startswith("Model m") for line in res.lines)
    assert res.glance()["n_groups"].iloc[0] == len(log.iterations)


def test_frames_are_copies_and_columns_are_fixed(sim) -> None:
    _, _, res = sim
    d = res.drift
    d.loc[0, "estimate"] = -1.0
    assert res.drift.loc[0, "estimate"] != -1.0
    assert list(res.drift.columns)[:15] == ["model", "path", "iteration", "nco", "arm", "reference", "measure",
                                            "estimate", "excess", "excess_low", "excess_high", "conf_low", "conf_high",
                                            "null_mean", "null_q95"]
    for col in ("p_value", "n_1", "n_0"):
        assert col in res.drift
    assert list(res.effects.columns)[:6] == ["model", "path", "iteration", "arm", "reference", "outcome"]
    assert {"estimate", "conf_low", "conf_high", "p_value", "vs_reference"} <= set(res.effects.columns)
    assert list(res.distributions.columns) == ["model", "path", "iteration", "arm", "item", "role", "option",
                                               "position", "share", "n"]
    t = res.tidy()
    assert set(t["measure"]) == {"tvd", "mean_diff"}
    assert list(t.columns[1:4]) == ["model", "path", "iteration"]


def test_a_log_without_iterations_is_a_named_error() -> None:
    log = ds.simulate_study_log(n_per_arm=30, n_placebo=0, seed=1)
    with pytest.raises(InvalidArgumentError, match=r"no iterations rows.*driftstats simulate.*\[adjustment\] section"):
        ds.adjustment_path(log)


def test_argument_errors(sim) -> None:
    log, _, _ = sim
    with pytest.raises(InvalidArgumentError, match="margin must be"):
        ds.adjustment_path(log, margin=0.0)
    with pytest.raises(InvalidArgumentError, match="n_perm must be"):
        ds.adjustment_path(log, n_perm=5)
    with pytest.raises(InvalidArgumentError, match="not in this log"):
        ds.adjustment_path(log, outcome="nope")
    with pytest.raises(InvalidArgumentError, match="has no iterations rows; studies"):
        ds.adjustment_path(log, study="other")
    with pytest.raises(InvalidArgumentError, match="also listed as an NCO"):
        ds.adjustment_path(log, nco=["support"])
    t = _frames(log)
    t["items"] = t["items"].assign(role=lambda f: f["role"].where(f["role"] != "nco", "other"))
    t["answers"] = t["answers"].assign(role=lambda f: f["role"].where(f["role"] != "nco", "other"))
    with pytest.raises(InsufficientDataError, match="needs diagnostic NCOs"):
        ds.adjustment_path(ds.read_log(t))


def test_simulator_arguments_and_truth() -> None:
    with pytest.raises(InvalidArgumentError, match="n_iterations must be between 1 and 4"):
        ds.simulate_adjustment_log(n_iterations=9)
    with pytest.raises(InvalidArgumentError, match="one per model"):
        ds.simulate_adjustment_log(models=("a", "b"), drift=(1.0, 2.0, 3.0))
    log, truth = ds.simulate_adjustment_log(n_personas=10, n_iterations=1, reference=False, seed=0)
    assert set(log.iterations["path"]) == {"targeted", "untargeted"}
    b = truth.query("quantity == 'bias'").set_index(["path", "iteration"])["value"]
    assert abs(b.loc[("targeted", 1)]) < 1e-12
    assert b.loc[("untargeted", 1)] > 0.3
    tv = truth.query("quantity == 'nco_tvd' and iteration == 1").groupby("path")["value"].max()
    assert tv["targeted"] == 0
    assert tv["untargeted"] > 0.1
