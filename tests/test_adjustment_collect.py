"""The adjustment loop on the real embedded SmolLM2-135M: one store holds every path and iteration,
added attributes are identical across arms, the model's proposal is re-validated and kept, stopping
rules are recorded, and kill -9 mid-iteration then resume writes exactly the uninterrupted log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import require

require("llama_cpp")
require("outlines")

import driftstats as ds  # noqa: E402

pytestmark = pytest.mark.collect

STUDY = """
name = "adj"
[population]
source = "anes96"
specified = ["age", "party"]
latent = ["education", "ideology", "tv_news"]
[design]
units_per_arm = 3
paired = true
seed = 11
[adjustment]
iterations = 2
paths = ["targeted", "untargeted"]
diagnostic = ["tv_news", "religion"]
population = ["education", "ideology"]
stop_on = []
propose = 2
propose_max_tokens = 160
reference = true
n_perm = 200
[[adjustment.candidates]]
name = "union_household"
question = "Does anyone in your household belong to a labor union?"
options = ["Yes", "No"]
[model]
name = "smollm2"
path = "smollm2-135m"
prompt_style = "completion"
n_ctx = 1024
n_threads = 1
[[arms]]
name = "control"
kind = "control"
text = "The library opens at nine."
[[arms]]
name = "treatment"
kind = "treatment"
text = "Taxes on the rich should rise to fund college."
[[items]]
name = "support"
role = "primary"
text = "Do you support higher taxes on the rich?"
options = ["No", "Unsure", "Yes"]
[[items]]
name = "tv_news"
role = "nco"
text = "On how many days a week do you watch TV news?"
options = ["0", "1", "2", "3", "4", "5", "6", "7"]
[[items]]
name = "religion"
role = "nco"
scale = "nominal"
text = "How often do you attend religious services?"
options = ["Never", "Sometimes", "Every week"]
"""


def _simulate(study: Path, out: Path, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "driftstats.cli", "simulate", str(study), "--out", str(out)]
    if kw.get("spawn"):
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path, float]:
    folder = tmp_path_factory.mktemp("adj")
    study = folder / "adj.toml"
    study.write_text(STUDY)
    out = folder / "ref.duckdb"
    t0 = time.perf_counter()
    r = _simulate(study, out)
    assert r.returncode == 0, r.stderr[-3000:]
    return study, out, time.perf_counter() - t0


def _tables(path: Path) -> dict[str, pd.DataFrame]:
    log = ds.read_log(path)
    a = log.to_pandas().drop(columns=["created_at"]).sort_values(["unit_id", "item", "mode", "response"])
    return {"answers": a.reset_index(drop=True), "personas": log.personas.reset_index(drop=True),
            "iterations": log.iterations.reset_index(drop=True), "adjustments": log.adjustments.reset_index(drop=True)}


def test_one_store_holds_every_path_iteration_and_the_reference(reference) -> None:
    _, out, _ = reference
    log = ds.read_log(out)
    it = log.iterations
    assert set(zip(it["path"], it["iteration"], strict=True)) == {
        ("targeted", 0), ("targeted", 1), ("targeted", 2), ("untargeted", 0), ("untargeted", 1), ("untargeted", 2),
        ("reference", 0)}
    # iteration 0 is run once and shared by both paths
    base = it[it["iteration"] == 0].set_index("path")["run_id"]
    assert base["targeted"] == base["untargeted"] != base["reference"]
    assert set(log.to_pandas()["run_id"]) == set(it["run_id"])
    last = it[it["iteration"] == 2]
    assert (last["stopped_by"] == "max_iterations").all()
    assert all("max_iterations" in json.loads(r) for r in last["rules_fired"])
    ref = it[it["path"] == "reference"].iloc[0]
    assert json.loads(ref["spec"]) == ["age", "party", "education", "ideology"]
    # each later iteration adds one attribute, recorded with its source and score
    adj = log.adjustments
    added = adj[adj["status"] == "added"]
    assert len(added) == 4  # 2 paths x 2 iterations
    assert added["score"].notna().all()
    assert set(added["source"]) <= {"population", "analyst", "model"}
    t1 = added[(added["path"] == "targeted")].sort_values("iteration")["attribute"].tolist()
    u1 = added[(added["path"] == "untargeted")].sort_values("iteration")["attribute"].tolist()
    assert t1 != u1  # highest vs lowest score first
    detail = json.loads(added.iloc[0]["score_detail"])
    assert {"excess", "assoc", "assoc_measure", "score"} <= set(detail)


def test_added_attributes_are_identical_across_arms_and_true_for_population_columns(reference) -> None:
    _, out, _ = reference
    log = ds.read_log(out)
    units = log.to_pandas()[["unit_id", "persona_id", "arm", "run_id", "iteration"]].drop_duplicates()
    p = log.personas.merge(units, on="unit_id")
    it = log.iterations
    for _, row in it[it["iteration"] > 0].iterrows():
        spec = json.loads(row["spec"])
        here = p[(p["run_id"] == row["run_id"]) & p["specified"]]
        assert set(here["attribute"]) == set(spec)
        wide = here.pivot_table(index=["persona_id", "attribute"], columns="arm", values="value", aggfunc="first")
        assert (wide["control"] == wide["treatment"]).all(), row["run_id"]
    # a population attribute added later holds the respondent's real value (its latent value at iteration 0)
    base = it[(it["path"] == "targeted") & (it["iteration"] == 0)]["run_id"].iloc[0]
    key = p["persona_id"].str.extract(r"-(p\d{4})$")[0]
    p = p.assign(key=key)
    latent0 = p[(p["run_id"] == base) & ~p["specified"]].groupby(["key", "attribute"])["value"].first()
    for _, row in it[it["path"] == "reference"].iterrows():
        stated = p[(p["run_id"] == row["run_id"]) & p["specified"] & p["attribute"].isin(["education", "ideology"])]
        got = stated.groupby(["key", "attribute"])["value"].first()
        pd.testing.assert_series_equal(got, latent0.loc[got.index], check_names=False)


def test_the_model_proposal_is_revalidated_and_kept_with_its_raw_text(reference) -> None:
    _, out, _ = reference
    adj = ds.read_log(out).adjustments
    model = adj[(adj["source"] == "model") & (adj["path"] == "targeted") & (adj["iteration"] == 0)]
    assert len(model) >= 1
    assert model["raw"].notna().all()
    for _, r in model.iterrows():
        if r["status"] == "invalid":
            assert r["note"]
        else:
            assert r["item"] == f"{r['attribute']}.smollm2"
            assert len(json.loads(r["options"])) >= 2


def test_kill_minus_9_mid_iteration_then_resume_writes_the_uninterrupted_log(reference, tmp_path) -> None:
    study, ref, seconds = reference
    out = tmp_path / "out.duckdb"
    kills = 0
    for fraction in (0.45, 0.75):
        proc = _simulate(study, out, spawn=True)
        time.sleep(fraction * seconds)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    final = _simulate(study, out)
    assert final.returncode == 0, final.stderr[-3000:]
    assert kills >= 1
    want, got = _tables(ref), _tables(out)
    for name in want:
        pd.testing.assert_frame_equal(want[name], got[name], obj=name)
