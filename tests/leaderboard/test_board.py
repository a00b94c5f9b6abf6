"""Export and render (one entry file per team's best submission, the Markdown table rebuilt from them), and the
board's rank groups, rank stability and comparisons on stored replicates."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from polypbench.cli import main
from polypbench.errors import PolypbenchError
from polypbench.evaluate import Note, NoteKind, Replicates, Stat, compare, lookup
from polypbench.evaluate.ranking import compare_replicates, rank_groups
from polypbench.leaderboard import PRIMARY
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.board import RANKING_TEST, Board, build, compare_entries, row, row_json
from polypbench.leaderboard.columns import COLUMNS, PUBLIC_KEYS, Track
from polypbench.leaderboard.db import Database, Submission, Team
from polypbench.leaderboard.pages import board_page
from polypbench.leaderboard.records import Fields, entry, record, replicates
from polypbench.leaderboard.scoring import Scored, sanitize

from .helpers import parquet_bytes, post, predictions


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


def _stored(database: Database, team: str, value: float, reps: np.ndarray, resamples: str = "f" * 16,
            stat: Stat | None = None) -> int:
    """Record a submission whose primary metric (pooled) has ``value`` and ``reps``: what the scorer would store
    (its Stat ``stat``, by default an interval of +-0.05)."""
    add_team(database, team)
    with database.sessions() as session:
        team_id = session.scalar(select(Team.id).where(Team.name == team))
    assert team_id is not None
    strata = np.zeros(30, dtype=np.int64)
    jack = value + np.random.default_rng(len(team)).normal(0.0, 0.002, 30)
    stat = stat or Stat(value, (value - 0.05, value + 0.05), n_polyps=75, n_patients=30)
    doc = {"metrics": {PRIMARY: stat.to_dict()}, "counts": {"pooled": {"n_polyps": 75, "n_patients": 30}}}
    rep = Replicates(PRIMARY, value, reps, jack, strata, resamples)
    sub, _ = record(database, team_id, Fields(method=team, filename="p.parquet"),
                    {"pooled": Scored(doc, {PRIMARY: rep})}, primary=value)
    return int(sub.id)


def test_rank_groups_on_the_board_compare_every_pair_with_holms_correction(database: Database) -> None:
    # A chain: B is within the noise of A and of C, but C is significantly worse than A even after Holm's
    # correction over the three pairs. Nobody is significantly better than A or B (rank 1); A is better than C
    # (rank 2). The old rule (each entry against the one just above) kept all three at rank 1, and sorting then
    # testing one-sided doubled its error rate on equal entries.
    rng = np.random.default_rng(0)
    common = rng.normal(0.0, 0.05, 2000)
    points = np.array([0.80, 0.79, 0.78])
    reps = points[:, None] + common[None, :] + rng.normal(0.0, 0.004, (3, 2000))
    ids = [_stored(database, team, v, r) for team, v, r in zip(("a", "b", "c"), points, reps, strict=True)]
    other = _stored(database, "d", 0.5, reps[2] - 0.3, resamples="0" * 16)  # other bootstrap settings: unranked
    stored = replicates_of(database, ids)
    p = [compare_replicates(stored[i], stored[j]).p_value for i, j in ((0, 1), (1, 2), (0, 2))]
    assert p[0] is not None and p[0] > 0.05 and p[1] is not None and p[1] > 0.05
    assert p[2] is not None and p[2] < 0.05 / 3
    board = build(database, Track.PUBLIC, "pooled", "macro_f1", closed=False, scopes=["pooled"])
    assert [r["id"] for r in board.rows] == [*ids, other]
    expected = rank_groups(stored, stats=[r["metrics"]["macro_f1"] for r in board.rows[:3]])
    assert [r["rank"] for r in board.rows] == [*expected.rank, None] == [1, 1, 2, None]
    assert [r["p_vs_above"] for r in board.rows[:3]] == expected.p_vs_above
    assert board.stability_ids == ids and len(board.distribution) == 3 and board.n_replicates == 2000
    assert board.rows[0]["stability"]["rank_95"][0] == 1 and board.rows[3]["stability"] is None
    page = board_page(board, [Track.PUBLIC])
    cells = re.findall(r'<tr><td>([^<]*)</td><td class="wrap"><a href="/teams/[^"]*">([^<]*)</a></td>', page)
    assert cells == [("1", "a"), ("1", "b"), ("2", "c"), ("-", "d")]
    assert RANKING_TEST in html.unescape(page) and "30 / 75" not in page and "75 / 30" in page

    entries = {e["id"]: e for e in (entry_of(database, i) for i in ids)}
    comparisons, n = compare_entries(database, Track.PUBLIC, "pooled", entries[ids[0]], entries[ids[2]])
    stored = replicates_of(database, [ids[0], ids[2]])
    sides = [lookup(entries[i]["results"]["pooled"], PRIMARY) for i in (ids[0], ids[2])]
    assert n == 2000 and comparisons["macro_f1"].difference == compare_replicates(*stored, sides=sides)
    p_a_better = comparisons["macro_f1"].p_a_better
    assert p_a_better is not None and p_a_better > 0.95
    assert p_a_better == compare_replicates(*stored).p_greater  # higher is better: P(A better) = P(A > B)
    difference = comparisons["macro_f1"].difference
    assert difference is not None and difference.p_value is not None and difference.p_value < 0.05 / 3
    with pytest.raises(PolypbenchError, match="same resamples"):
        compare_entries(database, Track.PUBLIC, "pooled", entries[ids[0]], entry_of(database, other))


def test_replicates_are_stored_at_float32_precision_and_read_back_whole(database: Database) -> None:
    rng = np.random.default_rng(3)
    reps = rng.normal(0.7, 0.05, 100)
    reps[::7] = np.nan
    sid = _stored(database, "t", 0.7123456789, reps)
    (back,) = replicates_of(database, [sid])
    assert back.key == PRIMARY and back.value == float(np.float32(0.7123456789)) and back.resamples == "f" * 16
    np.testing.assert_array_equal(back.replicates, reps.astype(np.float32).astype(np.float64))  # NaN kept
    assert back.jackknife.shape == (30,) and back.strata.dtype == np.int64 and not back.strata.any()


def entry_of(database: Database, sid: int) -> dict[str, Any]:
    with database.sessions() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        return entry(sub)


def replicates_of(database: Database, ids: list[int]) -> list[Replicates]:
    with database.sessions() as session:
        found = replicates(session, ids, "pooled", PRIMARY)
    return [found[i] for i in ids]


def test_a_board_cell_is_split_from_the_stat_never_from_its_words() -> None:
    """The page may wrap between a number and its interval: the two come from the Stat (format_value,
    format_interval), so no wording of a reason (here an old document's, with a bracket) can move the split."""
    withheld = Stat(0.5, None, ci_reason=Note(NoteKind.TEXT, text="x [y]"), n_polyps=9, n_patients=3)
    flagged = Stat(0.8, (0.7, 0.9), flags=(Note(NoteKind.PATIENTS, patients=12),), n_polyps=30, n_patients=12)
    e = {"id": 1, "team": "t", "method": "m", "track": "public", "submitted": "2025-01-01 00:00 UTC",
         "results": {"pooled": {"metrics": {PRIMARY: withheld.to_dict(),
                                            COLUMNS["kappa_quadratic"][1]: flagged.to_dict()}}}}
    r = row(e)
    assert r["metrics"]["macro_f1"] == withheld and r["metrics"]["kappa_quadratic"] == flagged  # Stats, typed
    r.update(rank=None, stability=None)
    page = board_page(Board(Track.PUBLIC, "pooled", "macro_f1", "macro_f1", [r], ["pooled"]), [Track.PUBLIC])
    assert ('<td class="num primary" title="no CI: x [y]"><span class="v">0.500</span> '
            '<span class="ci why">(no CI: x [y])</span>') in page  # a reason may wrap
    assert ('<td class="num" title="12 patients"><span class="v">0.800</span> '
            '<span class="ci">[0.700, 0.900]\u2020</span>') in page  # an interval never does
    assert row_json(r)["metrics"]["kappa_quadratic"] == flagged.to_dict()  # the API's form of the row


def test_a_chart_draws_what_the_scorer_decided_and_names_as_written() -> None:
    """The whisker chart (matplotlib SVG): an undefined value says so, a withheld interval is marked "no CI", a
    label with ``$`` is drawn as written (never as mathtext), a long one is cut; the x axis says which way is
    better."""
    import base64

    from polypbench.leaderboard.charts import LABEL_CHARS, Point, whisker_chart

    withheld = Stat(0.5, None, ci_reason=Note(NoteKind.PATIENTS, patients=1), n_polyps=9, n_patients=1)
    flagged = Stat(0.8, (0.7, 0.9), flags=(Note(NoteKind.PATIENTS, patients=12),), n_polyps=30, n_patients=12)
    points = [Point("1 a: $\\alpha$ cost", flagged), Point("2 b: " + "m" * 60, withheld), Point("- c: broken",
                                                                                          Stat(None, None))]
    uri = whisker_chart(points, "macro F1", higher_is_better=True, unit_interval=True)
    assert uri.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert "1 a: $\\alpha$ cost" in svg and "\u03b1" not in svg and "no CI" in svg and "undefined" in svg
    assert "macro F1 (higher is better)" in svg
    assert "2 b: " + "m" * (LABEL_CHARS - 6) + "\u2026" in svg and "m" * (LABEL_CHARS - 5) not in svg
    assert "lower is better" in base64.b64decode(whisker_chart(points[:1], "MAE mm", higher_is_better=False,
                                                               unit_interval=False).split(",", 1)[1]).decode()


def test_a_chart_is_drawn_once_per_content() -> None:
    """A board page viewed again draws no chart: equal content (labels, values, intervals, flags; the support and
    notes the chart does not show may differ) gives the drawn chart back; a changed value or label draws anew."""
    from polypbench.leaderboard.charts import Point, _chart, whisker_chart

    def chart(*points: Point) -> str:
        return whisker_chart(points, "macro F1 (cache test)", higher_is_better=True, unit_interval=True)

    first = chart(Point("1 a: m", Stat(0.61, (0.5, 0.7), n_polyps=30)), Point("- b: n", None))
    before = _chart.cache_info()
    again = chart(Point("1 a: m", Stat(0.61, (0.5, 0.7), n_polyps=31)), Point("- b: n", None))
    assert again == first and _chart.cache_info().hits == before.hits + 1
    assert _chart.cache_info().misses == before.misses
    moved = chart(Point("1 a: m", Stat(0.62, (0.5, 0.7))), Point("- b: n", None))
    renamed = chart(Point("1 a: m2", Stat(0.61, (0.5, 0.7))), Point("- b: n", None))
    assert len({first, moved, renamed}) == 3 and _chart.cache_info().misses == before.misses + 2


def test_compare_and_rank_groups_withhold_a_paired_result_resting_on_a_one_patient_class(
        database: Database, make_client: Callable[..., TestClient]) -> None:
    """Entry A's macro F1 has no honest interval (its large polyps all from one patient): /compare gives the
    difference no interval either (the same reason), and the board does not separate A from B on it, although the
    replicates alone would (before issue #22 /compare and the rank groups ignored the class rule)."""
    rng = np.random.default_rng(1)
    common = rng.normal(0.0, 0.05, 500)
    reason = Note(NoteKind.CLASS_PATIENTS, "large", polyps=1, patients=1)
    withheld = Stat(0.90, None, ci_reason=reason, n_polyps=75, n_patients=30)
    a = _stored(database, "a", 0.90, 0.90 + common + rng.normal(0, 0.005, 500), stat=withheld)
    b = _stored(database, "b", 0.60, 0.60 + common + rng.normal(0, 0.005, 500))
    bare = compare_replicates(*replicates_of(database, [a, b]))
    assert bare.ci95 is not None and bare.p_value is not None and bare.p_value < 1e-6  # clearly apart, without the rule
    res = make_client().get(f"/api/compare?a={a}&b={b}&scope=pooled")
    assert res.status_code == 200, res.text
    diff = res.json()["metrics"]["macro_f1"]["difference"]
    assert diff["value"] == pytest.approx(0.30, abs=1e-6) and diff["ci95"] is None and "p_value" not in diff
    assert Stat.from_dict(diff).ci_reason == reason
    board = build(database, Track.PUBLIC, "pooled", "macro_f1", closed=False, scopes=["pooled"])
    assert [r["rank"] for r in board.rows] == [1, 1]
