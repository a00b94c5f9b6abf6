"""Real server processes: two uvicorn workers on one database hold the daily cap, the idempotency keys and the rate
limit together; a server killed (SIGKILL) between committing a submission and answering loses nothing, and the
client's retry with the same key gets that submission back instead of a second one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from polypbench.leaderboard import client
from polypbench.leaderboard.app import create_app
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.db import Database, Submission, Team
from tests.helpers import serving

from .helpers import (
    ARCHITECTURES,
    FROZEN_TIME,
    POSTGRES_ENV,
    TASKS,
    free_port,
    live_server,
    parquet_bytes,
    postgres_schema,
    predictions,
)

pytestmark = pytest.mark.process  # real server processes

SERVE = f"""
import os, signal, sys
from polypbench.leaderboard.app import create_app, serve
from polypbench.leaderboard.config import Settings
settings = Settings(db=sys.argv[1], labels=[sys.argv[2]], store=sys.argv[3], daily_cap=2, rate_limit=8,
                    ip_rate_limit=0, n_bootstrap=20, architectures={ARCHITECTURES!r}, tasks={TASKS!r},
                    frozen_time={FROZEN_TIME!r})
if sys.argv[5] == "crash":  # SIGKILL itself right after the first submission is committed, before it is answered
    import uvicorn
    app = create_app(settings, after_commit=lambda sub_id: os.kill(os.getpid(), signal.SIGKILL))
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[4]), log_level="warning")
else:
    serve(settings, port=int(sys.argv[4]), workers=int(sys.argv[5]))
"""


@contextmanager
def server_process(db: str, labels: Path, store: Path, port: int, mode: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", SERVE, db, str(labels), str(store), str(port), mode],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, start_new_session=True)
    try:
        assert serving(f"http://127.0.0.1:{port}/api/info", proc, 90), f"server did not start ({proc.poll()})"
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.fixture
def server_db(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL when the tests have one (the deployment this is for), else SQLite: one real 2-process server
    is enough to keep this lean (tests/leaderboard/test_app.py holds the cap on both databases within a process)."""
    if os.environ.get(POSTGRES_ENV):
        with postgres_schema() as url:
            yield url
    else:
        yield str(tmp_path / "leaderboard.db")


def test_two_worker_processes_hold_the_cap_keys_and_rate_limit_together(server_db: str, labels: Path,
                                                                         tmp_path: Path) -> None:
    db = server_db
    with Database(db) as database:
        tokens = {name: add_team(database, name) for name in ("capped", "retrying", "chatty")}
    data = parquet_bytes(predictions(labels))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with server_process(db, labels, tmp_path / "store", port, "2") as proc:
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_children(proc.pid)) >= 2, "expected 2 server worker processes"

        def upload(team: str, i: int, key: str | None = None) -> Any:
            headers = {"Authorization": f"Bearer {tokens[team]}", **({"Idempotency-Key": key} if key else {})}
            return http.post("/api/submissions", headers=headers, timeout=120,
                             data={"method": f"m{i}", "declaration": "true"}, files={"file": ("p.parquet", data)})

        # one client for every thread (its pool opens a connection per concurrent request; a client per request
        # would build a TLS context each time)
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as http, ThreadPoolExecutor(6) as pool:
            capped = list(pool.map(lambda i: upload("capped", i), range(6)))
            retried = list(pool.map(lambda i: upload("retrying", i, key="same-key-for-all"), range(4)))
            chatty = list(pool.map(lambda _: http.get("/api/jobs", headers={
                "Authorization": f"Bearer {tokens['chatty']}"}).status_code, range(12)))
    assert sorted(r.status_code for r in capped) == [200, 200, 429, 429, 429, 429], [r.text for r in capped]
    assert all(r.status_code == 200 for r in retried) and len({r.json()["id"] for r in retried}) == 1
    assert sorted(chatty) == [200] * 8 + [429] * 4
    with Database(db) as database, database.sessions() as session:
        by_team = {name: session.query(Submission).join(Submission.team).filter_by(name=name).count()
                   for name in tokens}
    assert by_team == {"capped": 2, "retrying": 1, "chatty": 0}


