"""The audit's adjustment step and section: present only for adjustment studies, escaped, driven by the numbers."""

from __future__ import annotations

import re

import pytest

import driftstats as ds
from driftstats.errors import InsufficientDataError
from driftstats.report.audit import AuditStepError
from tests.conftest import require

require("matplotlib")
require("jinja2")

pytestmark = pytest.mark.filterwarnings("ignore::driftstats.errors.MonteCarloErrorWarning")

HOSTILE = "m<script>x</script>$1$"


@pytest.fixture(scope="module")
def adjustment_audit():
    log, _ = ds.simulate_adjustment_log(n_personas=150, models=(HOSTILE, "plain & simple"), drift=(1.5, 1.5),
                                        n_nco=2, seed=4)
    return ds.audit(log, n_perm=199, n_boot=200, seed=1)


def _section(html: str, anchor: str) -> str:
    start = html.index(f'<h2 id="{anchor}">')
    nxt = html.find("<h2 ", start + 1)
    return html[start: nxt if nxt > 0 else len(html)]


def test_adjustment_section_is_present_with_figures_and_findings(adjustment_audit) -> None:
    a = adjustment_audit
    assert a.outcome("adjustment").status == "ok"
    res = a["adjustment"]
    html = a.to_html()
    sec = _section(html, "adjustment")
    assert "Adjustment iterations" in sec
    # drift, effect, one NCO-distribution figure per model, the outcome at iteration 0
    assert len(re.findall(r"<img alt=", sec)) == 2 + 2 + 1
    for line in res.lines:
        assert line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;") in sec
    assert "a reference, not ground truth" in sec
    assert "Keep diagnostic NCOs disjoint" not in sec  # the simulated study never adjusts an NCO


def test_names_are_escaped(adjustment_audit) -> None:
    html = adjustment_audit.to_html()
    assert "<script>" not in html
    assert "m&lt;script&gt;x&lt;/script&gt;$1$" in html
    assert "plain &amp; simple" in html


def test_top_verdict_has_one_line_about_the_adjustment(adjustment_audit) -> None:
    v = adjustment_audit.verdict
    lines = [x for x in v.lines if x.startswith("Adjustment iterations:")]
    assert len(lines) == 1
    assert lines[0] == adjustment_audit["adjustment"].audit_line()
    p = adjustment_audit["adjustment"].paths
    fell = p[p["drift_fell"].astype(bool)]
    assert set(fell["path"]) == {"targeted"}  # the numbers say so, and so does the line
    assert lines[0].startswith("Adjustment iterations: drift fell beyond its noise on targeted (")
    assert "the last persona spec of each of the 4 adjustment paths" in v.bottom_line  # 2 models x 2 paths


def test_section_and_step_absent_for_a_plain_study() -> None:
    a = ds.audit(ds.simulate_study_log(n_per_arm=60, n_placebo=0, seed=2), n_perm=99, n_boot=0)
    o = a.outcome("adjustment")
    assert o.status == "skipped"
    assert "not an adjustment study" in (o.reason or "")
    html = a.to_html()
    assert 'id="adjustment"' not in html
    assert not any(x.startswith("Adjustment iterations") for x in a.verdict)
    assert "pool every model" not in a.verdict.bottom_line


def test_a_failing_adjustment_step_follows_the_keep_going_rules(monkeypatch) -> None:
    import driftstats.adjust

    def boom(*args, **kwargs):
        raise InsufficientDataError("simulated failure of the adjustment step")

    monkeypatch.setattr(driftstats.adjust, "adjustment_path", boom)
    log, _ = ds.simulate_adjustment_log(n_personas=40, n_nco=1, n_iterations=1, seed=1)
    with pytest.raises(AuditStepError, match=r"adjustment.*simulated failure"):
        ds.audit(log, n_perm=99, n_boot=0)
    a = ds.audit(log, n_perm=99, n_boot=0, keep_going=True)
    assert a.outcome("adjustment").status == "failed"
    assert any(x.startswith("Not computed: adjustment iterations") for x in a.verdict.not_computed)
    sec = _section(a.to_html(), "adjustment")
    assert "Not computed: InsufficientDataError: simulated failure of the adjustment step" in sec
    assert "<img" not in sec
