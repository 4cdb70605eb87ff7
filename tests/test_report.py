"""The HTML audit report: content driven by the numbers, escaping of untrusted logs, and a real browser."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import driftstats as ds
from tests.conftest import headless_chromium, require

require("matplotlib")
require("jinja2")

HOSTILE_SCRIPT = "<script>document.body.setAttribute('data-pwned','script')</script>"
HOSTILE_IMG = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"


@pytest.fixture(scope="module")
def drift_audit():
    log = ds.simulate_study_log(n_per_arm=250, drift=1.0, seed=2)
    return ds.audit(log, n_perm=499, n_boot=100, seed=1)


def hostile_log():
    """A log whose item texts, option labels, answers, item and arm names carry HTML/JS payloads."""
    rows = []
    opts = [HOSTILE_IMG, "Fine & <b>dandy</b>"]
    for i in range(40):
        arm = "control" if i % 2 == 0 else "treat<script>x</script>"
        for item, role in (("nco_<b>x</b>", "nco"), ("y", "primary")):
            rows.append({"unit_id": f"u{i}", "arm": arm, "item": item, "response": opts[(i // 2 + (item == "y")) % 2],
                         "role": role})
    items = pd.DataFrame([
        {"item": "nco_<b>x</b>", "text": HOSTILE_SCRIPT, "options": opts, "scale": "nominal", "role": "nco"},
        {"item": "y", "text": HOSTILE_IMG, "options": opts, "scale": "nominal", "role": "primary"},
    ])
    return ds.read_log(pd.DataFrame(rows), items=items)


def test_verdict_wording_is_driven_by_the_numbers(drift_audit) -> None:
    v = " ".join(drift_audit.verdict)
    t = drift_audit["nco"].tidy()
    n_drift = t[(t["arm"] == "treatment") & (t["p_value_fwer"] < 0.05)]["term"].nunique()
    assert f"In the sampled answers: drift detected on {n_drift} of 4 NCOs between treatment and control" in v
    assert n_drift >= 2
    assert "not interpretable as causal without adjustment" in v
    eff = drift_audit["effect"].tidy().query("measure == 'mean_diff' and arm == 'treatment'")["estimate"].iloc[0]
    assert f"observed effect of {eff:.3g}" in v
    assert drift_audit.verdict.bottom_line.startswith("Bottom line: the arms are not comparable.")
    assert next(iter(drift_audit.verdict)) == drift_audit.verdict.bottom_line
    # no drift -> a different sentence
    quiet = ds.audit(ds.simulate_study_log(n_per_arm=150, drift=0.0, n_placebo=0, seed=3), n_perm=199, n_boot=0)
    q = " ".join(quiet.verdict)
    assert "In the sampled answers: no drift detected between treatment and control" in q
    assert "absence of evidence is not evidence of absence" in q
    assert quiet.verdict.bottom_line.startswith("Bottom line: inconclusive.")
    assert "calibration" in quiet.skipped


def test_report_sections_and_assumptions_in_words(drift_audit) -> None:
    html = drift_audit.to_html()
    for heading in ("The log", "Drift: negative control outcomes", "Persona fidelity", "Effects and corrections"):
        assert heading in html
    assert "Additive equi-confounding" in html
    assert "Exchangeability of systematic error" in html
    assert "proximal 2SLS needs negative control exposures" in html  # skipped section says why
    assert "<script" not in html.lower()
    assert "http://" not in html
    assert "https://" not in html


def test_untrusted_log_content_is_escaped() -> None:
    html = ds.audit(hostile_log(), n_perm=99, n_boot=0).to_html()
    assert "<script" not in html.lower()
    assert "<img src=x" not in html
    assert "<b>dandy" not in html
    assert "nco_<b>x" not in html
    assert "&lt;img src=x onerror=" in html
    assert "&lt;b&gt;dandy&lt;/b&gt;" in html


@pytest.mark.browser
def test_report_in_headless_chromium(drift_audit, tmp_path) -> None:
    sync_api = require("playwright.sync_api")
    path = tmp_path / "audit.html"
    drift_audit.write_html(path)
    hostile = tmp_path / "hostile.html"
    ds.audit(hostile_log(), n_perm=99, n_boot=0).write_html(hostile)
    with sync_api.sync_playwright() as p:
        browser = headless_chromium(p)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(path.as_uri())
        assert page.title().startswith("driftstats audit")
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(images) >= 5
        assert all(c and w > 100 and h > 100 for c, w, h in images), images
        text = page.inner_text("body")
        t = drift_audit["nco"].tidy()
        top = t.sort_values("estimate", ascending=False).iloc[0]
        assert f"{top['estimate']:.4g}".rstrip("0").rstrip(".")[:5] in text
        assert "drift detected on" in text
        assert "Bottom line:" in text
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        page.goto(hostile.as_uri())
        assert page.evaluate("document.body.getAttribute('data-pwned')") is None
        assert HOSTILE_SCRIPT in page.inner_text("body")  # shown as text, not run
        browser.close()


def test_report_is_deterministic(drift_audit) -> None:
    a = drift_audit.to_html()
    b = drift_audit.to_html()
    assert a == b
    assert not re.search(r"20\d\d-\d\d-\d\d[ T]\d\d:\d\d", a)  # no timestamps
