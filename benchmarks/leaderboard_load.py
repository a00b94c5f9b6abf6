"""Load benchmark of the leaderboard server: N concurrent clients submitting valid and invalid prediction files.

Builds two small prepared datasets with the real code (synthetic REAL-Colon + SUN dumps, then `prepare`), starts
the server (`polypbench.leaderboard.app.serve`, uvicorn, ``--workers`` processes) in a separate process on
127.0.0.1 (a free port; nothing else is contacted), registers one team per client, then runs N client threads
(httpx). Each client submits M valid files (size noise varies) and M invalid ones (cycling: rows missing, a
negative size, not Parquet at all), interleaved, each with its own idempotency key; a request that loses its
connection (or gets 502/503/504) is retried with the same key, as ``polypbench submit`` does.

Modes:

- default: SQLite file, one server process;
- ``--postgres URL``: the database is a fresh schema in that PostgreSQL database (dropped afterwards);
- ``--workers N``: N server processes on one socket;
- ``--fault``: the server process group is killed with SIGKILL mid-load (after ``--kill-after`` seconds) and
  restarted; the clients' retries continue;
- ``--bomb``: instead of the load, upload a 30 M-row Parquet bomb (a few hundred KB) and report the server's peak
  resident memory (VmHWM of the server process) before and after, with one server process.

It is bounded (N * 2M requests, per-request timeout, an overall deadline ``--time-limit``); the server is stopped
at the end whatever happens. It reports submissions/s and p50/p99 request latency, and checks:

- every accepted submission (HTTP 200) is in the database with its team, method and key, and nothing else is;
  no key has more than one submission (a retry never counts twice);
- every refused one got HTTP 422 with the message its defect calls for.

Usage: python benchmarks/leaderboard_load.py [--clients 4] [--per-client 5] [--bootstrap 1000] [--workers 1]
       [--postgres URL] [--fault] [--bomb] [--json out.json]
Exit status 1 when a check fails or the deadline passes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

INVALID = {
    # kind: (expected status, text that must be in the response's problems)
    "missing": (422, "have no prediction"),
    "negative": (422, "negative size"),
    "unreadable": (422, "not a readable Parquet file"),
}
RETRY_STATUS = (502, 503, 504)


@dataclass
class Outcome:
    client: int
    kind: str  # "valid" or an INVALID key
    method: str
    key: str
    status: int
    seconds: float
    body: dict
    attempts: int = 1
    ok: bool = False
    why: str = ""


@dataclass
class Server:
    args: list[str]
    port: int
    proc: subprocess.Popen | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(root: Path) -> list[Path]:
    from polypbench.prepare import prepare
    from polypbench.synth import synthesize

    out = []
    for name in ("real-colon", "sun"):
        synthesize(name, root / "raw" / name, frames_per_polyp=2, negatives_per_video=1, seed=0)
        prepare(name, root / "raw" / name, root / "prepared" / name, workers=1)
        out.append(root / "prepared" / name)
    return out


def _truth_rows(labels: list[Path]) -> pd.DataFrame:
    from polypbench.manifest import Manifest

    rows = pd.concat([Manifest.open(p).select("test") for p in labels], ignore_index=True)
    return pd.DataFrame({"polyp_id": rows["polyp_id"].astype(str), "frame_index": rows["frame_index"],
                         "size_mm": rows["size_mm"].astype(float)})


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _file(truth: pd.DataFrame, kind: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    df = truth.copy()
    df["size_mm"] = np.clip(df["size_mm"] + rng.normal(0, 3.0, len(df)), 0.1, None)
    if kind == "valid":
        return _parquet(df)
    if kind == "missing":
        return _parquet(df.iloc[2:])
    if kind == "negative":
        df.loc[df.index[0], "size_mm"] = -1.0
        return _parquet(df)
    if kind == "unreadable":
        return b"not parquet at all\n" * 10
    raise ValueError(kind)


def _serve(args: argparse.Namespace) -> None:
    """The server process: the real app under uvicorn on 127.0.0.1 (``--workers`` processes)."""
    from polypbench.leaderboard.app import serve
    from polypbench.leaderboard.config import Settings

    settings = Settings(db=args.db, labels=args.labels, store=args.store, daily_cap=args.daily_cap,
                        max_upload_bytes=10 * 1024 * 1024, rate_limit=0, ip_rate_limit=0, n_bootstrap=args.bootstrap,
                        architectures=[])
    serve(settings, host="127.0.0.1", port=args.port, workers=args.workers)


def _start(server: Server, timeout: float = 90) -> None:
    import httpx

    server.proc = subprocess.Popen(server.args, start_new_session=True)
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{server.port}/api/info"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(f"server exited early with status {server.proc.returncode}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server not ready after {timeout:.0f} s")


def _stop(server: Server, sig: int = signal.SIGTERM) -> None:
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


def _post(http: Any, token: str, key: str, method: str, data: bytes, deadline: float) -> tuple[int, dict, int]:
    """POST with the client's retry rule: the same idempotency key after a lost connection or a 502/503/504."""
    import httpx

    attempts, delay = 0, 0.25
    while True:
        attempts += 1
        try:
            res = http.post("/api/submissions", headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                            data={"method": method, "declaration": "true"}, files={"file": (f"{method}.parquet", data)})
            if res.status_code not in RETRY_STATUS or time.monotonic() > deadline:
                try:
                    return res.status_code, res.json(), attempts
                except ValueError:
                    return res.status_code, {"error": res.text[:200]}, attempts
        except httpx.TransportError as exc:
            if time.monotonic() > deadline:
                return 0, {"error": f"{type(exc).__name__}: {exc}"}, attempts
        time.sleep(delay)
        delay = min(2 * delay, 2.0)


