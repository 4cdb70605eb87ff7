"""Runs are never pooled by default: every verb's ``by="auto"`` keeps models, run ids and iterations apart.

Known truth: two models in one log, one whose NCOs drift (TVD 0.3 by construction) and one whose
NCOs do not. Pooled, the second model would inherit the first's drift; per run, each model's
numbers are exactly those of its own log.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import driftstats as ds
from driftstats._groups import resolve_by
from driftstats.errors import InvalidArgumentError

pytestmark = pytest.mark.filterwarnings("ignore::driftstats.errors.MonteCarloErrorWarning")


def _tables(log: ds.SimLog, model: str) -> dict[str, pd.DataFrame]:
    a = log.to_pandas().assign(model=model)
    a["unit_id"] = model + "/" + a["unit_id"].astype(str)
    a["persona_id"] = np.where(a["persona_id"].isna(), None, model + "/" + a["persona_id"].astype(str))
    p = log.personas.copy()
    p["unit_id"] = model + "/" + p["unit_id"].astype(str)
    return {"answers": a, "personas": p, "items": log.items, "arms": log.arms}


def _combine(*parts: dict[str, pd.DataFrame]) -> ds.SimLog:
    return ds.read_log({
        "answers": pd.concat([p["answers"] for p in parts], ignore_index=True),
        "personas": pd.concat([p["personas"] for p in parts], ignore_index=True),
        "items": parts[0]["items"], "arms": parts[0]["arms"],
    })


@pytest.fixture(scope="module")
def nco_logs():
    drifting = ds.simulate_nco_log(n_per_arm=150, tvd=0.3, n_nco=2, seed=3)
    still = ds.simulate_nco_log(n_per_arm=150, tvd=0.0, n_nco=2, seed=4)
    return drifting, still, _combine(_tables(drifting, "m-drift"), _tables(still, "m-still"))


@pytest.fixture(scope="module")
def study_logs():
    a = ds.simulate_study_log(n_per_arm=80, n_placebo=2, drift=0.9, seed=5)
    b = ds.simulate_study_log(n_per_arm=80, n_placebo=2, drift=0.0, effect=0.0, seed=6)
    return a, b, _combine(_tables(a, "m-a"), _tables(b, "m-b"))


def test_auto_groups_by_the_columns_that_vary(nco_logs) -> None:
    drifting, _, both = nco_logs
    assert resolve_by("auto", log=drifting, columns=drifting.columns()) == ("iteration",)
    assert resolve_by("auto", log=both, columns=both.columns()) == ("model", "iteration")
    with pytest.raises(InvalidArgumentError, match="not a column"):
        ds.nco_test(both, by="modle", n_perm=99, n_boot=0)


def test_nco_test_keeps_each_model_apart_and_pooling_is_opt_in(nco_logs) -> None:
    drifting, still, both = nco_logs
    per_run = ds.nco_test(both, n_perm=199, n_boot=0).tidy()
    assert set(per_run["model"]) == {"m-drift", "m-still"}
    for model, own in (("m-drift", drifting), ("m-still", still)):
        mine = per_run[per_run["model"] == model].set_index("term")["estimate"].sort_index()
        alone = ds.nco_test(own, n_perm=199, n_boot=0).tidy().set_index("term")["estimate"].sort_index()
        np.testing.assert_allclose(mine.to_numpy(), alone.to_numpy(), rtol=0, atol=1e-12)
    still_rows = per_run[per_run["model"] == "m-still"]
    assert (still_rows["p_value_fwer"] > 0.05).all()  # the model without drift is not blamed for the other's
    pooled = ds.nco_test(both, by=(), n_perm=199, n_boot=0).tidy()
    assert "model" not in pooled
    assert len(pooled) == 2
    assert not np.allclose(pooled.sort_values("term")["estimate"].to_numpy(),
                           still_rows.sort_values("term")["estimate"].to_numpy())


def test_equivalence_follows_the_same_groups(nco_logs) -> None:
    _, still, both = nco_logs
    eq = ds.equivalence_test(both, margin=0.2)
    t = eq.tidy()
    assert set(t["model"]) == {"m-drift", "m-still"}
    alone = ds.equivalence_test(still, margin=0.2).tidy()
    mine = t[t["model"] == "m-still"]
    np.testing.assert_allclose(np.sort(mine["upper_bound"].to_numpy(float)),
                               np.sort(alone["upper_bound"].to_numpy(float)), rtol=0, atol=1e-12)


def test_effect_fidelity_did_and_calibration_keep_models_apart(study_logs) -> None:
    a, b, both = study_logs
    eff = ds.effect(both, tvd=False).tidy()
    assert set(eff["model"]) == {"m-a", "m-b"}
    for model, own in (("m-a", a), ("m-b", b)):
        mine = eff[(eff["model"] == model) & (eff["measure"] == "mean_diff")].sort_values("arm")
        alone = ds.effect(own, tvd=False).tidy()
        alone = alone[alone["measure"] == "mean_diff"].sort_values("arm")
        np.testing.assert_allclose(mine["estimate"].to_numpy(float), alone["estimate"].to_numpy(float), atol=1e-12)
        np.testing.assert_allclose(mine["std_error"].to_numpy(float), alone["std_error"].to_numpy(float), atol=1e-12)
    fid = ds.fidelity(both).tidy()
    assert set(fid["model"]) == {"m-a", "m-b"}
    own = ds.fidelity(b).tidy()
    mine = fid[fid["model"] == "m-b"]
    np.testing.assert_allclose(np.sort(mine["estimate"].dropna().to_numpy(float)),
                               np.sort(own["estimate"].dropna().to_numpy(float)), atol=1e-12)
    did = ds.did_nco(both, outcome="support_tax", nco="education", n_boot=0).tidy()
    assert set(did["model"]) == {"m-a", "m-b"}
    cal = ds.calibrate_effect(both).tidy()
    assert set(cal["model"]) == {"m-a", "m-b"}


def test_the_audit_tests_each_run_and_says_which(study_logs) -> None:
    _, _, both = study_logs
    a = ds.audit(both, n_perm=199, n_boot=0)
    assert a.outcome("nco").result.by == ("model", "iteration")
    assert "worst case over 2 runs" in a.verdict.bottom_line
    assert any(line.startswith("Model m-a, iteration 0, in the sampled answers") for line in a.verdict.lines)
    assert any(line.startswith("Model m-b, iteration 0, in the sampled answers") for line in a.verdict.lines)


def test_adjustment_audit_concludes_on_each_paths_last_spec() -> None:
    log, _ = ds.simulate_adjustment_log(n_personas=120, models=("ma", "mb"), drift=(1.5, 1.5), n_nco=2,
                                        n_iterations=2, seed=4)
    a = ds.audit(log, n_perm=199, n_boot=0, seed=1)
    by = a["nco"].by
    assert by == ("model", "run_id", "iteration")
    n_runs = len(a["nco"].tidy()[list(by)].drop_duplicates())
    finals = a.log.iterations.query("path != 'reference'").sort_values("iteration").groupby(
        ["model", "path"]).tail(1)["run_id"]
    assert n_runs == a.log.iterations["run_id"].nunique()
    assert f"the last persona spec of each of the {len(finals)} adjustment paths" in a.verdict.bottom_line
    drift_lines = [x for x in a.verdict.lines if ", in the sampled answers" in x]
    assert drift_lines
    assert all(any(f"run {r}," in x for r in finals) for x in drift_lines)
    assert "pool" not in a.verdict.bottom_line


def test_iteration_figures_draw_one_series_per_run(nco_logs) -> None:
    pytest.importorskip("matplotlib")
    log = ds.simulate_nco_log(n_per_arm=60, tvd=0.1, n_nco=1, iterations=2, seed=1)
    both = _combine(_tables(log, "ma"), _tables(log, "mb"))
    res = ds.nco_test(both, n_perm=99, n_boot=0)
    fig = res.plot("iterations")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["nco_1 (ma)", "nco_1 (mb)"]
    fig = res.plot("distributions")
    assert len(fig.axes) == 4  # one NCO x (2 models x 2 iterations), never pooled


def test_fidelity_figure_draws_every_run(study_logs) -> None:
    pytest.importorskip("matplotlib")
    _, _, both = study_logs
    fig = ds.fidelity(both).plot()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert any(x.endswith("(m-a)") for x in labels)
    assert any(x.endswith("(m-b)") for x in labels)
    shares = ds.fidelity(both).shares()
    assert len(labels) == len(shares[["term", "model"]].drop_duplicates())
