"""Importing an edsl Results export: CRLF, multi-line cells, Python-repr lists, failed answers kept."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from driftstats import read_log
from driftstats.errors import InvalidArgumentError, MissingColumnError
from driftstats.log.pyrepr import parse_list

EXAMPLE = Path(__file__).parents[1] / "data" / "edsl_example" / "results.csv"


def test_example_has_real_export_quirks() -> None:
    raw = EXAMPLE.read_bytes()
    assert b"\r\n" in raw
    assert b'"Because taxes matter.\nSecond line' in raw  # multi-line quoted cell
    assert b"['18-29', '30-44', '45-64', '65+']" in raw  # Python-repr list


def test_edsl_import_maps_agents_arms_answers() -> None:
    log = read_log(EXAMPLE, format="edsl", arm="scenario.arm", nco=["nc_age", "nc_region"], primary=["support"])
    a = log.to_pandas()
    raw = pd.read_csv(EXAMPLE, dtype=str, keep_default_na=False)
    # every non-free-text answer cell is a row, including the ones edsl failed to validate
    assert len(a) == 4 * len(raw)
    assert set(log.arm_names) == {"control", "treatment"}
    assert log.item("nc_age").options == ("18-29", "30-44", "45-64", "65+")
    assert log.item("news_days").scale == "ordinal"
    assert log.item("news_days").options == tuple(str(i) for i in range(8))
    assert "why" not in log.item_names()  # free text has no options
    # units: one agent in one arm; persona_id links the arms
    assert a["unit_id"].nunique() == len(raw)
    assert a.groupby("persona_id")["arm"].nunique().eq(2).all()
    # traits become the persona
    wide = log.personas_wide()
    assert {"age", "party"} <= set(wide.columns)
    # failed validations are kept as invalid rows with edsl's text
    n_failed = (raw["validated.support_validated"] == "False").sum()
    bad = a[(a["item"] == "support") & ~a["valid"]]
    assert len(bad) == n_failed > 0
    assert bad["error"].str.contains("edsl: answer failed validation; model output: I'd rather not say,\nit depends.",
                                     regex=False).all()
    assert bad["response"].isna().all()
    assert log.item("support").role == "primary"
    assert log.item("nc_age").role == "nco"


def test_edsl_jsonl_and_errors(tmp_path) -> None:
    frame = pd.read_csv(EXAMPLE, dtype=str, keep_default_na=False, na_values=[""])
    p = tmp_path / "results.jsonl"
    frame.to_json(p, orient="records", lines=True)
    log = read_log(p, format="edsl", arm="scenario.arm")
    assert log.n_rows == 4 * len(frame)
    with pytest.raises(InvalidArgumentError, match="arm='scenario"):
        read_log(p, format="edsl")
    with pytest.raises(MissingColumnError, match="Scenario columns"):
        read_log(p, format="edsl", arm="scenario.group")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("['a', 'b']", ["a", "b"]),
        ('["x, y", "z"]', ["x, y", "z"]),
        ("[0, 1, 2.5, -3]", ["0", "1", "2.5", "-3"]),
        ("['it\\'s', \"q\\\"uote\"]", ["it's", 'q"uote']),
        ("[True, None]", ["true", None]),
        ("[]", []),
    ],
)
def test_pyrepr_parses_literals(text, expected) -> None:
    assert parse_list(text) == expected


@pytest.mark.parametrize("text", ["__import__('os').system('x')", "[f(1)]", "['a' 'b']", "['a',", "[1] + [2]"])
def test_pyrepr_never_evaluates(text) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        parse_list(text)
