"""The report leads with the answer: the headline card's numbers, the plots as embedded images, the failure gallery
ordered by error (end to end through the CLI on a real synthetic dump), one self-contained file, and the compact
comparison table of `evaluate --compare`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from polypbench.cli import main
from polypbench.evaluate import compare, format_stat
from polypbench.evaluate.format import format_interval, format_value
from polypbench.evaluate.headline import baseline_result
from polypbench.evaluate.plots import calibration
from polypbench.evaluate.report import Extras, write_report
from polypbench.leaderboard.columns import PRIMARY
from polypbench.manifest import Manifest
from tests.helpers import link_copy

from .helpers import frame_predictions

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?!#|data:)|url\(|@import|<script|<link|<iframe""", re.I)
"""Anything in a page that loads a resource from outside it."""


def _between(page: str, first: str, last: str) -> str:
    return page[page.index(f'id="{first}"'):page.index(last if last.startswith("<") else f'id="{last}"')]


def test_the_card_shows_primary_baseline_and_paired_difference(small_manifest: Path, tmp_path: Path) -> None:
    preds = frame_predictions()
    preds["size_mm"] += np.arange(len(preds)) * 0.5
    result = compare(preds, frame_predictions(), small_manifest, n_bootstrap=40, name="a", other_name="b")
    base = baseline_result([small_manifest], split="test", fold=None, protocol="public", n_bootstrap=40, seed=0)
    history = [{"epoch": e, "train_loss": 1 / (e + 1), "val_loss": 1.1 / (e + 1), "val_mae_mm": 3 - e, "lr": 0.1,
                "best": e == 2} for e in range(3)]
    html, _, md = write_report(result, tmp_path / "r.html", primary=PRIMARY, extras=Extras(base, history))
    page = html.read_text()
    card = _between(page, "headline", "</section>")
    stat = result.stat(PRIMARY)
    assert result.comparison is not None
    diff = result.comparison["metrics"][PRIMARY]
    for text in (format_value(stat, PRIMARY), format_interval(stat, PRIMARY),
                 f"{stat.n_polyps} polyps, {stat.n_patients} patients",
                 format_stat(base.stat(PRIMARY), PRIMARY), format_stat(diff, PRIMARY), f"{diff.p_greater:.3f}",
                 "macro F1 · per polyp · triclass · pooled", "real-colon/C_2: true 15 mm (large), predicted 20.8 mm"):
        assert text.replace(">", "&gt;") in card, text
    assert page.index('id="headline"') < page.index('id="contents"') < page.index('id="pictures"') < \
        page.index('id="tables"')  # the answer first, the full tables last
    # the majority baseline is scored on the same polyps as the file: every test polyp, the class of the train split
    assert base.counts == result.counts and base.stat(PRIMARY).value is not None
    pictures = _between(page, "pictures", "tables")
    for anchor in ("confusion", "size-plot", "bland-altman", "reliability", "training"):
        fig = page[page.index(f'<figure id="{anchor}">'):]
        assert fig.index('src="data:image/png;base64,') < fig.index("</figure>"), anchor
    assert "ECE" in pictures and "95% limits of agreement" in page
    assert "<details" in page[page.index('id="tables"'):] and page.count("<summary>") >= 4  # folded
    assert not EXTERNAL.search(page)
    assert "macro F1 · per polyp · triclass · pooled" in md.read_text()


def test_calibration_numbers() -> None:
    # two polyps at confidence 0.9 (one right), two at 0.6 (both right): |0.5-0.9|*2/4 + |1-0.6|*2/4 = 0.4
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]])
    cal = calibration(probs, np.array([0, 1, 1, 2]))
    assert np.isclose(cal.ece, 0.4) and cal.counts.sum() == 4


def test_without_probabilities_or_sizes_their_plots_are_left_out(small_manifest: Path, tmp_path: Path) -> None:
    preds = frame_predictions()[["polyp_id", "frame_index", "size_mm"]]
    result = compare(preds, preds, small_manifest, n_bootstrap=0)
    page = write_report(result, tmp_path / "r.html", primary=PRIMARY)[0].read_text()
    assert '<figure id="size-plot">' in page and '<figure id="reliability">' not in page
    assert '<figure id="training">' not in page and 'id="gallery"' not in page


