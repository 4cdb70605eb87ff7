"""The transcripts table (one row per message of a unit's intervention dialogue): every source and format,
byte-exact text, the checks and the hash chain, the dialogue items in the verbs, and importer formats."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import driftstats as ds
from driftstats import read_log
from driftstats.errors import (
    DuplicateKeyError,
    InvalidArgumentError,
    InvalidValueError,
    LogNotFoundError,
)
from driftstats.log import importers
from driftstats.log.dialogue import chain_sha256, dialogue_answers, dialogue_items, text_sha256
from driftstats.log.schema import ANSWERS, OPTIONAL_TABLES, SCHEMA, TRANSCRIPTS

FORMATS = [".parquet", ".csv", ".jsonl", ".duckdb"]
AGES = ["18-29", "30-44", "45-64", "65+"]
REGIONS = ["North", "South", "East", "West"]
SUPPORT = ["Oppose", "Neutral", "Support"]
MAX_TURNS = 4
HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "$\\alpha$ and $x$",
    "line 1\nline 2\r\nline 3\rend",
    "  leading and trailing spaces  ",
    "\ttab\t",
    '"quoted", with a comma; and \'single\' quotes',
    "é 中文 🙂 \u202e rtl \u200b zero-width",
    "{{ jinja }} {% raw %} ${shell} `tick` \\N \\x00-not-a-nul",
    "NULL",
    "",
]


# ------------------------------------------------------------------------------ the dialogue log
def dialogue_tables(n_per_arm: int = 12, *, seed: int = 0, texts: list[str] | None = None,
                    units_with_transcript: int | None = None) -> dict[str, pd.DataFrame]:
    """A two-arm dialogue study: per unit a dialogue of 1..4 turns (user, assistant), then an NCO, the outcome
    and a fidelity probe asked after it, plus the two dialogue items; the answers carry the transcript's hash.

    ``texts`` (cycled) replace the generated message texts; ``units_with_transcript`` keeps the transcripts of
    the first that many units per arm only (the others have answers without a transcript).
    """
    rng = np.random.default_rng(seed)
    answers, transcripts, personas, dialogue_units = [], [], [], []
    k = 0
    for arm in ("control", "treatment"):
        for i in range(n_per_arm):
            unit = f"{arm[0]}{i:02d}"
            age = AGES[int(rng.integers(len(AGES)))]
            personas.append({"unit_id": unit, "attribute": "age", "value": age})
            turns = int(rng.integers(1, MAX_TURNS + 1)) if arm == "control" else int(rng.integers(1, 3))
            end = "max_turns" if turns == MAX_TURNS else ("user_stop" if (i + (arm == "treatment")) % 3 else
                                                          "assistant_stop")
            keep = units_with_transcript is None or i < units_with_transcript
            prev = ""
            for t in range(turns):
                for j, role in enumerate(("user", "assistant")):
                    text = texts[k % len(texts)] if texts else f"{role} says {t} to {unit}"
                    k += 1
                    prev = chain_sha256(prev, role, text)
                    if keep:
                        transcripts.append({"unit_id": unit, "message": 2 * t + j, "turn": t, "role": role,
                                            "text": text, "model": "m.gguf", "seed": 7})
            base = {"unit_id": unit, "arm": arm, "dialogue_sha256": prev if keep else None}
            answers.append({**base, "item": "region", "response": REGIONS[int(rng.integers(len(REGIONS)))]})
            answers.append({**base, "item": "support", "response": SUPPORT[int(rng.integers(len(SUPPORT)))]})
            answers.append({**base, "item": "age", "response": age if rng.random() < 0.8 else AGES[0]})
            dialogue_units.append({**base, "turns": turns, "end": end})
    items = pd.concat([pd.DataFrame([
        {"item": "region", "text": "Which region do you live in?", "options": REGIONS, "scale": "nominal",
         "role": "nco", "attribute": None},
        {"item": "support", "text": "Do you support the policy?", "options": SUPPORT, "scale": "ordinal",
         "role": "primary", "attribute": None},
        {"item": "age", "text": "How old are you?", "options": AGES, "scale": "ordinal", "role": "fidelity",
         "attribute": "age"},
    ]), dialogue_items(max_turns=MAX_TURNS)], ignore_index=True)
    return {"answers": pd.concat([pd.DataFrame(answers), dialogue_answers(dialogue_units)], ignore_index=True),
            "items": items, "personas": pd.DataFrame(personas),
            "arms": pd.DataFrame({"arm": ["control", "treatment"], "kind": ["control", "treatment"],
                                  "intervention": [None, "a dialogue with the assistant"]}),
            "transcripts": pd.DataFrame(transcripts)}


def every_table(texts: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """The dialogue log plus the two adjustment tables: a log with rows in every table of the schema."""
    out = dialogue_tables(n_per_arm=4, texts=texts)
    out["iterations"] = pd.DataFrame([{"study": "study", "model": "unknown", "path": "targeted", "iteration": 0,
                                       "run_id": "run", "spec": ["age"], "units": 8, "rules_fired": []}])
    out["adjustments"] = pd.DataFrame([{"study": "study", "model": "unknown", "path": "targeted", "iteration": 0,
                                        "attribute": "age", "status": "specified", "source": "base"}])
    out["transcripts"].loc[0, "tool_calls"] = '[{"name": "lookup", "arguments": {"q": "<b>x</b>"}}]'
    return out


# ------------------------------------------------------------------------------ every table, every format
@pytest.mark.parametrize("suffix", FORMATS)
def test_every_schema_table_round_trips_through_every_format(tmp_path: Path, suffix: str) -> None:
    log = read_log(every_table(texts=HOSTILE))
    assert all(len(log.to_pandas(t)) for t in SCHEMA), "the fixture holds rows in every table"
    written = log.write(tmp_path / f"runs{suffix}")
    if suffix == ".duckdb":
        assert [p.name for p in written] == ["runs.duckdb"]
    else:
        assert [p.name for p in written] == ["runs" + suffix] + [f"runs.{t}{suffix}" for t in SCHEMA if t != "answers"]
    back = read_log(tmp_path / f"runs{suffix}")
    for table in SCHEMA:
        pdt.assert_frame_equal(back.to_pandas(table), log.to_pandas(table), obj=f"{table} ({suffix})")
    assert back.fingerprint() == log.fingerprint()


@pytest.mark.parametrize("suffix", FORMATS)
def test_hostile_text_is_kept_byte_exact(tmp_path: Path, suffix: str) -> None:
    log = read_log(dialogue_tables(n_per_arm=3, texts=HOSTILE))
    log.write(tmp_path / f"runs{suffix}")
    back = read_log(tmp_path / f"runs{suffix}").transcripts
    given = dialogue_tables(n_per_arm=3, texts=HOSTILE)["transcripts"]
    assert back["text"].tolist() == given["text"].tolist()  # same order: the fixture is in key order
    assert {t for t in HOSTILE} <= set(back["text"].dropna())
    assert back["sha256"].tolist() == [text_sha256(t) for t in given["text"]]


def test_optional_table_absent_means_empty_and_is_not_written(tmp_path: Path) -> None:
    tables = dialogue_tables(n_per_arm=3)
    plain = read_log({k: v for k, v in tables.items() if k != "transcripts"})
    frame = plain.transcripts
    assert frame.empty
    assert list(frame.columns) == [f.name for f in TRANSCRIPTS]
    assert not plain.has_transcripts
    assert "dialogue" not in plain.summary().facts
    # a dialogue log writes the sidecar; rewriting a plain log at the same path removes it
    read_log(tables).write(tmp_path / "runs.csv")
    assert (tmp_path / "runs.transcripts.csv").exists()
    written = plain.write(tmp_path / "runs.csv")
    assert not (tmp_path / "runs.transcripts.csv").exists()
    assert [p.name for p in written] == ["runs.csv", "runs.items.csv", "runs.personas.csv", "runs.arms.csv"]
    assert OPTIONAL_TABLES == ("iterations", "adjustments", "transcripts")


def test_transcripts_keyword_dict_key_and_sidecar_override(tmp_path: Path) -> None:
    tables = dialogue_tables(n_per_arm=3)
    by_key = read_log(tables)
    by_kw = read_log({k: v for k, v in tables.items() if k != "transcripts"}, transcripts=tables["transcripts"])
    pdt.assert_frame_equal(by_key.transcripts, by_kw.transcripts)
    by_key.write(tmp_path / "runs.parquet")
    # the keyword replaces the sidecar
    edited = tables["transcripts"].copy()
    edited.loc[0, "error"] = "edited"
    assert read_log(tmp_path / "runs.parquet", transcripts=edited).transcripts.loc[0, "error"] == "edited"
    assert read_log(tmp_path / "runs.parquet").transcripts.loc[0, "error"] is pd.NA
    with pytest.raises(InvalidArgumentError, match="transcripts table is given twice"):
        read_log(tables, transcripts=tables["transcripts"])
    with pytest.raises(InvalidArgumentError, match="'transcripts'"):
        read_log({"answers": tables["answers"], "transcript": tables["transcripts"]})


def test_to_pandas_orders_by_keys_and_transcript_of_one_unit() -> None:
    tables = dialogue_tables(n_per_arm=3)
    shuffled = tables["transcripts"].sample(frac=1.0, random_state=1)
    log = read_log({**tables, "transcripts": shuffled})
    t = log.to_pandas("transcripts")
    assert list(zip(t["unit_id"], t["message"], strict=True)) == sorted(zip(t["unit_id"], t["message"], strict=True))
    one = log.transcript("c01")
    assert one["message"].tolist() == list(range(len(one)))
    assert set(one["unit_id"]) == {"c01"}
    assert str(one["message"].dtype) == "Int64"
    assert str(one["text"].dtype) == "string"
    with pytest.raises(InvalidArgumentError, match="'nobody' is not a unit of this log"):
        log.transcript("nobody")


def test_missing_hashes_are_derived_along_the_chain() -> None:
    tables = dialogue_tables(n_per_arm=3)
    log = read_log(tables)
    t = log.transcripts
    assert t["sha256"].tolist() == [text_sha256(x) for x in t["text"]]
    for unit, msgs in t.groupby("unit_id"):
        prev = ""
        for role, text, got in zip(msgs["role"], msgs["text"], msgs["dialogue_sha256"], strict=True):
            prev = chain_sha256(prev, role, text)
            assert got == prev
        answers = log.to_pandas().loc[lambda f, u=unit: f["unit_id"] == u]
        assert set(answers["dialogue_sha256"]) == {prev}
    assert hashlib.sha256(b"user says 0 to c00").hexdigest() == t.loc[0, "sha256"]


def test_given_hashes_that_match_are_accepted() -> None:
    tables = dialogue_tables(n_per_arm=2)
    derived = read_log(tables).transcripts
    given = tables["transcripts"].assign(sha256=derived["sha256"].tolist(),
                                         dialogue_sha256=derived["dialogue_sha256"].tolist())
    pdt.assert_frame_equal(read_log({**tables, "transcripts": given}).transcripts, derived)


def test_tampered_text_is_a_corrupt_log() -> None:
    tables = dialogue_tables(n_per_arm=2)
    given = tables["transcripts"].copy()
    given["sha256"] = [text_sha256(x) for x in given["text"]]
    given.loc[3, "text"] = "an edited message"
    with pytest.raises(InvalidValueError, match=r"transcripts: column 'sha256' does not match .* in 1 row\(s\) \(first: 3\).*corrupt"):
        read_log({**tables, "transcripts": given})


def test_a_broken_chain_is_a_corrupt_log() -> None:
    tables = dialogue_tables(n_per_arm=2)
    derived = read_log(tables).transcripts
    given = tables["transcripts"].assign(dialogue_sha256=derived["dialogue_sha256"].tolist())
    # swap the texts of two messages of unit c00: each text still matches nothing upstream of the chain
    given.loc[[0, 1], "text"] = given.loc[[1, 0], "text"].tolist()
    with pytest.raises(InvalidValueError, match=r"'dialogue_sha256' does not follow the hash chain .*'c00'"):
        read_log({**tables, "transcripts": given})


def test_answers_must_name_their_units_transcript() -> None:
    tables = dialogue_tables(n_per_arm=2)
    answers = tables["answers"].copy()
    answers.loc[answers["unit_id"] == "t01", "dialogue_sha256"] = chain_sha256("", "user", "another dialogue")
    with pytest.raises(InvalidValueError, match=r"answers: column 'dialogue_sha256' does not name .*'t01'"):
        read_log({**tables, "answers": answers})
    # without the transcripts table there is nothing to check against
    assert read_log({**{k: v for k, v in tables.items() if k != "transcripts"}, "answers": answers}).n_rows


def test_empty_messages_are_kept_and_flagged() -> None:
    tables = dialogue_tables(n_per_arm=2)
    t = tables["transcripts"].copy()
    t.loc[1, "text"] = ""
    t.loc[2, "text"] = None
    t.loc[3, "text"] = None
    t.loc[3, "tool_calls"] = '[{"name": "refund", "arguments": {"order": 7}}]'  # a pure tool call is a message
    log = read_log({**tables, "answers": tables["answers"].drop(columns="dialogue_sha256"), "transcripts": t})
    got = log.transcripts
    assert len(got) == len(t)
    assert got.loc[[1, 2], "valid"].tolist() == [False, False]
    assert got.loc[[1, 2], "error"].tolist() == ["empty message", "empty message"]
    assert bool(got.loc[3, "valid"])
    assert got.loc[3, "error"] is pd.NA
    assert got.loc[2, "sha256"] is pd.NA
    assert got.loc[1, "sha256"] == text_sha256("")
    assert any("2 transcript message(s) have no text and no tool calls" in d for d in log.diagnostics)
    assert "(2 invalid messages)" in log.summary().facts["dialogue"]


def test_tool_calls_given_as_python_lists_are_stored_as_json() -> None:
    tables = dialogue_tables(n_per_arm=2)
    t = tables["transcripts"].astype({"text": object})
    t["tool_calls"] = None
    t.at[0, "tool_calls"] = [{"name": "search", "arguments": {"q": "é", "n": 2}}]
    got = read_log({**tables, "transcripts": t}).transcripts
    assert got.loc[0, "tool_calls"] == '[{"name": "search", "arguments": {"q": "é", "n": 2}}]'


@pytest.mark.parametrize(("column", "value", "error", "pattern"), [
    ("role", "narrator", InvalidValueError, r"transcripts: column 'role' .*1 row\(s\) \(first: 2\).*'system', 'user', 'assistant', 'tool'"),
    ("message", -1, InvalidValueError, r"transcripts: column 'message' .*1 row\(s\) \(first: 2\)"),
    ("turn", -2, InvalidValueError, r"transcripts: column 'turn' .*1 row\(s\) \(first: 2\)"),
    ("tool_calls", '{"name": "x"}', InvalidValueError, r"transcripts: column 'tool_calls' .*1 row\(s\) \(first: 2\).*not an array"),
    ("tool_calls", "not json", InvalidValueError, r"transcripts: column 'tool_calls' .*not valid JSON"),
    ("unit_id", "ghost", InvalidValueError, r"transcripts: 1 row\(s\) \(first: 2\) belong to units without answers .*'ghost'"),
    ("message", 0, DuplicateKeyError, r"transcripts: 1 key\(s\) \(unit_id, message\) .*unit_id='c00', message=0"),
])
def test_invalid_transcripts_raise_named_errors(column: str, value: object, error: type, pattern: str) -> None:
    tables = dialogue_tables(n_per_arm=2)
    t = tables["transcripts"].copy()
    assert t.loc[2, "unit_id"] == "c00"
    assert t.loc[2, "message"] == 2
    t[column] = t[column].astype(object) if column in t else None
    t.loc[2, column] = value
    with pytest.raises(error, match=pattern):
        read_log({**tables, "transcripts": t})


def test_fingerprint_of_logs_without_dialogues_is_unchanged_and_covers_transcripts() -> None:
    tables = dialogue_tables(n_per_arm=3)
    plain = read_log({"answers": tables["answers"].drop(columns="dialogue_sha256"), "items": tables["items"]})
    # the fingerprint of a log without the dialogue column: as before the column existed
    old_cols = ", ".join(f.name for f in ANSWERS if f.name != "dialogue_sha256")
    h = hashlib.sha256()
    for t in ("answers", "items", "personas", "arms"):
        source = f"(SELECT {old_cols} FROM answers)" if t == "answers" else t
        n, x = plain.con.execute(f"SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM {source} AS t").fetchall()[0]
        h.update(f"{t}:{n}:{x};".encode())
    assert plain.fingerprint() == h.hexdigest()[:16]
    # transcripts and the answers' dialogue hashes enter it
    full = read_log(tables)
    no_hash = read_log({**tables, "answers": tables["answers"].drop(columns="dialogue_sha256")})
    assert len({plain.fingerprint(), full.fingerprint(), no_hash.fingerprint()}) == 3
    edited = tables["transcripts"].copy()
    edited.loc[0, "tokens"] = 12
    assert read_log({**tables, "transcripts": edited}).fingerprint() != full.fingerprint()


def test_summary_names_the_dialogues() -> None:
    log = read_log(dialogue_tables(n_per_arm=5, units_with_transcript=3))
    t = log.transcripts
    turns = t.groupby("unit_id")["turn"].nunique()
    fact = log.summary().facts["dialogue"]
    assert fact == f"6 units with a transcript, {len(t)} messages, {turns.min()}-{turns.max()} turns"
    assert f"dialogue: {fact}" in log.summary().as_text()


# ------------------------------------------------------------------------------ the dialogue items in the verbs
def test_verbs_take_the_dialogue_items_by_name() -> None:
    log = read_log(dialogue_tables(n_per_arm=15))
    assert log.item("dialogue_end").role == "other"
    assert log.item("dialogue_turns").scale == "numeric"
    drift = ds.nco_test(log, nco=["dialogue_end", "dialogue_turns"], n_perm=199, n_boot=0, seed=1).tidy()
    assert set(drift["term"]) == {"dialogue_end", "dialogue_turns"}
    assert drift.set_index("term").loc["dialogue_turns", "measure"] == "ks"
    turns = log.to_pandas().query("item == 'dialogue_turns'").groupby("arm")["response_value"].mean()
    eff = ds.effect(log, outcome="dialogue_turns", n_perm=199, seed=1).tidy()
    row = eff[eff["measure"] == "mean_diff"].iloc[0]
    assert row["estimate"] == pytest.approx(turns["treatment"] - turns["control"])
    fid = ds.fidelity(log).tidy()
    assert "age" in set(fid["term"])


# ------------------------------------------------------------------------------ importer formats
@pytest.fixture
def tiny_importer():
    """An importer of a made-up CSV format registered for one test: one file per arm, rows unit,item,response."""
    calls: list[tuple[list[Path], list[str | None]]] = []

    def read_tiny(sources: list[Path], *, arms: list[str | None], **options: object) -> dict[str, pd.DataFrame]:
        calls.append((list(sources), list(arms)))
        frames = []
        for path, arm in zip(sources, arms, strict=True):
            f = pd.read_csv(path, dtype=str, keep_default_na=False)
            frames.append(f.assign(arm=arm or f["arm_in_file"]).drop(columns="arm_in_file"))
        answers = pd.concat(frames, ignore_index=True).rename(columns={"unit": "unit_id"})
        transcripts = pd.DataFrame([{"unit_id": u, "message": 0, "turn": 0, "role": "user", "text": f"hi from {u}"}
                                    for u in answers["unit_id"].unique()])
        return {"answers": answers, "transcripts": transcripts}

    importers.register("tiny-test")(read_tiny)
    try:
        yield calls
    finally:
        del importers.IMPORTERS["tiny-test"]


def _tiny_files(tmp_path: Path) -> list[Path]:
    paths = []
    for k, arm in enumerate(("control", "treatment")):
        p = tmp_path / f"{arm}.tiny"
        p.write_text("unit,item,response,arm_in_file\n" + "".join(
            f"{arm[0]}{i},q,{'yes' if (i + k) % 2 else 'no'},{arm}-in-file\n" for i in range(3)))
        paths.append(p)
    return paths


def test_importer_format_reads_one_file_or_a_list(tiny_importer, tmp_path: Path) -> None:
    paths = _tiny_files(tmp_path)
    assert "tiny-test" in ds.log.importer_formats()
    log = read_log(paths, format="tiny-test", arm=["control", "treatment"])
    assert tiny_importer[-1] == (paths, ["control", "treatment"])
    assert log.arm_names == ("control", "treatment")
    assert log.n_rows == 6
    assert log.transcript("c0")["text"].tolist() == ["hi from c0"]
    assert log.transcripts["sha256"].notna().all()  # validated like any log: hashes derived
    one = read_log(paths[1], format="tiny-test", arm="treatment")
    assert tiny_importer[-1] == ([paths[1]], ["treatment"])
    assert one.arm_names == ("treatment",)
    # no arm: the importer takes the arm from the file; a tuple of paths works too
    from_files = read_log(tuple(paths), format="tiny-test")
    assert tiny_importer[-1][1] == [None, None]
    assert from_files.arm_names == ("control-in-file", "treatment-in-file")
    # side tables given as arguments replace the imported ones
    mine = pd.DataFrame([{"unit_id": "t2", "message": 0, "turn": 0, "role": "assistant", "text": "mine"}])
    assert read_log(paths, format="tiny-test", arm=["control", "treatment"], transcripts=mine).transcripts[
        "text"].tolist() == ["mine"]


def test_importer_format_argument_errors(tiny_importer, tmp_path: Path) -> None:
    paths = _tiny_files(tmp_path)
    with pytest.raises(InvalidArgumentError, match=r"arm='control' names the arm of one file, but 2 files"):
        read_log(paths, format="tiny-test", arm="control")
    with pytest.raises(InvalidArgumentError, match=r"arm= gives 1 arm name\(s\) for 2 file\(s\)"):
        read_log(paths, format="tiny-test", arm=["control"])
    with pytest.raises(InvalidArgumentError, match=r"source must be a path or a list / tuple of paths; got an empty"):
        read_log([], format="tiny-test")
    with pytest.raises(LogNotFoundError, match="no such file"):
        read_log([paths[0], tmp_path / "missing.tiny"], format="tiny-test", arm=["a", "b"])
    with pytest.raises(InvalidArgumentError, match=r"format must be one of 'parquet', .*'edsl', .*'tiny-test'"):
        read_log(paths[0], format="no-such-format")
    # other formats keep refusing lists, and take arm= as a column name only
    with pytest.raises(InvalidArgumentError, match="read_log expands neither lists nor globs"):
        read_log(paths, format="csv")
    with pytest.raises(InvalidArgumentError, match="A list of arm names is taken only by importer formats"):
        read_log(pd.DataFrame({"unit_id": ["a"], "g": ["x"], "item": ["q"], "response": ["y"]}), arm=["g"])
