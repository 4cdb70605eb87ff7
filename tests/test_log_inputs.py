"""What read_log accepts, and how it refuses what it cannot read.

Regression tests for issues 8 and 30 (bad or corrupt files gave raw DuckDB errors), 10 (a
collector store in progress failed with EmptyArmError), 12 (polars / pyarrow tables, wide
tables), 13 (a mapping onto a column the schema lacks, an unnamed undeclared arm, list/dict
sources), 14 (NaN answers), 25 (option lists quadratic in memory), 26 (glob characters in
paths were expanded) and 9, item 1 (ordinal answers coded alphabetically).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from driftstats import read_log
from driftstats.errors import (
    DriftstatsError,
    IncompleteLogError,
    InvalidArgumentError,
    InvalidValueError,
    MissingColumnError,
    UnreadableLogError,
)
from driftstats.log import MAX_OPTIONS, LogNotFoundError, from_wide
from tests.conftest import require

REPO = Path(__file__).parents[1]
SHIPPED = REPO / "data" / "anes_tax.duckdb"
LIKERT = ["Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree"]


def _answers(responses, arms=("control", "treatment"), item="q") -> pd.DataFrame:
    n = len(responses)
    return pd.DataFrame({"unit_id": [f"u{i}" for i in range(n)], "arm": [arms[i % len(arms)] for i in range(n)],
                         "item": item, "response": responses})


def _declared(responses) -> object:
    """A log with declared arms (so that writing it does not depend on arm inference)."""
    return read_log(_answers(responses), arms=pd.DataFrame({"arm": ["control", "treatment"],
                                                             "kind": ["control", "treatment"]}))


def _assert_clean(exc: BaseException, path: Path) -> None:
    """One line, names the file and the fix, echoes no SQL, and is not DuckDB's own exception."""
    text = str(exc)
    assert "\n" not in text
    assert str(path) in text
    assert "Fix:" in text
    for sql in ("LINE 1", "SELECT", "read_parquet(", "read_csv(", "ATTACH"):
        assert sql not in text
    assert not isinstance(exc, duckdb.Error)
    assert exc.__cause__ is None
    assert (exc.__context__ is None or exc.__suppress_context__)


# ------------------------------------------------------------------------------ issues 8 and 30
@pytest.fixture(scope="module")
def parquet_bytes(tmp_path_factory) -> bytes:
    from tests.conftest import small_tables

    t = small_tables(n_per_arm=300)
    path = tmp_path_factory.mktemp("pq") / "good.parquet"
    read_log(t["answers"], items=t["items"], personas=t["personas"], arms=t["arms"]).write(path)
    return path.read_bytes()