def test_no_acknowledged_submission_is_lost_when_the_server_is_killed(sqlite_db: str, labels: Path,
                                                                      tmp_path: Path) -> None:
    with Database(sqlite_db) as database:
        token = add_team(database, "survivor")
    preds = tmp_path / "preds.parquet"
    predictions(labels).to_parquet(preds, index=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    answer: dict[str, Any] = {}

    def submit() -> None:
        answer.update(client.submit(preds, url, token, "kill-9", declaration=True, key="crash-test-key",
                                    retry_for=90, timeout=60))

    with server_process(sqlite_db, labels, tmp_path / "store", port, "crash") as crashing:
        thread = threading.Thread(target=submit, daemon=True)
        thread.start()
        crashing.wait(timeout=60)
    assert crashing.returncode == -signal.SIGKILL  # killed after the commit, before any answer
    with Database(sqlite_db) as database, database.sessions() as session:
        stored = [(s.id, s.idempotency_key) for s in session.query(Submission)]
    assert stored == [(stored[0][0], "crash-test-key")]  # committed before the crash
    app = create_app(sqlite_db, [labels], store=str(tmp_path / "store"), rate_limit=0, ip_rate_limit=0,
                     n_bootstrap=20, architectures=ARCHITECTURES, frozen_time=FROZEN_TIME)
    with live_server(app, port=port):  # restarted (in this process, to keep the test short); the client retries
        thread.join(timeout=90)
    app.state.server.db.dispose()
    assert answer["id"] == stored[0][0] and answer["replayed"] is True
    with Database(sqlite_db) as database, database.sessions() as session:
        assert session.query(Submission).count() == 1  # the retry did not count twice


def test_a_killed_workers_job_folder_is_removed_at_the_next_start(sqlite_db: str, prepared: Any,
                                                                   tmp_path: Path) -> None:
    """A worker killed with SIGKILL mid-job leaves its job folder (spec.json names the store and the private data,
    readable by its owner only); the next worker removes it at start, and never a live worker's folder."""
    import json

    from polypbench.leaderboard import jobs
    from polypbench.leaderboard.store import Store
    from polypbench.leaderboard.worker import job_folder

    hidden, store = prepared["real-colon"].out, tmp_path / "store"
    with Database(sqlite_db) as database:
        add_team(database, "killed")
        weights = Store(store).incoming(".safetensors")
        header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
        weights.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
        Store(store).keep(weights, "0" * 64, ".safetensors")
        config = json.dumps({"text": "{}", "inference": {"model": "resnet18", "task": "triclass", "img_size": 32}})
        with database.sessions() as session:
            team_id = session.scalar(select(Team.id).where(Team.name == "killed"))
        jobs.enqueue(database, team_id, jobs.NewJob(kind="model", method="m", architecture="resnet18", config=config,
                                                     weights_sha256="0" * 64, weights_bytes=24))
    temp = tmp_path / "tmp"
    temp.mkdir()
    (temp / "polypbench-submit-keep").mkdir()  # not a job folder: never touched
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(temp)}
    worker = [sys.executable, "-m", "polypbench", "leaderboard", "worker", "--db", sqlite_db, "--private-labels",
              str(hidden), "--store", str(store)]
    proc = subprocess.Popen(worker, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(temp.glob("polypbench-job*/spec.json")):
            assert proc.poll() is None and time.monotonic() < deadline, "the worker did not start the job"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (left,) = temp.glob("polypbench-job*")
    spec = left / "spec.json"
    assert spec.stat().st_mode & 0o077 == 0, oct(spec.stat().st_mode)  # the owner's alone
    with job_folder(99, temp) as live:  # a live worker's folder (this process's)
        again = subprocess.run([*worker, "--once"], env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert live.is_dir() and not left.exists(), again.stderr
        assert "removed" in again.stderr and left.name in again.stderr  # and said so
    assert sorted(p.name for p in temp.iterdir()) == ["polypbench-submit-keep"]
