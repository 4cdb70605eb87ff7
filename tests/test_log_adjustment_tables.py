"""The adjustment-study side tables ``iterations`` and ``adjustments``: read from every source and
format, validated with named errors, empty for a plain log, written and read back identically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftstats import read_log
from driftstats.errors import (
    ColumnTypeError,
    DuplicateKeyError,
    InvalidArgumentError,
    InvalidValueError,
    LogValidationError,
    MissingColumnError,
)
from driftstats.log.schema import ADJUSTMENTS, ITERATIONS, TABLE_KEYS

FORMATS = [".parquet", ".csv", ".jsonl", ".duckdb"]
EDSL_EXAMPLE = Path(__file__).parents[1] / "data" / "edsl_example" / "results.csv"
DTYPES = {"VARCHAR": "string", "BIGINT": "Int64", "DOUBLE": "float64"}


# ------------------------------------------------------------------------------ the tiny log
def answers_frame() -> pd.DataFrame:
    """Model m1: iteration 0 (run s-m1-base) and iteration 1 (run s-m1-targeted), two units per arm each."""
    rows = []
    for iteration, run in ((0, "s-m1-base"), (1, "s-m1-targeted")):
        for u in range(4):
            arm = ("control", "treatment")[u % 2]
            rows.append({"study": "s", "run_id": run, "iteration": iteration, "model": "m1",
                         "unit_id": f"{run}-u{u}", "arm": arm, "item": "q", "response": ("yes", "no")[u // 2]})
    return pd.DataFrame(rows)


def iterations_frame() -> pd.DataFrame:
    """Path 'targeted' (iterations 0 and 1) and path 'untargeted' sharing iteration 0's run."""
    base = {"study": "s", "model": "m1", "select": None, "units": 4, "stopped_by": None, "stop_detail": None}
    return pd.DataFrame([
        {**base, "path": "targeted", "iteration": 0, "run_id": "s-m1-base", "spec": '["age","party"]',
         "rules_fired": "[]"},
        {**base, "path": "targeted", "iteration": 1, "run_id": "s-m1-targeted", "select": "targeted",
         "spec": '["age","party","education"]', "rules_fired": '["max_iterations"]', "stopped_by": "max_iterations",
         "stop_detail": '{"max_iterations": 1}'},
        {**base, "path": "untargeted", "iteration": 0, "run_id": "s-m1-base", "spec": '["age","party"]',
         "rules_fired": "[]"},
    ])


def adjustments_frame() -> pd.DataFrame:
    base = {"study": "s", "model": "m1", "path": "targeted"}
    return pd.DataFrame([
        {**base, "iteration": 0, "attribute": "age", "status": "specified", "source": "base"},
        {**base, "iteration": 0, "attribute": "party", "status": "specified", "source": "base"},
        {**base, "iteration": 1, "attribute": "age", "status": "specified", "source": "base"},
        {**base, "iteration": 1, "attribute": "party", "status": "specified", "source": "base"},
        {**base, "iteration": 1, "attribute": "education", "status": "added", "source": "population",
         "score": 0.42, "score_detail": '{"drift": 0.6, "association": 0.7}', "values_from": "population",
         "item": "education", "question": "Your education?", "options": '["High school", "College"]'},
        {**base, "iteration": 1, "attribute": "zodiac sign", "status": "invalid", "source": "model",
         "raw": '{"attributes": ["zodiac sign", 42]}', "note": "not a column of the population table"},
    ])