def _client(i: int, url: str, token: str, files: list[tuple[str, str, bytes]], deadline: float,
            out: list[Outcome], lock: threading.Lock) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=httpx.Timeout(120, connect=10), trust_env=False) as http:
        for kind, method, data in files:
            if time.monotonic() > deadline:
                return
            key = uuid.uuid4().hex
            t0 = time.perf_counter()
            status, body, attempts = _post(http, token, key, method, data, deadline)
            seconds = time.perf_counter() - t0
            with lock:
                out.append(Outcome(i, kind, method, key, status, seconds, body, attempts))


def _check(outcomes: list[Outcome], db: str, teams: dict[int, str]) -> list[str]:
    """Mark each outcome ok or not; return the failures (each one line)."""
    from polypbench.leaderboard.db import Database, Submission

    with Database(db) as database, database.sessions() as session:
        rows = [(s.id, s.team.name, s.method, s.idempotency_key) for s in session.query(Submission)]
    stored = {sid: (team, method) for sid, team, method, _ in rows}
    keys = [k for *_, k in rows]
    failures = []
    if len(keys) != len(set(keys)):
        failures.append(f"{len(keys) - len(set(keys))} idempotency key(s) with more than one submission")
    accepted_ids = set()
    for o in outcomes:
        if o.kind == "valid":
            sub_id = int(o.body.get("id") or 0)
            if o.status != 200:
                o.why = f"valid file refused: HTTP {o.status} {json.dumps(o.body)[:200]}"
            elif stored.get(sub_id) != (teams[o.client], o.method):
                o.why = f"accepted submission {sub_id} not in the database as {(teams[o.client], o.method)}"
            else:
                o.ok = True
                accepted_ids.add(sub_id)
        else:
            status, text = INVALID[o.kind]
            problems = "\n".join(o.body.get("problems") or [])
            if o.status != status or text not in problems or "problem(s) in the prediction file" not in o.body.get(
                    "error", ""):
                o.why = f"{o.kind}: expected HTTP {status} naming {text!r}; got {o.status} {json.dumps(o.body)[:200]}"
            else:
                o.ok = True
        if not o.ok:
            failures.append(f"client {o.client} {o.method}: {o.why}")
    extra = set(stored) - accepted_ids
    if extra:
        failures.append(f"{len(extra)} database row(s) not matched by an accepted response: {sorted(extra)}")
    return failures


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


