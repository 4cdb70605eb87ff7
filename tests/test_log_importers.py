"""Importers of foreign multi-turn logs: tau2-bench, tau-bench v1, SimulatorArena, chat JSONL.

The fixtures in tests/fixtures/dialogue/ are written by hand in each tool's own format
(docs/importers.md names the files of the tools they were checked against). Hashes are
recomputed here from the texts with hashlib, independently of the importer.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

import driftstats as ds
from driftstats.errors import (
    InvalidArgumentError,
    InvalidValueError,
    LogNotFoundError,
    UnreadableLogError,
)
from driftstats.log.importers import IMPORTERS
from driftstats.log.schema import MESSAGE_ROLES, TRANSCRIPTS

FIX = Path(__file__).parent / "fixtures" / "dialogue"
TAU2 = [FIX / "tau2_agent_a.json", FIX / "tau2_agent_b.json"]
TAU1 = [FIX / "tau1_gpt-4o.json", FIX / "tau1_sonnet-35-new.json"]
ARENA = [FIX / "simulator_arena_math.json"]
CHAT = [FIX / "chat_arm_a.jsonl", FIX / "chat_arm_b.jsonl"]
HOSTILE = "<script>alert(1)</script>"


def _read(fmt: str, files: list[Path], arms: list[str | None] | None = None, **options) -> dict[str, pd.DataFrame]:
    return IMPORTERS[fmt](files, arms=arms or [None] * len(files), **options)


def _end(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    a = tables["answers"]
    return dict(a.loc[a["item"] == "dialogue_end", ["unit_id", "response"]].itertuples(index=False))


def _turns(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    a = tables["answers"]
    return {u: int(v) for u, v in a.loc[a["item"] == "dialogue_turns", ["unit_id", "response_value"]].itertuples(index=False)}


def _check_hashes(tables: dict[str, pd.DataFrame]) -> None:
    """sha256 of each text and the running chain, recomputed here; the last link is the answers' hash."""
    tr = tables["transcripts"].sort_values(["unit_id", "message"])
    answers = tables["answers"]
    for unit, msgs in tr.groupby("unit_id"):
        assert list(msgs["message"]) == list(range(len(msgs)))
        prev = ""
        for m in msgs.itertuples():
            text = None if pd.isna(m.text) else m.text
            own = None if text is None else hashlib.sha256(text.encode()).hexdigest()
            assert (m.sha256 if not pd.isna(m.sha256) else None) == own
            prev = hashlib.sha256(f"{prev}\n{m.role}\n{own or ''}".encode()).hexdigest()
            assert m.dialogue_sha256 == prev
        assert set(answers.loc[answers["unit_id"] == unit, "dialogue_sha256"]) == {prev}


def _check_shape(tables: dict[str, pd.DataFrame]) -> None:
    tr = tables["transcripts"]
    assert list(tr.columns) == [f.name for f in TRANSCRIPTS if f.name != "created_at"]
    assert set(tr["role"]) <= set(MESSAGE_ROLES)
    assert not tr.duplicated(["unit_id", "message"]).any()
    units = set(tables["answers"]["unit_id"])
    assert set(tr["unit_id"]) <= units
    items = set(tables["items"]["item"])
    assert set(tables["answers"]["item"]) <= items
    assert {"dialogue_turns", "dialogue_end"} <= items
    ends = json.loads(json.dumps(tables["items"].set_index("item").loc["dialogue_end", "options"]))
    assert set(_end(tables).values()) <= set(ends)


