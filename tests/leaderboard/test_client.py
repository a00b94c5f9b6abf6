"""`polypbench submit` against a live uvicorn server on 127.0.0.1 (a random free port, in a thread, time-bounded)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from polypbench.cli import main
from polypbench.leaderboard.app import create_app

from .conftest import live_server, predictions


@pytest.fixture
def server(db: str, labels: Path) -> Iterator[str]:
    app = create_app(db, [labels], daily_cap=5, max_upload_bytes=10 * 1024 * 1024, rate_limit=0, n_bootstrap=20)
    with live_server(app) as url:
        yield url


def test_submit_validates_locally_uploads_and_prints_the_score(server, token, labels, tmp_path: Path) -> None:
    good = tmp_path / "preds.parquet"
    predictions(labels).to_parquet(good, index=False)
    base = ["submit", str(good), "--server", server, "--token", token, "--method", "live"]
    res = CliRunner().invoke(main, [*base, "--manifest", str(labels)])
    assert res.exit_code == 0, res.output
    assert "valid against the local manifest" in res.output and "submission 1 by team-a (live)" in res.output
    assert "macro F1 (per polyp, triclass)" in res.output and "1.000 [1.000, 1.000]" in res.output

    bad = tmp_path / "bad.parquet"
    predictions(labels).iloc[2:].to_parquet(bad, index=False)
    local = CliRunner().invoke(main, ["submit", str(bad), "--server", server, "--token", token, "--method", "x",
                                      "--manifest", str(labels)])
    assert local.exit_code != 0 and "have no prediction" in local.output
    remote = CliRunner().invoke(main, ["submit", str(bad), "--server", server, "--token", token, "--method", "x"])
    assert remote.exit_code != 0 and "skipping local validation" in remote.output
    assert "Error: bad.parquet" in remote.output and "have no prediction" in remote.output
    wrong = CliRunner().invoke(main, [*base[:4], "--token", "wrong", "--method", "x"])
    assert wrong.exit_code != 0 and "HTTP 401: missing or invalid API token" in wrong.output
