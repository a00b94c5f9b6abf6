"""Refusals that keep the server up: body limits while streaming (chunked too), bounded prediction-file reading,
safetensors checks, odd file names, ids beyond 64 bits, unexpected errors (all one JSON line), idempotency keys."""

from __future__ import annotations

import json
import select
import socket
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from polypbench.errors import PolypbenchError
from polypbench.evaluate import SubmissionError
from polypbench.leaderboard import limits
from polypbench.leaderboard.app import create_app
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.db import Database, Job, Submission
from polypbench.leaderboard.sandbox import META_OFFSET
from polypbench.leaderboard.uploads import check_safetensors, read_bounded, safe_filename

from .conftest import MakeClient, live_server, parquet_bytes, post, predictions


def _one_line(res: Any) -> str:
    body = res.json()
    assert set(body) <= {"error", "problems"} and "\n" not in body["error"], body
    return str(body["error"])


def test_a_parquet_bomb_is_refused_from_its_metadata(make_client: MakeClient, token: str, labels: Path,
                                                     tmp_path: Path) -> None:
    client = make_client()
    n = 200_000  # compresses to a few KB; the 30 M-row bomb of the issue is measured in benchmarks/
    bomb = pa.table({"polyp_id": pa.array(["sun/case1"] * n).dictionary_encode(), "frame_index": np.zeros(n, np.int64),
                     "size_mm": np.zeros(n)})
    path = tmp_path / "bomb.parquet"
    pq.write_table(bomb, path, compression="zstd")
    assert path.stat().st_size < 50_000
    res = post(client, token, path.read_bytes(), name="bomb.parquet")
    assert res.status_code == 422 and f"declares {n} rows; expected at most" in res.json()["problems"][0]

    wide = predictions(labels).assign(polyp_id=lambda d: d["polyp_id"] + "x" * 100_000)  # huge ids: decompressed
    res = post(client, token, parquet_bytes(wide), name="wide.parquet")
    assert res.status_code == 422 and "bytes once decompressed; expected at most" in res.json()["problems"][0]

    junk = predictions(labels).assign(junk="y" * 100_000)  # a column the validator never reads is never loaded
    res = post(client, token, parquet_bytes(junk), name="junk.parquet")
    assert res.status_code == 200, res.text

    rows = predictions(labels)
    csv = tmp_path / "long.csv"
    csv.write_text(rows.to_csv(index=False) + "sun/x,0,1.0\n" * (limits.ROW_FACTOR * len(rows) + limits.ROW_SLACK))
    res = post(client, token, csv.read_bytes(), name="long.csv")
    assert res.status_code == 422 and "more than" in res.json()["problems"][0]


def test_bounded_reading_stops_at_the_row_cap_even_if_the_metadata_lies(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"polyp_id": ["a"] * 10, "size_mm": np.ones(10)}), path, row_group_size=3)
    assert len(read_bounded(path, "p.parquet", 10)) == 10
    with pytest.raises(SubmissionError, match="declares 10 rows; expected at most 9"):
        read_bounded(path, "p.parquet", 9)
    footer = tmp_path / "footer.parquet"
    footer.write_bytes(b"PAR1" + b"\0" * 20 + struct.pack("<I", 2**31) + b"PAR1")
    with pytest.raises(SubmissionError, match="Parquet footer of 2147483648 bytes"):
        read_bounded(footer, "footer.parquet", 9)


def _raw_request(url: str, head: str, chunks: int = 0, chunk: bytes = b"") -> tuple[bytes, int]:
    """Send ``head`` and then up to ``chunks`` HTTP chunks until the server answers; (answer, bytes sent).

    Each chunk is sent whole (blocking, with a timeout), and only while the server has not answered: a busy machine
    can slow either side but never leave the server waiting for a half-sent chunk or the client waiting forever."""
    host, port = url.removeprefix("http://").split(":")
    sent = 0
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        for _ in range(chunks):
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (or closed the connection)
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(chunk)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _complete(answer):  # the whole answer, or the connection closed
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            answer += data
    return answer, sent


