"""Every validation error has a named exception, a builtin base, and a message that helps."""

from __future__ import annotations

import json

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

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
