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


# ----------------------------------------------------------------------------- loud failures
def _study(tmp_path, n=30, **kw):
    src = tmp_path / "study.parquet"
    ds.simulate_study_log(n_per_arm=n, seed=2, **kw).write(src)
    return src


def _one_line_error(r) -> str:
    assert "Traceback" not in r.output, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1, r.output
    return lines[0]


import pytest  # noqa: E402


@pytest.mark.parametrize(("args", "match"), [
    (["--n-perm", "10"], "--n-perm"),
    (["--mode", "foo"], "--mode"),
    (["--margin", "-1"], "margin"),
    (["--margin", "5"], "margin"),
    (["--n-boot", "-3"], "--n-boot"),
    (["--conf-level", "95"], "--conf-level"),
    (["--min-units", "1"], "--min-units"),
    (["--mode", "dist"], "no answers in that mode"),
    (["--outcome", "nope"], "nope"),
])
def test_audit_rejects_bad_arguments_before_any_work(tmp_path, args, match) -> None:
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["audit", str(_study(tmp_path)), "--report", str(out), *args])
    assert r.exit_code == 2, r.output
    assert match in _one_line_error(r)
    assert "NCO drift tests" not in r.output
    assert not out.exists()


def test_audit_of_a_one_arm_log_exits_2(tmp_path) -> None:
    p = tmp_path / "one.csv"
    pd.DataFrame({"unit_id": [f"u{i}" for i in range(20)], "arm": "a", "item": "q",
                  "response": ["x", "y"] * 10}).to_csv(p, index=False)
    r = runner.invoke(app, ["audit", str(p), "--nco", "q", "--report", str(tmp_path / "r.html")])
    assert r.exit_code == 2, r.output
    assert "one arm" in _one_line_error(r)
    assert "1 NCOs" not in r.output


def test_unwritable_report_path_is_reported_first(tmp_path) -> None:
    src = _study(tmp_path)
    for target in (tmp_path / "no_such_dir" / "r.html", tmp_path):
        r = runner.invoke(app, ["audit", str(src), "--report", str(target)])
        assert r.exit_code == 2, r.output
        line = _one_line_error(r)
        assert ".tmp" not in line
        assert str(target) in line
        assert "NCO drift tests" not in r.output
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):  # running as root: permissions are not enforced
            return
        r = runner.invoke(app, ["audit", str(src), "--report", str(ro / "r.html")])
        assert r.exit_code == 2
        assert "cannot write the report" in _one_line_error(r)
    finally:
        ro.chmod(0o700)


def test_failed_step_exits_1_and_keep_going_lists_it(tmp_path) -> None:
    from driftstats.report.steps import STEPS, Step, register_step

    def boom(c):
        raise ValueError("the model exploded")

    step = register_step(Step("boom", lambda c: "a step that fails", (), boom))
    try:
        src = _study(tmp_path, n_placebo=0)
        out = tmp_path / "r.html"
        r = runner.invoke(app, ["audit", str(src), "--report", str(out), "--n-perm", "99", "--n-boot", "0"])
        assert r.exit_code == 1, r.output
        assert "the model exploded" in _one_line_error(r)
        assert not out.exists()
        r = runner.invoke(app, ["audit", str(src), "--report", str(out), "--n-perm", "99", "--n-boot", "0",
                                "--keep-going"])
        assert r.exit_code == 0, r.output
        verdict = r.output.split("Verdict", 1)[1]
        assert verdict.splitlines()[1].strip().startswith("- Not computed: a step that fails")
        assert "Not computed: a step that fails" in out.read_text()
    finally:
        STEPS.remove(step)


@pytest.mark.parametrize("content", [b"this is not a database\n", b""])
def test_bad_files_are_one_line_errors(tmp_path, content) -> None:
    for name in ("fake.duckdb", "fake.parquet"):
        p = tmp_path / name
        p.write_bytes(content)
        for cmd in ("validate", "summary", "audit"):
            r = runner.invoke(app, [cmd, str(p)] + (["--report", str(tmp_path / "r.html")] if cmd == "audit" else []))
            assert r.exit_code == 2, (cmd, name, r.output)
            line = _one_line_error(r)
            assert name in line, line
            assert "SELECT" not in r.output
            assert "read_parquet" not in r.output


def test_debug_shows_the_traceback(tmp_path) -> None:
    r = runner.invoke(app, ["validate", str(tmp_path / "missing.parquet"), "--debug"])
    assert r.exit_code == 2
    assert "Traceback" in r.output


def test_log_content_is_not_console_markup(tmp_path) -> None:
    p = tmp_path / "markup.csv"
    pd.DataFrame({"unit_id": [f"u{i}" for i in range(8)], "arm": ["[red]a[/]", "b"] * 4, "item": "[bold]q",
                  "response": ["x", "y", "x", "x"] * 2}).to_csv(p, index=False)
    r = runner.invoke(app, ["summary", str(p)])
    assert r.exit_code == 0, r.output
    assert "[bold]q" in r.output
    assert "[red]a[/]" in r.output
