"""The HTML and Markdown reports: rendered from templates, every number through the one formatter, text escaped."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from polypbench.evaluate import compare, format_stat, score
from polypbench.evaluate.format import format_count
from polypbench.evaluate.report import write_report
from polypbench.leaderboard.columns import PRIMARY

from .helpers import frames, polyp_level, wide_polyp_level


def test_report_shows_every_table_with_formatted_numbers(small_manifest: Path, tmp_path: Path) -> None:
    result = compare(frames(size_mm=np.arange(14.0).tolist()), polyp_level(), small_manifest, n_bootstrap=20, name="a",
                     other_name="b")
    html_path, png, md_path = write_report(result, tmp_path / "r.html", primary=PRIMARY)
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
    folded = re.findall(r'<details id="(?!about)[^"]+"><summary>([^<]+)</summary>', page)
    sections = ["Summary", "Per polyp", "Per frame", "Per frame, patient-weighted", "Per patient", "Comparison"]
    assert [h.split(" (")[0].split(":")[0] for h in folded] == sections, folded
    assert all(f"\n## {html.unescape(h)}\n" in md for h in folded)  # the same sections


def test_report_escapes_names_in_html_and_pipes_in_markdown(small_manifest: Path, tmp_path: Path) -> None:
    result = score(polyp_level(), small_manifest, n_bootstrap=5, name="<script>x|y</script>")
    html_path, *_, md_path = write_report(result, tmp_path / "r.html", primary=PRIMARY)
    page = html_path.read_text()
    assert "<script" not in page and "&lt;script&gt;x|y&lt;/script&gt;" in page
    assert "polypbench evaluation: <script>x|y</script>" in md_path.read_text()  # Markdown title: the name as given


def test_frame_views_count_frames_not_polyps(small_manifest: Path, tmp_path: Path) -> None:
    result = score(frames(size_mm=np.arange(14.0).tolist()), small_manifest, n_bootstrap=10)
    html_path, *_ = write_report(result, tmp_path / "r.html", primary=PRIMARY)
    page = html_path.read_text()
    body = page.index("</nav>")  # after the contents list, which names the views too
    for view in ("Per frame (every", "Per frame, patient-weighted"):
        section = page[page.index(view, body):]
        section = section[:section.index("</table>")]
        assert "<th>n frames</th>" in section and "<td>14</td>" in section and "n polyps" not in section, view
    headline = page[page.index("Per polyp (HEADLINE", body):]
    assert "<th>n polyps</th>" in headline[:headline.index("</table>")]
    terminal = result.summary_table()
    assert terminal.count("n frames") == 2 and terminal.count("n polyps") == 1


def test_comparison_side_by_side_with_p(wide_manifest: Path, tmp_path: Path) -> None:
    result = compare(wide_polyp_level(), wide_polyp_level(2.0), wide_manifest, n_bootstrap=50, name="a",
                     other_name="b")
    html_path, *_, md_path = write_report(result, tmp_path / "r.html", primary=PRIMARY)
    page, md = html_path.read_text(), md_path.read_text()
    key = "polyp/size/pooled/mae_mm"
    assert result.comparison is not None
    diff = result.comparison["metrics"][key]
    row = [format_stat(result.stat(key), key), format_stat(result.comparison["other_metrics"][key], key),
           format_stat(diff, key), f"{diff.p_greater:.3f}"]
    assert "<td>" + "</td><td>".join(row) + "</td>" in page and "| " + " | ".join(row) + " |" in md
    assert "<th>P(this &gt; other)</th>" in page
    terminal = result.summary_table()
    compared = terminal[terminal.index("this - other"):]
    line = next(ln for ln in compared.splitlines() if ln.startswith("size") and " pooled " in ln and "MAE" in ln)
    assert "P(this > other)" in compared and all(cell in line for cell in row), line