def _bad_file(kind: str, tmp_path: Path, parquet_bytes: bytes) -> Path:
    rng = np.random.default_rng(30)
    junk = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    if kind == "text named .duckdb":
        (p := tmp_path / "fake.duckdb").write_text("not a database\n")
    elif kind == "empty .duckdb":
        (p := tmp_path / "empty.duckdb").write_bytes(b"")
    elif kind == "empty .parquet":
        (p := tmp_path / "empty.parquet").write_bytes(b"")
    elif kind == "truncated .parquet":
        (p := tmp_path / "cut.parquet").write_bytes(parquet_bytes[: len(parquet_bytes) // 2])
    elif kind == "corrupt .parquet":
        middle = bytearray(parquet_bytes)
        start = len(middle) // 3
        middle[start:start + 4000] = junk[:4000]
        (p := tmp_path / "corrupt.parquet").write_bytes(bytes(middle))
    elif kind == "garbage .parquet":
        (p := tmp_path / "garbage.parquet").write_bytes(junk)
    elif kind == "binary .csv":
        (p := tmp_path / "junk.csv").write_bytes(junk)
    elif kind == "binary .jsonl":
        (p := tmp_path / "junk.jsonl").write_bytes(junk)
    elif kind == "ragged .csv":
        (p := tmp_path / "ragged.csv").write_text("unit_id,arm,item,response\nu1,control,q,a\nu2,t,q,b,EXTRA\n")
    elif kind == "array line .jsonl":
        (p := tmp_path / "array.jsonl").write_text('{"unit_id": "u1", "arm": "c", "item": "q", "response": "a"}\n[1, 2]\n')
    elif kind == "broken .jsonl":
        (p := tmp_path / "broken.jsonl").write_text('{"unit_id": "u1", "arm": "c", "item": "q", "response": "a"}\n{"unit_id": \n')
    elif kind == "directory .parquet":
        (p := tmp_path / "folder.parquet").mkdir()
    elif kind == "text named .duckdb sidecar":
        read_log(_answers(["a", "b"])).write(p := tmp_path / "ok.parquet")
        (tmp_path / "ok.items.parquet").write_text("not parquet")
    else:  # pragma: no cover
        raise AssertionError(kind)
    return p


BAD = ["text named .duckdb", "empty .duckdb", "empty .parquet", "truncated .parquet", "corrupt .parquet",
       "garbage .parquet", "binary .csv", "binary .jsonl", "ragged .csv", "array line .jsonl", "broken .jsonl",
       "directory .parquet", "text named .duckdb sidecar"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_files_raise_one_named_error(kind, tmp_path, parquet_bytes) -> None:
    path = _bad_file(kind, tmp_path, parquet_bytes)
    with pytest.raises(UnreadableLogError) as e:
        read_log(path)
    shown = path if "sidecar" not in kind else tmp_path / "ok.items.parquet"
    _assert_clean(e.value, shown)


def test_missing_file_is_named_and_still_a_file_not_found_error(tmp_path) -> None:
    with pytest.raises(LogNotFoundError, match="no such file") as e:
        read_log(tmp_path / "nope.parquet")
    assert isinstance(e.value, FileNotFoundError)
    assert isinstance(e.value, UnreadableLogError)
    _assert_clean(e.value, tmp_path / "nope.parquet")


def test_unreadable_permissions(tmp_path, monkeypatch) -> None:
    path = tmp_path / "secret.parquet"
    read_log(_answers(["a", "b"])).write(path)

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)  # root ignores chmod: simulate the OS refusal
    with pytest.raises(UnreadableLogError, match="permission denied") as e:
        read_log(path)
    _assert_clean(e.value, path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_permissions_for_real(tmp_path) -> None:  # pragma: no cover - CI runs as a user
    path = tmp_path / "secret.csv"
    read_log(_answers(["a", "b"])).write(path)
    path.chmod(0)
    with pytest.raises(UnreadableLogError, match="permission denied"):
        read_log(path)


def test_edsl_import_of_a_bad_file(tmp_path) -> None:
    (p := tmp_path / "results.csv").write_bytes(b"")
    with pytest.raises(UnreadableLogError, match="edsl export"):
        read_log(p, format="edsl", arm="scenario.arm")
    with pytest.raises(LogNotFoundError):
        read_log(tmp_path / "none.csv", format="edsl", arm="scenario.arm")


def test_cli_validate_prints_the_message_and_exits_2(tmp_path) -> None:
    from driftstats.cli import app

    (fake := tmp_path / "fake.duckdb").write_text("hello\n")
    r = CliRunner().invoke(app, ["validate", str(fake)])
    assert r.exit_code == 2
    assert "UnreadableLogError" in r.output
    assert "Traceback" not in r.output
    assert "LINE 1" not in r.output


# ------------------------------------------------------------------------------ issue 10
def _store(tmp_path: Path, small_log, meta: dict[str, str], *, drop_arm: str | None = None, done: int | None = None):
    path = tmp_path / "store.duckdb"
    small_log.write(path)
    con = duckdb.connect(str(path))
    if drop_arm:
        con.execute("DELETE FROM answers WHERE arm = ?", [drop_arm])
        con.execute("DELETE FROM personas WHERE unit_id NOT IN (SELECT unit_id FROM answers)")
    con.execute("CREATE TABLE units_done AS SELECT DISTINCT unit_id, now() AS finished_at FROM answers")
    if done is not None:
        con.execute("DELETE FROM units_done WHERE unit_id NOT IN (SELECT unit_id FROM units_done ORDER BY 1 LIMIT ?)",
                    [done])
    con.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
    con.close()
    return path


def test_incomplete_store_that_fails_validation_says_run_in_progress(tmp_path, small_log) -> None:
    path = _store(tmp_path, small_log, {"status": "running", "units_total": "12"}, drop_arm="treatment")
    with pytest.raises(IncompleteLogError, match=r"run in progress / incomplete: 6 of 12 units done \(status running\)") as e:
        read_log(path)
    assert "EmptyArmError" in str(e.value)
    assert f"--out {path}" in str(e.value)
    _assert_clean(e.value, path)


def test_incomplete_store_that_validates_is_read_and_says_so(tmp_path, small_log) -> None:
    path = _store(tmp_path, small_log, {"status": "running", "units_total": "20"})
    log = read_log(path)
    assert log.n_rows == small_log.n_rows
    assert any(d.startswith("incomplete run: 12 of 20 units") for d in log.diagnostics)
    failed = _store(tmp_path / "f", small_log, {"status": "failed", "units_total": "12"}, done=12)
    assert any("status failed" in d for d in read_log(failed).diagnostics)
    few = _store(tmp_path / "g", small_log, {"status": "complete", "units_total": "12"}, done=5)
    assert any("5 of 12 units done" in d for d in read_log(few).diagnostics)


def test_complete_and_old_stores_read_as_before(tmp_path, small_log) -> None:
    path = _store(tmp_path, small_log, {"status": "complete", "units_total": "12"})
    assert not any("incomplete" in d for d in read_log(path).diagnostics)
    old = tmp_path / "old.duckdb"  # SimLog.write, like older collectors, records no run state
    small_log.write(old)
    assert not any("incomplete" in d for d in read_log(old).diagnostics)
    con = duckdb.connect(str(SHIPPED), read_only=True)  # the shipped store is such an old store
    assert not con.execute("SELECT count(*) FROM meta WHERE key IN ('status', 'units_total')").fetchall()[0][0]
    con.close()
    broken = _store(tmp_path / "b", small_log, {"status": "complete", "units_total": "6"}, drop_arm="treatment")
    with pytest.raises(DriftstatsError) as e:  # a complete store that does not validate: the validation error
        read_log(broken)
    assert not isinstance(e.value, IncompleteLogError)


def test_store_held_by_a_running_writer(tmp_path, small_log) -> None:
    path = tmp_path / "busy.duckdb"
    small_log.write(path)
    code = f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}); print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(IncompleteLogError, match="being written by another process") as e:
            read_log(path)
        _assert_clean(e.value, path)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_reading_a_store_releases_it(tmp_path, small_log) -> None:
    path = tmp_path / "s.duckdb"
    small_log.write(path)
    log = read_log(path)
    duckdb.connect(str(path)).close()  # a collector can open the store again while the log is in use
    assert log.n_rows == small_log.n_rows


# ------------------------------------------------------------------------------ issue 12
class _PolarsLike:
    """Duck-types a polars DataFrame: ``to_arrow()`` (polars itself is not a dependency)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._table = pa.Table.from_pandas(frame, preserve_index=False)

    def to_arrow(self) -> pa.Table:
        return self._table


def test_arrow_tables_and_polars_frames_are_read(tables, small_log) -> None:
    t = tables
    as_arrow = {k: pa.Table.from_pandas(v.assign(options=v["options"].map(list)) if k == "items" else v,
                                        preserve_index=False) for k, v in t.items()}
    log = read_log(as_arrow["answers"], items=as_arrow["items"], personas=as_arrow["personas"], arms=as_arrow["arms"])
    for name in ("answers", "items", "personas", "arms"):
        pd.testing.assert_frame_equal(log.to_pandas(name), small_log.to_pandas(name), check_exact=True)
    batch = as_arrow["answers"].to_batches()[0]
    assert read_log(pa.Table.from_batches([batch]), items=t["items"]).n_rows == small_log.n_rows
    polars_like = read_log(_PolarsLike(t["answers"]), items=t["items"], personas=_PolarsLike(t["personas"]),
                           arms=_PolarsLike(t["arms"]))
    pd.testing.assert_frame_equal(polars_like.to_pandas(), small_log.to_pandas(), check_exact=True)


def test_real_polars_frame_when_installed(tables, small_log) -> None:
    pl = require("polars")
    log = read_log(pl.from_pandas(tables["answers"]), items=tables["items"], arms=pl.from_pandas(tables["arms"]))
    assert log.n_rows == small_log.n_rows


def test_a_wide_frame_points_to_from_wide() -> None:
    wide = pd.DataFrame({"unit_id": ["a", "b"], "arm": ["control", "t"], "q1": ["x", "y"], "q2": ["1", "2"]})
    with pytest.raises(MissingColumnError, match=r"from_wide\(frame, unit=\.\.\., arm=\.\.\., items="):
        read_log(wide)


def test_from_wide_melts_one_column_per_question() -> None:
    wide = pd.DataFrame({
        "id": ["a", "b", "c", "d"], "group": ["control", "control", "t", "t"], "persona_id": ["p1", "p2", "p1", "p2"],
        "age": ["30", "40", "30", "40"], "note": ["n1", "n2", "n3", "n4"],
        "agree": pd.Categorical(["Agree", "Disagree", "Agree", "Strongly agree"], categories=LIKERT, ordered=True),
        "days": [1.0, np.nan, 2.0, 7.0], "pet": ["dog", "cat", "dog", "dog"],
    })
    log = from_wide(wide, unit="id", arm="group", items=["agree", "days", "pet"], persona="age", missing="invalid",
                    nco="pet")
    a = log.to_pandas()
    assert len(a) == 12
    assert a["valid"].sum() == 11
    assert a.loc[a["item"] == "days", "response"].tolist()[0] == "1"  # 1.0 -> '1', not '1.0'
    assert a.loc[~a["valid"], "error"].tolist() == ["missing response"]
    assert log.item("agree").options == tuple(LIKERT)
    assert log.item("agree").scale == "ordinal"
    assert log.item("pet").scale == "nominal"
    assert log.item("pet").role == "nco"
    assert log.personas_wide().set_index("unit_id")["age"].to_dict() == {"a": "30", "b": "40", "c": "30", "d": "40"}
    assert "note" in log.columns()
    assert "age" not in log.columns()
    assert log.diagnostics[0].startswith("wide table melted: 4 unit(s) x 3 item column(s) = 12 answer rows")
    arrow = from_wide(pa.Table.from_pandas(wide), unit="id", arm="group", items=["agree", "pet"])
    assert arrow.item("agree").options == tuple(LIKERT)


def test_from_wide_refuses_bad_arguments() -> None:
    wide = pd.DataFrame({"id": ["a", "a"], "group": ["c", "t"], "q": ["x", "y"]})
    with pytest.raises(InvalidArgumentError, match="unique"):
        from_wide(wide, unit="id", arm="group", items=["q"])
    with pytest.raises(MissingColumnError, match="nope"):
        from_wide(wide, unit="id", arm="group", items=["nope"])
    with pytest.raises(InvalidArgumentError, match="two parts"):
        from_wide(wide, unit="id", arm="group", items=["q", "group"])
    with pytest.raises(InvalidArgumentError, match="mapping"):
        from_wide(wide.assign(id=["a", "b"]), unit="id", arm="group", items=["q"], mapping={"x": "y"})
    with pytest.raises(InvalidArgumentError, match="clash"):
        from_wide(wide.assign(id=["a", "b"], item="z"), unit="id", arm="group", items=["q"])


# ------------------------------------------------------------------------------ issue 13
def test_mapping_onto_a_column_the_schema_lacks_is_an_error() -> None:
    df = _answers(["a", "b"]).assign(gender=["f", "m"])
    with pytest.raises(InvalidArgumentError, match=r"onto column\(s\) \['sex'\].*'unit_id'.*persona=") as e:
        read_log(df, mapping={"gender": "sex"})
    assert "'response_code'" in str(e.value)
    log = read_log(df, mapping={"gender": "sex"}, persona="sex")  # a persona attribute may be renamed
    assert set(log.personas["attribute"]) == {"sex"}


def test_undeclared_arm_is_named(tables) -> None:
    arms = tables["arms"].iloc[:1]
    with pytest.raises(InvalidValueError, match=r"arm\(s\) \['treatment'\] missing from the arms table"):
        read_log(tables["answers"], items=tables["items"], arms=arms)


@pytest.mark.parametrize("source", [[], ["a.parquet", "b.parquet"], ("x",), {"a"}, 3, None, b"bytes"])
def test_unsupported_sources_say_what_is_accepted(source) -> None:
    with pytest.raises(InvalidArgumentError, match="pandas or polars DataFrame, a pyarrow Table, or a dict"):
        read_log(source)


def test_dict_of_tables(tables, small_log) -> None:
    log = read_log(dict(tables))
    pd.testing.assert_frame_equal(log.to_pandas(), small_log.to_pandas(), check_exact=True)
    with pytest.raises(InvalidArgumentError, match="unknown: \\['answer'\\]"):
        read_log({"answer": tables["answers"]})
    with pytest.raises(InvalidArgumentError, match="given twice"):
        read_log(dict(tables), items=tables["items"])
    with pytest.raises(InvalidArgumentError, match="table= names"):
        read_log(tables["answers"], table="answers")


# ------------------------------------------------------------------------------ issue 14
def test_missing_responses_are_an_error_that_names_the_option() -> None:
    df = _answers(["a", "b", np.nan, "a"])
    with pytest.raises(InvalidValueError, match="missing='invalid'"):
        read_log(df)
    with pytest.raises(InvalidArgumentError, match="missing must be one of"):
        read_log(df, missing="drop")


def test_missing_invalid_keeps_rows_as_invalid_answers() -> None:
    df = _answers(["a", "b", np.nan, None, "a", "b"])
    log = read_log(df, missing="invalid")
    a = log.to_pandas()
    assert a["valid"].tolist() == [True, True, False, False, True, True]
    assert a.loc[~a["valid"], "error"].tolist() == ["missing response"] * 2
    assert any("2 answer row(s) without a response marked invalid" in d for d in log.diagnostics)
    numeric = pa.table({"unit_id": ["u0", "u1", "u2"], "arm": ["control", "t", "t"], "item": ["q"] * 3,
                        "response": pa.array([1.0, float("nan"), 2.0])})  # Arrow keeps NaN: still missing
    b = read_log(numeric, missing="invalid").to_pandas()
    assert b["response"].tolist()[::2] == ["1", "2"]
    assert b["valid"].tolist() == [True, False, True]


# ------------------------------------------------------------------------------ issue 25
_MEMORY = textwrap.dedent("""
    import json, resource, sys, time
    import pandas as pd
    import driftstats as ds

    def read(k):
        opts = [f"option number {i}" for i in range(k)]
        answers = pd.DataFrame({"unit_id": [f"u{i}" for i in range(40)], "arm": ["a", "b"] * 20, "item": "q",
                                "response": [opts[i * 7 % k] for i in range(40)]})
        items = pd.DataFrame({"item": ["q"], "options": [json.dumps(opts)], "scale": ["nominal"]})
        t = time.perf_counter()
        log = ds.read_log(answers, items=items)
        assert len(log.item("q").options) == k
        return time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    small = read(10)
    large = read(10_000)
    print(json.dumps({"small": small, "large": large}))
""")


def test_ten_thousand_options_cost_little_memory() -> None:
    """Before: 10,000 options peaked at 2.3 GB RSS and took 20 s; now the peak grows by a few MB."""
    out = subprocess.run([sys.executable, "-c", _MEMORY], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    m = json.loads(out.stdout.strip().splitlines()[-1])
    growth_mb = m["large"][1] - m["small"][1]
    assert growth_mb < 150, m
    assert m["large"][0] < 10, m


def test_option_limit_is_stated_and_enforced() -> None:
    opts = [str(i) for i in range(MAX_OPTIONS + 1)]
    items = pd.DataFrame({"item": ["q"], "options": [json.dumps(opts)], "scale": ["nominal"]})
    with pytest.raises(InvalidValueError, match=f"lists {MAX_OPTIONS + 1} options, more than the {MAX_OPTIONS}"):
        read_log(_answers(["0", "1"]), items=items)
    free_text = _answers([f"answer {i}" for i in range(MAX_OPTIONS + 1)])
    with pytest.raises(InvalidValueError, match="free text or a number"):
        read_log(free_text)
    assert f"{MAX_OPTIONS:,}" in (REPO / "docs" / "schema.md").read_text()


# ------------------------------------------------------------------------------ issue 26
@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_glob_characters_are_literal(tmp_path, suffix) -> None:
    _declared(["decoy", "other"]).write(tmp_path / f"log1{suffix}")
    _declared(["real", "also"]).write(tmp_path / f"log[1]{suffix}")
    assert read_log(tmp_path / f"log[1]{suffix}").to_pandas()["response"].tolist() == ["real", "also"]
    with pytest.raises(LogNotFoundError):
        read_log(tmp_path / f"log?{suffix}")  # would match log1 as a glob
    with pytest.raises(LogNotFoundError):
        read_log(tmp_path / f"*{suffix}")


@pytest.mark.skipif(os.name != "posix", reason="backslashes separate folders on Windows")
def test_glob_characters_next_to_a_backslash(tmp_path) -> None:
    _declared(["decoy", "other"]).write(tmp_path / "a\\b1.parquet")
    _declared(["real", "also"]).write(tmp_path / "a\\b[1].parquet")
    assert read_log(tmp_path / "a\\b[1].parquet").to_pandas()["response"].tolist() == ["real", "also"]


# ------------------------------------------------------------------------------ issue 9, item 1
def test_option_order_unknown_stays_nominal_and_says_how_to_give_it() -> None:
    log = read_log(_answers(LIKERT * 2))
    info = log.item("q")
    assert info.scale == "nominal"
    assert info.options == tuple(sorted(LIKERT))
    assert any("option order unknown for item(s) ['q']" in d and "likert=True" in d for d in log.diagnostics)


def test_ordered_categorical_gives_order_and_ordinal_scale() -> None:
    cat = pd.Categorical(["Agree", "Disagree", "Agree", "Strongly agree"], categories=LIKERT, ordered=True)
    log = read_log(_answers(cat))
    assert log.item("q").options == tuple(LIKERT)
    assert log.item("q").scale == "ordinal"
    a = log.to_pandas()
    assert a["response_code"].tolist() == [3, 1, 3, 4]
    assert any("ordered categorical" in d for d in log.diagnostics)
    # an ordered Arrow dictionary (what polars categoricals / enums become) is the same declaration
    table = pa.Table.from_pandas(_answers(cat), preserve_index=False)
    assert table.schema.field("response").type.ordered
    assert read_log(table).item("q").options == tuple(LIKERT)
    # mapped onto response, too
    renamed = _answers(cat).rename(columns={"response": "answer"})
    assert read_log(renamed, mapping={"answer": "response"}).item("q").scale == "ordinal"
    # an unordered categorical claims no order
    plain = read_log(_answers(pd.Categorical(["Agree", "Disagree"], categories=LIKERT)))
    assert plain.item("q").scale == "nominal"


def test_items_table_wins_over_everything() -> None:
    cat = pd.Categorical(["Agree", "Disagree"], categories=LIKERT, ordered=True)
    items = pd.DataFrame({"item": ["q"], "options": [LIKERT[::-1]], "scale": ["nominal"]})
    log = read_log(_answers(cat), items=items)
    assert log.item("q").options == tuple(LIKERT[::-1])
    assert log.item("q").scale == "nominal"


def test_likert_only_when_asked() -> None:
    answers = pd.concat([_answers(["Agree", "Strongly disagree", "neutral", "AGREE "][:3], item="a"),
                         _answers(["Never", "Often", "Sometimes"], item="f"),
                         _answers(["Yes", "No", "Agree"], item="x"),
                         _answers(["Strongly oppose", "Favor", "Neither favor nor oppose"], item="s")], ignore_index=True)
    answers["unit_id"] = answers["unit_id"] + answers["item"]
    log = read_log(answers, likert=True)
    assert log.item("a").options == ("Strongly disagree", "neutral", "Agree")
    assert log.item("a").scale == "ordinal"
    assert log.item("f").options == ("Never", "Sometimes", "Often")
    assert log.item("s").options == ("Strongly oppose", "Neither favor nor oppose", "Favor")
    assert log.item("x").scale == "nominal"
    assert any("option order unknown for item(s) ['x']" in d for d in log.diagnostics)
    assert read_log(answers).item("a").scale == "nominal"


def test_response_codes_give_positions_not_an_ordering_claim() -> None:
    df = _answers(["Republican", "Democrat", "Independent", "Democrat"]).assign(response_code=[2, 0, 1, 0])
    log = read_log(df)
    assert log.item("q").options == ("Democrat", "Independent", "Republican")
    assert log.item("q").scale == "nominal"
    assert any("taken from response_code" in d for d in log.diagnostics)
