"""Write + read gives the same log in every format: the shipped log, and a log full of awkward values.

Regression tests for issues 11 (CSV of the shipped log unreadable: the sniffer took the header
for data), 22 (CSV doubled every ``"``), 23 (JSONL types guessed from the first rows), 28
(inferred arms got kind NULL and did not round-trip; an empty personas table made JSONL
unreadable). The adjustment tables (``iterations``, ``adjustments``) round-trip too, awkward
values included.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from driftstats import read_log

SHIPPED = Path(__file__).parents[1] / "data" / "anes_tax.duckdb"
FORMATS = [".parquet", ".csv", ".jsonl", ".duckdb"]
TABLES = ("answers", "items", "personas", "arms", "iterations", "adjustments")


def _assert_same_log(before, after, label: str) -> None:
    for t in TABLES:
        pdt.assert_frame_equal(before.to_pandas(t), after.to_pandas(t), check_exact=True, obj=f"{label}:{t}")


def _round_trip(log, path: Path):
    written = log.write(path)
    assert path in written
    return read_log(path)


# ------------------------------------------------------------------------------ the shipped log
@pytest.fixture(scope="module")
def shipped():
    return read_log(SHIPPED)


@pytest.fixture(scope="module")
def shipped_part(shipped):
    """The shipped log cut to 40 personas (all four arms, every item, both modes): every kind of cell it holds."""
    units = "SELECT unit_id FROM answers WHERE persona_id IN (SELECT DISTINCT persona_id FROM answers ORDER BY 1 LIMIT 40)"
    return read_log(shipped.sql(f"SELECT * FROM answers WHERE unit_id IN ({units})"),
                    items=shipped.to_pandas("items"),
                    personas=shipped.sql(f"SELECT * FROM personas WHERE unit_id IN ({units})"),
                    arms=shipped.to_pandas("arms"))


@pytest.mark.parametrize("suffix", FORMATS)
def test_shipped_log_round_trips_identically(shipped_part, tmp_path, suffix) -> None:
    assert shipped_part.n_rows > 2000
    assert len(shipped_part.modes) == 2
    back = _round_trip(shipped_part, tmp_path / f"anes{suffix}")
    _assert_same_log(shipped_part, back, suffix)
    assert back.diagnostics == ()


@pytest.mark.slow
@pytest.mark.parametrize("suffix", FORMATS)
def test_whole_shipped_log_round_trips_identically(shipped, tmp_path, suffix) -> None:
    back = _round_trip(shipped, tmp_path / f"anes{suffix}")
    assert back.n_rows == shipped.n_rows == 110_000
    _assert_same_log(shipped, back, suffix)
    assert back.fingerprint() == shipped.fingerprint()


# ------------------------------------------------------------------------------ awkward values
AWKWARD = [
    'said "hi"', "a, b", "line 1\nline 2", "carriage\rreturn", "crlf\r\nend", "tab\there", "ünïcødé ✓ 中文 🙂",
    '{"json": "in a cell", "n": [1, 2]}', "['python', 'repr']", "x" * 5000, "007", "1e5", "0.10", "-0", "NaN",
    "nan", "None", "NULL", "null", "true", "", " padded ", "$x$ and $$", "back\\slash", "\\n not a newline",
    "'single'", '"', '""', ",", "\u00a0nbsp", "semi;colon", "#hash", "=1+1", "bell\x07",
]


def awkward_tables() -> dict[str, pd.DataFrame]:
    """A valid log whose every text field holds awkward values (and numbers that are easy to garble)."""
    opts = AWKWARD[:12]
    rows = []
    personas = []
    for i in range(24):
        arm = ["control", "treatment, \"new\"", "placebo\nline"][i % 3]
        unit = f"u{i:03d}{AWKWARD[i % len(AWKWARD)][:3]}"
        personas.append({"unit_id": unit, "attribute": "quote \"attr\"", "value": AWKWARD[(i + 5) % len(AWKWARD)],
                         "specified": bool(i % 2)})
        base = {
            "study": "awk,ward", "run_id": "run\n1", "iteration": i % 2, "model": "m\"odel.gguf", "unit_id": unit,
            "arm": arm, "replicate": 0, "persona_id": f"p{i // 3}", "seed": [2**63 - 1, -(2**62), 0, 7][i % 4],
            "temperature": [0.1 + 0.2, 1 / 3, None, 1e-300][i % 4], "top_p": [np.nan, 0.95, 5e-324, 1.0][i % 4],
            "sampling": json.dumps({"min_p": 0.05, "stop": ["\n", '"']}), "backend": "llama.cpp",
            "backend_version": '{"llama-cpp-python": "0.3.16"}',
            "created_at": pd.Timestamp("2026-11-26 12:00:00.123456", tz="UTC") + pd.Timedelta(seconds=i),
            "option_order": "2|0|1" if i % 2 else None, "extra_text": AWKWARD[(i + 9) % len(AWKWARD)],
        }
        ok = i % 5 != 4
        rows.append({**base, "item": "awk", "mode": "sample", "response": opts[i % len(opts)] if ok else AWKWARD[i],
                     "valid": ok, "error": None if ok else AWKWARD[(i + 2) % len(AWKWARD)]})
        rows.append({**base, "item": "num", "mode": "sample", "response": ["007", "1e5", "-3.25", "0"][i % 4],
                     "valid": True})
        probs = np.array([0.25, 0.75, 0.0]) if i % 2 else np.array([0.1, 0.2, 0.7])
        for k in range(3):
            rows.append({**base, "item": "awk3", "mode": "dist", "response": opts[k], "prob": float(probs[k]),
                         "valid": True})
    items = pd.DataFrame([
        {"item": "awk", "text": 'Text with "quotes", commas,\nnewlines and $math$', "options": opts,
         "scale": "nominal", "role": "nco"},
        {"item": "num", "text": "a number\tor not", "options": None, "scale": "numeric", "role": "other"},
        {"item": "awk3", "text": "", "options": opts[:3], "scale": "ordinal", "role": "primary"},
    ])
    arms = pd.DataFrame({"arm": ["control", "treatment, \"new\"", "placebo\nline"],
                         "kind": ["control", "treatment", "placebo"],
                         "intervention": ['Read: "the library opens at 9"', "x" * 3000, None]})
    return {"answers": pd.DataFrame(rows), "items": items, "personas": pd.DataFrame(personas), "arms": arms}


def awkward_adjustment_tables() -> dict[str, pd.DataFrame]:
    """The awkward log as an adjustment study: two paths share iteration 0; every text field is awkward."""
    t = awkward_tables()
    study, model, run = "awk,ward", "m\"odel.gguf", "run\n1"
    spec0 = json.dumps(["quote \"attr\"", "ünïcødé ✓"])
    spec1 = json.dumps(["quote \"attr\"", "ünïcødé ✓", "a, b\nc"])
    it = {"study": study, "model": model, "run_id": run, "select": None, "stop_detail": None, "stopped_by": None}
    iterations = pd.DataFrame([
        {**it, "path": "targeted, \"t\"", "iteration": 0, "spec": spec0, "units": 2**62, "rules_fired": "[]"},
        {**it, "path": "untargeted\nline", "iteration": 0, "spec": spec0, "units": None, "rules_fired": "[]",
         "select": ""},  # the empty string is not NULL
        {**it, "path": "targeted, \"t\"", "iteration": 1, "spec": spec1, "units": 0, "select": "targeted",
         "rules_fired": json.dumps(["equivalence", "max_iterations"]), "stopped_by": "max_iterations",
         "stop_detail": json.dumps({"mean_excess": 0.1 + 0.2, "note": 'said "hi"', "rows": [{"x": None}]})},
    ])
    base = {"study": study, "model": model, "path": "targeted, \"t\"", "iteration": 1}
    adjustments = pd.DataFrame([
        {**base, "attribute": "quote \"attr\"", "status": "specified", "source": "base"},
        {**base, "attribute": "ünïcødé ✓", "status": "specified", "source": "analyst", "score": 5e-324},
        {**base, "attribute": "a, b\nc", "status": "added", "source": "population", "score": 1 / 3,
         "score_detail": json.dumps({"drift": 1e-300, "association": -0.0}), "values_from": "population",
         "item": "awk", "question": 'Text with "quotes", commas,\nnewlines', "options": json.dumps(AWKWARD[:12])},
        {**base, "attribute": "NULL", "status": "candidate", "source": "model", "score": 0.0, "raw": "",
         "note": "x" * 3000},
        {**base, "attribute": "", "status": "invalid", "source": "model", "raw": AWKWARD[2] + AWKWARD[4],
         "note": "the empty name; bell\x07"},
        {**base, "iteration": 0, "attribute": "quote \"attr\"", "status": "specified", "source": "base"},
    ])
    return {**t, "iterations": iterations, "adjustments": adjustments}


@pytest.fixture(scope="module")
def awkward_log():
    t = awkward_tables()
    return read_log(t["answers"], items=t["items"], personas=t["personas"], arms=t["arms"])


def test_awkward_log_holds_the_awkward_values(awkward_log) -> None:
    a = awkward_log.to_pandas()
    assert set(AWKWARD[:12]) <= set(a["response"].dropna())
    assert a["seed"].max() == 2**63 - 1
    assert a["error"].isna().sum()
    assert (~a["valid"]).sum() == 4


@pytest.mark.parametrize("suffix", FORMATS)
def test_awkward_values_round_trip_identically(awkward_log, tmp_path, suffix) -> None:
    back = _round_trip(awkward_log, tmp_path / f"awkward{suffix}")
    _assert_same_log(awkward_log, back, suffix)
    a = back.to_pandas()
    assert 'said "hi"' in set(a["response"])  # issue 22: no doubled quotes
    assert set(a.loc[a["mode"] == "dist", "prob"]) == {0.25, 0.75, 0.0, 0.1, 0.2, 0.7}  # issue 23: not 0 / 1
    assert back.item("awk").options == tuple(AWKWARD[:12])


@pytest.fixture(scope="module")
def awkward_adjustment_log():
    return read_log(awkward_adjustment_tables())


def test_awkward_adjustment_log_holds_the_awkward_values(awkward_adjustment_log) -> None:
    it, adj = awkward_adjustment_log.iterations, awkward_adjustment_log.adjustments
    assert len(it) == 3
    assert len(adj) == 6
    assert it["units"].max() == 2**62
    assert it["select"].isna().sum() == 1
    assert (it["select"] == "").sum() == 1
    assert set(adj["attribute"]) >= {"", "NULL"}
    assert adj["score"].min() == 0.0
    assert 5e-324 in set(adj["score"])


@pytest.mark.parametrize("suffix", FORMATS)
def test_adjustment_tables_round_trip_identically(awkward_adjustment_log, tmp_path, suffix) -> None:
    target = tmp_path / f"adjust{suffix}"
    written = awkward_adjustment_log.write(target)
    if suffix != ".duckdb":
        assert {p.name for p in written} >= {f"adjust.iterations{suffix}", f"adjust.adjustments{suffix}"}
    back = read_log(target)
    _assert_same_log(awkward_adjustment_log, back, suffix)
    assert back.fingerprint() == awkward_adjustment_log.fingerprint()
    assert back.diagnostics == awkward_adjustment_log.diagnostics


def test_csv_quote_in_a_cell_is_not_doubled(tmp_path) -> None:
    """Issue 22, as reported: ``said "hi"`` read back as ``said ""hi""``."""
    df = pd.DataFrame({"unit_id": ["a", "b"], "arm": ["control", "t"], "item": "q", "response": ['said "hi"', "no"],
                       "error": ['x "y" z', '""']})
    back = _round_trip(read_log(df), tmp_path / "q.csv").to_pandas()
    assert back["response"].tolist() == ['said "hi"', "no"]
    assert back["error"].tolist() == ['x "y" z', '""']


def test_jsonl_types_come_from_the_schema_not_the_first_rows(tmp_path) -> None:
    """Issue 23: JSONL columns typed from the first ~20k rows: later 0.25/0.75 came back 0/1, late columns NULL."""
    n = 21_000
    lines = [json.dumps({"unit_id": f"u{i}", "arm": "control" if i % 2 else "t", "item": "q", "response": "a",
                         "mode": "sample", "prob": None}) for i in range(n)]
    lines[0] = lines[0].replace('"response": "a"', '"response": "a", "seed": null, "error": null')
    # after 20,000 rows: probabilities that are not whole numbers, and columns empty until now
    lines += [json.dumps({"unit_id": "late", "arm": "t", "item": "q", "mode": "dist", "response": r, "prob": p,
                          "seed": 12345678901, "error": "late error", "option_order": "1|0"})
              for r, p in (("a", 0.25), ("b", 0.75))]
    path = tmp_path / "late.jsonl"
    path.write_text("\n".join(lines) + "\n")
    a = read_log(path).to_pandas()
    late = a[a["unit_id"] == "late"]
    assert late["prob"].tolist() == [0.25, 0.75]
    assert late["seed"].tolist() == [12345678901] * 2
    assert late["error"].tolist() == ["late error"] * 2
    assert late["option_order"].tolist() == ["1|0"] * 2


# ------------------------------------------------------------------------------ issue 28
@pytest.mark.parametrize("suffix", FORMATS)
def test_log_with_inferred_arms_and_no_personas_round_trips(tmp_path, suffix) -> None:
    df = pd.DataFrame({"unit_id": ["a", "b", "c", "d"], "arm": ["control", "control", "new", "other"],
                       "item": "q", "response": ["x", "y", "x", "y"]})
    log = read_log(df)
    assert log.arms["kind"].tolist() == ["control", "treatment", "treatment"]
    assert any("kinds inferred from the names" in d for d in log.diagnostics)
    assert log.personas.empty
    back = _round_trip(log, tmp_path / f"inferred{suffix}")
    _assert_same_log(log, back, suffix)
    assert "nan" not in log.summary().as_text().split("Items")[0]


def test_write_is_atomic_and_paths_with_brackets_work(awkward_log, tmp_path) -> None:
    target = tmp_path / "run[1] *x?.parquet"
    awkward_log.write(target)
    awkward_log.write(target)  # overwrite
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["run[1] *x?.parquet", "run[1] *x?.items.parquet", "run[1] *x?.personas.parquet",
                            "run[1] *x?.arms.parquet"])
    _assert_same_log(awkward_log, read_log(target), "brackets")
