"""Every validation error has a named exception, a builtin base, and a message that helps."""

from __future__ import annotations

import json

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings

from driftstats import read_log
from driftstats.errors import (
    ColumnTypeError,
    DriftstatsError,
    DuplicateKeyError,
    EmptyArmError,
    EmptyLogError,
    InvalidArgumentError,
    InvalidValueError,
    MissingColumnError,
    SingleOptionItemError,
    UnknownOptionError,
)


def _read(t, **over):
    parts = {**t, **over}
    return read_log(parts["answers"], items=parts["items"], personas=parts["personas"], arms=parts["arms"])


def test_empty_log(tables) -> None:
    with pytest.raises(EmptyLogError, match="no rows") as e:
        _read(tables, answers=tables["answers"].iloc[:0])
    assert isinstance(e.value, ValueError)


def test_missing_required_column(tables) -> None:
    with pytest.raises(MissingColumnError, match=r"\['arm'\] are missing.*mapping=") as e:
        _read(tables, answers=tables["answers"].drop(columns=["arm"]))
    assert isinstance(e.value, KeyError)
    assert "arm" in str(e.value)


def test_wrong_type_names_column_rows_and_examples(tables) -> None:
    a = tables["answers"].copy()
    a["iteration"] = a["iteration"].astype(object)
    a.loc[[3, 5], "iteration"] = ["two", "2.5"]
    with pytest.raises(ColumnTypeError, match=r"'iteration' must hold BIGINT.*2 row\(s\) \(first: 3, 5\)") as e:
        _read(tables, answers=a)
    assert isinstance(e.value, TypeError)
    assert "two" in str(e.value)


def test_unknown_option(tables) -> None:
    a = tables["answers"].copy()
    idx = a.index[(a["item"] == "age") & (a["mode"] == "sample")][1]
    a.loc[idx, "response"] = "ninety"
    with pytest.raises(UnknownOptionError, match=r"item 'age' answered 'ninety', options \['18-29'") as e:
        _read(tables, answers=a)
    assert f"first: {idx}" in str(e.value)


def test_unknown_option_allowed_when_marked_invalid(tables) -> None:
    a = tables["answers"].copy()
    idx = a.index[a["item"] == "age"][1]
    a.loc[idx, ["response", "valid", "error"]] = ["ninety", False, "not an option"]
    log = _read(tables, answers=a)
    assert log.to_pandas()["valid"].sum() == len(a) - 1
    assert any("flagged invalid" in d for d in log.diagnostics)


def test_duplicate_keys(tables) -> None:
    a = pd.concat([tables["answers"], tables["answers"].iloc[[0]]], ignore_index=True)
    with pytest.raises(DuplicateKeyError, match=r"1 key\(s\).*unit_id='p0-control'.*rows \[0, \d+\]"):
        _read(tables, answers=a)


def test_arm_with_no_rows(tables) -> None:
    arms = pd.concat([tables["arms"], pd.DataFrame({"arm": ["placebo"], "kind": ["placebo"]})], ignore_index=True)
    with pytest.raises(EmptyArmError, match=r"\['placebo'\] have no rows"):
        _read(tables, arms=arms)


def test_item_with_single_option(tables) -> None:
    items = tables["items"].copy()
    items.loc[items["item"] == "party", "options"] = pd.Series([["Democrat"]], index=items.index[items["item"] == "party"])
    with pytest.raises(SingleOptionItemError, match="'party' \\(1 option"):
        _read(tables, items=items)


def test_probabilities_must_sum_to_one(tables) -> None:
    a = tables["answers"].copy()
    i = a.index[a["mode"] == "dist"][0]
    a.loc[i, "prob"] = a.loc[i, "prob"] + 0.2
    with pytest.raises(InvalidValueError, match="do not sum to 1"):
        _read(tables, answers=a)


def test_prob_in_sample_mode_rejected(tables) -> None:
    a = tables["answers"].copy()
    a.loc[0, "prob"] = 0.5
    with pytest.raises(InvalidValueError, match="NULL in mode 'sample'"):
        _read(tables, answers=a)


def test_valid_row_without_response(tables) -> None:
    a = tables["answers"].copy()
    a.loc[2, "response"] = None
    with pytest.raises(InvalidValueError, match="mark failed answers with valid = false"):
        _read(tables, answers=a)


