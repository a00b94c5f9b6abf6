"""Refusals that keep the server up: body limits while streaming (chunked too), bounded prediction-file reading
(Parquet metadata; CSV header, bytes and rows under any line terminator), safetensors and JSON checks, text fields
without control characters, odd file names, ids beyond 64 bits, unexpected errors (all one JSON line), idempotency
keys; and the promises the board makes: a verified badge only for reproduced scored columns, served datasets compared
as registry datasets, and no count of undefined replicates on the private track."""

from __future__ import annotations

import json
import re
import select
import socket
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from polypbench.errors import InputError, PolypbenchError
from polypbench.evaluate import Note, NoteKind, Stat, SubmissionError
from polypbench.inference.spec import META_OFFSET, ModelError
from polypbench.leaderboard import limits
from polypbench.leaderboard.app import create_app
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.db import Database, Job, Submission
from polypbench.leaderboard.uploads import check_safetensors, max_rows, read_bounded, read_config, safe_filename
from polypbench.sizes import size_class
from tests.helpers import Prepared

from .helpers import MakeClient, live_server, parquet_bytes, post, predictions


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

    def broken(*_args: Any, **_kwargs: Any) -> None:
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


# -- issue 18: the verified badge, CSV bounds, served datasets, JSON and text fields, the private track -----------
def test_verified_means_every_scored_column_was_reproduced(labels: Path, tmp_path: Path) -> None:
    from polypbench.leaderboard.worker import compare_predictions

    rerun = predictions(labels, noise_mm=2.0)  # what the checkpoint predicts: sizes only
    truth_class = size_class(predictions(labels)["size_mm"].to_numpy(), "triclass")  # built from the test labels
    cap = max_rows(len(rerun))
    one_hot = {f"p{k}": (truth_class == k).astype(float) for k in range(3)}
    for name, forged in {"class3": rerun.assign(class3=truth_class), "p0..p2": rerun.assign(**one_hot)}.items():
        path = tmp_path / f"{name.replace('.', '')}.csv"
        forged.to_csv(path, index=False)
        verified, detail = compare_predictions(read_bounded(path, path.name, cap), rerun)
        assert not verified and f"{name}" in detail and "the re-run does not produce" in detail, detail
    honest = tmp_path / "honest.csv"
    rerun.to_csv(honest, index=False)
    verified, detail = compare_predictions(read_bounded(honest, honest.name, cap), rerun)
    assert verified and detail.startswith("verified:"), detail
    probs = rerun.assign(p0=0.2, p1=0.3, p2=0.5)  # a file with a subset of the re-run's columns: all reproduced
    assert compare_predictions(probs.drop(columns="size_mm"), probs)[0]
    verified, detail = compare_predictions(probs.assign(class3=2), probs.assign(class3=np.int8(1)))
    assert not verified and "differ in class3" in detail, detail


def _csv(rows: list[str], sep: str = "\n") -> bytes:
    return sep.join(rows).encode() + sep.encode()


def test_a_csv_is_bounded_by_its_header_bytes_and_rows_before_it_is_parsed(labels: Path, tmp_path: Path) -> None:
    frame = predictions(labels)
    cap = max_rows(len(frame))
    good = frame.to_csv(index=False).splitlines()
    path = tmp_path / "p.csv"
    for sep in ("\n", "\r\n", "\r"):  # every line terminator pandas reads, for a valid file
        path.write_bytes(_csv(good, sep))
        assert len(read_bounded(path, "p.csv", cap)) == len(frame)
    cases = {  # what the file is -> the one line that refuses it
        "wide": (_csv([good[0] + "".join(f",c{i}" for i in range(300_000)), *good[1:3]]),
                 f"more than {limits.MAX_COLUMNS} columns in the header; expected at most {limits.MAX_COLUMNS}"),
        "some extra columns": (_csv([good[0] + ",a" * 70, *(r + ",1" * 70 for r in good[1:])]),
                               f"73 columns in the header; expected at most {limits.MAX_COLUMNS}"),
        "columns behind a quoted line break": (_csv([good[0] + ',"note\nx"' + ",c" * 70, *good[1:]]),
                                               "74 columns in the header"),
        "a long header": (_csv(["polyp_id,frame_index,size_mm,\"" + "n" * limits.CSV_HEADER + "\"", *good[1:]]),
                          f"header longer than {limits.CSV_HEADER} bytes"),
        "rows separated by a lone CR": (_csv([*good, *["sun/x,0,1.0"] * cap], "\r"), f"more than {cap} rows"),
        "rows separated by CR LF": (_csv([*good, *["sun/x,0,1.0"] * cap], "\r\n"), f"more than {cap} rows"),
        "big cells": (_csv([good[0] + ",junk", *(r + "," + "j" * 40_000 for r in good[1:])]),
                      f"bytes; expected at most {limits.CSV_HEADER + cap * limits.CSV_BYTES_PER_ROW}"),
    }
    for what, (data, message) in cases.items():
        path.write_bytes(data)
        with pytest.raises(SubmissionError, match=re.escape(message)) as refused:
            read_bounded(path, "p.csv", cap)
        assert len(refused.value.problems) == 1 and refused.value.problems[0].startswith("p.csv: "), what


