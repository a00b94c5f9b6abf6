"""The HTML and Markdown reports: rendered from templates, every number through the one formatter, text escaped."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from polypbench.evaluate import compare, format_stat, score
from polypbench.evaluate.format import format_count
from polypbench.evaluate.report import write_report

from .test_score import frames, polyp_level


def test_report_shows_every_table_with_formatted_numbers(small_manifest: Path, tmp_path: Path) -> None:
    result = compare(frames(size_mm=np.arange(14.0).tolist()), polyp_level(), small_manifest, n_bootstrap=20, name="a",
                     other_name="b")
    html_path, png, md_path = write_report(result, tmp_path / "r.html")
    page, md = html_path.read_text(), md_path.read_text()
    assert png.suffix == ".png" and md_path.suffix == ".md"
    for key in ("polyp/triclass/pooled/macro_f1", "frame_patient/binary5/real-colon/weighted_f1",
                "polyp/triclass/pooled/sensitivity/large", "frame/size/pooled/median_ae_mm"):
        text = format_stat(result.stat(key), key)
        assert f"<td>{text}</td>" in page and f"| {text} |" in md, key
    diff = "polyp/size/pooled/bias_mm"
    assert result.comparison is not None
    assert f"<td>{format_stat(result.comparison['metrics'][diff], diff)}</td>" in page  # the paired difference
    cells = "".join(f"<td>{format_count(v)}</td>" for v in result.confusion_matrices["polyp/binary10/pooled"][0])
    assert cells in page
    assert page.count("<h2>") == md.count("\n## ")  # the twins hold the same sections


def test_report_escapes_names_in_html_and_pipes_in_markdown(small_manifest: Path, tmp_path: Path) -> None:
    result = score(polyp_level(), small_manifest, n_bootstrap=5, name="<script>x|y</script>")
    html_path, *_, md_path = write_report(result, tmp_path / "r.html")
    page = html_path.read_text()
    assert "<script" not in page and "&lt;script&gt;x|y&lt;/script&gt;" in page
    assert "polypbench evaluation: <script>x|y</script>" in md_path.read_text()  # Markdown title: the name as given
