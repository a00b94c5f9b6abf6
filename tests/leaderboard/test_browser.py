"""End to end in a real browser: headless Debian Chromium, driven by Playwright, against a live uvicorn server.

What a person sees on the board: the title, the primary metric's whisker chart, each team's best entry in rank
order with its 95% CI and rank group, badges explained in a legend, the sort links, the dataset filter, two entries
compared through the form, a submission's compact page reached by clicking its link, a team's page; and every page
(the REAL-Colon board, a submission, a team, a 404) fits 1280x800 and 390x844 with every image loaded
(tests/browser.py's ``check_layout``; screenshots under ``$POLYPBENCH_ARTIFACTS`` or pytest's tmp dir). Everything
stays on 127.0.0.1. One browser and one server for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from polypbench.evaluate import Stat, format_stat, lookup
from polypbench.evaluate.format import LEGEND, format_support
from polypbench.leaderboard import PRIMARY
from polypbench.leaderboard.app import create_app
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.board import RANKING_TEST
from polypbench.leaderboard.columns import COLUMNS
from polypbench.leaderboard.db import Database
from polypbench.leaderboard.pages import BADGES
from tests.browser import TIMEOUT_MS, check_layout
from tests.helpers import Prepared

from .helpers import ARCHITECTURES, FROZEN_TIME, TASKS, live_server, parquet_bytes, predictions

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(prepared: dict[str, Prepared], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live board on two datasets (REAL-Colon + SUN test splits) with 4 submissions from 3 teams."""
    labels = [prepared["real-colon"].out, prepared["sun"].out]
    root = tmp_path_factory.mktemp("board")
    db = str(root / "leaderboard.db")
    with Database(db) as database:
        # The perfect entry belongs to the alphabetically last team, so sorting by team must change the order.
        teams = {name: add_team(database, name) for name in ("zeta-lab", "alpha-lab", "mid-lab")}
    subs = [("zeta-lab", "zeta-perfect", 0.0), ("alpha-lab", "alpha-noisy", 2.0), ("mid-lab", "mid-noisier", 5.0),
            ("alpha-lab", "alpha-worse", 9.0)]
    options = {"daily_cap": 20, "rate_limit": 0, "ip_rate_limit": 0, "n_bootstrap": 20, "store": str(root / "store"),
               "architectures": ARCHITECTURES, "tasks": TASKS, "frozen_time": FROZEN_TIME}
    app = create_app(db, labels, **options)
    with live_server(app) as url:
        created = {}
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as http:
            for team, method, noise in subs:
                data = parquet_bytes(pd.concat([predictions(p, noise, seed=1) for p in labels], ignore_index=True))
                res = http.post("/api/submissions", headers={"Authorization": f"Bearer {teams[team]}"},
                                data={"method": method, "declaration": "true"}, files={"file": ("preds.parquet", data)})
                assert res.status_code == 200, res.text
                created[method] = res.json()
            api = {ds: http.get("/api/leaderboard", params={"scope": ds}).json()["entries"]
                   for ds in ("pooled", "sun")}
        yield {"url": url, "created": created, "api": api}
    app.state.server.db.dispose()


