"""The shipped adjustment study is complete and is what its study file describes."""

from __future__ import annotations

from pathlib import Path

import pytest

import driftstats as ds

ROOT = Path(__file__).parents[1]
LOG = ROOT / "data" / "anes_tax_adjust.duckdb"


@pytest.fixture(scope="module")
def shipped():
    pytest.importorskip("tomllib")
    import tomllib

    study = tomllib.loads((ROOT / "collectors" / "studies" / "anes_tax_adjust.toml").read_text())
    return ds.read_log(LOG), study


def test_every_unit_of_the_grid_is_in_the_log(shipped) -> None:
    log, study = shipped
    assert not [d for d in log.diagnostics if "incomplete" in d]
    k = study["adjustment"]["iterations"]
    models = [m["name"] for m in study["models"]]
    paths = study["adjustment"]["paths"]
    it = log.iterations
    for m in models:
        for p in paths:
            assert sorted(it[(it["model"] == m) & (it["path"] == p)]["iteration"]) == list(range(k + 1))
        assert (it[(it["model"] == m) & (it["path"] == "reference")]["iteration"] == 0).all()
    runs = log.sql("SELECT model, run_id, arm, count(DISTINCT unit_id) AS n FROM answers GROUP BY ALL")
    # base + reference + K per path, for each model; every run has units_per_arm units in each arm
    assert len(runs[["model", "run_id"]].drop_duplicates()) == len(models) * (2 + k * len(paths))
    assert (runs["n"] == study["design"]["units_per_arm"]).all()


def test_added_attributes_are_set_identically_across_arms(shipped) -> None:
    log, _ = shipped
    p = log.sql("SELECT a.run_id, a.persona_id, p.attribute, count(DISTINCT p.value) AS k, count(DISTINCT a.arm) AS arms "
                "FROM personas p JOIN (SELECT DISTINCT unit_id, run_id, persona_id, arm FROM answers) a USING (unit_id) "
                "WHERE p.specified GROUP BY ALL")
    assert (p["arms"] == 2).all()
    assert (p["k"] == 1).all()