def tables(**over: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    out = {"answers": answers_frame(), "iterations": iterations_frame(), "adjustments": adjustments_frame()}
    out.update(over)
    return {k: v for k, v in out.items() if v is not None}


def expected(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """What the accessor returns for ``frame``: every schema column, schema dtypes, ordered by the key."""
    fields = ITERATIONS if name == "iterations" else ADJUSTMENTS
    out = pd.DataFrame({f.name: (frame[f.name] if f.name in frame.columns else None) for f in fields})
    for f in fields:
        out[f.name] = out[f.name].astype(DTYPES[f.sql])
    return out.sort_values(list(TABLE_KEYS[name])).reset_index(drop=True)


@pytest.fixture(scope="module")
def adj_log():
    return read_log(tables())


def assert_same_adjustment_tables(log, ref, label: str = "") -> None:
    pdt.assert_frame_equal(log.iterations, ref.iterations, check_exact=True, obj=f"{label}:iterations")
    pdt.assert_frame_equal(log.adjustments, ref.adjustments, check_exact=True, obj=f"{label}:adjustments")


# ------------------------------------------------------------------------------ accessors
def test_accessors_return_the_tables_typed_and_ordered_by_key(adj_log) -> None:
    pdt.assert_frame_equal(adj_log.iterations, expected("iterations", iterations_frame()), check_exact=True)
    pdt.assert_frame_equal(adj_log.adjustments, expected("adjustments", adjustments_frame()), check_exact=True)
    assert adj_log.iterations[["path", "iteration"]].values.tolist() == [
        ["targeted", 0], ["targeted", 1], ["untargeted", 0]]
    pdt.assert_frame_equal(adj_log.to_pandas("iterations"), adj_log.iterations)
    pdt.assert_frame_equal(adj_log.to_pandas("adjustments"), adj_log.adjustments)
    assert adj_log.sql("SELECT count(*) AS n FROM iterations WHERE stopped_by IS NOT NULL")["n"].tolist() == [1]


def test_rows_given_in_any_order_come_back_ordered_by_key(adj_log) -> None:
    log = read_log(tables(iterations=iterations_frame().iloc[::-1], adjustments=adjustments_frame().iloc[::-1]))
    assert_same_adjustment_tables(log, adj_log)
    assert log.fingerprint() == adj_log.fingerprint()


def test_plain_log_has_empty_adjustment_tables_with_the_schema_columns() -> None:
    log = read_log(answers_frame())
    for name, fields in (("iterations", ITERATIONS), ("adjustments", ADJUSTMENTS)):
        frame = getattr(log, name)
        assert frame.empty
        assert list(frame.columns) == [f.name for f in fields]
        assert [str(t) for t in frame.dtypes] == [DTYPES[f.sql] for f in fields]
        pdt.assert_frame_equal(log.to_pandas(name), frame)
    assert "adjustment" not in log.summary().facts
    assert "adjustment" not in log.summary().as_text()


def test_plain_log_keeps_its_fingerprint_over_the_four_tables() -> None:
    log = read_log(answers_frame())
    h = hashlib.sha256()
    for t in ("answers", "items", "personas", "arms"):
        # answers.dialogue_sha256 (all NULL here) enters only when it holds a value: the hash logs always had
        source = "(SELECT * EXCLUDE (dialogue_sha256) FROM answers)" if t == "answers" else t
        n, x = log.con.execute(f"SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM {source} AS t").fetchall()[0]
        h.update(f"{t}:{n}:{x};".encode())
    assert log.fingerprint() == h.hexdigest()[:16]


def test_fingerprint_covers_the_adjustment_tables(adj_log) -> None:
    assert read_log(answers_frame()).fingerprint() != adj_log.fingerprint()
    adj = adjustments_frame()
    adj.loc[4, "score"] = 0.43
    assert read_log(tables(adjustments=adj)).fingerprint() != adj_log.fingerprint()
    it = iterations_frame()
    it.loc[0, "units"] = 5
    assert read_log(tables(iterations=it)).fingerprint() != adj_log.fingerprint()


def test_summary_names_the_adjustment_paths(adj_log) -> None:
    summary = adj_log.summary()
    assert summary.facts["adjustment"] == "1 model x 2 paths, iterations 0-1"
    assert "adjustment: 1 model x 2 paths, iterations 0-1" in summary.as_text()
    assert "adjustment" in summary._repr_html_()
    only_base = read_log(tables(iterations=iterations_frame().iloc[[0]], adjustments=None))
    assert only_base.summary().facts["adjustment"] == "1 model x 1 path, iteration 0"


def test_summary_counts_models_and_paths() -> None:
    a2 = answers_frame().assign(model="m2", unit_id=lambda d: "m2-" + d["unit_id"])
    it2 = iterations_frame().assign(model="m2")
    log = read_log(tables(answers=pd.concat([answers_frame(), a2], ignore_index=True),
                          iterations=pd.concat([iterations_frame(), it2], ignore_index=True)))
    assert log.summary().facts["adjustment"] == "2 models x 2 paths, iterations 0-1"


# ------------------------------------------------------------------------------ sources and formats
def test_keywords_and_dict_give_the_same_log(adj_log) -> None:
    log = read_log(answers_frame(), iterations=iterations_frame(), adjustments=adjustments_frame())
    assert_same_adjustment_tables(log, adj_log)
    assert log.fingerprint() == adj_log.fingerprint()


def test_only_iterations_is_fine_and_adjustments_stay_empty() -> None:
    log = read_log(answers_frame(), iterations=iterations_frame())
    assert len(log.iterations) == 3
    assert log.adjustments.empty


def test_a_table_given_twice_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError, match="the iterations table is given twice"):
        read_log(tables(), iterations=iterations_frame())
    with pytest.raises(InvalidArgumentError, match=r"'iterations', 'adjustments'.*unknown: \['iteration'\]"):
        read_log({"answers": answers_frame(), "iteration": iterations_frame()})


def test_python_lists_and_arrow_list_columns_become_json(adj_log) -> None:
    it = iterations_frame()
    it["spec"] = [json.loads(s) for s in it["spec"]]
    it["rules_fired"] = [json.loads(s) for s in it["rules_fired"]]
    adj = adjustments_frame()
    adj["options"] = [None if pd.isna(s) else json.loads(s) for s in adj["options"]]
    log = read_log(answers_frame(), iterations=it, adjustments=adj)
    assert log.iterations["spec"].tolist() == ['["age", "party"]', '["age", "party", "education"]',
                                               '["age", "party"]']
    assert log.adjustments["options"].dropna().tolist() == ['["High school", "College"]']
    # an Arrow table with list<string> columns (what polars lists are) reads the same
    arrow = pa.Table.from_pandas(it, preserve_index=False)
    assert pa.types.is_list(arrow.schema.field("spec").type)
    pdt.assert_frame_equal(read_log(answers_frame(), iterations=arrow, adjustments=adj).iterations, log.iterations)


def test_sidecar_paths_as_keywords(adj_log, tmp_path) -> None:
    iterations_frame().to_parquet(tmp_path / "it.parquet")
    adjustments_frame().to_csv(tmp_path / "adj.csv", index=False)
    log = read_log(answers_frame(), iterations=tmp_path / "it.parquet", adjustments=str(tmp_path / "adj.csv"))
    assert_same_adjustment_tables(log, adj_log)


def _write_answers(path: Path) -> None:
    read_log(answers_frame()).write(path)


def test_parquet_sidecars_written_by_another_tool(adj_log, tmp_path) -> None:
    """Narrow integer types (int32) and a float column are cast to the schema's types."""
    _write_answers(path := tmp_path / "runs.parquet")
    it = pa.Table.from_pandas(iterations_frame(), preserve_index=False)
    it = it.set_column(it.schema.get_field_index("iteration"), "iteration", it["iteration"].cast(pa.int32()))
    it = it.set_column(it.schema.get_field_index("units"), "units", it["units"].cast(pa.float64()))
    pq.write_table(it, tmp_path / "runs.iterations.parquet")
    pq.write_table(pa.Table.from_pandas(adjustments_frame(), preserve_index=False),
                   tmp_path / "runs.adjustments.parquet")
    assert_same_adjustment_tables(read_log(path), adj_log, "parquet")


def test_csv_sidecars_are_read_as_text_and_cast(adj_log, tmp_path) -> None:
    _write_answers(path := tmp_path / "runs.csv")
    (tmp_path / "runs.iterations.csv").write_text(
        "study,model,path,iteration,run_id,select,spec,units,rules_fired,stopped_by,stop_detail\n"
        's,m1,untargeted,0,s-m1-base,,"[""age"",""party""]",4,[],,\n'
        's,m1,targeted, 1 ,s-m1-targeted,targeted,"[""age"",""party"",""education""]",4,"[""max_iterations""]",'
        'max_iterations,"{""max_iterations"": 1}"\n'
        's,m1,targeted,0,s-m1-base,,"[""age"",""party""]",4,[],,\n'
    )
    adjustments_frame().to_csv(tmp_path / "runs.adjustments.csv", index=False)
    assert_same_adjustment_tables(read_log(path), adj_log, "csv")


def test_csv_sidecar_cell_that_is_not_an_integer_is_an_error(tmp_path) -> None:
    _write_answers(path := tmp_path / "runs.csv")
    frame = iterations_frame().astype({"iteration": object})
    frame.loc[1, "iteration"] = "1.5"
    frame.to_csv(tmp_path / "runs.iterations.csv", index=False)
    with pytest.raises(ColumnTypeError, match=r"iterations: column 'iteration' must hold BIGINT.*first: 1\).*1\.5"):
        read_log(path)


def test_jsonl_sidecars_take_every_value_as_its_text(adj_log, tmp_path) -> None:
    _write_answers(path := tmp_path / "runs.jsonl")
    lines = [json.dumps({k: (None if pd.isna(v) else v) for k, v in r.items()})
             for r in iterations_frame().astype(object).to_dict("records")]
    (tmp_path / "runs.iterations.jsonl").write_text("\n".join(lines) + "\n")
    adjustments_frame().to_json(tmp_path / "runs.adjustments.jsonl", orient="records", lines=True)
    assert_same_adjustment_tables(read_log(path), adj_log, "jsonl")


def test_duckdb_file_with_adjustment_tables(adj_log, tmp_path) -> None:
    path = tmp_path / "store.duckdb"
    con = duckdb.connect(str(path))
    con.register("a", answers_frame())
    con.register("i", iterations_frame())
    con.register("j", adjustments_frame())
    con.execute("CREATE TABLE answers AS SELECT * FROM a")
    con.execute("CREATE TABLE iterations AS SELECT * REPLACE (CAST(iteration AS INTEGER) AS iteration) FROM i")
    con.execute("CREATE TABLE adjustments AS SELECT * FROM j")
    con.close()
    log = read_log(path)
    assert_same_adjustment_tables(log, adj_log, "duckdb")
    # a table given as an argument replaces the file's table (items too)
    log = read_log(path, iterations=iterations_frame().iloc[[0, 2]], adjustments=adjustments_frame().iloc[:2],
                   items=log.items)
    assert log.iterations["path"].tolist() == ["targeted", "untargeted"]
    assert len(log.adjustments) == 2


def test_a_sidecar_given_as_an_argument_replaces_the_file(adj_log, tmp_path) -> None:
    adj_log.write(path := tmp_path / "runs.parquet")
    log = read_log(path, iterations=iterations_frame().iloc[[0, 2]], adjustments=adjustments_frame().iloc[:2])
    assert log.iterations["path"].tolist() == ["targeted", "untargeted"]
    assert len(log.adjustments) == 2


def test_edsl_import_takes_the_adjustment_tables_as_arguments() -> None:
    plain = read_log(EDSL_EXAMPLE, format="edsl", arm="scenario.arm")
    model, iteration, run_id = plain.sql("SELECT model, iteration, run_id FROM answers LIMIT 1").iloc[0]
    it = pd.DataFrame([{"model": model, "path": "targeted", "iteration": int(iteration), "run_id": run_id,
                        "spec": "[]"}])
    log = read_log(EDSL_EXAMPLE, format="edsl", arm="scenario.arm", iterations=it)
    assert log.iterations["run_id"].tolist() == [run_id]


# ------------------------------------------------------------------------------ writing
@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_in_every_format(adj_log, tmp_path, suffix) -> None:
    path = tmp_path / f"runs{suffix}"
    written = adj_log.write(path)
    back = read_log(path)
    assert_same_adjustment_tables(back, adj_log, suffix)
    pdt.assert_frame_equal(back.to_pandas(), adj_log.to_pandas(), check_exact=True)
    assert back.fingerprint() == adj_log.fingerprint()
    if suffix == ".duckdb":
        assert written == [path]
    else:
        assert [p.name for p in written] == [f"runs{suffix}", *(f"runs.{t}{suffix}" for t in (
            "items", "personas", "arms", "iterations", "adjustments"))]


@pytest.mark.parametrize("suffix", FORMATS)
def test_plain_log_writes_no_adjustment_tables_and_removes_stale_ones(adj_log, tmp_path, suffix) -> None:
    path = tmp_path / f"runs{suffix}"
    adj_log.write(path)
    plain = read_log(answers_frame())
    written = plain.write(path)
    assert not any("iterations" in p.name or "adjustments" in p.name for p in tmp_path.iterdir())
    assert len(written) == (1 if suffix == ".duckdb" else 4)
    back = read_log(path)
    assert back.iterations.empty
    assert back.adjustments.empty
    assert back.fingerprint() == plain.fingerprint()
    if suffix == ".duckdb":
        con = duckdb.connect(str(path), read_only=True)
        names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        con.close()
        assert names == {"answers", "items", "personas", "arms", "meta"}


def test_iterations_without_adjustments_round_trip(tmp_path) -> None:
    log = read_log(answers_frame(), iterations=iterations_frame())
    names = [p.name for p in log.write(tmp_path / "runs.csv")]
    assert "runs.iterations.csv" in names
    assert "runs.adjustments.csv" not in names
    assert_same_adjustment_tables(read_log(tmp_path / "runs.csv"), log)


# ------------------------------------------------------------------------------ validation
def _bad(table: str, row: int | None, **values) -> dict[str, pd.DataFrame]:
    frame = iterations_frame() if table == "iterations" else adjustments_frame()
    frame = frame.astype(object)
    for k, v in values.items():
        frame.loc[row, k] = v
    return tables(**{table: frame})


def test_sharing_a_run_and_unlisted_answers_are_valid() -> None:
    it = iterations_frame()
    assert it.loc[0, "run_id"] == it.loc[2, "run_id"]
    log = read_log(tables(iterations=it.iloc[[0, 2]], adjustments=adjustments_frame().iloc[:2]))
    assert log.iterations["run_id"].tolist() == ["s-m1-base", "s-m1-base"]  # iteration 1's answers are not listed


def test_missing_required_column_names_the_table() -> None:
    with pytest.raises(MissingColumnError, match=r"iterations: required column\(s\) \['spec'\] are missing.*"
                                                 r"add them to the iterations table") as e:
        read_log(tables(iterations=iterations_frame().drop(columns=["spec"])))
    assert isinstance(e.value, KeyError)
    with pytest.raises(MissingColumnError, match=r"adjustments: required column\(s\) \['status', 'source'\]"):
        read_log(tables(adjustments=adjustments_frame().drop(columns=["status", "source"])))


def test_optional_columns_take_their_defaults() -> None:
    it = iterations_frame().drop(columns=["study", "select", "units", "rules_fired", "stopped_by", "stop_detail"])
    adj = adjustments_frame()[["model", "path", "iteration", "attribute", "status", "source"]]
    log = read_log(answers_frame(), iterations=it, adjustments=adj)
    assert set(log.iterations["study"]) == {"study"}
    assert set(log.iterations["rules_fired"]) == {"[]"}
    assert log.iterations["stopped_by"].isna().all()
    assert log.adjustments["score"].isna().all()


def test_wrong_type_names_the_table_column_and_rows() -> None:
    with pytest.raises(ColumnTypeError, match=r"iterations: column 'units' must hold BIGINT.*first: 2\).*four"):
        read_log(_bad("iterations", 2, units="four"))
    with pytest.raises(ColumnTypeError, match=r"adjustments: column 'score' must hold DOUBLE.*first: 4\)"):
        read_log(_bad("adjustments", 4, score="high"))


def test_null_in_a_required_column() -> None:
    with pytest.raises(InvalidValueError, match=r"iterations: column 'spec' has missing values in 1 row\(s\) "
                                                r"\(first: 1\)"):
        read_log(_bad("iterations", 1, spec=None))
    with pytest.raises(InvalidValueError, match=r"adjustments: column 'attribute' has missing values"):
        read_log(_bad("adjustments", 3, attribute=None))


def test_duplicate_iteration_key() -> None:
    it = pd.concat([iterations_frame(), iterations_frame().iloc[[1]]], ignore_index=True)
    with pytest.raises(DuplicateKeyError, match=r"iterations: 1 key\(s\) \(study, model, path, iteration\).*"
                                                r"path='targeted', iteration=1 on rows \[1, 3\]"):
        read_log(tables(iterations=it))


def test_duplicate_adjustment_key() -> None:
    adj = pd.concat([adjustments_frame(), adjustments_frame().iloc[[4]]], ignore_index=True)
    with pytest.raises(DuplicateKeyError, match=r"adjustments: 1 key\(s\) \(study, model, path, iteration, "
                                                r"attribute\).*attribute='education' on rows \[4, 6\]"):
        read_log(tables(adjustments=adj))


def test_negative_iteration_and_units() -> None:
    with pytest.raises(InvalidValueError, match=r"iterations: column 'iteration' .* Expected: an integer >= 0"):
        read_log(_bad("iterations", 2, iteration=-1))
    with pytest.raises(InvalidValueError, match=r"adjustments: column 'iteration' .*first: 0\).* an integer >= 0"):
        read_log(_bad("adjustments", 0, iteration=-1))
    with pytest.raises(InvalidValueError, match=r"iterations: column 'units' .*\['-4'\].*a count >= 0"):
        read_log(_bad("iterations", 0, units=-4))


def test_unknown_status_and_source() -> None:
    with pytest.raises(InvalidValueError, match=r"adjustments: column 'status' has unexpected values in 1 row\(s\) "
                                                r"\(first: 5\) \(e.g. \['rejected'\]\). Expected: one of "
                                                r"\['specified', 'added', 'candidate', 'invalid'\]"):
        read_log(_bad("adjustments", 5, status="rejected"))
    with pytest.raises(InvalidValueError, match=r"adjustments: column 'source' .*\['llm'\].*"
                                                r"\['base', 'population', 'analyst', 'model'\]"):
        read_log(_bad("adjustments", 5, source="llm"))


@pytest.mark.parametrize(("value", "why"), [
    ("max_iterations", "not valid JSON"),
    ('{"max_iterations": true}', "a JSON dict, not an array"),
    ('["max_iterations", 3]', "an element that is not a string"),
    ('["too_many"]', "unknown name 'too_many'"),
    ('["no_change", "no_change"]', "'no_change' listed twice"),
])
def test_rules_fired_is_a_json_array_of_stop_rules(value, why) -> None:
    with pytest.raises(InvalidValueError, match=rf"iterations: column 'rules_fired' .*\(first: 0\).*"
                                                rf"the first holds {why}\). Expected: a JSON array of distinct "
                                                r"stopping rules from \['equivalence', 'no_change'"):
        read_log(_bad("iterations", 0, rules_fired=value))


@pytest.mark.parametrize(("value", "why"), [
    ("age, party", "not valid JSON"),
    ('"age"', "a JSON str, not an array"),
    ('["age", null]', "an element that is not a string"),
    ('["age", "age"]', "'age' listed twice"),
])
def test_spec_is_a_json_array_of_distinct_names(value, why) -> None:
    with pytest.raises(InvalidValueError, match=rf"iterations: column 'spec' .*\(first: 2\).*the first holds {why}"):
        read_log(_bad("iterations", 2, spec=value))


def test_adjustment_options_are_a_json_array() -> None:
    with pytest.raises(InvalidValueError, match=r"adjustments: column 'options' .*\(first: 4\).*not valid JSON\). "
                                                r"Expected: NULL or a JSON array"):
        read_log(_bad("adjustments", 4, options="High school | College"))
    with pytest.raises(InvalidValueError, match=r"adjustments: column 'options' .*'College' listed twice"):
        read_log(_bad("adjustments", 4, options='["College", "College"]'))


def test_stopped_by_is_a_stop_rule() -> None:
    with pytest.raises(InvalidValueError, match=r"iterations: column 'stopped_by' .*\(first: 1\).*\['budget'\]\). "
                                                r"Expected: NULL or one of \['equivalence'"):
        read_log(_bad("iterations", 1, stopped_by="budget"))


def test_stopped_by_is_one_of_the_rules_fired() -> None:
    with pytest.raises(InvalidValueError, match=r"iterations: column 'stopped_by' .*\(first: 1\).*\['equivalence'\]"
                                                r"\). Expected: one of the rules in the row's rules_fired"):
        read_log(_bad("iterations", 1, stopped_by="equivalence"))


def test_no_iteration_after_the_path_stopped() -> None:
    it = iterations_frame().astype(object)
    it.loc[0, ["rules_fired", "stopped_by"]] = ['["no_change"]', "no_change"]
    with pytest.raises(InvalidValueError, match=r"iterations: 1 row\(s\) \(first: 1\) come after the iteration that "
                                                r"ended their path; first: study='s', model='m1', path='targeted', "
                                                r"iteration=1 after iteration 0 stopped by 'no_change'"):
        read_log(tables(iterations=it))


@pytest.mark.parametrize(("change", "held"), [
    ({"run_id": "s-m1-untargeted"}, r"the answers of model 'm1' hold \(iteration, run_id\) \(0, 's-m1-base'\), "
                                    r"\(1, 's-m1-targeted'\)\. Expected"),
    ({"iteration": 2, "stopped_by": None, "rules_fired": "[]"}, r"the answers of model 'm1' hold"),
    ({"model": "m2"}, r"the answers hold no model 'm2' \(models: \['m1'\]\)"),
])
def test_each_iteration_names_answers_that_exist(change, held) -> None:
    it = iterations_frame().astype(object)
    for k, v in change.items():
        it.loc[2, k] = v
    with pytest.raises(InvalidValueError, match=r"iterations: 1 row\(s\) \(first: 2\) name answers that do not "
                                                rf"exist; first: .*but {held}.*Fix: correct the model"):
        read_log(tables(iterations=it))


def test_an_iteration_whose_run_belongs_to_another_iteration_is_an_error() -> None:
    with pytest.raises(InvalidValueError, match=r"name answers that do not exist; first: model='m1', iteration=0, "
                                                r"run_id='s-m1-targeted'"):
        read_log(_bad("iterations", 2, run_id="s-m1-targeted"))


def test_adjustment_paths_must_be_paths_of_iterations() -> None:
    with pytest.raises(InvalidValueError, match=r"adjustments: 1 row\(s\) \(first: 3\) describe paths that are not "
                                                r"in the iterations table; first: study='s', model='m1', "
                                                r"path='random', but the iterations table holds \(study, model, path\) "
                                                r"\('s', 'm1', 'targeted'\), \('s', 'm1', 'untargeted'\)\. Expected"):
        read_log(_bad("adjustments", 3, path="random"))
    with pytest.raises(InvalidValueError, match=r"adjustments: 6 row\(s\) \(first: 0, 1, 2, 3, 4, \.\.\.\) describe "
                                                r"paths .*the log has no iterations table.*iterations="):
        read_log(tables(iterations=None))


def test_every_error_is_a_log_validation_error_and_a_value_error() -> None:
    for bad in (_bad("adjustments", 5, status="rejected"), _bad("iterations", 0, rules_fired="x"),
                _bad("iterations", 2, model="m2")):
        with pytest.raises(LogValidationError) as e:
            read_log(bad)
        assert isinstance(e.value, ValueError)