@contextmanager
def _database(root: Path, postgres: str | None) -> Iterator[str]:
    if postgres is None:
        yield str(root / "leaderboard.db")
        return
    import psycopg

    url = postgres.replace("postgresql+psycopg://", "postgresql://", 1)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of ``pid`` and its children, MB."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _bomb(path: Path, rows: int = 30_000_000) -> None:
    """A Parquet file of ``rows`` rows that compresses to a few hundred KB (one repeated row), written in row
    groups so that writing it needs little memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    group = 1_000_000
    table = pa.table({"polyp_id": pa.array(["sun/case1"] * group).dictionary_encode(),
                      "frame_index": pa.array(np.zeros(group, dtype=np.int64)),
                      "size_mm": pa.array(np.full(group, 5.0))})
    with pq.ParquetWriter(path, table.schema, compression="zstd") as writer:
        for _ in range(rows // group):
            writer.write_table(table)


def _run_bomb(server: Server, url: str, token: str, root: Path) -> dict:
    import httpx

    bomb = root / "bomb.parquet"
    _bomb(bomb)
    assert server.proc is not None
    before = _peak_rss_mb(server.proc.pid)
    t0 = time.perf_counter()
    res = httpx.post(f"{url}/api/submissions", headers={"Authorization": f"Bearer {token}"}, timeout=300,
                     data={"method": "bomb", "declaration": "true"},
                     files={"file": ("bomb.parquet", bomb.read_bytes())})
    seconds = time.perf_counter() - t0
    after = _peak_rss_mb(server.proc.pid)
    body = res.json()
    print(f"bomb: {bomb.stat().st_size / 1024:.0f} KB file, 30,000,000 rows: HTTP {res.status_code} in "
          f"{seconds:.2f} s: {(body.get('problems') or [body.get('error')])[0]}")
    print(f"  server peak RSS (VmHWM): {before:.0f} MB before, {after:.0f} MB after")
    return {"bomb_kb": round(bomb.stat().st_size / 1024), "status": res.status_code, "seconds": round(seconds, 3),
            "peak_rss_before_mb": round(before), "peak_rss_after_mb": round(after),
            "message": (body.get("problems") or [body.get("error")])[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients N (one team each)")
    ap.add_argument("--per-client", type=int, default=5, help="M valid and M invalid files per client")
    ap.add_argument("--bootstrap", type=int, default=1000, help="server's bootstrap replicates (its default)")
    ap.add_argument("--workers", type=int, default=1, help="server processes")
    ap.add_argument("--postgres", help="PostgreSQL URL (a fresh schema there) instead of a SQLite file")
    ap.add_argument("--fault", action="store_true", help="SIGKILL the server mid-load, restart it, count")
    ap.add_argument("--kill-after", type=float, default=2.0, help="seconds into the load when --fault kills")
    ap.add_argument("--bomb", action="store_true", help="measure the server's peak memory on a 30 M-row bomb")
    ap.add_argument("--time-limit", type=float, default=300, help="overall deadline for the submissions, seconds")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--_serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--labels", action="append", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--daily-cap", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._serve:
        _serve(args)
        return 0
    if not (1 <= args.clients <= 64 and 1 <= args.per_client <= 200 and 1 <= args.workers <= 16):
        ap.error("--clients must be 1..64, --per-client 1..200, --workers 1..16")

    from polypbench.leaderboard.auth import add_team
    from polypbench.leaderboard.db import Database

    with tempfile.TemporaryDirectory(prefix="polypbench-load-") as tmp, _database(Path(tmp), args.postgres) as db:
        root = Path(tmp)
        t0 = time.perf_counter()
        labels = _prepare(root)
        truth = _truth_rows(labels)
        print(f"prepared 2 synthetic datasets ({len(truth)} test frames) in {time.perf_counter() - t0:.1f} s")
        teams = {i: f"load-team-{i}" for i in range(args.clients)}
        with Database(db) as database:
            tokens = {i: add_team(database, name) for i, name in teams.items()}
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, os.path.abspath(__file__), "--_serve", "--db", db, "--port", str(port),
               "--bootstrap", str(args.bootstrap), "--daily-cap", str(args.per_client + 1), "--workers",
               str(1 if args.bomb else args.workers), "--store", str(root / "store")]
        for p in labels:
            cmd += ["--labels", str(p)]
        server = Server(cmd, port)
        if args.bomb:
            try:
                _start(server)
                numbers = _run_bomb(server, url, tokens[0], root)
            finally:
                _stop(server)
            if args.json:
                args.json.write_text(json.dumps(numbers, indent=2) + "\n")
            return 0 if numbers["status"] == 422 and numbers["peak_rss_after_mb"] < 500 else 1

        kinds = list(INVALID)
        work = {}
        for i in range(args.clients):
            files = []
            for j in range(args.per_client):
                files.append(("valid", f"c{i}-valid-{j}", _file(truth, "valid", seed=1000 * i + j)))
                bad = kinds[(i + j) % len(kinds)]
                files.append((bad, f"c{i}-{bad}-{j}", _file(truth, bad, seed=1000 * i + j)))
            work[i] = files

        outcomes: list[Outcome] = []
        downtime = 0.0
        try:
            _start(server)
            lock = threading.Lock()
            deadline = time.monotonic() + args.time_limit
            threads = [threading.Thread(target=_client, args=(i, url, tokens[i], work[i], deadline, outcomes, lock),
                                        daemon=True) for i in range(args.clients)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            if args.fault:
                time.sleep(args.kill_after)
                killed_at = time.perf_counter()
                _stop(server, signal.SIGKILL)
                print(f"killed the server (SIGKILL) {killed_at - start:.2f} s into the load, after "
                      f"{len(outcomes)} answers; restarting")
                _start(server)
                downtime = time.perf_counter() - killed_at
            for t in threads:
                t.join(timeout=max(1.0, deadline - time.monotonic() + 130))
            wall = time.perf_counter() - start
            hung = sum(t.is_alive() for t in threads)
        finally:
            _stop(server)

        expected = args.clients * args.per_client * 2
        failures = _check(outcomes, db, teams)
        if len(outcomes) != expected or hung:
            failures.append(f"only {len(outcomes)} of {expected} requests finished ({hung} client(s) still running; "
                            f"deadline {args.time_limit:.0f} s)")
        lat = {k: [o.seconds for o in outcomes if (o.kind == "valid") == (k == "valid")]
               for k in ("valid", "invalid")}
        every = [o.seconds for o in outcomes]
        numbers = {
            "database": "postgresql" if args.postgres else "sqlite", "workers": args.workers, "fault": args.fault,
            "clients": args.clients, "per_client_valid": args.per_client, "per_client_invalid": args.per_client,
            "bootstrap": args.bootstrap, "requests": len(outcomes), "wall_s": round(wall, 3),
            "downtime_s": round(downtime, 2), "retried": sum(o.attempts > 1 for o in outcomes),
            "accepted": sum(o.status == 200 for o in outcomes), "refused": sum(o.status != 200 for o in outcomes),
            "submissions_per_s": round(len(outcomes) / wall, 2) if wall else None,
            "scored_per_s": round(sum(o.status == 200 for o in outcomes) / wall, 2) if wall else None,
            "p50_ms": round(_pct(every, 50), 1), "p99_ms": round(_pct(every, 99), 1),
            "valid_p50_ms": round(_pct(lat["valid"], 50), 1), "valid_p99_ms": round(_pct(lat["valid"], 99), 1),
            "invalid_p50_ms": round(_pct(lat["invalid"], 50), 1),
            "invalid_p99_ms": round(_pct(lat["invalid"], 99), 1),
            "checks_failed": len(failures),
        }
    print(f"{numbers['database']}, {args.workers} server process(es){', SIGKILL mid-load' if args.fault else ''}: "
          f"{args.clients} clients x ({args.per_client} valid + {args.per_client} invalid), server bootstrap "
          f"{args.bootstrap}: {numbers['requests']} requests in {numbers['wall_s']:.2f} s")
    print(f"  {numbers['submissions_per_s']} submissions/s ({numbers['scored_per_s']} scored/s); latency p50 "
          f"{numbers['p50_ms']} ms, p99 {numbers['p99_ms']} ms")
    print(f"  valid: p50 {numbers['valid_p50_ms']} ms, p99 {numbers['valid_p99_ms']} ms; invalid: p50 "
          f"{numbers['invalid_p50_ms']} ms, p99 {numbers['invalid_p99_ms']} ms")
    if args.fault:
        print(f"  server down {numbers['downtime_s']} s; {numbers['retried']} request(s) retried with their key")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
    if failures:
        print(f"CHECKS FAILED ({len(failures)}):")
        for f in failures[:20]:
            print("  " + f)
        return 1
    print(f"checks passed: all {numbers['accepted']} accepted submissions are in the database with their team and "
          f"method, once per key (and nothing else is); all {numbers['refused']} refused ones got HTTP 422 with their "
          "message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