def test_a_wide_csv_is_refused_over_http_with_one_precise_line(make_client: MakeClient, token: str,
                                                               labels: Path) -> None:
    client = make_client()
    good = predictions(labels).to_csv(index=False).splitlines()
    wide = _csv([good[0] + ",a" * 2000, *(r + ",1" * 2000 for r in good[1:])])
    res = post(client, token, wide, name="wide.csv")
    assert res.status_code == 422, res.text[:300]
    assert res.json()["problems"] == [f"wide.csv: 2003 columns in the header; expected at most {limits.MAX_COLUMNS} "
                                      "(the contract's columns are polyp_id, frame_index, size_mm, p0, p1, p2, "
                                      "class3)"]
    lone_cr = post(client, token, _csv([*good, *["sun/x,0,1.0"] * max_rows(len(good))], "\r"), name="cr.csv")
    assert lone_cr.status_code == 422 and "more than" in lone_cr.json()["problems"][0], lone_cr.text[:300]


@pytest.mark.slow
def test_served_datasets_are_compared_as_registry_datasets(prepared: dict[str, Prepared], tmp_path: Path) -> None:
    from polypbench.leaderboard.tracks import PrivateTrack, PublicTrack
    from polypbench.prepare import prepare

    misawa = tmp_path / "misawa"  # SUN prepared under its journal name
    prepare("misawa", prepared["sun"].raw, misawa, workers=1)
    sun, sun_seg = prepared["sun"].out, prepared["sun-seg"].out
    track = PublicTrack([misawa, sun_seg, prepared["real-colon"].out])
    assert track.pool == ("misawa", "real-colon") and track.info()["pooled"] == ["misawa", "real-colon"]
    with pytest.raises(InputError, match="'misawa' is the dataset 'sun', served twice"):
        PublicTrack([sun, misawa])
    for labels in ([sun, misawa], [sun, sun_seg], [misawa, sun_seg]):
        with pytest.raises(InputError, match="served twice|re-annotates"):
            PrivateTrack(labels, tmp_path / "store")