def test_unit_in_two_arms(tables) -> None:
    a = tables["answers"].copy()
    a.loc[a["unit_id"] == "p1-treatment", "unit_id"] = "p1-control"
    with pytest.raises((InvalidValueError, DuplicateKeyError)):
        _read(tables, answers=a)
    b = tables["answers"].copy()
    mask = (b["unit_id"] == "p1-treatment") & (b["item"] == "age")
    b.loc[mask, "unit_id"] = "p1-control"
    b.loc[mask, "replicate"] = 5
    with pytest.raises(InvalidValueError, match="appears in several arms"):
        _read(tables, answers=b)


def test_missing_key_values_and_negative_iteration(tables) -> None:
    a = tables["answers"].copy()
    a.loc[4, "unit_id"] = None
    with pytest.raises(InvalidValueError, match=r"'unit_id' has missing values in 1 row\(s\) \(first: 4\)"):
        _read(tables, answers=a)
    a = tables["answers"].copy()
    a.loc[1, "iteration"] = -1
    with pytest.raises(InvalidValueError, match="renumber iterations"):
        _read(tables, answers=a)


def test_bad_items_table(tables) -> None:
    items = tables["items"].copy()
    items["options"] = [json.dumps(o) for o in items["options"]]
    items.loc[0, "options"] = "['a', 'b'"  # not JSON
    with pytest.raises(InvalidValueError, match="JSON array"):
        _read(tables, items=items)
    items = tables["items"].copy()
    items.loc[0, "scale"] = "likert"
    with pytest.raises(InvalidValueError, match="scale"):
        _read(tables, items=items)
    items = tables["items"].iloc[1:]
    with pytest.raises(InvalidValueError, match="missing from the items table"):
        _read(tables, items=items)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_valid_numeric_answer_must_be_finite(value) -> None:
    """A valid answer 'nan' / 'inf' to a numeric item is no measurement: a named error (it was read as NaN / inf)."""
    a = pd.DataFrame({"unit_id": ["u0", "u1", "u2"], "arm": ["c", "c", "t"], "item": "age",
                      "response": ["41", value, "30"]})
    items = pd.DataFrame({"item": ["age"], "options": [None], "scale": ["numeric"]})
    with pytest.raises(UnknownOptionError, match=r"first: 1\) are not finite numbers"):
        read_log(a, items=items)
    a["valid"] = [True, False, True]  # flagged invalid, it is kept as such
    assert read_log(a, items=items).to_pandas()["valid"].tolist() == [True, False, True]
    with pytest.raises(UnknownOptionError, match="not finite"):
        read_log(a.assign(valid=True, response="3", response_value=[1.0, -np.inf, 2.0]), items=items)


def test_role_argument_for_unknown_item(tables) -> None:
    with pytest.raises(InvalidValueError, match="not in the log"):
        read_log(tables["answers"], items=tables["items"], nco=["shoe_size"])
    with pytest.raises(InvalidArgumentError, match="two roles"):
        read_log(tables["answers"], nco=["age"], primary=["age"])


def test_errors_are_catchable_as_builtins(tables) -> None:
    with pytest.raises(ValueError, match="no rows"):
        _read(tables, answers=tables["answers"].iloc[:0])


# --------------------------------------------------------------------------- property
_COLS = ["study", "run_id", "iteration", "model", "unit_id", "arm", "item", "replicate", "role", "mode",
         "response", "response_code", "prob", "valid", "error", "seed", "created_at"]
