"""The pages polypbench writes, in a real browser (headless Chromium, tests/browser.py's ``check_layout``): an
``evaluate --report`` file with everything it can show, and a ``browse`` site of the session's prepared synthetic
datasets. Each fits 1280x800 and 390x844 from a file:// URL (no horizontal overflow, every image loaded, a
screenshot of each as an artifact), and the report's headline card, with the primary metric, its interval, the
support and the majority baseline, is within the first screen. One browser for the module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from polypbench.cli import main
from polypbench.evaluate import format_stat
from polypbench.evaluate.format import format_interval, format_p, format_value
from polypbench.evaluate.headline import BASELINE_NAME, metric_label
from polypbench.evaluate.result import lookup
from polypbench.leaderboard.columns import PRIMARY
from polypbench.manifest import Manifest
from polypbench.sizes import size_class3
from tests.browser import OPEN_DETAILS, TIMEOUT_MS, VIEWPORTS, check_layout
from tests.helpers import Prepared

pytestmark = pytest.mark.browser

BOOTSTRAP = 20


def _predictions(out: Path, path: Path, spread: float, seed: int) -> Path:
    """Frame predictions for the test split of prepared folder ``out``: the true size times a per-polyp factor in
    1 +- ``spread`` (some polyps change class), and class probabilities p0..p2 leaning to that size's class, so the
    report draws every picture it can."""
    rows = Manifest.open(out).select("test")
    rng = np.random.default_rng(seed)
    polyps, index = np.unique(rows["polyp_id"].to_numpy(str), return_inverse=True)
    size = rows["size_mm"].to_numpy(np.float64) * rng.uniform(1 - spread, 1 + spread, len(polyps))[index]
    probs = rng.dirichlet(np.ones(3), len(rows))
    probs[np.arange(len(rows)), size_class3(size)] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    pd.DataFrame({"polyp_id": rows["polyp_id"], "frame_index": rows["frame_index"], "size_mm": size,
                  "p0": probs[:, 0], "p1": probs[:, 1], "p2": probs[:, 2]}).to_csv(path, index=False)
    return path


def _run_dir(root: Path) -> Path:
    """The two files a report reads from a run folder: its config and its per-epoch history."""
    root.mkdir()
    (root / "config.yaml").write_text("model: tiny-hag\ntask: regression\nimg_size: 64\nepochs: 3\nseed: 0\n")
    (root / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "train_loss": 1 / (e + 1), "val_loss": 1.2 / (e + 1), "val_mae_mm": 4 - e,
                    "lr": 1e-3, "best": e == 2}) + "\n" for e in range(3)))
    return root


@pytest.fixture(scope="module")
def report(prepared: dict[str, Prepared], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """``evaluate --report`` on the SUN test split (20 polyps, 20 patients: every class has the patients for an
    interval) with sizes, probabilities, --raw, --compare and --run."""
    data, root = prepared["sun"], tmp_path_factory.mktemp("report")
    a = _predictions(data.out, root / "a.csv", 0.3, seed=1)
    b = _predictions(data.out, root / "b.csv", 0.6, seed=2)
    html = root / "report.html"
    res = CliRunner().invoke(main, ["evaluate", str(a), "--manifest", str(data.out), "--raw", str(data.raw),
                                    "--compare", str(b), "--run", str(_run_dir(root / "run")),
                                    "--bootstrap", str(BOOTSTRAP), "--json", str(root / "a.json"),
                                    "--report", str(html)])
    assert res.exit_code == 0, res.output
    return html, json.loads((root / "a.json").read_text())


def test_the_report_fits_and_leads_with_the_answer(chromium: Any, report: tuple[Path, dict[str, Any]],
                                                   artifacts: Path) -> None:
    html, doc = report
    page_text = html.read_text()
    for anchor in ("reliability", "training", "bland-altman", "confusion", "size-plot"):
        assert f'<figure id="{anchor}">' in page_text, anchor  # everything the report can show is in this one
    found = check_layout(chromium, html.as_uri(), "report", artifacts, prepare=OPEN_DETAILS)  # tables too
    assert all(f.images > 10 for f in found)  # the plots and the gallery's crops, all loaded

    stat, base = lookup(doc, PRIMARY), None
    assert stat is not None and stat.ci95 is not None
    diff = lookup(doc["comparison"], PRIMARY)
    width, height = VIEWPORTS["desktop"]
    page = chromium.new_page(viewport={"width": width, "height": height})
    try:
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(html.as_uri())
        card = page.locator("#headline")
        box = card.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] < height  # all of it, first screen
        text = " ".join(card.inner_text().split())
        base = page.locator("#headline li", has_text=f"{BASELINE_NAME}, same polyps").inner_text()
    finally:
        page.close()
    for shown in (metric_label(PRIMARY), format_value(stat, PRIMARY), format_interval(stat, PRIMARY),
                  f"{stat.n_polyps} polyps, {stat.n_patients} patients", format_stat(diff, PRIMARY), format_p(diff)):
        assert shown in text, (shown, text)
    assert metric_label(PRIMARY).startswith("macro F1 · per polyp · triclass")
    assert base.split("\n")[-1].strip()[0].isdigit()  # the baseline's number, on the same polyps


@pytest.fixture
def site(browse_site: tuple[Path, str]) -> Path:
    """The session's ``polypbench browse`` site (tests/conftest.py): every prepared dataset with its raw dump, one
    frame a polyp (the one tests/test_browse.py reads)."""
    return browse_site[0]


_BROKEN_CELLS = """() => [...document.querySelectorAll('td:not(.wrap), th')]
  .filter(c => [...c.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) || c.querySelector('a'))
  .filter(c => { const r = document.createRange(); r.selectNodeContents(c);
                 return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size > 1; })
  .slice(0, 5).map(c => c.textContent.trim())"""
"""Table cells whose text runs over more than one line (at a phone's width: a word broken letter by letter); a
``td.wrap`` (long text) may."""


def test_the_dataset_browser_fits(chromium: Any, site: Path, artifacts: Path) -> None:
    real_colon = sorted((site / "real-colon").glob("polyp-*.html"))[0]
    sun = sorted((site / "sun").glob("polyp-*.html"))[0]
    pages = {"index": site / "index.html", "overview": site / "real-colon" / "index.html",
             "polyp-real-colon": real_colon, "polyp-sun": sun}
    for name, path in pages.items():
        found = check_layout(chromium, path.as_uri(), f"browse-{name}", artifacts)
        if name.startswith("polyp"):
            assert all(f.images == 1 for f in found), name  # the one frame, loaded (SUN's from the raw dump)
        if name == "overview":
            assert all(f.images >= 3 for f in found)  # its plots
    assert 'src="file://' in sun.read_text() and 'src="thumbs/' in real_colon.read_text()
    # At a phone's width the tables scroll inside their box; no cell is squeezed into a column of letters.
    width, height = VIEWPORTS["phone"]
    page = chromium.new_page(viewport={"width": width, "height": height})
    try:
        page.set_default_timeout(TIMEOUT_MS)
        for name in ("index", "overview"):
            page.goto(pages[name].as_uri())
            assert page.evaluate(_BROKEN_CELLS) == [], name
            assert page.locator("div.scroll").first.evaluate("e => e.scrollWidth > e.clientWidth")
    finally:
        page.close()