def _missing_known_polyps(out: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """Frame predictions that are exact except for three known polyps, off by 30, 20 and 10 mm."""
    rows = Manifest.open(out).select("test")
    polyps = sorted(rows["polyp_id"].unique())
    missed = [polyps[-1], polyps[0], polyps[len(polyps) // 2]]
    size = rows["size_mm"].to_numpy(np.float64).copy()
    for offset, pid in zip((30.0, 20.0, 10.0), missed, strict=True):
        size[(rows["polyp_id"] == pid).to_numpy()] += offset
    path = tmp_path / "preds.csv"
    pd.DataFrame({"polyp_id": rows["polyp_id"], "frame_index": rows["frame_index"], "size_mm": size}).to_csv(
        path, index=False)
    return path, missed


@pytest.mark.e2e
def test_the_gallery_puts_the_missed_polyps_first(prepared, tmp_path: Path) -> None:
    data = prepared["real-colon"]
    preds, missed = _missing_known_polyps(data.out, tmp_path)
    report = tmp_path / "rep.html"
    res = CliRunner().invoke(main, ["evaluate", str(preds), "--manifest", str(data.out), "--raw", str(data.raw),
                                    "--bootstrap", "0", "--report", str(report)])
    assert res.exit_code == 0, res.output
    page = report.read_text()
    gallery = page[page.index('id="gallery"'):page.index('id="tables"')]
    shown = re.findall(r'data-polyp="([^"]+)"', gallery)
    assert shown[:3] == missed
    first = gallery[gallery.index(f'data-polyp="{missed[0]}"'):gallery.index(f'data-polyp="{missed[1]}"')]
    assert first.count('src="data:image/jpeg;base64,') >= 1 and "+30.0 mm" in first
    assert "class votes" in first and "right" in gallery[gallery.index(f'data-polyp="{shown[3]}"'):]
    assert not EXTERNAL.search(page) and len(page) < 3_000_000


@pytest.mark.e2e
def test_the_gallery_reads_materialized_shards_without_raw(prepared, tmp_path: Path) -> None:
    from polypbench.evaluate.gallery import THUMB
    from polypbench.shards import materialize

    data = prepared["real-colon"]
    out = link_copy(data.out, tmp_path / "prepared")
    materialize(out, size=THUMB, workers=1, raw_root=data.raw)
    preds, missed = _missing_known_polyps(out, tmp_path)
    res = CliRunner().invoke(main, ["evaluate", str(preds), "--manifest", str(out), "--bootstrap", "0",
                                    "--report", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r.html").read_text()
    gallery = page[page.index('id="gallery"'):page.index('id="tables"')]
    assert re.findall(r'data-polyp="([^"]+)"', gallery)[:3] == missed and "no frames at hand" not in gallery
    first = gallery[gallery.index(f'data-polyp="{missed[0]}"'):gallery.index(f'data-polyp="{missed[1]}"')]
    assert first.count('src="data:image/jpeg;base64,') >= 1


def test_raw_folders_pair_with_manifests(prepared, tmp_path: Path) -> None:
    data = prepared["real-colon"]
    preds, _ = _missing_known_polyps(data.out, tmp_path)
    res = CliRunner().invoke(main, ["evaluate", str(preds), "--manifest", str(data.out), "--raw", str(data.raw),
                                    "--raw", str(data.raw), "--bootstrap", "0", "--report", str(tmp_path / "r.html")])
    assert res.exit_code != 0 and "2 raw folders for 1 manifests" in res.output and "Traceback" not in res.output


def test_compare_prints_one_compact_table(small_manifest: Path, tmp_path: Path) -> None:
    a, b = frame_predictions(), frame_predictions()
    b["size_mm"] += 2.0
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "a.csv"), "--manifest", str(small_manifest),
                                    "--compare", str(tmp_path / "b.csv"), "--bootstrap", "20",
                                    "--json", str(tmp_path / "c.json")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert sum(ln.startswith("metric ") for ln in lines) == 1 and "Per frame" not in res.output
    mae = next(ln for ln in lines if ln.startswith("MAE (mm)"))
    doc = json.loads((tmp_path / "c.json").read_text())
    assert "-2.00" in mae and f"{doc['comparison']['metrics']['polyp/size/pooled/mae_mm']['p_greater']:.3f}" in mae
    # docs/scoring.md shows this table as it is: the same header and the same metric rows
    docs = (Path(__file__).resolve().parents[2] / "docs" / "scoring.md").read_text()
    shown = docs[docs.index("$ polypbench evaluate preds.parquet --manifest prepared/sun --compare"):]
    shown_lines = shown[:shown.index("```")].splitlines()

    def rows(text: list[str]) -> tuple[list[str], list[str]]:
        at = next(i for i, ln in enumerate(text) if ln.startswith("metric "))
        body = [re.split(r"\s{2,}", ln)[0] for ln in text[at + 2:]
                if ln.strip() and not ln.startswith(("  ", "wrote "))]
        return text[at].split(), body

    assert rows(shown_lines) == rows(lines)


def test_without_a_training_split_the_report_has_no_baseline(tmp_path: Path) -> None:
    from .helpers import TEST, write_manifest

    manifest = write_manifest(tmp_path / "real-colon", "real-colon", TEST)  # test polyps only
    frame_predictions().to_csv(tmp_path / "p.csv", index=False)
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "p.csv"), "--manifest", str(manifest), "--bootstrap",
                                    "0", "--report", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    card = _between((tmp_path / "r.html").read_text(), "headline", "</section>")
    assert "majority baseline" not in card and "macro F1" in card
    res = CliRunner().invoke(main, ["baseline", "--manifest", str(manifest), "--out", str(tmp_path / "b.csv")])
    assert res.exit_code != 0 and "no training polyps" in res.output and "Traceback" not in res.output
