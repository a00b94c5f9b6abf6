"""Helpers of the leaderboard tests: a fresh PostgreSQL schema, prediction files of the prepared SUN test split,
a submission POST, and a live uvicorn server in a thread."""

from __future__ import annotations

import datetime as dt
import io
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from polypbench.manifest import Manifest

POSTGRES_ENV = "POLYPBENCH_TEST_POSTGRES_URL"
ARCHITECTURES = ["multistream", "multistream-hag", "resnet18", "resnet18-hag", "tiny", "tiny-hag", "vit-tiny",
                 "vit-tiny-hag"]
"""The model registry's names (tests/leaderboard/test_models.py checks them against list_models())."""
TASKS = {"regression": True, "regression-paper": False, "triclass": False}
"""The tasks a model upload may name, each with whether its weights must carry the size offset (test_models.py
checks them against the training task table)."""
FROZEN_TIME = dt.datetime(2025, 6, 15, 12, 0, 30, tzinfo=dt.timezone.utc).timestamp()
"""The time every test server takes as now (``Settings.frozen_time``): the rate-limit windows and the daily caps
never depend on the wall clock (a run crossing a minute boundary or UTC midnight gets the same answers)."""
MakeClient = Callable[..., TestClient]
"""The ``make_client`` fixture: a TestClient of a fresh app on the test's database (keyword arguments override
:func:`options`)."""


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run starts PostgreSQL and sets {POSTGRES_ENV})")
    pytest.skip(f"{reason}; set {POSTGRES_ENV} to a PostgreSQL database to run the PostgreSQL cases")


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL database; yields a URL whose connections use it."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        _postgres_unavailable(f"{POSTGRES_ENV} is not set")
    assert base is not None
    import psycopg

    url = base.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        admin = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _postgres_unavailable(f"no PostgreSQL server at {POSTGRES_ENV} ({' '.join(str(exc).split())[:120]})")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in url else "?"
        try:
            yield f"{url}{sep}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def predictions(labels: Path, noise_mm: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rows = Manifest.open(labels).select("test")
    rng = np.random.default_rng(seed)
    size = np.clip(rows["size_mm"].to_numpy() + rng.normal(0, noise_mm, len(rows)), 0.1, None)
    return pd.DataFrame({"polyp_id": rows["polyp_id"].astype(str), "frame_index": rows["frame_index"],
                         "size_mm": size})


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def post(client: TestClient, token: str | None, data: bytes, name: str = "preds.parquet", method: str = "m1",
         key: str | None = None, **fields: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if key is not None:
        headers["Idempotency-Key"] = key
    form = {"method": method, "declaration": "true", **fields}
    return client.post("/api/submissions", headers=headers, data=form,
                       files={"file": (name, data, "application/octet-stream")})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: FastAPI, start_timeout: float = 15.0, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (``port``, else a free one) in a daemon thread; yield its base URL;
    stop it. The socket is bound here and handed to uvicorn, so no other test (xdist worker) can take the port
    between choosing and binding it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port given again after a restart
    sock.bind(("127.0.0.1", port or 0))
    port = int(sock.getsockname()[1])
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                        ws="none"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    try:
        while not srv.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert not thread.is_alive(), "server did not stop"