# ------------------------------------------------------------------------------ tau2
def test_tau2_units_arms_pairing_items():
    t = _read("tau2", TAU2)
    _check_shape(t)
    a = t["answers"]
    assert a["unit_id"].nunique() == 6
    arms = t["arms"].set_index("arm")["kind"].to_dict()
    assert arms == {"gpt-4.1-2025-04-14": "control", "o4-mini-2025-04-16": "treatment"}  # arm names from info.agent_info.llm
    per_arm = a.drop_duplicates("unit_id").groupby("arm")["persona_id"].apply(set).to_dict()
    assert per_arm["gpt-4.1-2025-04-14"] == per_arm["o4-mini-2025-04-16"] == {"0", "1", "2"}
    assert set(a["model"]) == {"gpt-4.1-2025-04-14"}  # the user simulator's LLM, shared by both arms
    items = t["items"].set_index("item")
    assert items.loc["reward", "role"] == "primary"
    assert items.loc["reward", "scale"] == "numeric"
    assert {"reward_DB", "reward_COMMUNICATE"} <= set(items.index)
    reward = a[a["item"] == "reward"].set_index("unit_id")["response_value"].to_dict()
    assert reward == {"gpt-4.1-2025-04-14/0/0": 1.0, "gpt-4.1-2025-04-14/1/0": 0.0, "gpt-4.1-2025-04-14/2/0": 0.0,
                      "o4-mini-2025-04-16/1/0": 1.0, "o4-mini-2025-04-16/0/0": 0.0, "o4-mini-2025-04-16/2/0": 0.0}
    assert a.loc[a["item"] == "seed", "item"].empty
    assert a.drop_duplicates("unit_id").set_index("unit_id").loc["o4-mini-2025-04-16/0/0", "seed"] == 626729


def test_tau2_termination_labels_and_turns():
    t = _read("tau2", TAU2)
    assert _end(t) == {
        "gpt-4.1-2025-04-14/0/0": "user_stop", "gpt-4.1-2025-04-14/1/0": "user_stop",
        "gpt-4.1-2025-04-14/2/0": "max_steps", "o4-mini-2025-04-16/1/0": "agent_stop",
        "o4-mini-2025-04-16/0/0": "user_stop", "o4-mini-2025-04-16/2/0": "too_many_errors",
    }
    ends = t["items"].set_index("item").loc["dialogue_end", "options"]
    assert list(ends)[:3] == ["user_stop", "agent_stop", "max_steps"]  # tau2's TerminationReason order
    # greeting + user (turn 0); tool call, tool result, reply + user stop (turn 1); the early stop is one turn
    assert _turns(t)["gpt-4.1-2025-04-14/0/0"] == 2
    assert _turns(t)["gpt-4.1-2025-04-14/1/0"] == 1
    tr = t["transcripts"]
    first = tr[tr["unit_id"] == "gpt-4.1-2025-04-14/0/0"]
    assert list(first["role"]) == ["assistant", "user", "assistant", "tool", "assistant", "user"]
    assert list(first["turn"]) == [0, 0, 1, 1, 1, 1]
    assert list(first["tokens"].astype("float").fillna(-1)) == [-1, 14, 21, -1, 17, 9]
    # agent and user simulator share the LLM in arm A; in arm B the assistant messages name the agent's
    assert list(first["model"].fillna("-")) == ["gpt-4.1-2025-04-14"] * 3 + ["-"] + ["gpt-4.1-2025-04-14"] * 2
    other = tr[tr["unit_id"] == "o4-mini-2025-04-16/0/0"]
    assert list(other["model"]) == ["o4-mini-2025-04-16", "gpt-4.1-2025-04-14"] * 2


def test_tau2_transcripts_tool_calls_empty_and_hostile_text():
    t = _read("tau2", TAU2)
    tr = t["transcripts"]
    _check_hashes(t)
    assert len(tr) == 25
    assert tr["role"].value_counts().to_dict() == {"assistant": 13, "user": 9, "tool": 3}
    calls = tr.dropna(subset=["tool_calls"])
    assert len(calls) == 3
    assert set(calls["role"]) == {"assistant"}
    parsed = json.loads(calls.iloc[0]["tool_calls"])
    assert parsed[0]["name"] == "get_order_details"
    assert parsed[0]["arguments"] == {"order_id": "#W2378156"}
    # a pure tool call (no text) is valid; an empty assistant message is kept and flagged
    empty = tr[(tr["unit_id"] == "gpt-4.1-2025-04-14/2/0") & (tr["message"] == 2)].iloc[0]
    assert empty["text"] == ""
    assert not empty["valid"]
    assert "empty" in empty["error"]
    assert tr[tr["tool_calls"].notna()]["valid"].all()
    assert (tr["text"] == f"Never mind {HOSTILE} ###STOP###").sum() == 1  # kept verbatim: data, not markup


