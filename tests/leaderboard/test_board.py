"""Export and render: one entry file per team's best submission, and the Markdown table rebuilt from them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient

from polypbench.cli import main
from polypbench.evaluate import compare, lookup
from polypbench.leaderboard import PRIMARY
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.board import COLUMNS, PUBLIC_KEYS, sanitize
from polypbench.leaderboard.db import session_factory

from .conftest import parquet_bytes, post, predictions


def test_export_and_render_write_best_entries_and_the_table(make_client: Callable[..., TestClient], token: str,
                                                            labels: Path, db: str, tmp_path: Path) -> None:
    other = add_team(session_factory(db), "team|b")
    client = make_client()
    ids = {}
    for tok, method, noise in [(token, "a-perfect", 0.0), (token, "a-noisy", 6.0), (other, "b-noisy", 3.0)]:
        res = post(client, tok, parquet_bytes(predictions(labels, noise, seed=3)), method=method,
                   paper_url="https://example.org/p")
        assert res.status_code == 200, res.text
        ids[method] = res.json()["id"]
    out = tmp_path / "leaderboard"
    res = CliRunner().invoke(main, ["leaderboard", "export", "--db", db, "--out", str(out)])
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in (out / "entries").glob("*.json"))
    assert files == sorted(f"{ids[m]}.json" for m in ("a-perfect", "b-noisy"))
    entry = json.loads((out / "entries" / f"{ids['a-perfect']}.json").read_text())
    assert entry["team"] == "team-a" and "polyp_table" not in json.dumps(entry) and str(labels) not in json.dumps(entry)
    readme = (out / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| 1") or line.startswith("| 2")]
    assert rows[0].startswith("| 1 | team-a | a-perfect | [paper](https://example.org/p)") and "1.000 [" in rows[0]
    assert rows[1].startswith("| 2 | team\\|b | b-noisy") and "a-noisy" not in readme

    (out / "README.md").unlink()
    (out / "entries" / f"{ids['a-perfect']}.json").unlink()
    res = CliRunner().invoke(main, ["leaderboard", "render", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rebuilt = (out / "README.md").read_text()
    assert "| 1 | team\\|b | b-noisy" in rebuilt and "a-perfect" not in rebuilt


def test_add_team_cli_prints_the_token_once_and_stores_only_its_hash(db: str) -> None:
    res = CliRunner().invoke(main, ["leaderboard", "add-team", "cli-team", "--db", db])
    assert res.exit_code == 0, res.output
    token = res.output.strip().splitlines()[-1]
    assert len(token) >= 40
    assert token.encode() not in Path(db).read_bytes()
    dup = CliRunner().invoke(main, ["leaderboard", "add-team", "cli-team", "--db", db])
    assert dup.exit_code != 0 and "Error: team 'cli-team' already exists" in dup.output


def test_sanitize_keeps_every_aggregate_metric_and_nothing_else(labels: Path) -> None:
    result = compare(predictions(labels, 1.0), predictions(labels, 4.0, seed=1), labels, n_bootstrap=10)
    assert result.comparison and result.confusion_matrices and result.polyp_table is not None
    doc = json.loads(json.dumps(sanitize(result)))  # as stored in the database
    assert set(doc) == set(PUBLIC_KEYS)  # no confusion matrices, no comparison, no polyp table
    assert str(labels) not in json.dumps(doc) and all("path" not in m for m in doc["manifests"])
    assert all(lookup(doc, key) == stat for key, stat in result.metrics.items())
    assert COLUMNS["macro_f1"][1] == PRIMARY
    for label, key, _ in COLUMNS.values():  # every board column is a key the scorer writes
        assert lookup(doc, key) is not None, label
