"""The audit report's dialogue section: only for logs with transcripts, counts from the log, the drift test on the
dialogue items as an audit step, and a transcript viewer that shows hostile text as text."""

from __future__ import annotations

import pandas as pd
import pytest

import driftstats as ds
from driftstats._result import fmt_num
from driftstats.report import render, steps
from tests.conftest import headless_chromium, require
from tests.test_log_transcripts import dialogue_tables

require("matplotlib")
require("jinja2")

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
TEX = "$\\alpha$"
PWN = "<script>document.body.setAttribute('data-pwned','script')</script>"
HOSTILE_ARM = "treat<b>x</b>"
N_PERM = 199


def hostile_tables() -> dict[str, pd.DataFrame]:
    """The dialogue log with hostile message texts, a hostile arm name and a hostile tool call."""
    tables = dialogue_tables(n_per_arm=12, texts=[SCRIPT, IMG, TEX, PWN, "plain"])
    for name in ("answers", "arms"):
        tables[name] = tables[name].replace({"arm": {"treatment": HOSTILE_ARM}})
    tables["transcripts"].loc[1, "tool_calls"] = f'[{{"name": "{IMG.replace(chr(34), chr(39))}"}}]'
    return tables


@pytest.fixture(scope="module")
def dialogue_audit():
    return ds.audit(ds.read_log(hostile_tables()), n_perm=N_PERM, n_boot=0, seed=3)


@pytest.fixture(scope="module")
def html(dialogue_audit) -> str:
    return dialogue_audit.to_html()


def _row(*cells: object) -> str:
    return "".join(f'<td class="{"txt" if isinstance(c, str) else "num"}">{fmt_num(c)}</td>' for c in cells)


def test_section_appears_only_with_transcripts(html: str) -> None:
    assert '<h2 id="dialogue">3. The dialogues</h2>' in html
    tables = hostile_tables()
    without = ds.audit(ds.read_log({k: v for k, v in tables.items() if k != "transcripts"}), n_perm=N_PERM,
                       n_boot=0, seed=3)
    assert without.outcome("dialogue").status == "skipped"
    assert "no transcripts" in without.outcome("dialogue").reason
    plain = without.to_html()
    assert 'id="dialogue"' not in plain
    assert "drift in how the dialogues ran" not in plain
    assert "Transcripts: arm" not in plain


def test_a_log_without_dialogues_gets_the_report_it_always_had() -> None:
    log = ds.simulate_study_log(n_per_arm=60, drift=0.5, n_placebo=0, seed=4)
    now = ds.audit(log, n_perm=N_PERM, n_boot=0, seed=1).to_html()
    step = next(s for s in steps.STEPS if s.name == "dialogue")
    section = next(b for b in render.SECTIONS if b.__name__ == "dialogue_section")
    i, j = steps.STEPS.index(step), render.SECTIONS.index(section)
    steps.STEPS.remove(step)
    render.SECTIONS.remove(section)
    try:
        before = ds.audit(log, n_perm=N_PERM, n_boot=0, seed=1).to_html()
    finally:
        steps.STEPS.insert(i, step)
        render.SECTIONS.insert(j, section)
    assert now == before


def test_turn_counts_and_end_reasons_match_the_log(dialogue_audit, html: str) -> None:
    tables = hostile_tables()
    t, answers = tables["transcripts"], tables["answers"]
    arm_of = answers.drop_duplicates("unit_id").set_index("unit_id")["arm"]
    turns = t.groupby("unit_id")["turn"].nunique()
    for arm in ("control", HOSTILE_ARM):
        units = arm_of.index[arm_of == arm]
        msgs = int(t["unit_id"].isin(units).sum())
        k = turns[units]
        assert _row(0, arm, len(units), len(units), msgs, 0, float(k.mean()), int(k.min()), int(k.max())) \
            .replace(arm, arm.replace("<", "&lt;").replace(">", "&gt;")) in html
        all_ends = set(answers.loc[answers["item"] == "dialogue_end", "response"])
        columns = [e for e in ("user_stop", "assistant_stop", "max_turns", "error") if e in all_ends]  # option order
        ends = answers[(answers["item"] == "dialogue_end") & answers["unit_id"].isin(units)]["response"]
        counts = [int((ends == e).sum()) for e in columns]
        assert sum(counts) == len(units)
        assert _row(0, arm, *counts).replace(arm, arm.replace("<", "&lt;").replace(">", "&gt;")) in html
    # the audit step is the drift test on the two dialogue items, with the audit's settings
    direct = ds.nco_test(dialogue_audit.log, nco=["dialogue_end", "dialogue_turns"], by="iteration", mode="sample",
                         n_perm=N_PERM, n_boot=0, seed=3).tidy()
    got = dialogue_audit["dialogue"].tidy()
    pd.testing.assert_frame_equal(got[["term", "estimate", "p_value"]], direct[["term", "estimate", "p_value"]])
    turns_row = got.set_index("term").loc["dialogue_turns"]
    assert f"{fmt_num(turns_row['estimate'])}</td>" in html
    assert "drift in how the dialogues ran (dialogue_end, dialogue_turns; 199 permutations)" in html
    assert any("dialogues ran" in line for line in dialogue_audit.verdict.lines)


def test_fidelity_is_said_to_be_asked_after_the_dialogue(html: str) -> None:
    n = 24  # one fidelity answer per unit, every unit has a transcript and carries its hash
    assert f"the fidelity probes were asked after it ended (all {n} fidelity answers" in html
    assert html.index("the fidelity probes were asked after it ended", html.index('id="fidelity"')) > 0


def test_transcript_viewer_shows_the_first_units_per_arm_collapsed(html: str) -> None:
    viewer = html[html.index("Transcripts: arm control"):html.index('id="fidelity"')]
    assert viewer.count("<details") == 6
    assert "<details open" not in viewer
    for unit in ("c00", "c01", "c02", "t00", "t01", "t02"):
        assert f"<summary>unit {unit}: " in viewer
    assert "c03" not in viewer
    assert "Transcripts: arm treat&lt;b&gt;x&lt;/b&gt;" in viewer


def test_hostile_transcript_text_is_escaped(html: str) -> None:
    assert "<script" not in html.lower()
    assert "<img src=x" not in html
    assert "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "\n$\\alpha$</pre>" in html
    assert "tool calls: [{&#34;name&#34;: &#34;&lt;img src=x onerror=alert(1)&gt;&#34;}]" in html


@pytest.mark.browser
def test_dialogue_report_in_headless_chromium(dialogue_audit, tmp_path) -> None:
    sync_api = require("playwright.sync_api")
    path = dialogue_audit.write_html(tmp_path / "dialogue.html")
    with sync_api.sync_playwright() as p:
        browser = headless_chromium(p)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(path.as_uri())
        first = page.locator("details.transcript").first
        assert first.evaluate("d => d.open") is False
        first.locator("summary").click()
        assert first.evaluate("d => d.open") is True
        text = first.inner_text()
        assert SCRIPT in text  # shown as text, not run
        assert IMG in text
        assert page.evaluate("document.body.getAttribute('data-pwned')") is None
        assert page.evaluate("Array.from(document.images).every(i => i.src.startsWith('data:'))")
        browser.close()