def test_tau2_arm_names_control_option_and_trials(tmp_path):
    t = _read("tau2", TAU2, arms=["v1", "v2"], control="v2")
    assert t["arms"].set_index("arm")["kind"].to_dict() == {"v1": "treatment", "v2": "control"}
    assert set(t["answers"]["arm"]) == {"v1", "v2"}
    with pytest.raises(InvalidArgumentError, match="control='v3'"):
        _read("tau2", TAU2, arms=["v1", "v2"], control="v3")
    # a second trial of every task: trial k pairs with trial k of the other arm
    for src in TAU2:
        data = json.loads(src.read_text())
        data["info"]["num_trials"] = 2
        again = [dict(s, trial=1, id=s["id"] + "-t1") for s in data["simulations"]]
        data["simulations"] += again
        (tmp_path / src.name).write_text(json.dumps(data))
    t2 = _read("tau2", [tmp_path / p.name for p in TAU2])
    a = t2["answers"].drop_duplicates("unit_id")
    assert a["unit_id"].nunique() == 12
    assert set(a["persona_id"]) == {f"{task}/{trial}" for task in "012" for trial in (0, 1)}
    assert a.groupby("persona_id")["arm"].nunique().eq(2).all()


def test_tau2_directory_format(tmp_path):
    data = json.loads(TAU2[0].read_text())
    sims = data.pop("simulations")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(data))
    (tmp_path / "run" / "simulations").mkdir()
    for s in sims:
        (tmp_path / "run" / "simulations" / f"{s['id']}.json").write_text(json.dumps(s))
    t = _read("tau2", [tmp_path / "run"])
    assert t["answers"]["unit_id"].nunique() == 3
    _check_hashes(t)


# ------------------------------------------------------------------------------ tau-bench v1
def test_tau1_units_ends_and_reward_parts():
    t = _read("tau1", TAU1, user_model="gpt-4o")
    _check_shape(t)
    _check_hashes(t)
    a = t["answers"]
    assert a["unit_id"].nunique() == 5
    assert t["arms"].set_index("arm")["kind"].to_dict() == {"tau1_gpt-4o": "control", "tau1_sonnet-35-new": "treatment"}
    assert _end(t) == {"tau1_gpt-4o/0/0": "user_stop", "tau1_gpt-4o/1/0": "agent_stop", "tau1_gpt-4o/2/0": "error",
                       "tau1_sonnet-35-new/1/0": "max_steps", "tau1_sonnet-35-new/0/0": "user_stop"}
    assert set(a["model"]) == {"gpt-4o"}
    err = a[(a["unit_id"] == "tau1_gpt-4o/2/0") & (a["item"] == "reward")].iloc[0]
    assert not err["valid"]
    assert "RateLimitError" in err["error"]
    assert _turns(t)["tau1_gpt-4o/2/0"] == 0
    assert set(t["items"]["item"]) == {"reward", "r_actions", "dialogue_turns", "dialogue_end"}
    assert a.drop_duplicates("unit_id").groupby("persona_id")["arm"].nunique().to_dict() == {"0": 2, "1": 2, "2": 1}
    tr = t["transcripts"]
    assert tr["role"].value_counts().to_dict() == {"user": 6, "assistant": 4, "system": 4, "tool": 2}
    assert (tr["text"].fillna("").str.contains(HOSTILE, regex=False)).sum() == 1
    assert not tr[(tr["role"] == "assistant") & (tr["text"] == "")]["valid"].any()
    assert json.loads(tr.dropna(subset=["tool_calls"]).iloc[1]["tool_calls"])[0]["function"]["name"] == \
        "transfer_to_human_agents"


