"""Load benchmark of the leaderboard server: N concurrent clients submitting valid and invalid prediction files.

Builds two small prepared datasets with the real code (synthetic REAL-Colon + SUN dumps, then `prepare`), starts
`polypbench.leaderboard.app` under uvicorn in a separate process on 127.0.0.1 (a free port; nothing else is
contacted), registers one team per client, then runs N client threads (httpx). Each client submits M valid files
(size noise varies) and M invalid ones (cycling: rows missing, a negative size, not Parquet at all), interleaved.

It is bounded: N * 2M requests in all, a per-request timeout and an overall deadline (`--time-limit`); the server
process is stopped at the end whatever happens. It reports submissions/s and p50/p99 request latency, and checks:

- every accepted submission (HTTP 200) is in the database, with its team and method, and nothing else is;
- every refused one got HTTP 422 with the message its defect calls for.

Usage: python benchmarks/leaderboard_load.py [--clients 4] [--per-client 5] [--bootstrap 1000] [--time-limit 300]
Exit status 1 when a check fails or the deadline passes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

INVALID = {
    # kind: (expected status, text that must be in the response's problems)
    "missing": (422, "have no prediction"),
    "negative": (422, "negative size"),
    "unreadable": (422, "not a readable Parquet file"),
}


@dataclass
class Outcome:
    client: int
    kind: str  # "valid" or an INVALID key
    method: str
    status: int
    seconds: float
    body: dict
    ok: bool = False
    why: str = ""


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
    """The server process: the real app under uvicorn on 127.0.0.1."""
    import uvicorn

    from polypbench.leaderboard.app import create_app

    app = create_app(args.db, args.labels, daily_cap=args.daily_cap, max_upload_bytes=10 * 1024 * 1024,
                     rate_limit=0, n_bootstrap=args.bootstrap, seed=0)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off", ws="none")


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with status {proc.returncode}")
        try:
            if httpx.get(url + "/api/leaderboard", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server not ready after {timeout:.0f} s")


def _client(i: int, url: str, token: str, files: list[tuple[str, str, bytes]], deadline: float,
            out: list[Outcome], lock: threading.Lock) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=httpx.Timeout(120, connect=10), trust_env=False) as http:
        for kind, method, data in files:
            if time.monotonic() > deadline:
                return
            t0 = time.perf_counter()
            res = http.post("/api/submissions", headers={"Authorization": f"Bearer {token}"},
                            data={"method": method}, files={"file": (f"{method}.parquet", data)})
            seconds = time.perf_counter() - t0
            try:
                body = res.json()
            except ValueError:
                body = {"error": res.text[:200]}
            with lock:
                out.append(Outcome(i, kind, method, res.status_code, seconds, body))


def _check(outcomes: list[Outcome], db: str, teams: dict[int, str]) -> list[str]:
    """Mark each outcome ok or not; return the failures (each one line)."""
    from polypbench.leaderboard.db import Submission, session_factory

    with session_factory(db)() as session:
        stored = {s.id: (s.team.name, s.method) for s in session.query(Submission)}
    failures = []
    accepted_ids = set()
    for o in outcomes:
        if o.kind == "valid":
            sub_id = o.body.get("id")
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients N (one team each)")
    ap.add_argument("--per-client", type=int, default=5, help="M valid and M invalid files per client")
    ap.add_argument("--bootstrap", type=int, default=1000, help="server's bootstrap replicates (its default)")
    ap.add_argument("--time-limit", type=float, default=300, help="overall deadline for the submissions, seconds")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--_serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--labels", action="append", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--daily-cap", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._serve:
        _serve(args)
        return 0
    if not (1 <= args.clients <= 64 and 1 <= args.per_client <= 200):
        ap.error("--clients must be 1..64 and --per-client 1..200")

    from polypbench.leaderboard.auth import add_team
    from polypbench.leaderboard.db import session_factory

    with tempfile.TemporaryDirectory(prefix="polypbench-load-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        labels = _prepare(root)
        truth = _truth_rows(labels)
        print(f"prepared 2 synthetic datasets ({len(truth)} test frames) in {time.perf_counter() - t0:.1f} s")
        db = str(root / "leaderboard.db")
        sessions = session_factory(db)
        teams = {i: f"load-team-{i}" for i in range(args.clients)}
        tokens = {i: add_team(sessions, name) for i, name in teams.items()}
        kinds = list(INVALID)
        work = {}
        for i in range(args.clients):
            files = []
            for j in range(args.per_client):
                files.append(("valid", f"c{i}-valid-{j}", _file(truth, "valid", seed=1000 * i + j)))
                bad = kinds[(i + j) % len(kinds)]
                files.append((bad, f"c{i}-{bad}-{j}", _file(truth, bad, seed=1000 * i + j)))
            work[i] = files

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, os.path.abspath(__file__), "--_serve", "--db", db, "--port", str(port),
               "--bootstrap", str(args.bootstrap), "--daily-cap", str(args.per_client + 1)]
        for p in labels:
            cmd += ["--labels", str(p)]
        proc = subprocess.Popen(cmd)
        outcomes: list[Outcome] = []
        try:
            _wait_ready(url, proc, timeout=60)
            lock = threading.Lock()
            deadline = time.monotonic() + args.time_limit
            threads = [threading.Thread(target=_client, args=(i, url, tokens[i], work[i], deadline, outcomes, lock),
                                        daemon=True) for i in range(args.clients)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=max(1.0, deadline - time.monotonic() + 130))
            wall = time.perf_counter() - start
            hung = sum(t.is_alive() for t in threads)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)

        expected = args.clients * args.per_client * 2
        failures = _check(outcomes, db, teams)
        if len(outcomes) != expected or hung:
            failures.append(f"only {len(outcomes)} of {expected} requests finished ({hung} client(s) still running; "
                            f"deadline {args.time_limit:.0f} s)")
        lat = {k: [o.seconds for o in outcomes if (o.kind == "valid") == (k == "valid")]
               for k in ("valid", "invalid")}
        every = [o.seconds for o in outcomes]
        numbers = {
            "clients": args.clients, "per_client_valid": args.per_client, "per_client_invalid": args.per_client,
            "bootstrap": args.bootstrap, "requests": len(outcomes), "wall_s": round(wall, 3),
            "accepted": sum(o.status == 200 for o in outcomes), "refused": sum(o.status != 200 for o in outcomes),
            "submissions_per_s": round(len(outcomes) / wall, 2) if wall else None,
            "scored_per_s": round(sum(o.status == 200 for o in outcomes) / wall, 2) if wall else None,
            "p50_ms": round(_pct(every, 50), 1), "p99_ms": round(_pct(every, 99), 1),
            "valid_p50_ms": round(_pct(lat["valid"], 50), 1), "valid_p99_ms": round(_pct(lat["valid"], 99), 1),
            "invalid_p50_ms": round(_pct(lat["invalid"], 50), 1),
            "invalid_p99_ms": round(_pct(lat["invalid"], 99), 1),
            "checks_failed": len(failures),
        }
    print(f"{args.clients} clients x ({args.per_client} valid + {args.per_client} invalid), server bootstrap "
          f"{args.bootstrap}: {numbers['requests']} requests in {numbers['wall_s']:.2f} s")
    print(f"  {numbers['submissions_per_s']} submissions/s ({numbers['scored_per_s']} scored/s); latency p50 "
          f"{numbers['p50_ms']} ms, p99 {numbers['p99_ms']} ms")
    print(f"  valid: p50 {numbers['valid_p50_ms']} ms, p99 {numbers['valid_p99_ms']} ms; invalid: p50 "
          f"{numbers['invalid_p50_ms']} ms, p99 {numbers['invalid_p99_ms']} ms")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
    if failures:
        print(f"CHECKS FAILED ({len(failures)}):")
        for f in failures[:20]:
            print("  " + f)
        return 1
    print(f"checks passed: all {numbers['accepted']} accepted submissions are in the database with their team and "
          f"method (and nothing else is); all {numbers['refused']} refused ones got HTTP 422 with their message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