def test_the_board_in_a_real_browser(chromium: Any, site: dict[str, Any]) -> None:
    api, created = site["api"], site["created"]
    # The expected ranking comes from the server's own scores (best per team, primary metric descending).
    ranked = [(e["team"], e["method"]) for e in api["pooled"]]
    assert ranked[0] == ("zeta-lab", "zeta-perfect") and len(ranked) == 3
    assert ("alpha-lab", "alpha-worse") not in ranked

    page = chromium.new_page(viewport={"width": 1280, "height": 700})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(site["url"] + "/")
    assert page.title() == "polypbench leaderboard (public: pooled)"
    assert page.locator("h1").inner_text() == "polypbench leaderboard (public: pooled)"
    # the primary metric first: its chart (matplotlib SVG) above the table, then one chart per other board metric
    first_chart = page.locator("img.chart").first
    assert first_chart.get_attribute("alt").startswith(COLUMNS["macro_f1"][0])
    assert first_chart.get_attribute("src").startswith("data:image/svg+xml;base64,")
    assert first_chart.evaluate("(e, t) => e.getBoundingClientRect().bottom < t.getBoundingClientRect().top",
                                page.locator("table.board").element_handle())
    assert page.locator("img.chart").count() == len(COLUMNS)
    # the whole table fits 1280 px: no column hidden behind its scroll box
    box = page.locator("div.scroll").first
    assert box.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    assert box.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    rows = _rows(page)
    assert [(r[1], r[2].split(" declared")[0]) for r in rows] == ranked
    assert [int(r[0]) for r in rows] == [e["rank"] for e in api["pooled"]] and rows[0][0] == "1"
    headers = page.locator("table tr").first.locator("th").all_inner_texts()
    f1_col = next(i for i, h in enumerate(headers) if h.startswith(COLUMNS["macro_f1"][0]))
    assert headers[f1_col].endswith("\u25bc")  # the active sort is marked
    support_col = headers.index("n polyps / patients")
    for r, e in zip(rows, api["pooled"], strict=True):
        f1 = Stat.from_dict(e["metrics"]["macro_f1"])
        assert " ".join(r[f1_col].split()) == format_stat(f1, PRIMARY), r[f1_col]  # as the scorer decides
        assert r[support_col] == format_support(f1) != "-"  # what the number rests on
    assert api["pooled"][0]["metrics"]["macro_f1"]["value"] == 1.0 and rows[0][f1_col].startswith("1.000")
    # badges carry their meaning as a tooltip, and the legend under the table says it in words
    badge = page.locator("table.board .badge").first
    assert badge.inner_text() == "declared" and badge.get_attribute("title") == BADGES["declared"]
    legend = page.locator("dl.legend").inner_text()
    assert BADGES["declared"] in legend and LEGEND in legend
    # the long explanations are folded under "how to read this"
    howto = page.locator("details.howto")
    assert not howto.evaluate("e => e.open") and "Holm-corrected" not in page.inner_text("main")
    howto.locator("summary").click()
    assert RANKING_TEST in " ".join(howto.inner_text().split())
    assert "alpha-worse" not in page.content() and page.locator("script").count() == 0

    # Sort by team: a click on the column's link; the order changes to alphabetical.
    page.get_by_role("link", name="team", exact=True).click()
    page.wait_for_url("**/?track=public&scope=pooled&sort=team")
    assert [r[1] for r in _rows(page)] == ["alpha-lab", "mid-lab", "zeta-lab"]
    # Sort by MAE (lower is better), compared with the API's values.
    page.get_by_role("link", name=COLUMNS["mae_mm"][0], exact=True).click()
    page.wait_for_url("**sort=mae_mm")
    by_mae = sorted(api["pooled"], key=lambda e: (e["metrics"]["mae_mm"]["value"], e["id"]))
    assert [r[2].split(" declared")[0] for r in _rows(page)] == [e["method"] for e in by_mae]
    assert _rows(page)[0][2].startswith("zeta-perfect")

    # Dataset filter: the current dataset is plain text, the others are links; the sort is kept.
    scopes = page.locator("nav.tabs[aria-label=dataset]")
    assert scopes.get_by_role("link").all_inner_texts() == ["real-colon", "sun"]
    scopes.get_by_role("link", name="sun", exact=True).click()
    page.wait_for_url("**/?track=public&scope=sun&sort=mae_mm")
    assert page.title() == "polypbench leaderboard (public: sun)"
    sun_rows = _rows(page)
    sun_by_mae = sorted(api["sun"], key=lambda e: (e["metrics"]["mae_mm"]["value"], e["id"]))
    assert [r[2].split(" declared")[0] for r in sun_rows] == [e["method"] for e in sun_by_mae]
    for r, e in zip(sun_rows, sun_by_mae, strict=True):
        assert " ".join(r[f1_col].split()) == format_stat(Stat.from_dict(e["metrics"]["macro_f1"]), PRIMARY)
    assert page.locator("nav.tabs[aria-label=dataset]").get_by_role("link").all_inner_texts() == ["real-colon",
                                                                                                   "pooled"]

    # Two entries compared through the board's form (no JavaScript): the first two rows by default.
    page.get_by_role("button", name="compare").click()
    page.wait_for_url("**/compare?**")
    assert page.title().startswith("compare ") and "P(A better)" in page.inner_text("table")
    cmp_rows = page.locator("table tr:has(td)").all()
    cmp_head = page.locator("table tr").first.locator("th").all_inner_texts()
    diff_col = cmp_head.index("A \u2212 B [95% CI]")
    first_two = [e["id"] for e in sun_by_mae[:2]]  # the form's defaults: the first two rows
    expected = httpx.get(f"{site['url']}/api/compare", params={"a": first_two[0], "b": first_two[1], "scope": "sun"},
                         trust_env=False).json()["metrics"]["macro_f1"]
    assert len(cmp_rows) == len(COLUMNS)
    difference = Stat.from_dict(expected["difference"])
    assert cmp_rows[0].locator("td").nth(diff_col).inner_text() == format_stat(difference, PRIMARY)
    page.get_by_role("link", name="back to the board").click()

    # A submission's page, reached by clicking its method link on the board: the board's numbers first, every other
    # metric folded per scope (a table per view and task, a column per dataset).
    page.goto(site["url"] + "/?track=public&scope=pooled&sort=mae_mm")
    target = created["alpha-noisy"]
    page.get_by_role("link", name="alpha-noisy", exact=True).click()
    page.wait_for_url(f"**/submissions/{target['id']}")
    assert page.title() == f"submission {target['id']}"
    meta = dict(zip(page.locator("dl.kv dt").all_inner_texts(), page.locator("dl.kv dd").all_inner_texts(),
                    strict=True))
    assert meta["team"] == "alpha-lab" and meta["method"] == "alpha-noisy" and meta["bootstrap replicates"] == "20"
    assert meta["declaration"].startswith("test labels not used")
    stat = lookup(target["results"]["pooled"], PRIMARY)
    summary = {r[0]: r for r in _rows(page, "table.summary")}
    assert " ".join(summary["pooled"][1].split()) == format_stat(stat, PRIMARY)
    pooled = page.locator("details.scope", has=page.locator("summary", has_text="pooled"))
    assert not pooled.evaluate("e => e.open")
    pooled.locator("summary").click()
    table = pooled.locator("xpath=.//h3[normalize-space()='polyp: triclass']/following-sibling::div[1]//table")
    columns = [h.split("\n")[0] for h in table.locator("th").all_inner_texts()]
    assert columns == ["metric", "real-colon", "sun", "pooled"]
    metrics = {r[0]: r for r in _rows(page, "details.scope[open] h3 + div table")}
    assert metrics["macro_f1"][columns.index("pooled")] == format_stat(stat, PRIMARY)
    assert metrics["macro_f1"][columns.index("pooled")] == format_stat(Stat.from_dict(target["primary"]), PRIMARY)
    text = page.inner_text("body")
    assert "polyp_table" not in text and "confusion" not in text and "/tmp" not in text
    # its team's page, from the link by the method name
    page.get_by_role("link", name="alpha-lab", exact=True).first.click()
    page.wait_for_url("**/teams/alpha-lab")
    assert [r[2].split(" declared")[0] for r in _rows(page)] == ["alpha-worse", "alpha-noisy"]  # newest first
    page.get_by_role("link", name="back to the board").click()
    page.wait_for_url(site["url"] + "/")
    assert [(r[1], r[2].split(" declared")[0]) for r in _rows(page)] == ranked
    page.close()


