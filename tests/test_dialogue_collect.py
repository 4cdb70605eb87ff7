"""Dialogue interventions in the collector, on the real embedded models (Gemma 3 270M, SmolLM2-135M).

Each test is small (a few units, messages of 8-12 tokens, 2-3 turns). The llama-bound tests carry the
``collect`` marker; the study-file tests need no model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from collectors.study import StudyError, parse_study
from driftstats.log.dialogue import chain_sha256, text_sha256
from driftstats.log.schema import DIALOGUE_END_ITEM, DIALOGUE_ENDS, DIALOGUE_TURNS_ITEM, TRANSCRIPTS
from tests.conftest import require
from tests.test_collectors import SMALL

THREADS = 1  # one thread per model: the tests never contend with each other for the 2 cores

BASE = {
    "name": "dlg",
    "population": {"source": "anes96", "specified": ["age", "party"], "latent": ["education"]},
    "design": {"units_per_arm": 2, "paired": True, "seed": 11},
    "model": {"path": "gemma3-270m", "prompt_style": "completion", "n_ctx": 1024, "n_threads": THREADS},
    "dialogue": {"max_turns": 2, "max_tokens": 10, "batch_size": 1},
    "arms": [
        {"name": "neutral", "kind": "control", "assistant": "Chat politely about the weather."},
        {"name": "persuade", "kind": "treatment",
         "assistant": "Persuade the person that taxes on the rich should rise to pay for college."},
    ],
    "items": SMALL["items"],  # the collector tests' items: a primary outcome, an NCO, a fidelity probe
}


def study_dict(**over) -> dict:
    d = json.loads(json.dumps(BASE))
    for k, v in over.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
    return d


@pytest.fixture(scope="module")
def gemma():
    require("llama_cpp")
    require("outlines")
    from collectors.backends.llama import LlamaBackend, resolve_model_path

    return LlamaBackend(resolve_model_path("gemma3-270m"), n_ctx=1024, n_threads=THREADS)


@pytest.fixture(scope="module")
def smollm():
    require("llama_cpp")
    require("outlines")
    from collectors.backends.llama import LlamaBackend, resolve_model_path

    return LlamaBackend(resolve_model_path("smollm2-135m"), n_ctx=1024, n_threads=THREADS)


def _tables(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(answers without created_at, transcripts without created_at), in a fixed order."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        a = con.execute("SELECT * EXCLUDE (created_at) FROM answers "
                        "ORDER BY unit_id, item, mode, replicate, response").df()
        t = con.execute("SELECT * EXCLUDE (created_at) FROM transcripts ORDER BY unit_id, message").df()
    finally:
        con.close()
    return a, t


def _check_chains(t: pd.DataFrame, a: pd.DataFrame) -> None:
    """Every message hash and running chain verifies; every answer of a unit carries its last chain value."""
    for unit, g in t.groupby("unit_id"):
        g = g.sort_values("message")
        assert list(g["message"]) == list(range(len(g)))
        chain = ""
        for r in g.itertuples():
            text = None if pd.isna(r.text) else r.text
            assert (None if pd.isna(r.sha256) else r.sha256) == text_sha256(text)
            chain = chain_sha256(chain, r.role, text)
            assert r.dialogue_sha256 == chain
        rows = a[a["unit_id"] == unit]
        assert len(rows) > 0
        assert (rows["dialogue_sha256"] == chain).all(), unit


# --------------------------------------------------------------------------- logging, turn by turn
@pytest.mark.collect
def test_dialogue_is_logged_turn_by_turn_with_hashes(tmp_path, gemma) -> None:
    import driftstats as ds
    from collectors.runner import run_study

    study = parse_study(study_dict(dialogue={"max_turns": 2, "max_tokens": 8}))
    summary = run_study(study, tmp_path / "d.duckdb", backend=gemma)
    assert summary.units_run == 4
    assert summary.dialogue_tokens > 0
    a, t = _tables(tmp_path / "d.duckdb")
    assert list(t.columns) == [f.name for f in TRANSCRIPTS if f.name != "created_at"]
    assert set(t["unit_id"]) == set(a["unit_id"])
    for _unit, g in t.groupby("unit_id"):
        # the assistant speaks first; 2 turns of 2 messages unless a message ended it
        assert list(g["role"]) == ["assistant", "user", "assistant", "user"][:len(g)]
        assert list(g["turn"]) == [0, 0, 1, 1][:len(g)]
        assert (g["tokens"] <= 8).all()
        assert set(g["finish_reason"]) <= {"eos", "max_tokens"}
        assert g["seed"].nunique() == len(g)  # one seed per (turn, role)
    arm_of = a.drop_duplicates("unit_id").set_index("unit_id")["arm"]
    assert set(t["model"]) == {"gemma-3-270m-q4_k_m.gguf"}
    _check_chains(t, a)
    s = a[a["mode"] == "sample"]
    turns = s[s["item"] == DIALOGUE_TURNS_ITEM].set_index("unit_id")["response_value"]
    ends = s[s["item"] == DIALOGUE_END_ITEM].set_index("unit_id")["response"]
    assert len(turns) == len(ends) == 4
    assert (turns == t.groupby("unit_id")["turn"].max() + 1).all()
    assert set(ends) <= set(DIALOGUE_ENDS)
    assert (ends == "max_turns").all()
    # every item is asked after the dialogue: its prompt hash is kept and the sampling names the batch
    items = s[~s["item"].isin([DIALOGUE_TURNS_ITEM, DIALOGUE_END_ITEM])]
    assert len(items) == 4 * 3
    assert items["prompt_sha256"].notna().all()
    assert items["prompt_sha256"].nunique() == len(items)
    sampling = [json.loads(x)["dialogue"] for x in s["sampling"]]
    assert {d["batch_size"] for d in sampling} == {1}
    assert set(arm_of) == {"neutral", "persuade"}
    # the log layer reads the store (checking every message hash and chain), dialogue items included
    log = ds.read_log(tmp_path / "d.duckdb")
    assert log.item(DIALOGUE_TURNS_ITEM).scale == "numeric"
    got = log.to_pandas()
    assert set(got["item"]) == {"support", "educ", "party_check", DIALOGUE_TURNS_ITEM, DIALOGUE_END_ITEM}
    assert log.has_transcripts
    lt = log.transcripts
    assert len(lt) == len(t)
    assert (lt.sort_values(["unit_id", "message"])["dialogue_sha256"].to_numpy()
            == t["dialogue_sha256"].to_numpy()).all()
    one = t["unit_id"].iloc[0]
    assert log.transcript(one)["text"].tolist() == t.loc[t["unit_id"] == one, "text"].tolist()
    # an altered message is caught on read
    import shutil

    from driftstats.errors import InvalidValueError

    shutil.copy(tmp_path / "d.duckdb", tmp_path / "altered.duckdb")
    con = duckdb.connect(str(tmp_path / "altered.duckdb"))
    con.execute("UPDATE transcripts SET text = text || '!' WHERE message = 1")
    con.close()
    with pytest.raises(InvalidValueError, match="sha256"):
        ds.read_log(tmp_path / "altered.duckdb")


@pytest.mark.collect
def test_the_prompt_of_an_item_holds_the_transcript(tmp_path, gemma) -> None:
    """The items are asked after the dialogue: the exact text hashed in prompt_sha256 is the persona, the
    rendered transcript and the question."""
    import hashlib

    from collectors.population import load_population
    from collectors.prompts import Prompts, Turn
    from collectors.runner import run_study

    study = parse_study(study_dict(design={"units_per_arm": 1}))
    run_study(study, tmp_path / "p.duckdb", backend=gemma)
    a, t = _tables(tmp_path / "p.duckdb")
    prompts = Prompts(study, style="completion")
    pop = load_population(study.population, extra=[])
    from collectors.plan import persona_rows, plan_iteration

    plan = plan_iteration(study, pop, prompts, persona_rows(study, pop), model="gemma-3-270m-q4_k_m.gguf",
                          items=[(i, i.role) for i in study.items])
    for unit in plan:
        msgs = t[t["unit_id"] == unit.unit_id].sort_values("message")
        shown = [Turn(r.role, r.text) for r in msgs.itertuples()]
        prefix = prompts.prefix(unit.persona, unit.arm, shown)
        assert all(m in prefix for m in msgs["text"])
        for task in unit.tasks:
            want = hashlib.sha256((prefix + task.prompt.text).encode()).hexdigest()
            row = a[(a["unit_id"] == unit.unit_id) & (a["item"] == task.item.name) & (a["mode"] == "sample")]
            assert row["prompt_sha256"].tolist() == [want]


# --------------------------------------------------------------------------- ends
def _check_stops(t: pd.DataFrame, a: pd.DataFrame, role: str, marker: str, max_turns: int) -> int:
    """Every unit ends at the first message of ``role`` holding ``marker`` (kept at the text's end), or runs to
    max_turns with no such message; returns the number of units stopped early."""
    s = a[a["mode"] == "sample"]
    ends = s[s["item"] == DIALOGUE_END_ITEM].set_index("unit_id")["response"]
    turns = s[s["item"] == DIALOGUE_TURNS_ITEM].set_index("unit_id")["response_value"]
    stopped = 0
    for unit, g in t.groupby("unit_id"):
        g = g.sort_values("message")
        hits = g[(g["role"] == role) & g["text"].str.contains(marker, regex=False)]
        if len(hits):
            first = hits.iloc[0]
            assert first["message"] == g["message"].max()  # nothing after the stop
            assert first["finish_reason"] == "stop_marker"
            assert first["text"].endswith(marker)
            assert ends[unit] == f"{role}_stop"
            assert turns[unit] == first["turn"] + 1
            stopped += 1
        else:
            assert ends[unit] == "max_turns"
            assert len(g) == 2 * max_turns
    return stopped


@pytest.mark.collect
def test_stop_markers_end_the_dialogue_early(tmp_path, gemma) -> None:
    """A marker most English messages hold ('e'): a dialogue ends at the first message of the marker's role
    that holds it (the other role does not answer); at temperature 0 on Gemma most units stop in turn 0."""
    from collectors.runner import run_study

    study = parse_study(study_dict(dialogue={"max_turns": 3, "max_tokens": 12, "user_stop": "e",
                                             "temperature": 0.0}))
    run_study(study, tmp_path / "u.duckdb", backend=gemma)
    a, t = _tables(tmp_path / "u.duckdb")
    assert _check_stops(t, a, "user", "e", 3) >= 2
    assert (t[t["finish_reason"] == "stop_marker"]["role"] == "user").all()
    _check_chains(t, a)

    study = parse_study(study_dict(dialogue={"max_turns": 3, "max_tokens": 12, "assistant_stop": "e",
                                             "temperature": 0.0}))
    run_study(study, tmp_path / "a.duckdb", backend=gemma)
    a, t = _tables(tmp_path / "a.duckdb")
    assert _check_stops(t, a, "assistant", "e", 3) >= 2
    _check_chains(t, a)


@pytest.mark.collect
def test_a_view_that_does_not_fit_is_kept_and_flagged(tmp_path, gemma) -> None:
    """An arm whose instructions overflow the context: the message is kept (no text, valid = false, the error)
    and the dialogue ends with 'error'; the other arm runs to max_turns; the items are still asked."""
    from collectors.runner import run_study

    long = "Talk about the weather in every town of the county, one by one, with details. " * 30
    d = study_dict(model={"n_ctx": 512}, design={"units_per_arm": 1})
    d["arms"][1]["assistant"] = long
    run_study(parse_study(d), tmp_path / "e.duckdb")
    a, t = _tables(tmp_path / "e.duckdb")
    s = a[a["mode"] == "sample"]
    ends = s[s["item"] == DIALOGUE_END_ITEM].set_index("arm")["response"]
    assert ends.to_dict() == {"neutral": "max_turns", "persuade": "error"}
    bad = t[t["unit_id"].str.endswith("persuade")]
    assert len(bad) == 1
    assert not bad["valid"].iloc[0]
    assert pd.isna(bad["text"].iloc[0])
    assert "exceeds n_ctx" in bad["error"].iloc[0]
    assert bad["finish_reason"].iloc[0] == "error"
    assert s.loc[s["arm"] == "persuade", "item"].nunique() == 5  # three items and the two dialogue items
    _check_chains(t, a)


# --------------------------------------------------------------------------- reproducibility, batches
@pytest.mark.collect
def test_batched_and_one_at_a_time_each_reproduce_themselves(tmp_path, gemma) -> None:
    from collectors.runner import run_study

    got = {}
    for b in (1, 3):
        study = parse_study(study_dict(dialogue={"batch_size": b, "max_tokens": 8}))
        runs = []
        for k in range(2):
            run_study(study, tmp_path / f"b{b}_{k}.duckdb", backend=gemma)
            runs.append(_tables(tmp_path / f"b{b}_{k}.duckdb"))
        pd.testing.assert_frame_equal(runs[0][0], runs[1][0])
        pd.testing.assert_frame_equal(runs[0][1], runs[1][1])
        got[b] = runs[0]
        samp = [json.loads(x)["dialogue"] for x in runs[0][0]["sampling"]]
        assert {d["batch_size"] for d in samp} == {b}
        # units in plan order, cut into batches of b (4 units: batches 0,0,0,1 for b = 3)
        batch_of = {u: json.loads(x)["dialogue"]["batch"] for u, x in zip(runs[0][0]["unit_id"],
                                                                          runs[0][0]["sampling"], strict=True)}
        order = ["dlg-i0-p0000-neutral", "dlg-i0-p0000-persuade", "dlg-i0-p0001-neutral", "dlg-i0-p0001-persuade"]
        assert [batch_of[u] for u in order] == [i // b for i in range(4)]
    # the same seeds drive both: message seeds agree whatever the batching
    s1 = got[1][1].set_index(["unit_id", "message"])["seed"]
    s3 = got[3][1].set_index(["unit_id", "message"])["seed"]
    common = s1.index.intersection(s3.index)
    assert len(common) > 0
    assert (s1[common] == s3[common]).all()


@pytest.mark.collect
def test_resume_mid_batch_writes_the_uninterrupted_rows(tmp_path, gemma) -> None:
    """Stop after one unit of a batch of three, resume: the batch is regenerated whole (its composition is the
    plan's) and the store ends as an uninterrupted run's."""
    from collectors.runner import run_study

    study = parse_study(study_dict(dialogue={"batch_size": 3, "max_tokens": 8}))
    run_study(study, tmp_path / "ref.duckdb", backend=gemma)
    first = run_study(study, tmp_path / "r.duckdb", backend=gemma, max_units=1)
    assert first.units_run == 1
    second = run_study(study, tmp_path / "r.duckdb", backend=gemma, max_units=2)
    assert second.units_run == 2
    assert second.units_done_before == 1
    third = run_study(study, tmp_path / "r.duckdb", backend=gemma)
    assert third.units_run == 1
    ra, rt = _tables(tmp_path / "ref.duckdb")
    ga, gt = _tables(tmp_path / "r.duckdb")
    pd.testing.assert_frame_equal(ra, ga)
    pd.testing.assert_frame_equal(rt, gt)


# --------------------------------------------------------------------------- another model, chat style
@pytest.mark.collect
def test_each_role_its_own_model_and_style(tmp_path, gemma, smollm) -> None:
    """The simulated user on SmolLM2 (chat template), the assistant on Gemma 3 (completion style)."""
    from collectors.runner import run_study

    d = study_dict(model={"path": "smollm2-135m", "prompt_style": "auto"}, design={"units_per_arm": 1},
                   dialogue={"max_tokens": 10, "assistant_model": {"path": "gemma3-270m", "name": "gemma-asst",
                                                                    "prompt_style": "completion",
                                                                    "n_threads": THREADS}})
    summary = run_study(parse_study(d), tmp_path / "m.duckdb", backend=smollm, assistant_backend=gemma)
    assert summary.units_run == 2
    a, t = _tables(tmp_path / "m.duckdb")
    assert set(t.loc[t["role"] == "assistant", "model"]) == {"gemma-asst"}
    assert set(t.loc[t["role"] == "user", "model"]) == {smollm.path.name}
    s = a[a["mode"] == "sample"]
    assert s["valid"].all()
    samp = json.loads(s["sampling"].iloc[0])["dialogue"]
    assert samp["assistant_model"] == "gemma-asst"
    assert samp["assistant_prompt_style"] == "completion"
    assert json.loads(s.loc[s["item"] == "support", "sampling"].iloc[0])["prompt_style"] == "chat"
    _check_chains(t, a)


# --------------------------------------------------------------------------- kill -9, then resume
def _toml(d: dict) -> str:
    from tests.test_collectors import _toml as flat

    d = dict(d)
    dlg = d.pop("dialogue")
    return flat(d) + "[dialogue]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in dlg.items())


@pytest.mark.collect
@pytest.mark.slow
def test_kill_minus_9_mid_dialogue_then_resume_gives_the_uninterrupted_rows(tmp_path) -> None:
    """Kill real `driftstats simulate` runs with SIGKILL at random moments (timed from an uninterrupted
    reference run), resume each time: the transcripts and answers equal the reference's, none duplicated."""
    require("llama_cpp")
    d = study_dict(design={"units_per_arm": 4}, dialogue={"batch_size": 2, "max_tokens": 10, "max_turns": 2})
    study_path = tmp_path / "dlg.toml"
    study_path.write_text(_toml(d))
    ref, out = tmp_path / "ref.duckdb", tmp_path / "out.duckdb"
    cmd = [sys.executable, "-m", "driftstats.cli", "simulate", str(study_path), "--out"]
    t0 = time.perf_counter()
    done = subprocess.run([*cmd, str(ref)], capture_output=True, timeout=900)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    t_ref = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    kills = 0
    for fraction in (rng.uniform(0.3, 0.5), rng.uniform(0.3, 0.6), rng.uniform(0.4, 0.8)):
        proc = subprocess.Popen([*cmd, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        time.sleep(fraction * t_ref)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    final = subprocess.run([*cmd, str(out)], capture_output=True, timeout=900)
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert kills >= 2
    ra, rt = _tables(ref)
    ga, gt = _tables(out)
    assert not gt.duplicated(subset=["unit_id", "message"]).any()
    assert not ga.duplicated(subset=["unit_id", "item", "mode", "replicate", "response"]).any()
    pd.testing.assert_frame_equal(rt, gt)
    pd.testing.assert_frame_equal(ra, ga)
    _check_chains(gt, ga)


# --------------------------------------------------------------------------- study-file errors
def test_dialogue_study_errors_name_the_field() -> None:
    parse_study(study_dict())  # the base is valid
    d = study_dict()
    del d["arms"][1]["assistant"]
    with pytest.raises(StudyError, match=r"arms\.1\.assistant: arm 'persuade' needs the assistant's instructions"):
        parse_study(d)
    d = study_dict()
    d["arms"][0]["text"] = "The library opens at nine."
    with pytest.raises(StudyError, match=r"arms\.0\.text: .*drop text"):
        parse_study(d)
    d = study_dict()
    del d["dialogue"]
    with pytest.raises(StudyError, match=r"arms\.0\.text: arm 'neutral' has no text"):
        parse_study(d)
    d["arms"] = [{"name": "a", "kind": "control", "text": "x", "assistant": "y"},
                 {"name": "b", "kind": "treatment", "text": "z"}]
    with pytest.raises(StudyError, match=r"arms\.0\.assistant: .*no \[dialogue\] section"):
        parse_study(d)
    with pytest.raises(StudyError, match=r"dialogue\.max_turns"):
        parse_study(study_dict(dialogue={"max_turns": 0}))
    d = study_dict()
    del d["dialogue"]["max_turns"]
    with pytest.raises(StudyError, match=r"dialogue\.max_turns: Field required"):
        parse_study({**d, "dialogue": {}})
    with pytest.raises(StudyError, match=r"dialogue\.first"):
        parse_study(study_dict(dialogue={"first": "nobody"}))
    with pytest.raises(StudyError, match=r"dialogue\.batch_size"):
        parse_study(study_dict(dialogue={"batch_size": 0}))
    with pytest.raises(StudyError, match=r"dialogue\.max_tokens"):
        parse_study(study_dict(dialogue={"max_tokens": 0}))
    with pytest.raises(StudyError, match=r"dialogue\.user_stop must not be blank"):
        parse_study(study_dict(dialogue={"user_stop": "  "}))
    with pytest.raises(StudyError, match=r"user_stop and dialogue\.assistant_stop must differ"):
        parse_study(study_dict(dialogue={"user_stop": "[END]", "assistant_stop": "[END]"}))
    with pytest.raises(StudyError, match=r"dialogue\.user_label"):
        parse_study(study_dict(dialogue={"user_label": "Re:spondent"}))
    with pytest.raises(StudyError, match=r"dialogue\.assistant_frame must contain \{instructions\}"):
        parse_study(study_dict(dialogue={"assistant_frame": "no placeholder"}))
    with pytest.raises(StudyError, match=r"dialogue\.assistant_model\.path: Field required"):
        parse_study(study_dict(dialogue={"assistant_model": {"name": "x"}}))
    with pytest.raises(StudyError, match=r"dialogue\.temperature"):
        parse_study(study_dict(dialogue={"temperature": -1}))
    with pytest.raises(StudyError, match=r"dialogue\.unknown"):
        parse_study(study_dict(dialogue={"unknown": 1}))
    d = study_dict()
    d["items"] = [*d["items"], {"name": "dialogue_end", "role": "nco", "text": "?", "options": ["a", "b"]}]
    with pytest.raises(StudyError, match="dialogue's own items"):
        parse_study(d)
    with pytest.raises(StudyError, match=r"every model needs backend = 'llama\.cpp'"):
        parse_study(study_dict(model={"backend": "http", "url": "http://127.0.0.1:1"}))


def test_message_seeds_are_keyed_by_names() -> None:
    """Seeds of (turn, role) depend on the names only: an added arm or persona leaves the others as they were."""
    require("statsmodels")
    from collectors.plan import persona_rows, plan_iteration
    from collectors.population import load_population
    from collectors.prompts import Prompts

    def plan(d):
        study = parse_study(d)
        pop = load_population(study.population)
        return {u.unit_id: u.dialogue for u in plan_iteration(
            study, pop, Prompts(study, style="completion"), persona_rows(study, pop), model="m",
            items=[(i, i.role) for i in study.items])}

    a = plan(study_dict())
    d = study_dict(dialogue={"max_turns": 3})
    d["arms"] = [*d["arms"], {"name": "placebo", "kind": "placebo", "assistant": "Talk about pets."}]
    b = plan(d)
    for unit, dp in a.items():
        assert dp.order == ("assistant", "user")
        assert len(set(dp.seeds.values())) == len(dp.seeds) == 4
        for key, seed in dp.seeds.items():
            assert b[unit].seeds[key] == seed
    assert len(b[next(iter(a))].seeds) == 6


def test_shipped_dialogue_study_file_is_valid() -> None:
    from collectors.study import load_study

    root = Path(__file__).parents[1] / "collectors" / "studies"
    s = load_study(root / "anes_tax_dialogue.toml")
    text = load_study(root / "anes_tax.toml")
    assert s.dialogue is not None
    assert 2 <= s.dialogue.max_turns <= 4
    assert s.design.paired
    assert [a.kind for a in s.arms] == ["control", "treatment"]
    assert all(a.assistant for a in s.arms)
    # the tax question, its NCOs and fidelity items, as in anes_tax.toml
    assert [i.model_dump() for i in s.items] == [i.model_dump() for i in text.items]
    assert s.population == text.population


@pytest.mark.collect
def test_the_adjustment_loop_runs_dialogue_arms(tmp_path, gemma) -> None:
    """[adjustment] with [dialogue]: every iteration runs its own dialogues (seeds keyed by iteration), the
    added attribute is in the simulated user's view, and each unit carries its transcript."""
    from collectors.runner import run_study

    d = study_dict(dialogue={"max_turns": 1, "max_tokens": 8},
                   adjustment={"iterations": 1, "paths": ["targeted"], "diagnostic": ["educ"],
                               "population": ["education"], "stop_on": [], "n_perm": 50})
    d["items"] = [i for i in d["items"] if i["role"] != "fidelity"]
    run_study(parse_study(d), tmp_path / "adj.duckdb", backend=gemma)
    a, t = _tables(tmp_path / "adj.duckdb")
    con = duckdb.connect(str(tmp_path / "adj.duckdb"), read_only=True)
    its = con.execute("SELECT path, iteration, spec, units FROM iterations ORDER BY path, iteration").df()
    con.close()
    assert its["iteration"].tolist() == [0, 1]
    assert json.loads(its["spec"].iloc[1]) == ["age", "party", "education"]
    assert set(t["unit_id"]) == set(a["unit_id"])
    assert a["unit_id"].nunique() == 8  # 2 personas x 2 arms x 2 iterations
    i0 = t[t["unit_id"].str.contains("-i0-")].set_index("unit_id")["seed"]
    i1 = t[t["unit_id"].str.contains("-i1-")]["seed"]
    assert not set(i0) & set(i1)
    _check_chains(t, a)


def test_message_sampler_draws_from_the_nucleus_at_temperature() -> None:
    """The message sampler's frequencies match softmax(logits / T) restricted to the top_p nucleus."""
    from collectors.dialogue import sample_token

    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.3, 0.15, 0.05])
    logits = np.full(3000, -60.0, dtype=np.float32)  # a vocabulary wider than one block of the sampler
    where = [7, 1500, 2999, 600]
    logits[where] = np.log(p)
    n = 20000
    for temperature, top_p, want in ((1.0, 1.0, p), (1.0, 0.8, np.array([0.625, 0.375, 0, 0])),
                                     (2.0, 1.0, np.sqrt(p) / np.sqrt(p).sum())):
        counts = np.bincount([sample_token(logits, rng, temperature, top_p) for _ in range(n)], minlength=3000)
        assert counts.sum() == counts[where].sum()
        got = counts[where] / n
        assert np.abs(got - want).max() < 4 * np.sqrt(0.25 / n), (temperature, top_p, got, want)
    assert sample_token(logits, rng, 0.0, 1.0) == 7
