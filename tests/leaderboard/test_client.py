"""`polypbench submit` against a live uvicorn server on 127.0.0.1 (a random free port, in a thread, time-bounded),
and the client on the base install (no server package importable)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from polypbench.cli import main
from polypbench.evaluate import format_stat, lookup
from polypbench.evaluate.format import LEGEND, format_support
from polypbench.leaderboard import PRIMARY
from polypbench.leaderboard.app import create_app

from .helpers import live_server, predictions


@pytest.fixture
def server(sqlite_db: str, labels: Path, options: dict[str, Any]) -> Iterator[str]:
    app = create_app(sqlite_db, [labels], **{**options, "daily_cap": 5})
    with live_server(app) as url:
        yield url
    app.state.server.db.dispose()


@pytest.fixture
def token(sqlite_db: str) -> str:
    from polypbench.leaderboard.auth import add_team
    from polypbench.leaderboard.db import Database

    with Database(sqlite_db) as database:
        return add_team(database, "team-a")


@pytest.mark.slow
def test_submit_checks_the_server_validates_locally_uploads_and_prints_the_score(server: str, token: str,
                                                                                 labels: Path, tmp_path: Path) -> None:
    good = tmp_path / "preds.parquet"
    predictions(labels).to_parquet(good, index=False)
    base = ["submit", str(good), "--server", server, "--token", token, "--method", "live"]
    res = CliRunner().invoke(main, [*base, "--declare", "--manifest", str(labels)])
    assert res.exit_code == 0, res.output
    assert "covers sun of the served datasets" in res.output and "valid against the local manifest" in res.output
    assert "submission 1 by team-a (live)" in res.output and "pooled:" in res.output and "sun:" in res.output
    stat = lookup(httpx.get(f"{server}/api/submissions/1", trust_env=False).json()["results"]["pooled"], PRIMARY)
    assert stat is not None and stat.value == 1.0
    assert "macro F1 (per polyp, triclass)" in res.output
    assert f"  {format_stat(stat, PRIMARY)}  ({format_support(stat)})" in res.output  # the number and its support
    if stat.flags or stat.ci_reason:
        assert LEGEND in res.output

    undeclared = CliRunner().invoke(main, base)  # the server's form fields come back as this command's flags
    assert undeclared.exit_code != 0 and "HTTP 400: --declare: missing; expected true" in undeclared.output
    not_a_link = CliRunner().invoke(main, [*base, "--declare", "--paper", "ftp://example.org/paper"])
    assert not_a_link.exit_code != 0 and "HTTP 400: --paper: not an http(s) link" in not_a_link.output
    unnamed = CliRunner().invoke(main, [*base[:-1], "", "--declare"])
    assert unnamed.exit_code != 0 and "HTTP 422: --method: Field required" in unnamed.output
    assert not any("form field" in r.output for r in (undeclared, not_a_link, unnamed))

    bad = tmp_path / "bad.parquet"
    predictions(labels).iloc[2:].to_parquet(bad, index=False)
    local = CliRunner().invoke(main, ["submit", str(bad), "--server", server, "--token", token, "--method", "x",
                                      "--declare", "--manifest", str(labels)])
    assert local.exit_code != 0 and "have no prediction" in local.output
    remote = CliRunner().invoke(main, ["submit", str(bad), "--server", server, "--token", token, "--method", "x",
                                       "--declare"])
    assert remote.exit_code != 0 and "skipping local validation" in remote.output
    assert "Error: bad.parquet" in remote.output and "have no prediction" in remote.output
    wrong = CliRunner().invoke(main, [*base[:4], "--token", "wrong", "--method", "x", "--declare"])
    assert wrong.exit_code != 0 and "HTTP 401: missing or invalid API token" in wrong.output

    other = tmp_path / "other.parquet"
    df = predictions(labels)
    df["polyp_id"] = "real-colon/" + df["polyp_id"].str.split("/").str[1]
    df.to_parquet(other, index=False)
    refused = CliRunner().invoke(main, ["submit", str(other), "--server", server, "--token", token, "--method", "x",
                                        "--declare"])
    assert refused.exit_code != 0 and "polyp ids of real-colon, which the server does not score" in refused.output


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"sqlalchemy", "fastapi", "starlette", "uvicorn", "alembic", "torch", "psycopg"}:
            raise ImportError(f"{name} is not part of the base install")
sys.meta_path.insert(0, Block())
"""


@pytest.mark.process  # a child interpreter
def test_the_client_needs_only_the_base_install() -> None:
    code = BLOCKER + (
        "import polypbench.leaderboard.client as c\n"
        "from click.testing import CliRunner\n"
        "from polypbench.cli import main\n"
        "res = CliRunner().invoke(main, ['submit', '--help'])\n"
        "assert res.exit_code == 0 and '--model' in res.output, res.output\n"
        "print('ok', c.COLUMNS['macro_f1'][1])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok polyp/triclass/pooled/macro_f1" in out.stdout


def test_server_form_fields_become_the_flags_of_each_upload() -> None:
    from polypbench.leaderboard.client import CHECKPOINT_FLAGS, MODEL_FLAGS, PUBLIC_FLAGS, in_flags

    message = "form field 'config': too long; form field 'weights': empty; form field 'other': kept"
    assert in_flags(message, MODEL_FLAGS) == ("--model (its config.yaml): too long; --model (its weights): empty; "
                                              "form field 'other': kept")
    assert in_flags(message, CHECKPOINT_FLAGS).startswith("--checkpoint (its config.yaml): too long; --checkpoint")
    assert in_flags("form field 'split_hashes': not the split", PUBLIC_FLAGS) == "--manifest: not the split"


def test_retries_and_job_polls_back_off_from_half_a_second_to_five() -> None:
    """`submit`'s retries and `--wait`'s polls: a quick answer is seen within half a second, a long job costs one
    request per 5 s (12 a minute, far below the team rate limit)."""
    from itertools import islice

    from polypbench.leaderboard.client import backoff

    assert list(islice(backoff(), 7)) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
