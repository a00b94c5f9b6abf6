"""The server end to end through TestClient: scoring, refusals, persistence, and that labels never leak."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from polypbench.errors import PolypbenchError
from polypbench.evaluate import format_stat, lookup
from polypbench.evaluate.format import LEGEND, format_support
from polypbench.leaderboard.app import create_app
from polypbench.leaderboard.auth import add_team, hash_token
from polypbench.leaderboard.client import describe
from polypbench.leaderboard.db import Database, Submission, Team
from polypbench.leaderboard.jobs import NewJob, claim, enqueue, fail
from polypbench.leaderboard.jobs import describe as describe_job
from polypbench.leaderboard.pages import team_href
from polypbench.manifest import Manifest

from .helpers import FROZEN_TIME, MakeClient, live_server, parquet_bytes, post, predictions


def _lists(obj: Any, path: str = "") -> list[tuple[str, int]]:
    """(key path, length) of every list in a JSON document."""
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in _lists(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [(path, len(obj))] + [x for v in obj for x in _lists(v, path)]
    return []


def _keys(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _keys(v)}
    return set()


def test_a_valid_file_is_scored_with_aggregate_metrics_only(make_client: MakeClient, token: str, labels: Path) -> None:
    client = make_client()
    res = post(client, token, parquet_bytes(predictions(labels)), paper_url="https://example.org/paper")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["primary"]["metric"] == "polyp/triclass/pooled/macro_f1" and body["primary"]["value"] == 1.0
    assert len(body["primary"]["ci95"]) == 2 and body["scopes"] == ["sun", "pooled"] and not body["replayed"]
    result = body["results"]["pooled"]
    assert result["metrics"]["polyp/triclass/pooled/accuracy"]["value"] == 1.0
    assert not {"polyp_table", "confusion_matrix", "confusion_matrices", "path", "comparison"} & _keys(body)
    test_polyps = Manifest.open(labels).select("test", table="polyps")
    assert len(test_polyps) > 6
    assert all(n <= 6 for _, n in _lists(body)), _lists(body)  # ci95, classes, columns: never one per polyp
    detail = client.get(f"/submissions/{body['id']}").text
    large = "polyp/binary10/pooled/sensitivity/ge10mm"
    stat = lookup(result, large)
    assert stat is not None and stat.value == 1.0 and stat.n_polyps and stat.n_patients
    shown = html.escape(format_stat(stat, large), quote=False)  # as the scorer decides: interval, flag or no CI
    # its row in the folded table of all metrics, with the key to fetch it by (hover) and, as it rests on fewer
    # polyps than its dataset's column, its own support
    cell = f'<span title="{large}">{shown}</span> <span class="muted small">({format_support(stat)})</span>'
    assert re.search(rf"<td>sensitivity \(&gt;=10 mm\)</td>(?:(?!</tr>).)*{re.escape(cell)}", detail), detail
    if stat.flags or stat.ci_reason:
        assert html.escape(LEGEND, quote=False) in detail
    pages = [res.text, client.get("/").text, detail,
             client.get("/api/leaderboard").text, client.get(f"/api/submissions/{body['id']}").text]
    link = '<a href="https://example.org/paper" rel="nofollow">paper</a>'
    assert link in pages[1] and link in pages[2]
    for text in pages:
        assert not any(str(pid) in text for pid in test_polyps["polyp_id"]), "a test polyp id was shown"
        assert str(labels) not in text, "a server path was shown"


def test_bad_requests_are_refused_with_one_line_errors(make_client: MakeClient, token: str, labels: Path) -> None:
    client = make_client(max_upload_bytes=2000)
    good = parquet_bytes(predictions(labels))
    assert len(good) > 2000
    cases = [
        (post(client, None, good), 401, "missing or invalid API token"),
        (post(client, "not-a-token", good), 401, "missing or invalid API token"),
        (post(client, token, good), 413, "upload of"),
        (post(client, token, b"a,b\n1,2\n", name="p.csv", method=""), 422, "form field 'method'"),
        (post(client, token, good[:100], method="x" * 201), 422, "form field 'method': String should have at most"),
        (post(client, token, good[:100], declaration="false"), 400, "form field 'declaration'"),
        (client.get("/api/submissions/999"), 404, "submission 999 not found"),
        (client.get("/api/submissions/99999999999999999999"), 422, "path parameter 'sub_id'"),
        (client.get("/api/submissions/-1"), 422, "path parameter 'sub_id'"),
        (client.get("/api/leaderboard?sort=bogus"), 400, "unknown sort 'bogus'"),
        (client.get("/api/leaderboard?scope=nope"), 400, "unknown scope 'nope'"),
        (client.get("/api/compare?a=1&b=x"), 422, "query parameter 'b'"),
    ]
    for res, status, message in cases:
        assert res.status_code == status, (status, res.text)
        assert message in res.json()["error"] and "\n" not in res.json()["error"]


def test_an_invalid_file_lists_every_problem_and_never_a_size(make_client: MakeClient, token: str,
                                                              labels: Path) -> None:
    client = make_client()
    bad = predictions(labels).iloc[1:].copy()
    bad.loc[bad.index[0], "size_mm"] = -1.0
    bad["p0"] = 0.5  # p1, p2 missing
    res = post(client, token, parquet_bytes(bad), name="../../etc/bad preds.parquet")
    assert res.status_code == 422, res.text
    body = res.json()
    problems = body["problems"]
    assert len(problems) == 3 and body["error"].startswith("3 problem(s) in the prediction file")
    text = "\n".join(problems)
    assert "have no prediction" in text and "negative size" in text and "p1, p2" in text
    assert all(p.startswith("bad_preds.parquet") for p in problems), problems
    sizes = Manifest.open(labels).select("test", table="polyps")["size_mm"]
    shown = {f"{s:.1f}" for s in sizes} | {f"{s:g}mm" for s in sizes} | {repr(float(s)) for s in sizes}
    assert not [s for s in shown if s in res.text], "a test size was shown"
    assert client.get("/api/leaderboard").json()["entries"] == []  # nothing scored or stored
    unreadable = post(client, token, b"not parquet", name="x.parquet")
    assert unreadable.status_code == 422 and "not a readable Parquet file" in unreadable.json()["problems"][0]
    assert "polypbench-upload" not in unreadable.text  # no server temp path


def test_daily_cap_counts_scored_submissions(make_client: MakeClient, token: str, labels: Path) -> None:
    client = make_client(daily_cap=1)
    assert post(client, token, b"x", name="x.parquet").status_code == 422  # refused files do not count
    assert post(client, token, parquet_bytes(predictions(labels))).status_code == 200
    res = post(client, token, parquet_bytes(predictions(labels)))
    assert res.status_code == 429 and "daily cap reached" in res.json()["error"]


def test_the_daily_cap_counts_the_server_clocks_utc_day(make_client: MakeClient, token: str, labels: Path,
                                                        database: Database) -> None:
    midnight = dt.datetime(2025, 6, 16, tzinfo=dt.timezone.utc).timestamp()
    client = make_client(daily_cap=1, frozen_time=midnight - 1)
    clock = client.app.state.server.settings
    data = parquet_bytes(predictions(labels))
    assert post(client, token, data).status_code == 200
    clock.frozen_time = midnight - 0.001
    assert post(client, token, data).status_code == 429  # the same UTC day
    clock.frozen_time = midnight
    assert post(client, token, data).status_code == 200  # the next one: a new cap
    with database.sessions() as session:  # stored at the clock's time, not the wall clock's
        assert sorted(session.scalars(select(Submission.created_at))) == [
            dt.datetime(2025, 6, 15, 23, 59, 59), dt.datetime(2025, 6, 16)]


@pytest.mark.slow
def test_daily_cap_holds_under_concurrent_uploads(db: str, labels: Path, token: str, options: dict[str, Any],
                                                database: Database) -> None:
    # five uploads at once all pass the cap check on arrival; only two may be recorded
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from polypbench.leaderboard.app import create_app

    app = create_app(db, [labels], **{**options, "daily_cap": 2, "n_bootstrap": 200})
    data = parquet_bytes(predictions(labels))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60, trust_env=False) as http:
        def upload(i: int) -> int:  # one client, shared by the threads: a connection per concurrent request
            return http.post("/api/submissions", headers={"Authorization": f"Bearer {token}"},
                             data={"method": f"m{i}", "declaration": "true"},
                             files={"file": ("p.parquet", data)}).status_code

        with ThreadPoolExecutor(5) as pool:
            codes = sorted(pool.map(upload, range(5)))
    app.state.server.db.dispose()
    assert codes == [200, 200, 429, 429, 429]
    with database.sessions() as session:
        assert session.query(Submission).count() == 2


def test_rate_limit_by_address_before_auth_and_by_team_after(make_client: MakeClient, token: str) -> None:
    client = make_client(ip_rate_limit=3)
    codes = [client.get("/api/leaderboard").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    res = client.get("/api/jobs", headers={"Authorization": "Bearer nonsense"})  # refused before auth
    assert res.status_code == 429 and "from this address" in res.json()["error"]

    client = make_client(rate_limit=2, ip_rate_limit=0)
    spellings = [f"Bearer {token}", f"bearer {token}", f"BEARER  {token} "]
    codes = [client.get("/api/jobs", headers={"Authorization": a}).status_code for a in spellings]
    assert codes == [200, 200, 429]  # one team, however its token is spelled
    res = client.get("/api/jobs", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 429 and "for this team" in res.json()["error"]


def test_the_rate_limit_window_is_the_server_clocks_minute(make_client: MakeClient, token: str) -> None:
    minute = 60.0 * (FROZEN_TIME // 60 + 1)
    client = make_client(rate_limit=2, frozen_time=minute - 0.5)
    clock = client.app.state.server.settings
    headers = {"Authorization": f"Bearer {token}"}
    assert [client.get("/api/jobs", headers=headers).status_code for _ in range(3)] == [200, 200, 429]
    clock.frozen_time = minute - 0.001
    assert client.get("/api/jobs", headers=headers).status_code == 429  # the same minute
    clock.frozen_time = minute
    assert client.get("/api/jobs", headers=headers).status_code == 200  # the next window


def test_submissions_persist_across_a_restart_and_the_token_is_only_hashed(make_client: MakeClient, token: str,
                                                                          labels: Path, database: Database) -> None:
    first = post(make_client(), token, parquet_bytes(predictions(labels)), method="persisted")
    assert first.status_code == 200
    again = make_client()
    entries = again.get("/api/leaderboard").json()["entries"]
    assert [(e["id"], e["method"]) for e in entries] == [(first.json()["id"], "persisted")]
    assert "persisted" in again.get(f"/submissions/{first.json()['id']}").text
    with database.sessions() as session:
        team = session.query(Team).one()
        assert team.token_hash == hash_token(token) and token not in team.token_hash


def test_the_board_shows_each_teams_best_entry_ranked(make_client: MakeClient, token: str, labels: Path,
                                                       database: Database) -> None:
    other = add_team(database, "team-b")
    client = make_client()
    scores = {}
    for tok, method, noise in [(token, "a-perfect", 0.0), (token, "a-noisy", 6.0), (other, "b-noisy", 3.0)]:
        res = post(client, tok, parquet_bytes(predictions(labels, noise, seed=3)), method=method)
        assert res.status_code == 200, res.text
        scores[method] = res.json()["primary"]["value"]
    assert scores["a-perfect"] == 1.0 and scores["b-noisy"] < 1.0
    entries = client.get("/api/leaderboard").json()["entries"]
    assert [(e["team"], e["method"]) for e in entries] == [("team-a", "a-perfect"), ("team-b", "b-noisy")]
    by_team = client.get("/api/leaderboard?sort=team").json()["entries"]
    assert [e["team"] for e in by_team] == ["team-a", "team-b"]
    assert entries[0]["rank"] == 1 and entries[1]["rank"] in (1, 2)  # rank groups: tests/leaderboard/test_board.py
    assert entries[0]["stability"]["rank_95"][0] == 1 and 0 <= entries[0]["stability"]["p_first"] <= 1
    page = client.get("/?sort=mae_mm&scope=pooled").text
    assert page.index("a-perfect") < page.index("b-noisy") and "a-noisy" not in page
    assert 'href="/?track=public&amp;scope=pooled&amp;sort=team"' in page and "<script" not in page
    assert '<meta name="viewport"' in page and 'class="scroll"' in page
    assert client.get("/?scope=nope").status_code == 400


def test_pages_escape_user_text(make_client: MakeClient, database: Database, labels: Path) -> None:
    tok = add_team(database, "<b>team</b>")
    client = make_client()
    res = post(client, tok, parquet_bytes(predictions(labels)), method="<script>alert(1)</script>",
               code_url="javascript:alert(1)")
    assert res.status_code == 400 and "http(s) link" in res.json()["error"]
    res = post(client, tok, parquet_bytes(predictions(labels)), method="<script>alert(1)</script>")
    assert res.status_code == 200
    for page in (client.get("/").text, client.get(f"/submissions/{res.json()['id']}").text):
        assert "<script>" not in page and "<b>team" not in page and "&lt;script&gt;" in page


def test_the_urls_submit_prints_open_as_pages(make_client: MakeClient, token: str, labels: Path,
                                             database: Database) -> None:
    """What `polypbench submit` prints opens in a browser, without a token: a scored file's submission page, and a
    queued job's page (``/jobs/<id>``: its team's page at the job's row, with its status, its reason when it failed
    and the submission it belongs to). A team's page lists its entries and jobs; a name with ``/`` and spaces works."""
    client = make_client()
    body = post(client, token, parquet_bytes(predictions(labels)), method="team-entry").json()
    printed = describe(body, "http://testserver/").splitlines()[0].rsplit(" ", 1)[1]
    page = client.get(printed)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "team-entry" in page.text and f"submission {body['id']}" in page.text

    with database.sessions() as session:
        team_id = session.scalars(select(Team.id).where(Team.name == "team-a")).one()
    new = NewJob(kind="verify", method="team-entry", architecture="tiny", config="{}", weights_sha256="0" * 64,
                 weights_bytes=1, submission_id=body["id"])
    failing, _ = enqueue(database, team_id, new)
    waiting, _ = enqueue(database, team_id, replace(new, kind="model", submission_id=None, method="queued-model"))
    claimed = claim(database, "w1", 60.0)
    assert claimed is not None and claimed.id == failing.id
    fail(database, failing.id, "w1", "weights do not fit the architecture 'tiny'", retry=False)
    links = [describe_job(job)["page"] for job in (failing, waiting)]
    assert links == [f"/jobs/{failing.id}", f"/jobs/{waiting.id}"]
    moved = client.get(links[0], follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == f"/teams/team-a#job-{failing.id}"
    team = client.get(links[0])  # followed, as a browser does
    assert team.status_code == 200 and team.headers["content-type"].startswith("text/html")
    rows = dict(re.findall(r'<tr id="job-(\d+)">(.*?)</tr>', team.text))
    assert set(rows) == {str(failing.id), str(waiting.id)}
    assert '<span class="status failed">failed</span>' in rows[str(failing.id)]
    assert "weights do not fit the architecture" in rows[str(failing.id)]
    assert f'<a href="/submissions/{body["id"]}">' in rows[str(failing.id)]
    assert '<span class="status queued">queued</span>' in rows[str(waiting.id)] and "queued-model" in team.text
    assert f'<tr id="submission-{body["id"]}">' in team.text  # its entries
    assert "0" * 64 not in team.text  # no weights hash

    add_team(database, "a/b lab")
    other = client.get(team_href("a/b lab"))
    assert team_href("a/b lab") == "/teams/a%2Fb%20lab" and other.status_code == 200
    assert "team a/b lab" in other.text and "No scored entries yet" in other.text and "No jobs" in other.text
    for path, message in [("/teams/nobody", "team &#39;nobody&#39; not found"), ("/jobs/999", "job 999 not found")]:
        missing = client.get(path)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
        assert message in missing.text


def test_pages_answer_errors_with_a_page_and_the_api_with_json(sqlite_db: str, labels: Path,
                                                               options: dict[str, Any],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(sqlite_db, [labels], **options)
    client = TestClient(app, raise_server_exceptions=False)
    pages = [("/nowhere", 404, "Not Found"), ("/submissions/999", 404, "submission 999 not found"),
             ("/submissions/99999999999999999999", 422, "path parameter &#39;sub_id&#39;"),
             ("/?sort=bogus", 400, "unknown sort &#39;bogus&#39;"), ("/compare?a=1&b=x", 422, "query parameter"),
             ("/stability?scope=<script>x</script>", 400, "unknown scope &#39;&lt;script&gt;x&lt;/script&gt;&#39;")]
    for path, status, message in pages:
        res = client.get(path)
        assert res.status_code == status and res.headers["content-type"].startswith("text/html"), (path, res.text)
        assert res.text.startswith("<!doctype html>") and message in res.text and "<script>" not in res.text, res.text
        assert '<a href="/">' in res.text  # the way back to the board
    for path, status in [("/api/nowhere", 404), ("/api/submissions/999", 404), ("/api/leaderboard?sort=bogus", 400)]:
        res = client.get(path)
        assert res.status_code == status and res.headers["content-type"] == "application/json", (path, res.text)
        assert set(res.json()) == {"error"}

    from polypbench.leaderboard import pages as page_module

    def broken(*_args: Any, **_kwargs: Any) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(page_module, "board_page", broken)
    res = client.get("/")
    assert res.status_code == 500 and res.headers["content-type"].startswith("text/html")
    assert "internal server error; it was logged" in res.text and "a bug" not in res.text
    app.state.server.db.dispose()

    limited = create_app(sqlite_db, [labels], **{**options, "ip_rate_limit": 1})
    limited_client = TestClient(limited)
    assert limited_client.get("/api/info").status_code == 200
    page, api = limited_client.get("/"), limited_client.get("/api/info")
    assert page.status_code == api.status_code == 429
    assert page.headers["content-type"].startswith("text/html") and "from this address" in page.text
    assert "from this address" in api.json()["error"]
    limited.state.server.db.dispose()


def test_add_team_refuses_a_duplicate(database: Database) -> None:
    add_team(database, "dup")
    with pytest.raises(PolypbenchError, match="already exists"):
        add_team(database, "dup")


def test_settings_make_every_path_absolute_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths (as docs/leaderboard.md gives them) name the same files in every process the server starts,
    whatever its working folder (a model run works in its own)."""
    from polypbench.leaderboard.config import Settings

    monkeypatch.chdir(tmp_path)
    sqlite = Settings(db="leaderboard.db", labels=["prepared/sun"], private_labels=["hidden/prepared"])
    assert (sqlite.db, sqlite.labels, sqlite.private_labels, sqlite.store) == (
        str(tmp_path / "leaderboard.db"), [str(tmp_path / "prepared/sun")], [str(tmp_path / "hidden/prepared")],
        str(tmp_path / "leaderboard.db.store"))
    url = "postgresql://lb:pw@localhost/lb"
    postgres = Settings(db=url, store="store")
    assert postgres.db == url and postgres.store_dir() == tmp_path / "store"
    assert Settings(db=url).store_dir() == tmp_path / "leaderboard-store"
    monkeypatch.chdir(tmp_path / "..")
    monkeypatch.setenv(*next(iter(sqlite.to_env().items())))
    assert Settings.from_env() == sqlite  # a `serve --workers N` process elsewhere reads the same paths


WEB_PROCESS = """
import json, sys
from fastapi.testclient import TestClient
from polypbench.leaderboard.app import create_app
from polypbench.leaderboard.client import describe
from polypbench.leaderboard.jobs import NewJob, claim, enqueue, fail
from polypbench.leaderboard.jobs import describe as describe_job
from polypbench.leaderboard.pages import team_href
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.board import export, render
from polypbench.leaderboard.db import Database

db, public, hidden, store, out = sys.argv[1:]
app = create_app(db, [public], private_labels=[hidden], store=store, n_bootstrap=5, rate_limit=0, ip_rate_limit=0)
with Database(db) as database:
    token = add_team(database, "modellers")
client = TestClient(app)
assert client.get("/").status_code == 200 and client.get("/api/info").status_code == 200
header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
weights = len(header).to_bytes(8, "little") + header + bytes(8)
config = json.dumps({"model": "tiny", "task": "triclass", "img_size": 32, "epochs": 3})
queued = client.post("/api/models", headers={"Authorization": f"Bearer {token}"},
                     data={"method": "m", "architecture": "tiny", "config": config},
                     files={"weights": ("w.safetensors", weights)})
assert queued.status_code == 202, queued.text
with Database(db) as database:
    with database.engine.connect() as connection:
        job = json.loads(connection.exec_driver_sql("SELECT config FROM jobs").scalar())
    export(database, out)
render(out)
import polypbench.leaderboard.worker  # the worker process too: its model runs import torch, it does not
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "torch" or m == "scipy.stats"
                or m.startswith(("polypbench.train", "polypbench.models")))
print(json.dumps({"loaded": loaded, "architectures": app.state.server.architectures, "job": job}))
"""


@pytest.mark.process  # a server in a subprocess
def test_the_web_process_and_the_board_renderer_never_import_torch(prepared, tmp_path: Path) -> None:
    """A server with both tracks takes a model upload (the task table asked of a child process, the config parsed
    once into the inference config the job carries) and renders its board, and neither torch nor the training code
    is ever imported in its process; nor is scipy.stats (0.8 s of every scoring process: the intervals' Student t
    comes from scipy.special)."""
    import json
    import subprocess
    import sys

    args = [str(tmp_path / "lb.db"), str(prepared["sun"].out), str(prepared["real-colon"].out),
            str(tmp_path / "store"), str(tmp_path / "board")]
    done = subprocess.run([sys.executable, "-c", WEB_PROCESS, *args], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["loaded"] == [] and "tiny" in found["architectures"]
    assert found["job"]["inference"] == {"model": "tiny", "task": "triclass", "img_size": 32, "margin": None,
                                         "model_kwargs": {}, "channels_last": False, "bf16": False,
                                         "frame": "crop", "fov_mask": False, "normalize": None}
    assert (tmp_path / "board" / "README.md").is_file()
