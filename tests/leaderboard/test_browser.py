"""End to end in a real browser: headless Debian Chromium, driven by Playwright, against a live uvicorn server.

What a person sees on the board: the title, each team's best entry in rank order with its 95% CI and rank group,
the sort links, the dataset filter, a board that fits 1280 px (wide tables scroll inside their box), two entries
compared through the form, and a submission's detail page reached by clicking its link. Everything stays on
127.0.0.1.

Needs the ``playwright`` Python package (the ``test`` extra; it ships its own driver, no browser download) and the
system Chromium at /usr/bin/chromium (``make install`` installs it). Locally the test skips when either is missing;
in CI (``CI=true``) it fails instead, so the browser check can never silently vanish there.
"""

from __future__ import annotations

import os
import shutil
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
from polypbench.leaderboard.columns import COLUMNS
from polypbench.leaderboard.db import Database
from tests.helpers import Prepared

from .helpers import live_server, parquet_bytes, predictions

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("POLYPBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
TIMEOUT_MS = 15_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run in CI; `make install` provides it)")
    pytest.skip(f"{reason}; run `make install` (installs playwright and Debian's chromium) to enable")


@pytest.fixture
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)) and shutil.which("chromium") is None:
        _unavailable(f"no Chromium at {CHROMIUM} or on PATH")
    exe = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def site(prepared: dict[str, Prepared], tmp_path: Path, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A live board on two datasets (REAL-Colon + SUN test splits) with 4 submissions from 3 teams."""
    labels = [prepared["real-colon"].out, prepared["sun"].out]
    db = str(tmp_path / "leaderboard.db")
    with Database(db) as database:
        # The perfect entry belongs to the alphabetically last team, so sorting by team must change the order.
        teams = {name: add_team(database, name) for name in ("zeta-lab", "alpha-lab", "mid-lab")}
    subs = [("zeta-lab", "zeta-perfect", 0.0), ("alpha-lab", "alpha-noisy", 2.0), ("mid-lab", "mid-noisier", 5.0),
            ("alpha-lab", "alpha-worse", 9.0)]
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


def _rows(page: Any) -> list[list[str]]:
    """The board's data rows as the visible text of their cells."""
    return [[c.strip() for c in r.locator("td").all_inner_texts()] for r in page.locator("table tr:has(td)").all()]


def test_the_board_in_a_real_browser(chromium: Any, site: dict[str, Any], tmp_path: Path) -> None:
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
    # readable at 1280 px: the page itself never scrolls sideways; a wide table scrolls inside its own box
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    box = page.locator("div.scroll").first
    assert box.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    assert box.evaluate("e => e.getBoundingClientRect().right") <= 1280
    assert box.evaluate("e => e.scrollWidth <= e.clientWidth + 1")  # and with these names every column fits
    rows = _rows(page)
    assert [(r[1], r[2].split(" declared")[0]) for r in rows] == ranked
    assert [int(r[0]) for r in rows] == [e["rank"] for e in api["pooled"]] and rows[0][0] == "1"
    headers = page.locator("table tr").first.locator("th").all_inner_texts()
    f1_col = next(i for i, h in enumerate(headers) if h.startswith(COLUMNS["macro_f1"][0]))
    assert headers[f1_col].endswith("\u25bc")  # the active sort is marked
    support_col = headers.index("n polyps / patients")
    for r, e in zip(rows, api["pooled"], strict=True):
        f1 = Stat.from_dict(e["metrics"]["macro_f1"])
        assert r[f1_col] == format_stat(f1, PRIMARY), r[f1_col]  # as the scorer decides
        assert r[support_col] == format_support(f1) != "-"  # what the number rests on
    assert api["pooled"][0]["metrics"]["macro_f1"]["value"] == 1.0 and rows[0][f1_col].startswith("1.000 [")
    if any("\u2020" in r[f1_col] or "no CI" in r[f1_col] for r in rows):
        assert LEGEND in page.inner_text("body")
    assert "alpha-worse" not in page.content() and page.locator("script").count() == 0
    page.screenshot(path=str(tmp_path / "board.png"), full_page=True)

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
    filter_links = page.locator("p").first.get_by_role("link").all_inner_texts()
    assert filter_links == ["real-colon", "sun"]
    page.get_by_role("link", name="sun", exact=True).click()
    page.wait_for_url("**/?track=public&scope=sun&sort=mae_mm")
    assert page.title() == "polypbench leaderboard (public: sun)"
    sun_rows = _rows(page)
    sun_by_mae = sorted(api["sun"], key=lambda e: (e["metrics"]["mae_mm"]["value"], e["id"]))
    assert [r[2].split(" declared")[0] for r in sun_rows] == [e["method"] for e in sun_by_mae]
    for r, e in zip(sun_rows, sun_by_mae, strict=True):
        assert r[f1_col] == format_stat(Stat.from_dict(e["metrics"]["macro_f1"]), PRIMARY)
    assert page.locator("p").first.get_by_role("link").all_inner_texts() == ["real-colon", "pooled"]
    page.screenshot(path=str(tmp_path / "board_sun.png"), full_page=True)

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

    # A submission's detail page, reached by clicking its method link on the board.
    page.goto(site["url"] + "/?track=public&scope=pooled&sort=mae_mm")
    target = created["alpha-noisy"]
    page.get_by_role("link", name="alpha-noisy", exact=True).click()
    page.wait_for_url(f"**/submissions/{target['id']}")
    assert page.title() == f"submission {target['id']}"
    meta = dict(zip(page.locator("table").first.locator("th").all_inner_texts(),
                    page.locator("table").first.locator("td").all_inner_texts(), strict=True))
    assert meta["team"] == "alpha-lab" and meta["method"] == "alpha-noisy" and meta["bootstrap replicates"] == "20"
    table = page.locator("xpath=//h2[normalize-space()='pooled']/following-sibling::h3[normalize-space()='polyp'][1]"
                         "/following-sibling::h4[normalize-space()='triclass: pooled'][1]/following-sibling::div[1]"
                         "//table")
    metrics = dict(zip(table.locator("td:nth-child(1)").all_inner_texts(),
                       table.locator("td:nth-child(2)").all_inner_texts(), strict=True))
    stat = lookup(target["results"]["pooled"], PRIMARY)
    assert metrics["macro_f1"] == format_stat(stat, PRIMARY) == format_stat(Stat.from_dict(target["primary"]), PRIMARY)
    assert page.locator("h4", has_text="triclass: sun").count() >= 1
    assert page.locator("h4", has_text="triclass: real-colon").count() >= 1
    assert meta["declaration"].startswith("test labels not used")
    text = page.inner_text("body")
    assert "polyp_table" not in text and "confusion" not in text and str(tmp_path) not in text
    page.screenshot(path=str(tmp_path / "detail.png"), full_page=True)
    page.get_by_role("link", name="back to the board").click()
    page.wait_for_url(site["url"] + "/")
    assert [(r[1], r[2].split(" declared")[0]) for r in _rows(page)] == ranked