def test_every_page_fits_a_laptop_and_a_phone(chromium: Any, site: dict[str, Any], artifacts: Path) -> None:
    """At 1280x800 and 390x844: no horizontal overflow, every image loaded, a screenshot of each as an artifact.
    The REAL-Colon board (withheld and flagged intervals, the widest cells) fits 1280 px without scrolling its
    table."""
    url, sub = site["url"], site["created"]["alpha-noisy"]["id"]
    pages = {"board-real-colon": "/?scope=real-colon", "submission": f"/submissions/{sub}",
             "team": "/teams/alpha-lab", "error-404": "/nowhere"}
    for name, path in pages.items():
        found = check_layout(chromium, url + path, f"leaderboard-{name}", artifacts)
        assert all(f.screenshot.is_file() for f in found)
        if name.startswith("board"):
            assert all(f.images == len(COLUMNS) for f in found)  # every chart, loaded
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    page.goto(url + "/?scope=real-colon")
    assert "no CI" in page.inner_text("table.board")  # the cells that used to widen the table past 1280 px
    assert page.locator("div.scroll").first.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    page.goto(url + "/nowhere")
    assert page.title() == "404 Not Found" and page.get_by_role("link", name="back to the board").count() == 1
    page.close()


def _rows(page: Any, table: str = "table") -> list[list[str]]:
    """The data rows of the (first) ``table`` as the visible text of their cells."""
    return [[c.strip() for c in r.locator("td").all_inner_texts()]
            for r in page.locator(table).first.locator("tr:has(td)").all()]
