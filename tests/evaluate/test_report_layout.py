"""The report's layout: a header that says what produced it, a contents list whose links resolve, one anchored
section per view, intervals kept on one line, and a jittered size plot."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner

import polypbench
from polypbench.cli import main
from polypbench.evaluate import score
from polypbench.evaluate.plots import JITTER_MM, jittered
from polypbench.evaluate.report import write_report
from polypbench.leaderboard.columns import PRIMARY

from .helpers import frames


def test_header_contents_and_anchors(small_manifest: Path, tmp_path: Path) -> None:
    result = score(frames(size_mm=np.arange(14.0).tolist()), small_manifest, n_bootstrap=10, name="preds.parquet")
    html_path, _, md_path = write_report(result, tmp_path / "r.html", primary=PRIMARY,
                                         meta={"model": "tiny-hag", "config": "runs/x/config.yaml", "empty": ""})
    page, md = html_path.read_text(), md_path.read_text()
    head = page[:page.index("</header>")]
    for cell in (f"<td>{polypbench.__version__}</td>", "<th>date</th>", "<td>preds.parquet</td>",
                 "<th>model</th><td>tiny-hag</td>", "<th>config</th><td>runs/x/config.yaml</td>"):
        assert cell in head, cell
    assert "empty" not in head  # empty header values are left out
    assert "- model: tiny-hag" in md and f"- polypbench: {polypbench.__version__}" in md
    ids = re.findall(r'id="([^"]+)"', page)
    links = re.findall(r'href="#([^"]+)"', page)
    assert len(ids) == len(set(ids)) and set(links) <= set(ids) and len(set(links)) > 8
    for view in result.views:  # one anchored, folded section per view, listed in the contents
        anchor = view.replace("_", "-")
        assert f'<details id="{anchor}">' in page and f'href="#{anchor}"' in page
    assert set(re.findall(r"\]\(#([^)]+)\)", md)) <= set(re.findall(r'<a id="([^"]+)"></a>', md))
    css = page[page.index("<style>"):page.index("</style>")]
    assert re.search(r"td,th\{[^}]*white-space:nowrap", css) and ".scroll{overflow-x:auto" in css
    assert '<meta name="viewport"' in page and "<script" not in page


def test_the_size_plot_jitters_true_sizes_reproducibly() -> None:
    sizes = np.array([3.0, 3.0, 3.0, 7.0, 12.0])
    x = jittered(sizes)
    assert np.all(np.abs(x - sizes) <= JITTER_MM) and len(set(x[:3])) == 3  # equal sizes no longer overlap
    assert np.array_equal(x, jittered(sizes))


def test_evaluate_names_the_file_and_the_run_in_the_report(small_manifest: Path, tmp_path: Path) -> None:
    preds = tmp_path / "preds.csv"
    frames(size_mm=np.arange(14.0).tolist()).to_csv(preds, index=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: tiny-hag\ntask: regression\nimg_size: 96\nepochs: 6\nseed: 0\n"
                                     "provenance:\n  polypbench: 0.1.0\n  git: {commit: 0123456789abcdef0123, "
                                     "dirty: true}\n")
    out = CliRunner().invoke(main, ["evaluate", str(preds), "--manifest", str(small_manifest), "--bootstrap", "5",
                                    "--report", str(tmp_path / "rep.html"), "--run", str(run)])
    assert out.exit_code == 0, out.output
    head = (tmp_path / "rep.html").read_text().split("</header>")[0]
    config = (run / "config.yaml").resolve()
    for cell in (f"<td>{preds.resolve()}</td>", "<th>prediction sha256</th>", "<th>model</th><td>tiny-hag</td>",
                 f"<td>{config}</td>", "<td>polypbench 0.1.0, git 0123456789ab (modified)</td>",
                 "<th>selection</th><td>test, protocol public</td>"):
        assert cell in head, cell