# ------------------------------------------------------------------------------ SimulatorArena
def test_simulator_arena_annotations():
    t = _read("simulator_arena", ARENA)
    _check_shape(t)
    _check_hashes(t)
    a = t["answers"]
    assert a.drop_duplicates("unit_id")["arm"].value_counts().to_dict() == {"gpt-4o": 2, "llama-3-1-8b": 2}
    assert t["arms"].set_index("arm")["kind"].to_dict() == {"gpt-4o": "control", "llama-3-1-8b": "treatment"}
    assert a["persona_id"].isna().all()
    assert set(a["model"]) == {"human"}
    items = t["items"].set_index("item")
    assert items.loc["overall_rating", "scale"] == "ordinal"
    assert list(items.loc["overall_rating", "options"]) == [
        str(k) for k in range(1, 11)]
    zero = a[(a["item"] == "overall_rating") & ~a["valid"]]
    assert len(zero) == 1
    assert "0" in zero.iloc[0]["error"]
    ends = set(_end(t).values())
    assert ends == {"I felt confident enough to solve the problem.", "I found the AI tutor not helpful.", "Other reason"}
    tr = t["transcripts"]
    assert len(tr) == 6 + 2 + 4 + 5  # queries and responses interleaved; an unanswered last query is kept
    assert list(tr[tr["unit_id"].str.startswith("llama-3-1-8b/2e3f")]["role"]) == ["user", "assistant"] * 2 + ["user"]
    assert (~tr["valid"]).sum() == 1  # the empty tutor reply
    assert _turns(t) == {u: n for u, n in zip(a.drop_duplicates("unit_id")["unit_id"], [3, 1, 2, 3], strict=True)}
    assert t["personas"].set_index("unit_id")["value"].tolist() == ["undergrad", "9-12", "grad", "undergrad"]


# ------------------------------------------------------------------------------ chat JSONL
def test_chat_jsonl_inferred_items_roles_and_pairing():
    t = _read("chat", CHAT)
    _check_shape(t)
    _check_hashes(t)
    a = t["answers"]
    assert a["unit_id"].nunique() == 6
    assert t["arms"].set_index("arm")["kind"].to_dict() == {"control": "control", "coach": "treatment"}
    assert a.drop_duplicates("unit_id").groupby("persona_id")["arm"].nunique().eq(2).all()
    items = t["items"].set_index("item")
    assert list(items.loc["trust", "options"]) == ["Agree", "Disagree"]
    assert list(items.loc["age", "options"]) == ["29", "34", "51"]  # numbers listed by value, as read_log does
    assert set(_end(t).values()) == {"user_stop", "max_turns"}
    tr = t["transcripts"]
    b1 = tr[tr["unit_id"] == "b1"]
    assert list(b1["role"]) == ["user", "assistant", "tool", "assistant", "user"]
    assert list(b1["turn"]) == [0, 0, 0, 0, 1]
    assert b1.iloc[3]["text"] == "Savings accounts pay 4% now."
    assert tr[tr["unit_id"] == "b2"].iloc[0]["role"] == "system"  # OpenAI's developer role
    declared = pd.DataFrame([{"item": "trust", "options": ["Disagree", "Agree"], "scale": "ordinal", "role": "primary"}])
    t2 = _read("chat", CHAT, items=declared)
    assert list(t2["items"].set_index("item").loc["trust", "options"]) == ["Disagree", "Agree"]


