"""A real leaderboard app on a SQLite file in tmp_path, scoring against the prepared synthetic SUN test split."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from polypbench.leaderboard.app import create_app
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.db import session_factory
from polypbench.manifest import Manifest


@pytest.fixture
def labels(prepared) -> Path:
    return prepared["sun"].out


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "leaderboard.db")


@pytest.fixture
def make_client(db: str, labels: Path) -> Callable[..., TestClient]:
    def make(**kwargs: object) -> TestClient:
        options = {"daily_cap": 20, "max_upload_bytes": 10 * 1024 * 1024, "rate_limit": 0, "n_bootstrap": 20,
                   **kwargs}
        return TestClient(create_app(db, [labels], **options))  # type: ignore[arg-type]

    return make


@pytest.fixture
def token(db: str) -> str:
    return add_team(session_factory(db), "team-a")


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
         **fields: str):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.post("/api/submissions", headers=headers, data={"method": method, **fields},
                       files={"file": (name, data, "application/octet-stream")})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: FastAPI, start_timeout: float = 15.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a daemon thread; yield its base URL; stop it."""
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                        ws="none"))
    thread = threading.Thread(target=srv.run, daemon=True)
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
    assert not thread.is_alive(), "server did not stop"