def _weights(header: dict[str, Any] | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_deep_json_long_numbers_and_infinite_shapes_are_400_not_500(make_client: MakeClient, token: str,
                                                                    labels: Path, tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    cases = {
        "nested too deeply": _weights(b"[" * 100_000),
        "number too long": _weights(b'{"w": {"dtype": "F32", "shape": [' + b"1" * 5000 + b'], "data_offsets": [0, 4]}}',
                                    b"\0" * 4),
        "malformed header entry": _weights(b'{"w": {"dtype": "F32", "shape": [1e400], "data_offsets": [0, 4]}}',
                                           b"\0" * 4),
    }
    for message, blob in cases.items():
        path.write_bytes(blob)
        with pytest.raises(PolypbenchError, match=message):
            check_safetensors(path)
    for text, message in (("[" * 5000, "nested too deeply"), ('{"img_size": ' + "9" * 5000 + "}", "number too long")):
        with pytest.raises(ModelError, match=f"config: not JSON \\({message}\\)"):
            read_config(text, "tiny")

    client = make_client()
    sub = post(client, token, parquet_bytes(predictions(labels)))
    assert sub.status_code == 200, sub.text[:300]
    good = _weights({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
    crashing = TestClient(client.app, raise_server_exceptions=False)
    for weights, config, message in ((good, "[" * 5000, "nested too deeply"),
                                     (cases["malformed header entry"], "{}", "malformed header entry"),
                                     (cases["nested too deeply"], "{}", "nested too deeply")):
        res = crashing.post(f"/api/submissions/{sub.json()['id']}/checkpoint",
                            headers={"Authorization": f"Bearer {token}"},
                            data={"architecture": "tiny", "config": config},
                            files={"weights": ("w.safetensors", weights)})
        assert res.status_code == 400 and message in _one_line(res), res.text[:300]


def test_text_fields_with_control_characters_are_refused_before_scoring(make_client: MakeClient, token: str,
                                                                        labels: Path, database: Database) -> None:
    client = make_client()
    good = parquet_bytes(predictions(labels))
    for field, value in (("method", "a\x00b"), ("config", '{"a": "\x00"}'), ("paper_url", "https://x.org/\x01"),
                         ("method", "tab\x1bescape"), ("split_hashes", "sun:\x00")):
        form = {"method": "m", field: value}
        res = post(client, token, good, **form)
        assert res.status_code == 422, (field, res.text[:300])
        assert f"form field {field!r}: control character" in _one_line(res), res.text[:300]
    assert post(client, token, good, method="multi\nline\tmethod", config='{\n\t"a": 1\n}').status_code == 200
    with database.sessions() as session:
        assert [s.method for s in session.query(Submission)] == ["multi line method"]


@pytest.mark.slow
def test_the_private_track_keeps_no_count_of_undefined_replicates(prepared: dict[str, Prepared], sqlite_db: str,
                                                                  options: dict[str, Any]) -> None:
    from polypbench.leaderboard.auth import add_team, team_for
    from polypbench.leaderboard.columns import Part, Track
    from polypbench.leaderboard.records import Fields, record
    from polypbench.leaderboard.scoring import private_stat, score_private

    patients = Note(NoteKind.PATIENTS, patients=14)
    partly = Stat(0.78, (0.57, 1.0), undefined_replicates=11, replicates=189, n_polyps=17, n_patients=14,
                  flags=(patients, Note(NoteKind.PARTLY_UNDEFINED, undefined=11, replicates=200)))
    assert private_stat(partly) == Stat(0.78, (0.57, 1.0), flags=(patients, Note(NoteKind.PARTLY_UNDEFINED)),
                                        n_polyps=17, n_patients=14)
    assert private_stat(partly).to_dict()["flags"] == ["14 patients", "part of the resamples"]
    mostly = Stat(0.5, None, undefined_replicates=130,
                  ci_reason=Note(NoteKind.MOSTLY_UNDEFINED, undefined=130, replicates=200))
    assert private_stat(mostly) == Stat(0.5, None, ci_reason=Note(NoteKind.MOSTLY_UNDEFINED))
    assert private_stat(mostly).to_dict()["ci_reason"] == "undefined in more than 50% of the resamples"

    labels = [prepared["real-colon"].out, prepared["sun"].out]
    app = create_app(sqlite_db, [], private_labels=labels, **{**options, "n_bootstrap": 200})
    server = app.state.server
    track = server.private
    team = team_for(server.db, add_team(server.db, "hidden"))
    assert team is not None
    ids = []
    for seed in (1, 2):  # what the worker records for two models
        frames = pd.concat([predictions(p, 3.0, seed=seed) for p in labels], ignore_index=True)
        scored = score_private(frames, track, name="job", n_bootstrap=200, seed=0)
        assert any(np.isnan(r.replicates).any() for r in scored[Part.PUBLIC].replicates.values())  # some undefined
        fields = Fields(method=f"m{seed}", filename="w.safetensors")
        sub, _ = record(server.db, team.id, fields, {"public": scored[Part.PUBLIC]}, track=Track.PRIVATE,
                        hidden={"private": scored[Part.PRIVATE]})
        ids.append(sub.id)
    client = TestClient(app)
    shown = [client.get(f"/api/submissions/{i}").json() for i in ids]
    shown += [client.get("/api/leaderboard?track=private").json(),
              client.get(f"/api/compare?a={ids[0]}&b={ids[1]}&track=private").json()]
    stats = list(_stats(shown))
    assert len(stats) > 20 and any(s.get("p_greater") is not None for s in stats)  # entries, board, differences
    assert not [s for s in stats if "undefined_replicates" in s or "replicates" in s]  # ... and nothing counts them
    assert not re.search(r"\d+ of [\d,]+ resamples|\d+% of resamples", json.dumps(shown))
    server.db.dispose()


def _stats(doc: Any) -> Any:
    """Every STAT (a mapping with ``ci95``) in a JSON document."""
    if isinstance(doc, dict):
        if "ci95" in doc:
            yield doc
        for v in doc.values():
            yield from _stats(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _stats(v)


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