def test_chat_field_options(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text(json.dumps({"id": 1, "group": "A", "conv": [{"role": "user", "content": "hi"}], "q": {"x": True}}) + "\n"
                 + json.dumps({"id": 2, "group": "B", "conv": [{"role": "user", "content": "yo"}], "q": {"x": False}}))
    t = _read("chat", [p], unit="id", arm_field="group", messages="conv", answers="q")
    assert sorted(t["answers"]["unit_id"].unique()) == ["1", "2"]
    assert set(t["answers"].loc[t["answers"]["item"] == "x", "response"]) == {"true", "false"}
    assert set(_end(t).values()) == {"unknown"}


# ------------------------------------------------------------------------------ malformed inputs
def _write(tmp_path: Path, name: str, obj: object) -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_unknown_role_names_file_record_and_role(tmp_path):
    data = json.loads(TAU2[0].read_text())
    data["simulations"][1]["messages"][1]["role"] = "customer"
    p = _write(tmp_path, "bad.json", data)
    with pytest.raises(InvalidValueError, match=r"bad\.json.*simulations\[1\].*4f1c2a9e-0b7d-4d59-9a51-5f4f0e1d2c02"
                       r".*messages\[1\]\.role.*unknown role .customer."):
        _read("tau2", [p])
    rows = [json.loads(line) for line in CHAT[0].read_text().splitlines()]
    rows[2]["messages"][0]["role"] = "narrator"
    p = _write(tmp_path, "bad.jsonl", "\n".join(json.dumps(r) for r in rows))
    with pytest.raises(InvalidValueError, match=r"bad\.jsonl.*line 3 \(unit_id 'a3'\).*messages\[0\]\.role.*narrator"):
        _read("chat", [p])


@pytest.mark.parametrize(("fmt", "mutate", "pattern"), [
    ("tau2", lambda d: d["simulations"][2].pop("termination_reason"), r"simulations\[2\].*'termination_reason': missing"),
    ("tau2", lambda d: d["simulations"][0].__setitem__("task_id", [1]), r"simulations\[0\].*'task_id': expected"),
    ("tau2", lambda d: d["simulations"][0]["reward_info"].__setitem__("reward", "1"), r"reward_info\.reward"),
    ("tau2", lambda d: d["simulations"][0].__setitem__("messages", {"a": 1}), r"'messages': expected an array"),
    ("tau2", lambda d: d["simulations"][0]["messages"][0].__setitem__("content", 5), r"messages\[0\]\.content"),
    ("tau2", lambda d: d["simulations"].append("nope"), r"simulations\[3\].*expected a JSON object"),
    ("tau1", lambda d: d[1].pop("traj"), r"record 1 \(task_id 1\).*'traj': missing"),
    ("tau1", lambda d: d[0]["traj"][2].__setitem__("tool_calls", "x"), r"record 0.*traj\[2\]\.tool_calls"),
    ("simulator_arena", lambda d: d[1]["user_queries"].__setitem__(0, 7), r"record 1 \(workerId.*user_queries\[0\]"),
    ("simulator_arena", lambda d: d[0].pop("model"), r"record 0.*'model': missing"),
])
def test_malformed_records_are_named_errors(tmp_path, fmt, mutate, pattern):
    src = {"tau2": TAU2[0], "tau1": TAU1[0], "simulator_arena": ARENA[0]}[fmt]
    data = json.loads(src.read_text())
    mutate(data)
    p = _write(tmp_path, "broken.json", data)
    with pytest.raises(InvalidValueError, match=r"broken\.json.*" + pattern):
        _read(fmt, [p])


@pytest.mark.parametrize("fmt", ["tau2", "tau1", "simulator_arena", "chat"])
def test_unreadable_files_are_named_errors(tmp_path, fmt):
    with pytest.raises(LogNotFoundError, match="no such file"):
        _read(fmt, [tmp_path / "missing.json"])
    with pytest.raises(UnreadableLogError, match=r"empty\.json.*empty"):
        _read(fmt, [_write(tmp_path, "empty.json", "")])
    with pytest.raises(UnreadableLogError, match=r"trunc\.json.*not valid JSON.*line"):
        _read(fmt, [_write(tmp_path, "trunc.json", '{"simulations": [ {"id": ')])
    with pytest.raises(UnreadableLogError, match=r"nan\.json.*NaN"):
        _read(fmt, [_write(tmp_path, "nan.json", '{"a": NaN}')])


def test_wrong_shapes_and_arguments(tmp_path):
    with pytest.raises(UnreadableLogError, match=r"list\.json.*not a Results object"):
        _read("tau2", [_write(tmp_path, "list.json", [1, 2])])
    with pytest.raises(UnreadableLogError, match=r"obj\.json.*not the list"):
        _read("tau1", [_write(tmp_path, "obj.json", {"a": 1})])
    with pytest.raises(UnreadableLogError, match=r"nested\.json.*simulator output"):
        _read("simulator_arena", [_write(tmp_path, "nested.json", {"gpt-4o": {}})])
    with pytest.raises(InvalidArgumentError, match="2 file"):
        IMPORTERS["tau2"](TAU2, arms=["only-one"])
    with pytest.raises(InvalidArgumentError, match="unknown option"):
        _read("tau1", TAU1, colour="red")
    with pytest.raises(InvalidValueError, match="occurs twice in arm 'x'"):
        _read("tau2", [TAU2[0], TAU2[0]], arms=["x", "x"])
    rows = CHAT[0].read_text().splitlines()
    with pytest.raises(InvalidValueError, match=r"line 2 .*'a1' occurs twice"):
        _read("chat", [_write(tmp_path, "dup.jsonl", rows[0] + "\n" + rows[0])])


# ------------------------------------------------------------------------------ the log layer
@pytest.mark.parametrize(("fmt", "files"), [("tau2", TAU2), ("tau1", TAU1), ("simulator_arena", ARENA), ("chat", CHAT)])
def test_read_log_imports_the_files_with_their_transcripts(fmt, files):
    direct = _read(fmt, files)
    log = ds.read_log([str(f) for f in files], format=fmt)
    assert log.has_transcripts
    got = log.to_pandas("transcripts")
    assert len(got) == len(direct["transcripts"])
    assert set(log.to_pandas()["unit_id"]) == set(direct["answers"]["unit_id"])
    # the log layer re-checks the chain: every unit's answers point at its last message
    last = got.sort_values("message").groupby("unit_id")["dialogue_sha256"].last()
    ans = log.to_pandas()
    linked = ans.dropna(subset=["dialogue_sha256"])
    assert not linked.empty
    assert (linked["dialogue_sha256"].to_numpy() == last.loc[linked["unit_id"]].to_numpy()).all()
    assert {"dialogue_turns", "dialogue_end"} <= set(ans["item"])


def test_read_log_passes_importer_options_and_refuses_them_elsewhere(tmp_path):
    log = ds.read_log(TAU2, format="tau2", arm=["v1", "v2"], options={"control": "v2"})
    assert log.arm_kind("v2") == "control"
    assert log.arm_kind("v1") == "treatment"
    with pytest.raises(InvalidArgumentError, match="unknown option"):
        ds.read_log(TAU2, format="tau2", options={"colour": "red"})
    with pytest.raises(InvalidArgumentError, match="options= configures an importer format"):
        ds.read_log(pd.DataFrame({"unit_id": ["u"], "arm": ["a"], "item": ["q"], "response": ["x"]}),
                    options={"control": "a"})


@pytest.mark.parametrize(("fmt", "files"), [("tau2", TAU2), ("tau1", TAU1), ("simulator_arena", ARENA), ("chat", CHAT)])
def test_an_imported_log_audits_without_extra_work(fmt, files):
    log = ds.read_log(files, format=fmt)
    result = ds.audit(log, n_perm=99, n_boot=50)
    html = result.to_html()
    assert "The dialogues" in html
    assert HOSTILE not in html  # the hostile message text is escaped, never raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # every fixture holds it in a shown transcript
    # the drift test on the dialogue items is a step; on these few units it says why it cannot conclude
    step = result.outcome("dialogue")
    assert step.ok or "min_units" in (step.reason or ""), step.reason


def test_cli_audits_an_imported_file(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "audit.html"
    run = subprocess.run([sys.executable, "-m", "driftstats.cli", "audit", *map(str, TAU2), "--format", "tau2",
                          "--report", str(out), "--n-perm", "99"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr + run.stdout
    assert out.exists()
    assert "The dialogues" in out.read_text()


def test_cli_refuses_several_files_without_an_importer_format(tmp_path):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "driftstats.cli", "validate", *map(str, TAU2)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 2
    assert "several files are read together only by an importer format" in run.stderr