def _complete(answer: bytes) -> bool:
    """Whether ``answer`` holds a whole HTTP response: its headers and the Content-Length bytes they announce."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def test_the_size_limit_holds_while_streaming_even_without_content_length(sqlite_db: str, labels: Path,
                                                                            options: dict[str, Any],
                                                                            token: str) -> None:
    app = create_app(sqlite_db, [labels], **{**options, "max_upload_bytes": 1024 * 1024})
    limit = 1024 * 1024 + limits.FORM_OVERHEAD
    boundary = "b0undary"
    with live_server(app) as url:
        head = (f"POST /api/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n")
        declared, _ = _raw_request(url, head + "Content-Length: 1000000000\r\n\r\n")
        assert declared.startswith(b"HTTP/1.1 413") and b'"error": "request body of 1000000000 bytes' in declared
        part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.parquet\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n")
        answer, sent = _raw_request(url, head + "Transfer-Encoding: chunked\r\n\r\n" + f"{len(part):x}\r\n{part}\r\n",
                                    chunks=1024, chunk=b"x" * 65536)  # 64 MB offered
    app.state.server.db.dispose()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"sent without Content-Length" in answer and answer.count(b"\n") < 20, answer
    assert sent < 16 * limit, sent  # stopped near the limit (plus socket buffers), not after 64 MB


def test_odd_names_huge_ids_and_unexpected_errors_are_one_json_line(make_client: MakeClient, token: str, labels: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client()
    good = parquet_bytes(predictions(labels))
    for name in ["", "..", "préds\u202e.parquet", "a" * 1000 + ".parquet", "x.exe", 'q"uote;.parquet']:
        res = post(client, token, good, name=name)
        assert res.status_code in (200, 422), (name, res.text)
        if res.status_code != 200:
            _one_line(res)
    assert safe_filename("a" * 1000 + ".parquet").endswith(".parquet") and len(safe_filename("a" * 1000)) <= 200
    assert safe_filename("../../etc/passwd") == "passwd" and safe_filename("..") == "predictions"
    for path in ["/api/submissions/9223372036854775808", "/api/submissions/0", "/api/jobs/1e3",
                 "/api/compare?a=1&b=-5"]:
        res = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert res.status_code == 422, (path, res.text)
        _one_line(res)
    for path in ["/submissions/9223372036854775808", "/compare?a=1&b=-5"]:  # pages answer with a page
        res = client.get(path)
        assert res.status_code == 422 and res.headers["content-type"].startswith("text/html"), (path, res.text)
    assert client.get("/submissions/9223372036854775807").status_code == 404
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=zz"}
    res = client.post("/api/submissions", headers=headers, content=b"--zz\r")
    assert res.status_code in (400, 422) and _one_line(res)

    from polypbench.leaderboard import api

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api, "score_public", broken)
    crashing = TestClient(client.app, raise_server_exceptions=False)
    res = crashing.post("/api/submissions", headers={"Authorization": f"Bearer {token}"},
                        data={"method": "m", "declaration": "true"}, files={"file": ("p.parquet", good)})
    assert res.status_code == 500 and _one_line(res) == "internal server error; it was logged"


def test_an_idempotency_key_makes_a_retry_return_the_first_submission(make_client: MakeClient, token: str,
                                                                       labels: Path, database: Database) -> None:
    client = make_client(daily_cap=1)
    data = parquet_bytes(predictions(labels))
    first = post(client, token, data, key="retry-key-0001")
    again = post(client, token, data, key="retry-key-0001")
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["replayed"] and not first.json()["replayed"]
    assert again.json()["results"] == first.json()["results"]
    capped = post(client, token, data, key="retry-key-0002")
    assert capped.status_code == 429  # the replay did not count against the cap of 1
    bad = post(client, token, data, key="no spaces allowed")
    assert bad.status_code == 422 and "header 'Idempotency-Key'" in _one_line(bad)
    with database.sessions() as session:
        assert session.query(Submission).count() == 1


def _safetensors(header: dict[str, Any], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_safetensors_are_checked_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    good = {"__metadata__": {"polypbench.size_offset_mm": "8.0"},
            "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    path.write_bytes(_safetensors(good, b"\0" * 8))
    weights = check_safetensors(path)
    assert weights.tensors == {"w": ("F32", (2,))} and weights.metadata["polypbench.size_offset_mm"] == "8.0"
    cases = {
        "not JSON": b"\x05\0\0\0\0\0\0\0{{{{{",
        "header of": struct.pack("<Q", 2**40) + b"{}",
        "dtype 'O'": _safetensors({"w": {"dtype": "O", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8),
        "do not match": _safetensors({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
        "data bytes": _safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 9),
        "no tensors": _safetensors({}, b""),
        # accepted by a reading of the JSON alone, refused by the safetensors library the model run loads with:
        "expected usize": _safetensors({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}}, b"\0" * 8),
        "invalid JSON in header": _safetensors({"w": {"dtype": "F32", "shape": [2**70, 0], "data_offsets": [0, 0]},
                                                "v": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                                               b"\0" * 8),
    }
    for message, blob in cases.items():
        path.write_bytes(blob)
        with pytest.raises(PolypbenchError, match=message):
            check_safetensors(path)


def test_a_model_the_run_would_refuse_is_refused_before_it_uses_the_daily_cap(sqlite_db: str, labels: Path,
                                                                                prepared: Any,
                                                                                options: dict[str, Any]) -> None:
    """Everything the model run checks before it runs the model (the safetensors header as the library reads it,
    the task, the size offset) is checked at upload: such a model is refused with its reason and never queued."""
    app = create_app(sqlite_db, [labels], private_labels=[prepared["real-colon"].out],
                     **{**options, "model_daily_cap": 1})
    client = TestClient(app)
    with Database(sqlite_db) as database:
        token = add_team(database, "modellers")
    w = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}

    def upload(header: dict[str, Any], task: str, offset: str | None = None) -> Any:
        meta = {"__metadata__": {META_OFFSET: offset}} if offset is not None else {}
        config = json.dumps({"model": "resnet18", "task": task, "img_size": 32})
        return client.post("/api/models", headers={"Authorization": f"Bearer {token}"},
                           data={"method": "m", "architecture": "resnet18", "config": config},
                           files={"weights": ("w.safetensors", _safetensors({**meta, **header}, b"\0" * 8))})

    cases = [
        (upload({"w": {**w, "shape": ["2"]}}, "triclass"), "w.safetensors: not a valid safetensors file ("),
        (upload({"w": {**w, "shape": [2**70, 0], "data_offsets": [0, 0]}, "v": w}, "triclass"),
         "w.safetensors: not a valid safetensors file ("),
        (upload({"w": w}, "classification"), "config key 'task': 'classification'"),  # trains on CIFAR-100
        (upload({"w": w}, "regresion"), "config key 'task': 'regresion'"),
        (upload({"w": w}, "regression"), f"a regression model without {META_OFFSET!r}"),
        (upload({"w": w}, "regression", offset="eight"), f"metadata {META_OFFSET!r}: 'eight'"),
        (upload({"w": w}, "triclass", offset="nan"), f"metadata {META_OFFSET!r}: 'nan'"),
    ]
    for res, message in cases:
        assert res.status_code == 400 and message in _one_line(res), (message, res.text)
    with Database(sqlite_db) as database, database.sessions() as session:
        assert session.query(Job).count() == 0
    accepted = upload({"w": w}, "regression", offset="8.0")
    assert accepted.status_code == 202, accepted.text  # the cap of 1 was not used by the refusals
    assert upload({"w": w}, "triclass").status_code == 429
    app.state.server.db.dispose()
