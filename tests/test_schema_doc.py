"""docs/schema.md matches the schema in code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from driftstats.log.schema import ANSWER_KEYS, TABLES

DOC = (Path(__file__).parents[1] / "docs" / "schema.md").read_text()


def _doc_table(name: str) -> list[tuple[str, str, str]]:
    section = DOC.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_0-9]+)` \| ([A-Z]+) \| ([^|]+) \|", section, flags=re.M)


@pytest.mark.parametrize("name", list(TABLES))
def test_doc_lists_every_field_with_type_and_default(name: str) -> None:
    rows = _doc_table(name)
    expected = [(f.name, f.sql, "**required**" if f.required else f"`{f.default}`") for f in TABLES[name]]
    assert [(n, t, d.strip()) for n, t, d in rows] == expected


def test_doc_states_the_answer_key() -> None:
    assert ", ".join(f"`{k}`" for k in ANSWER_KEYS) in DOC
