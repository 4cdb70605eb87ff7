"""Round trips through every format, mapping, personas, SQL access."""

from __future__ import annotations

import pandas as pd
import pandas.testing as pdt
import pytest

from driftstats import read_log
from driftstats.errors import InvalidArgumentError, MissingColumnError


def _frames(log):
    return {t: log.to_pandas(t) for t in ("answers", "items", "personas", "arms")}


def test_read_frame_derives_codes_and_roles(small_log) -> None:
    a = small_log.to_pandas()
    sup = a[(a["item"] == "support") & (a["mode"] == "sample")]
    assert (sup["response_code"] == sup["response"].map({"Oppose": 0, "Neutral": 1, "Support": 2})).all()
    assert set(a.loc[a["item"] == "age", "role"]) == {"nco"}
    assert small_log.item("support").options == ("Oppose", "Neutral", "Support")
    assert small_log.reference_arm == "control"
    assert small_log.item_names("nco") == ("age", "news")


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".duckdb"])
def test_round_trip_every_format(small_log, tmp_path, suffix) -> None:
    path = tmp_path / f"runs{suffix}"
    written = small_log.write(path)
    assert path in written
    back = read_log(path)
    before, after = _frames(small_log), _frames(back)
    for t in before:
        pdt.assert_frame_equal(before[t], after[t], check_exact=False, rtol=1e-12, obj=f"{suffix}:{t}")
    assert back.diagnostics == ()


def test_round_trip_keeps_invalid_rows_and_unicode(tables, tmp_path) -> None:
    a = tables["answers"].copy()
    a.loc[0, "valid"] = False
    a.loc[0, "response"] = "Je ne sais pas, \"vraiment\"\nligne 2 — ✓"
    a.loc[0, "error"] = "not one of the options; multi\nline"
    log = read_log(a, items=tables["items"], personas=tables["personas"], arms=tables["arms"])
    for suffix in (".csv", ".jsonl", ".parquet", ".duckdb"):
        p = tmp_path / f"x{suffix}"
        log.write(p)
        back = read_log(p).to_pandas()
        assert back.loc[0, "response"] == a.loc[0, "response"]
        assert back.loc[0, "error"] == a.loc[0, "error"]
        assert not back.loc[0, "valid"]
        assert len(back) == len(a)


def test_write_is_atomic_no_temp_files_left(small_log, tmp_path) -> None:
    small_log.write(tmp_path / "a.parquet")
    small_log.write(tmp_path / "a.parquet")  # overwrite
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.arms.parquet", "a.items.parquet", "a.parquet", "a.personas.parquet"]


def test_mapping_and_persona_columns() -> None:
    df = pd.DataFrame({
        "respondent": ["a", "a", "b", "b"],
        "group": ["ctl", "ctl", "trt", "trt"],
        "question": ["q1", "q2", "q1", "q2"],
        "answer": ["x", "y", "y", "n"],
        "age": ["30", "30", "40", "40"],
    })
    log = read_log(df, mapping={"respondent": "unit_id", "group": "arm", "question": "item", "answer": "response"},
                   persona=["age"], nco="q1", primary="q2")
    wide = log.personas_wide()
    assert wide.set_index("unit_id")["age"].to_dict() == {"a": "30", "b": "40"}
    assert "age" not in log.columns()
    assert log.item("q1").role == "nco"


def test_hostile_identifiers_are_quoted_not_executed() -> None:
    evil = 'x"; DROP TABLE answers; --'
    df = pd.DataFrame({"unit_id": ["a", "b"], "arm": ["c", "t"], "item": ["q", "q"], "response": ["1", "2"],
                       evil: ["v1", "v2"]})
    log = read_log(df, persona=[evil])
    assert log.n_rows == 2
    assert set(log.personas["attribute"]) == {evil}
    # the mapping path quotes too
    log2 = read_log(df.rename(columns={"item": "it'em"}), mapping={"it'em": "item"})
    assert log2.item_names() == ("q",)


def test_sql_access_for_sql_users(small_log) -> None:
    out = small_log.sql(
        "SELECT p.value AS party, count(*) AS n FROM answers a JOIN personas p USING (unit_id) "
        "WHERE p.attribute = ? AND a.item = 'age' GROUP BY 1 ORDER BY 1", ["party"])
    assert out["n"].sum() == 12


def test_unknown_suffix_and_mapping_errors(tmp_path, small_log) -> None:
    with pytest.raises(InvalidArgumentError, match="suffix"):
        small_log.write(tmp_path / "x.xlsx")
    df = pd.DataFrame({"unit_id": ["a"], "arm": ["c"], "item": ["q"], "response": ["1"]})
    with pytest.raises(MissingColumnError, match="mapping names column"):
        read_log(df, mapping={"nope": "arm"})
    with pytest.raises(InvalidArgumentError, match="several columns named"):
        read_log(df.assign(grp="c"), mapping={"grp": "arm"})


def test_duckdb_source_other_table(tmp_path, small_log) -> None:
    import duckdb

    p = tmp_path / "other.duckdb"
    con = duckdb.connect(str(p))
    con.register("df", small_log.to_pandas().drop(columns=["created_at"]))
    con.execute("CREATE TABLE my_answers AS SELECT * FROM df")
    con.close()
    log = read_log(p, table="my_answers")
    assert log.n_rows == small_log.n_rows
    with pytest.raises(InvalidArgumentError, match="no table 'answers'"):
        read_log(p)