_cell = st.one_of(
    st.none(), st.text(max_size=6), st.integers(-3, 5), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.sampled_from(["sample", "dist", "nco", "primary", "a", "b", "2026-01-01", "1.5"]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cols=st.lists(st.sampled_from(_COLS), min_size=0, max_size=len(_COLS), unique=True),
    n=st.integers(0, 6),
    data=st.data(),
)
def test_malformed_logs_raise_only_named_errors(cols, n, data) -> None:
    """Random malformed frames: either a valid log or one of driftstats' named errors, nothing else."""
    frame = pd.DataFrame({c: [data.draw(_cell) for _ in range(n)] for c in cols})
    if n and data.draw(st.booleans()):  # often make the keys present so deeper checks run
        for c, v in (("unit_id", "u"), ("arm", "a"), ("item", "q"), ("response", "x")):
            frame[c] = [f"{v}{data.draw(st.integers(0, 2))}" for _ in range(n)]
    try:
        log = read_log(frame)
    except DriftstatsError:
        return
    assert log.n_rows == n
    assert np.all(log.to_pandas()["iteration"] >= 0)


# ------------------------------------------------------------------------------ property: more inputs
_AWKWARD_TEXT = st.one_of(
    st.text(max_size=8),
    st.sampled_from(['said "hi"', "a,b", "x\ny", "cr\r", "\r\n", '""', '"', "", " ", "NULL", "nan", "007", "1e5",
                     "$x", "\\", "\t", "ü✓", '{"a": 1}', "[1, 2]", "true", "2.5", "-1", "sample", "dist", "a0", "u1"]),
)
_ARROW_TYPES = {
    "string": (pa.string(), _AWKWARD_TEXT),
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "float64": (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    "bool": (pa.bool_(), st.booleans()),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cols=st.lists(st.sampled_from(_COLS), min_size=0, max_size=len(_COLS), unique=True),
    n=st.integers(0, 6),
    data=st.data(),
)
def test_malformed_arrow_tables_raise_only_named_errors(cols, n, data) -> None:
    """Random typed Arrow tables (strings, integers, floats, booleans, nulls): a log or a named error."""
    arrays = {}
    for c in cols:
        typ, values = _ARROW_TYPES[data.draw(st.sampled_from(sorted(_ARROW_TYPES)))]
        arrays[c] = pa.array([data.draw(st.none() | values) for _ in range(n)], type=typ)
    if n and data.draw(st.booleans()):
        arrays["unit_id"] = pa.array([f"u{i}" for i in range(n)])
        arrays["arm"] = pa.array([f"a{i % 2}" for i in range(n)])
        arrays["item"] = pa.array(["q"] * n)
        arrays["response"] = pa.array([f"x{data.draw(st.integers(0, 2))}" for _ in range(n)])
    table = pa.table(arrays) if arrays else pa.table({"unused": pa.nulls(n)}).drop(["unused"])
    try:
        log = read_log(table)
    except DriftstatsError as exc:
        event(type(exc).__name__)
        return
    event("valid log")
    assert log.n_rows == n


def _csv_text(rows: list[list[object]], header: list[str]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in r] for r in rows])
    return buf.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(["csv", "jsonl"]),
    cols=st.lists(st.sampled_from(_COLS), min_size=1, max_size=len(_COLS), unique=True),
    n=st.integers(0, 5),
    data=st.data(),
)
def test_awkward_files_on_disk_raise_only_named_errors(fmt, cols, n, data) -> None:
    """CSV / JSONL files with awkward cells (quotes, separators, newlines, mixed JSON types): a log or a named error."""
    import tempfile
    from pathlib import Path

    value = _AWKWARD_TEXT | st.integers(-5, 5) | st.floats(allow_nan=False) | st.booleans() | st.none()
    keyed = n > 0 and data.draw(st.booleans())  # often a well-keyed log, so that deeper checks and reading run
    if keyed:  # the keys, and text columns that may hold anything
        cols = ["unit_id", "arm", "item", "response", *data.draw(st.lists(st.sampled_from(["error", "extra", "note"]),
                                                                          unique=True))]
    rows = [[data.draw(value) for _ in cols] for _ in range(n)]
    if keyed:
        for i, r in enumerate(rows):
            r[cols.index("unit_id")] = f"u{i}"
            r[cols.index("arm")] = f"a{i % 2}"
            r[cols.index("item")] = "q"
            r[cols.index("response")] = data.draw(_AWKWARD_TEXT) if data.draw(st.booleans()) else f"x{i % 2}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"log.{fmt}"
        if fmt == "csv":
            path.write_text(_csv_text(rows, cols), encoding="utf-8")
        else:
            lines = [json.dumps(dict(zip(cols, r, strict=True))) for r in rows]
            if n and data.draw(st.booleans()):  # a line that is not an object, or not JSON
                lines.insert(data.draw(st.integers(0, len(lines))), data.draw(st.sampled_from(["[1]", "3", "{", "null"])))
            path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        try:
            log = read_log(path)
        except DriftstatsError as exc:
            event(type(exc).__name__)
            return
        event("valid log")
        assert log.n_rows == n
        if fmt == "csv" and "response" in cols:  # what was written is what is read
            got = log.to_pandas()["response"].tolist()
            want = [None if r[cols.index("response")] in (None, "") else str(r[cols.index("response")]) for r in rows]
            assert [g if g is not pd.NA else None for g in got] == want


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(["csv", "jsonl", "parquet", "duckdb"]), blob=st.binary(max_size=200))
def test_random_bytes_raise_only_named_errors(fmt, blob) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"log.{fmt}"
        path.write_bytes(blob)
        try:
            read_log(path)
        except DriftstatsError as exc:
            event(type(exc).__name__)
            return
        event("valid log")
