"""The collector store without a model: one writer per store, its lifecycle, the CLI's exits.

Runs go through the real HTTP backend against a small OpenAI-compatible server started here
(``/v1/models`` and ``/v1/completions``, answering the first option), whose requests can be
held or failed on demand; concurrent collectors are real ``driftstats simulate`` processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from tests.conftest import require

require("pydantic")

import driftstats as ds  # noqa: E402
from collectors.store import Store  # noqa: E402
from collectors.study import StudyError, parse_study  # noqa: E402


# --------------------------------------------------------------------------- a small completions server
class Server:
    """OpenAI-compatible completions on a thread: scoring (echo + logprobs) and constrained samples.

    ``hold()`` makes requests wait (up to ``hold_s``) until ``release()``; ``fail_after = k`` answers
    HTTP 500 from the k-th completion request on (``0``: from the first).
    """

    def __init__(self, hold_s: float = 30.0) -> None:
        self.requests = 0
        self.fail_after: int | None = None
        self.hold_s = hold_s
        self._open = threading.Event()
        self._open.set()
        self._count_lock = threading.Lock()
        self.seen = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client is gone (killed): nothing to answer
                    pass

            def do_GET(self) -> None:
                self._send(200, {"data": [{"id": "models/test-model.gguf"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._count_lock:
                    k = server.requests
                    server.requests += 1
                with server.seen:
                    server.seen.notify_all()
                server._open.wait(server.hold_s)
                if server.fail_after is not None and k >= server.fail_after:
                    self._send(500, {"error": "backend exploded"})
                    return
                prompt = body["prompt"]
                if body.get("echo"):  # score the last two characters (" A", " B", ...)
                    lp = -0.5 * (ord(prompt[-1]) - ord("A") + 1)
                    self._send(200, {"choices": [{"logprobs": {"text_offset": [0, len(prompt) - 2],
                                                               "token_logprobs": [None, lp]}}]})
                    return
                first = json.loads(body["grammar"].split("::=", 1)[1].split("|")[0])
                self._send(200, {"choices": [{"text": first}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self.seen:
            while self.requests < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the server saw {self.requests} requests, expected {n}")
                self.seen.wait(left)

    def close(self) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


REQUESTS_PER_UNIT = 2 * (3 + 1)  # two items, each: three options scored + one sample


def _study(url: str, *, units_per_arm: int = 3, name: str = "store-test") -> dict:
    return {
        "name": name,
        "population": {"source": "people.csv", "specified": ["age", "party"]},
        "design": {"units_per_arm": units_per_arm, "paired": True, "seed": 3},
        "model": {"backend": "http", "url": url, "path": "test-model", "prompt_style": "completion"},
        "arms": [{"name": "control", "kind": "control", "text": "The library opens at nine."},
                 {"name": "treatment", "kind": "treatment", "text": "Taxes should rise."}],
        "items": [{"name": "support", "role": "primary", "text": "Support?", "options": ["No", "Unsure", "Yes"]},
                  {"name": "news", "role": "nco", "text": "News?", "options": ["Never", "Weekly", "Daily"]}],
    }


def _write_study(tmp_path: Path, study: dict) -> Path:
    (tmp_path / "people.csv").write_text("age,party\n" + "".join(f"{20 + i},{['D', 'R', 'I'][i % 3]}\n"
                                                                   for i in range(12)))
    path = tmp_path / "study.json.yaml"
    path.write_text(json.dumps(study))  # JSON is YAML
    return path


def _simulate(study_path: Path, out: Path, *extra: str, wait: bool = True, timeout: float = 120):
    cmd = [sys.executable, "-m", "driftstats.cli", "simulate", str(study_path), "--out", str(out), *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _lock_file(out: Path) -> Path:
    return out.with_name(out.name + ".lock")


def _meta(path: Path) -> dict[str, str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return dict(con.execute("SELECT key, value FROM meta").fetchall())
    finally:
        con.close()


def _units_done(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM units_done").fetchone()[0])
    finally:
        con.close()


def _error_line(proc) -> str:
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


# --------------------------------------------------------------------------- one writer per store
def test_a_second_store_on_the_same_file_is_refused(tmp_path) -> None:
    from collectors.store import StoreLockedError, lock_path

    out = tmp_path / "s.duckdb"
    first = Store(out, study_name="a", study_hash="h" * 64)
    assert _lock_file(out).read_text().strip() == str(os.getpid())
    for overwrite in (False, True):
        with pytest.raises(StudyError, match=rf"s\.duckdb is being written by another collector \(pid {os.getpid()}"):
            Store(out, study_name="a", study_hash="h" * 64, overwrite=overwrite)
    assert out.exists()  # --overwrite deleted nothing
    first.write_unit("u1", [{"unit_id": "u1", "item": "x", "mode": "sample", "response": "A", "valid": True}], [])
    first.close(status="complete")
    assert not _lock_file(out).exists()  # released and removed
    with Store(out, study_name="a", study_hash="h" * 64) as again:
        assert again.done_units() == {"u1"}
    assert issubclass(StoreLockedError, StudyError)
    assert lock_path(out) == _lock_file(out)


def test_a_lock_left_by_a_killed_writer_blocks_nobody(tmp_path) -> None:
    from collectors.store import StoreLock

    out = tmp_path / "s.duckdb"
    pid = os.fork()
    if pid == 0:  # the child takes the lock and dies without releasing it
        StoreLock(out)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert _lock_file(out).exists()  # the process died holding it: the file stays, the lock does not
    with StoreLock(out) as lock:
        assert lock.held
        assert _lock_file(out).read_text().strip() == str(os.getpid())
    assert not _lock_file(out).exists()


def test_overwrite_cannot_delete_a_store_another_collector_is_writing(tmp_path, server) -> None:
    """Regression (issue 27): `simulate --overwrite` deleted the store of a collector still writing it;
    that collector then exited 0 and its rows were lost. Two real collector processes."""
    from collectors.runner import run_study

    units_per_arm = 4
    study_path = _write_study(tmp_path, _study(server.url, units_per_arm=units_per_arm))
    out = tmp_path / "runs.duckdb"
    writer = _simulate(study_path, out, wait=False)
    try:
        server.wait_for(REQUESTS_PER_UNIT + 1)  # the writer is past its first unit
        server.hold()  # ... and now waits in the middle of a unit, holding the store
        second = _simulate(study_path, out, "--overwrite", timeout=30)
        assert second.returncode == 2, (second.stdout, second.stderr)
        assert f"{out} is being written by another collector (pid {writer.pid}" in _error_line(second)
        with pytest.raises(StudyError, match=f"another collector \\(pid {writer.pid}"):  # no --overwrite
            run_study(parse_study(_study(server.url, units_per_arm=units_per_arm)), out, base_dir=tmp_path)
        server.release()
        _, stderr = writer.communicate(timeout=120)
    finally:
        server.release()
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
    assert writer.returncode == 0, stderr
    log = ds.read_log(out)
    sample = log.to_pandas().query("mode == 'sample'")
    assert sample["unit_id"].nunique() == 2 * units_per_arm  # every unit of the first writer is there
    meta = _meta(out)
    assert meta["status"] == "complete"
    assert meta["units_total"] == str(2 * units_per_arm)
    assert not _lock_file(out).exists()


# --------------------------------------------------------------------------- lifecycle: nothing left behind
def test_a_bad_model_path_leaves_no_store(tmp_path) -> None:
    """Regression (issue 10): a run that failed before its first unit left an empty store behind."""
    from collectors.runner import run_study

    study = _study("http://unused")
    study["model"] = {"backend": "llama.cpp", "path": str(tmp_path / "no-such-model.gguf")}
    study_path = _write_study(tmp_path, study)
    out = tmp_path / "runs.duckdb"
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        run_study(parse_study(study), out, base_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.csv", "study.json.yaml"]
    proc = _simulate(study_path, out)
    assert proc.returncode == 2
    assert "model.path: no GGUF file" in _error_line(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.csv", "study.json.yaml"]


def test_a_backend_failing_at_start_leaves_no_store_and_exits_1(tmp_path, server) -> None:
    server.fail_after = 0
    study_path = _write_study(tmp_path, _study(server.url))
    out = tmp_path / "runs.duckdb"
    proc = _simulate(study_path, out)
    assert proc.returncode == 1, proc.stderr
    line = _error_line(proc)
    assert "the run failed: RuntimeError:" in line
    assert "answered 500" in line
    assert "no store was left behind" in line
    assert not out.exists()
    assert not out.with_name(out.name + ".wal").exists()
    assert not _lock_file(out).exists()


def test_overwrite_with_a_bad_model_keeps_the_old_store(tmp_path, server) -> None:
    from collectors.runner import run_study

    out = tmp_path / "runs.duckdb"
    study = _study(server.url, units_per_arm=2)
    _write_study(tmp_path, study)
    run_study(parse_study(study), out, base_dir=tmp_path)
    bad = {**study, "model": {"backend": "llama.cpp", "path": str(tmp_path / "missing.gguf")}}
    with pytest.raises(FileNotFoundError):
        run_study(parse_study(bad), out, base_dir=tmp_path, overwrite=True)
    assert _units_done(out) == 4  # the lock and the backend come before any deletion
    assert _meta(out)["status"] == "complete"


def test_status_and_units_total_through_failure_and_resume(tmp_path, server) -> None:
    from collectors.runner import run_study

    out = tmp_path / "runs.duckdb"
    study = _study(server.url, units_per_arm=3)
    _write_study(tmp_path, study)
    spec = parse_study(study)
    server.fail_after = 2 * REQUESTS_PER_UNIT + 1  # two units, then the server breaks
    with pytest.raises(RuntimeError, match="answered 500"):
        run_study(spec, out, base_dir=tmp_path)
    meta = _meta(out)
    assert (meta["status"], meta["units_total"], _units_done(out)) == ("failed", "6", 2)
    assert meta["error"].startswith("RuntimeError: ")
    assert not _lock_file(out).exists()
    server.requests, server.fail_after = 0, 0  # a resumed run that fails at once keeps what it had
    with pytest.raises(RuntimeError):
        run_study(spec, out, base_dir=tmp_path)
    assert (_meta(out)["status"], _units_done(out)) == ("failed", 2)
    server.fail_after = None
    partial = run_study(spec, out, base_dir=tmp_path, max_units=1)
    assert partial.units_run == 1
    assert (_meta(out)["status"], _units_done(out)) == ("running", 3)  # stopped early: incomplete
    summary = run_study(spec, out, base_dir=tmp_path)
    assert (summary.units_done_before, summary.units_run) == (3, 3)
    assert (_meta(out)["status"], _meta(out)["units_total"], _units_done(out)) == ("complete", "6", 6)


def test_kill_minus_9_leaves_a_running_store_that_resumes(tmp_path, server) -> None:
    from collectors.runner import run_study

    study = _study(server.url, units_per_arm=3)
    study_path = _write_study(tmp_path, study)
    out = tmp_path / "runs.duckdb"
    writer = _simulate(study_path, out, wait=False)
    try:
        server.wait_for(2 * REQUESTS_PER_UNIT + 1)
        server.hold()
        time.sleep(0.3)
        os.killpg(writer.pid, signal.SIGKILL)
        writer.communicate(timeout=30)
    finally:
        server.release()
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
    meta = _meta(out)
    assert (meta["status"], meta["units_total"], _units_done(out)) == ("running", "6", 2)
    assert _lock_file(out).exists()  # stale: the kernel dropped the lock with the process
    again = run_study(parse_study(study), out, base_dir=tmp_path)
    assert (again.units_done_before, again.units_run) == (2, 4)
    assert (_meta(out)["status"], _units_done(out)) == ("complete", 6)
    assert not _lock_file(out).exists()


def test_store_of_another_study_is_refused_before_the_backend_starts(tmp_path, server) -> None:
    from collectors.runner import run_study

    out = tmp_path / "runs.duckdb"
    study = _study(server.url, units_per_arm=1)
    _write_study(tmp_path, study)
    run_study(parse_study(study), out, base_dir=tmp_path)
    seen = server.requests
    other = {**study, "name": "other", "model": {"backend": "llama.cpp", "path": str(tmp_path / "x.gguf")}}
    with pytest.raises(StudyError, match="holds another study"):  # not the missing model: checked first
        run_study(parse_study(other), out, base_dir=tmp_path)
    assert server.requests == seen
    assert _units_done(out) == 2
    assert not _lock_file(out).exists()
    (tmp_path / "junk.duckdb").write_text("not a database")
    with pytest.raises(StudyError, match="cannot be opened as a DuckDB store"):
        run_study(parse_study(study), tmp_path / "junk.duckdb", base_dir=tmp_path)
    assert (tmp_path / "junk.duckdb").read_text() == "not a database"


def test_sigterm_ends_the_run_as_failed_and_releases_the_store(tmp_path, server) -> None:
    study_path = _write_study(tmp_path, _study(server.url, units_per_arm=3))
    out = tmp_path / "runs.duckdb"
    writer = _simulate(study_path, out, wait=False)
    try:
        server.wait_for(REQUESTS_PER_UNIT + 1)
        server.hold()
        time.sleep(0.3)
        writer.send_signal(signal.SIGTERM)
        _, stderr = writer.communicate(timeout=60)
    finally:
        server.release()
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
    assert writer.returncode == 143, stderr
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("error: interrupted (terminated by SIGTERM)")
    assert f"{out} keeps 1 of 6 units" in line
    meta = _meta(out)
    assert (meta["status"], meta["error"], _units_done(out)) == ("failed", "Terminated: terminated by SIGTERM", 1)
    assert not _lock_file(out).exists()


def test_a_store_in_a_new_directory(tmp_path, server) -> None:
    from collectors.runner import run_study

    study = _study(server.url, units_per_arm=1)
    _write_study(tmp_path, study)
    out = tmp_path / "new" / "dir" / "runs.duckdb"
    summary = run_study(parse_study(study), out, base_dir=tmp_path)
    assert summary.units_run == 2
    assert sorted(p.name for p in out.parent.iterdir()) == ["runs.duckdb"]


def test_a_store_written_before_a_column_joined_the_schema_resumes(tmp_path) -> None:
    """An in-progress store from before ``answers.dialogue_sha256`` existed gains the column on resume."""
    path = tmp_path / "old.duckdb"
    Store(path, study_name="s", study_hash="h").close()
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE answers DROP COLUMN dialogue_sha256")
    con.execute("DROP TABLE transcripts")
    con.close()
    Store(path, study_name="s", study_hash="h").close()
    con = duckdb.connect(str(path), read_only=True)
    cols = {r[0] for r in con.execute("DESCRIBE answers").fetchall()}
    tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    con.close()
    assert "dialogue_sha256" in cols
    assert "transcripts" in tables


@pytest.mark.parametrize("name", ["anes_tax_adjust", "anes_tax_dialogue"])
def test_the_study_hash_of_a_shipped_store_is_stable(name) -> None:
    """The hash a shipped store records is the one today's collector computes for its study file, so
    adding study fields (e.g. the dialogue section) never stops an older store from resuming."""
    from collectors.runner import study_hash
    from collectors.study import load_study

    root = Path(__file__).parents[1]
    con = duckdb.connect(str(root / "data" / f"{name}.duckdb"), read_only=True)
    recorded = con.execute("SELECT value FROM meta WHERE key = 'study_hash'").fetchone()[0]
    con.close()
    assert study_hash(load_study(root / "collectors" / "studies" / f"{name}.toml")) == recorded
