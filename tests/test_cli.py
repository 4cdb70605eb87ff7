"""The command line: validate, summary, audit (exit codes, messages, outputs)."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

import driftstats as ds
from driftstats.cli import app

runner = CliRunner()


def test_validate_ok_and_failure(tmp_path) -> None:
    log = ds.simulate_nco_log(n_per_arm=20, seed=1)
    good = tmp_path / "good.parquet"
    log.write(good)
    r = runner.invoke(app, ["validate", str(good)])
    assert r.exit_code == 0, r.output
    assert "valid" in r.output
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"unit_id": ["a"], "arm": ["c"]}).to_csv(bad, index=False)
    r = runner.invoke(app, ["validate", str(bad)])
    assert r.exit_code == 2
    assert "MissingColumnError" in r.output
    assert "'item'" in r.output
    r = runner.invoke(app, ["validate", str(tmp_path / "missing.parquet")])
    assert r.exit_code == 2


def test_summary_and_mapping(tmp_path) -> None:
    p = tmp_path / "foreign.csv"
    pd.DataFrame({"who": ["a", "b", "c", "d"], "group": ["x", "x", "y", "y"], "q": ["age"] * 4,
                  "ans": ["old", "young", "old", "old"]}).to_csv(p, index=False)
    r = runner.invoke(app, ["summary", str(p), "-m", "who=unit_id", "-m", "group=arm", "-m", "q=item",
                            "-m", "ans=response", "--nco", "age"])
    assert r.exit_code == 0, r.output
    assert "Provenance" in r.output
    assert "units: 4" in r.output


def test_audit_writes_report(tmp_path) -> None:
    log = ds.simulate_study_log(n_per_arm=60, seed=2)
    src = tmp_path / "study.duckdb"
    log.write(src)
    out = tmp_path / "report.html"
    r = runner.invoke(app, ["audit", str(src), "--report", str(out), "--n-perm", "99"])
    assert r.exit_code == 0, r.output
    assert out.exists()
    assert "Verdict" in out.read_text()
    assert "report written to" in r.output


def test_audit_edsl_export(tmp_path) -> None:
    from pathlib import Path

    example = Path(__file__).parents[1] / "data" / "edsl_example" / "results.csv"
    out = tmp_path / "edsl.html"
    r = runner.invoke(app, ["audit", str(example), "--format", "edsl", "--arm", "scenario.arm", "--nco", "nc_age",
                            "--nco", "nc_region", "--primary", "support", "--report", str(out), "--n-perm", "199"])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert "nc_age" in html
