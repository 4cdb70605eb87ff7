"""Collectors on the real embedded SmolLM2-135M: constraints, forking, distribution, crash safety."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import require

require("llama_cpp")
require("outlines")

import driftstats as ds  # noqa: E402
from collectors.study import StudyError, load_study, parse_study  # noqa: E402

pytestmark = pytest.mark.collect

SMALL = {
    "name": "tiny",
    "population": {"source": "anes96", "specified": ["age", "party"], "latent": ["education"]},
    "design": {"units_per_arm": 3, "paired": True, "seed": 7},
    "model": {"path": "smollm2-135m", "prompt_style": "completion", "temperature": 1.5, "n_ctx": 1024,
              "n_threads": 2},
    "arms": [
        {"name": "control", "kind": "control", "text": "The library opens at nine."},
        {"name": "treatment", "kind": "treatment", "text": "Taxes on the rich should rise to fund college."},
    ],
    "items": [
        {"name": "support", "role": "primary", "text": "Do you support higher taxes on the rich?",
         "options": ["No", "Unsure", "Yes"]},
        {"name": "educ", "role": "nco", "text": "Your education?",
         "options": ["High school or less", "Some college", "College degree", "Graduate degree"]},
        {"name": "party_check", "role": "fidelity", "attribute": "party", "scale": "nominal",
         "text": "Which party do you identify with?", "options": ["Democrat", "Independent", "Republican"]},
    ],
}


def tiny(**over) -> dict:
    d = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in SMALL.items()}
    for k, v in over.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) else v
    return d


@pytest.fixture(scope="module")
def backend():
    from collectors.backends.llama import LlamaBackend, resolve_model_path

    return LlamaBackend(resolve_model_path("smollm2-135m"), n_ctx=1024, n_threads=2)


def _answers(path: Path) -> pd.DataFrame:
    a = ds.read_log(path).to_pandas().drop(columns=["created_at"])
    return a.sort_values(["unit_id", "item", "mode", "response"]).reset_index(drop=True)


def test_constraint_adherence_and_schema(tmp_path, backend) -> None:
    from collectors.runner import run_study

    study = parse_study(tiny())
    summary = run_study(study, tmp_path / "t.duckdb", backend=backend)
    assert summary.units_run == 6
    assert summary.invalid == 0
    log = ds.read_log(tmp_path / "t.duckdb")
    a = log.to_pandas()
    s = a[a["mode"] == "sample"]
    assert len(s) == 6 * 3
    for item in SMALL["items"]:
        assert set(s.loc[s["item"] == item["name"], "response"]) <= set(item["options"])
    # provenance on every row
    for col in ("model_sha256", "prompt_sha256", "grammar_sha256", "seed", "backend_version", "created_at"):
        assert a[col].notna().all(), col
    assert log.item("party_check").attribute == "party"
    assert set(log.personas.query("specified")["attribute"]) == {"age", "party"}
    assert set(log.personas.query("not specified")["attribute"]) == {"education"}


def test_distribution_mode_sums_to_one_and_matches_logits(backend) -> None:
    from collectors.backends.base import distribution
    from collectors.population import load_population
    from collectors.prompts import Prompts

    study = parse_study(tiny())
    pop = load_population(study.population)
    persona = pop.persona(0, study.population)
    prompts = Prompts(study, style="completion")
    prefix = prompts.prefix(persona, study.arms[0])
    prompt = prompts.item(persona, study.arms[0], study.items[0], (0, 1, 2))
    ctx = backend.tokenize(prefix, bos=True) + backend.tokenize(prompt.text, bos=False)
    probs, extra = distribution(backend, ctx, prompt)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
    assert extra["pruned_mass"] < 1e-6
    # reference: score each label's own tokens by teacher forcing, plus any other path the guide allows
    logits = backend.logits_after(ctx).astype(np.float64)
    lp = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    direct = {}
    for lab, opt in zip(prompt.labels, prompt.item.options, strict=True):
        toks = backend.tokenize(lab, bos=False)
        value, seq = 0.0, list(ctx)
        for t in toks:
            lg = backend.logits_after(seq).astype(np.float64)
            value += lg[t] - (np.log(np.exp(lg - lg.max()).sum()) + lg.max())
            seq.append(t)
        direct[opt] = value
    assert lp.shape[0] > 0
    # the guide walk includes every tokenisation; the canonical one dominates for these labels
    ranks_walk = sorted(probs, key=probs.get)
    ranks_direct = sorted(direct, key=direct.get)
    assert ranks_walk == ranks_direct


def test_forked_equals_unforked_prefix_state(backend) -> None:
    """Logits of an item asked in a branch (prefix KV reused, other items asked before) equal those of
    the same tokens evaluated from scratch in a fresh context."""
    from collectors.backends.llama import LlamaBackend

    prefix = backend.tokenize("Respondent profile: a 40-year-old Democrat. They read: the library opens.", bos=True)
    items = [backend.tokenize(f"\nQuestion {i}: How are you?\nA. Good\nB. Bad\nAnswer:", bos=False) for i in range(3)]
    forked = []
    for it in items:  # branch after branch from the same prefix
        forked.append(backend.logits_after(prefix + it).copy())
    fresh = LlamaBackend(backend.path, n_ctx=1024, n_threads=2)
    for it, lf in zip(items, forked, strict=True):
        fresh.reset()
        lu = fresh.logits_after(prefix + it)
        pf, pu = np.exp(lf - lf.max()), np.exp(lu - lu.max())
        pf, pu = pf / pf.sum(), pu / pu.sum()
        assert np.abs(pf - pu).max() < 2e-3  # batch splits differ: allow float noise, not different states
        assert int(np.argmax(lf)) == int(np.argmax(lu))
    assert backend.evaluated_tokens > 0


def test_revalidation_catches_a_broken_constraint(tmp_path, backend, monkeypatch) -> None:
    """If outlines' kernels fail (e.g. numba missing), generation goes on unconstrained; answers that are
    not options are logged with valid = false and the error, never dropped or coerced."""
    from outlines.backends.outlines_core import OutlinesCoreLogitsProcessor

    from collectors.runner import run_study

    def broken(self, batch_size, vocab_size):
        raise ImportError("numba is required by outlines_core.kernels.numpy")

    monkeypatch.setattr(OutlinesCoreLogitsProcessor, "_setup", broken)
    study = parse_study(tiny(model={"temperature": 1.0}, design={"units_per_arm": 2}))
    run_study(study, tmp_path / "b.duckdb", backend=backend)
    a = ds.read_log(tmp_path / "b.duckdb").to_pandas()
    s = a[a["mode"] == "sample"]
    assert len(s) == 2 * 2 * 3  # nothing dropped
    assert s["error"].str.contains("constraint failed", na=False).all()
    bad = s[~s["valid"]]
    assert len(bad) > 0
    assert bad["error"].str.contains("is not one of the options").all()
    for item in SMALL["items"]:
        mask = (s["item"] == item["name"]) & s["valid"]
        assert set(s.loc[mask, "response"]) <= set(item["options"])


def test_same_seed_same_responses(tmp_path, backend) -> None:
    from collectors.runner import run_study

    study = parse_study(tiny(design={"units_per_arm": 2}))
    run_study(study, tmp_path / "a.duckdb", backend=backend)
    run_study(study, tmp_path / "b.duckdb", backend=backend)
    pd.testing.assert_frame_equal(_answers(tmp_path / "a.duckdb"), _answers(tmp_path / "b.duckdb"))


def _spawn(study_path: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "driftstats.cli", "simulate", str(study_path), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_kill_minus_9_then_resume_gives_the_uninterrupted_rows(tmp_path) -> None:
    """Kill a real run with SIGKILL at random moments (timed from an uninterrupted reference run),
    resume each time, and compare the final store with the reference: same rows, none duplicated."""
    study_path = tmp_path / "tiny.toml"
    study_path.write_text(_toml(tiny(design={"units_per_arm": 12})))
    ref, out = tmp_path / "ref.duckdb", tmp_path / "out.duckdb"
    t0 = time.perf_counter()
    assert subprocess.run([sys.executable, "-m", "driftstats.cli", "simulate", str(study_path), "--out", str(ref)],
                          capture_output=True, timeout=600).returncode == 0
    t_ref = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    kills = 0
    for fraction in (rng.uniform(0.35, 0.6), rng.uniform(0.35, 0.6), rng.uniform(0.5, 0.9)):
        proc = _spawn(study_path, out)
        time.sleep(fraction * t_ref)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    final = subprocess.run([sys.executable, "-m", "driftstats.cli", "simulate", str(study_path), "--out", str(out)],
                           capture_output=True, timeout=600)
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert kills >= 2
    got = _answers(out)
    assert not got.duplicated(subset=["unit_id", "item", "mode", "replicate", "response"]).any()
    pd.testing.assert_frame_equal(_answers(ref), got)


def _toml(d: dict) -> str:
    lines = []

    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    for k, v in d.items():
        if not isinstance(v, (dict, list)) or (isinstance(v, list) and v and not isinstance(v[0], dict)):
            lines.append(f"{k} = {val(v)}")
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines.extend(f"{kk} = {val(vv)}" for kk, vv in v.items())
    for k, v in d.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            for row in v:
                lines.append(f"[[{k}]]")
                lines.extend(f"{kk} = {val(vv)}" for kk, vv in row.items())
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- study-file errors
def test_study_file_errors_name_the_field(tmp_path) -> None:
    bad = tiny()
    bad["items"] = [*bad["items"], {"name": "x", "role": "nco", "text": "?", "options": ["only"]}]
    with pytest.raises(StudyError, match=r"items\.3\.options: .*at least 2"):
        parse_study(bad)
    with pytest.raises(StudyError, match="exactly one arm must have kind = 'control'"):
        parse_study(tiny(arms=[{"name": "a", "kind": "treatment", "text": "x"},
                               {"name": "b", "kind": "treatment", "text": "y"}]))
    with pytest.raises(StudyError, match=r"design\.units_per_arm"):
        parse_study(tiny(design={"units_per_arm": 0}))
    with pytest.raises(StudyError, match="unknown_field"):
        parse_study({**tiny(), "unknown_field": 1})
    bad = tiny()
    bad["items"] = [{"name": "f", "role": "fidelity", "attribute": "income", "text": "?", "options": ["a", "b"]}]
    with pytest.raises(StudyError, match="not a specified attribute"):
        parse_study(bad)
    p = tmp_path / "s.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(StudyError, match="cannot parse"):
        load_study(p)
    p = tmp_path / "s.yaml"
    p.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(StudyError):
        load_study(p)


def test_population_errors() -> None:
    from collectors.population import load_population
    from collectors.study import PopulationSpec

    with pytest.raises(StudyError, match="not in 'anes96'"):
        load_population(PopulationSpec(specified=["shoe_size"]))
    with pytest.raises(StudyError, match="no file"):
        load_population(PopulationSpec(source="nope.csv", specified=[]))


def test_shipped_study_file_is_valid() -> None:
    s = load_study(Path(__file__).parents[1] / "collectors" / "studies" / "anes_tax.toml")
    assert s.design.units_per_arm >= 500
    assert sum(a.kind == "placebo" for a in s.arms) >= 2
    assert sum(i.role == "nco" for i in s.items) >= 6
    fid = {i.attribute for i in s.items if i.role == "fidelity"}
    assert fid == set(s.population.specified)


# --------------------------------------------------------------------------- HTTP backend
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    require("uvicorn")
    from collectors.backends.llama import resolve_model_path

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_model_path("smollm2-135m")),
         "--host", "127.0.0.1", "--port", str(port), "--n_threads", "2", "--n_ctx", "1024", "--logits_all", "true",
         "--cache", "true"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama-cpp-python server did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_http_backend_against_real_server(tmp_path, server) -> None:
    from collectors.runner import run_study

    study = parse_study(tiny(model={"backend": "http", "url": server}, design={"units_per_arm": 1}))
    summary = run_study(study, tmp_path / "h.duckdb")
    assert summary.units_run == 2
    log = ds.read_log(tmp_path / "h.duckdb")
    a = log.to_pandas()
    s = a[a["mode"] == "sample"]
    assert s["valid"].all()
    assert (a["backend"] == "openai-http").all()
    d = a[a["mode"] == "dist"]
    sums = d.groupby(["unit_id", "item"])["prob"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-9)


def test_study_json_schema_is_current() -> None:
    import json

    from collectors.study import Study

    path = Path(__file__).parents[1] / "docs" / "study.schema.json"
    assert json.loads(path.read_text()) == json.loads(json.dumps(Study.model_json_schema()))
