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
from polypbench.leaderboard.columns import COLUMNS, PUBLIC_KEYS
from polypbench.leaderboard.db import Database
from polypbench.leaderboard.scoring import sanitize

from .conftest import parquet_bytes, post, predictions


def test_export_and_render_write_best_entries_and_the_table(make_client: Callable[..., TestClient], token: str,
                                                            labels: Path, db: str, database: Database,
                                                            tmp_path: Path) -> None:
    other = add_team(database, "team|b")
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
    assert rows[0].startswith("| 1 | team\\-a | a\\-perfect | [paper](https://example.org/p)")
    assert "1\\.000 \\[" in rows[0]
    assert rows[1].startswith("| 2 | team\\|b | b\\-noisy") or rows[1].startswith("| 1 | team\\|b | b\\-noisy")
    assert "a\\-noisy" not in readme

    (out / "README.md").unlink()
    (out / "entries" / f"{ids['a-perfect']}.json").unlink()
    res = CliRunner().invoke(main, ["leaderboard", "render", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rebuilt = (out / "README.md").read_text()
    assert "| team\\|b | b\\-noisy" in rebuilt and "a\\-perfect" not in rebuilt


def test_add_team_cli_prints_the_token_once_and_stores_only_its_hash(sqlite_db: str) -> None:
    res = CliRunner().invoke(main, ["leaderboard", "add-team", "cli-team", "--db", sqlite_db])
    assert res.exit_code == 0, res.output
    token = res.output.strip().splitlines()[-1]
    assert len(token) >= 40
    assert token.encode() not in b"".join(p.read_bytes() for p in Path(sqlite_db).parent.glob("leaderboard.db*"))
    dup = CliRunner().invoke(main, ["leaderboard", "add-team", "cli-team", "--db", sqlite_db])
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


def test_export_escapes_markdown_and_html_in_every_user_field(make_client: Callable[..., TestClient], labels: Path,
                                                              db: str, database: Database, tmp_path: Path) -> None:
    import re

    tok = add_team(database, "<img src=x onerror=alert(1)>|*x*")
    client = make_client()
    res = post(client, tok, parquet_bytes(predictions(labels)), method="[click](javascript:alert(1)) <b>_u_</b> `c`",
               code_url="https://ex.org/a)(b <c>")
    assert res.status_code == 200, res.text
    out = tmp_path / "board"
    assert CliRunner().invoke(main, ["leaderboard", "export", "--db", db, "--out", str(out)]).exit_code == 0
    readme = (out / "README.md").read_text()
    for raw in ("<img", "<b>", "](javascript", "[click]", "`c`", "*x*", "_u_"):
        assert raw not in readme, raw
    assert "&lt;img src\\=x onerror\\=alert\\(1\\)&gt;\\|\\*x\\*" in readme
    assert "[code](https://ex.org/a%29%28b%20%3Cc%3E)" in readme
    cells = re.compile(r"(?<!\\)\|")
    header, row = [line for line in readme.splitlines() if line.startswith("| ")][:2]
    assert len(cells.split(header)) == len(cells.split(row))  # nothing a team typed adds or removes a column
