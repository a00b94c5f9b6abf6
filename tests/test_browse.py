"""`polypbench browse` on the session's prepared synthetic datasets, and `polypbench configs`.

The site is built once per run (the session's ``browse_site``, tests/conftest.py) from every prepared dataset with
--raw; the tests read its files: the pages exist and show a known polyp's facts, no SUN or SUN-SEG frame (or
anything cut from one) is in the site, and every local link resolves. A second, smaller site covers the cases
without frames at hand.
"""

from __future__ import annotations

import hashlib
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from polypbench import datasets as registry
from polypbench import schema
from polypbench.cli import main
from polypbench.sizes import CLASS_SCHEMES
from polypbench.train.config import packaged_configs
from tests.helpers import DATASETS, Prepared, link_copy, replace_file, run_browse


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [(tag, value) for name, value in attrs if name in ("href", "src") and value]


def links(page: Path) -> list[tuple[str, str]]:
    """(tag, URL) of every href and src of an HTML page."""
    parser = _Links()
    parser.feed(page.read_text())
    return parser.links


def local_target(page: Path, url: str) -> Path | None:
    """The file a link of ``page`` points to on this machine (None: a web link or an in-page anchor)."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https") or url.startswith("#"):
        return None
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return (page.parent / unquote(parsed.path)).resolve()


@pytest.fixture
def site(browse_site: tuple[Path, str]) -> tuple[Path, str]:
    """The session's site of every prepared dataset with --raw (tests/conftest.py) and what `browse` printed."""
    return browse_site


@pytest.mark.e2e
def test_every_dataset_has_an_overview_and_a_page_per_polyp(site: tuple[Path, str], prepared) -> None:
    out, printed = site
    index = (out / "index.html").read_text()
    for name in DATASETS:
        polyps = pq.read_table(prepared[name].out / schema.POLYPS_FILE).to_pandas()
        assert len(list((out / name).glob("polyp-*.html"))) == len(polyps)
        assert f"{name}: {len(polyps)} polyp pages" in printed
        overview = (out / name / "index.html").read_text()
        assert "Splits and folds" in overview and "Problems counted by prepare" in overview
        assert all((out / name / "plots" / f"{plot}.svg").stat().st_size > 1000
                   for plot in ("balance", "sizes", "frames"))
        assert f'href="{name}/index.html"' in index and index.count(f'data-dataset="{name}"') == len(polyps)


@pytest.mark.parametrize("dataset", ["real-colon", "sun"])
@pytest.mark.e2e
def test_a_known_polyp_page_shows_its_size_class_split_and_fold(site: tuple[Path, str], prepared,
                                                                  dataset: str) -> None:
    out, _ = site
    polyps = pq.read_table(prepared[dataset].out / schema.POLYPS_FILE).to_pandas()
    polyp = polyps[polyps["fold"] >= 0].iloc[-1]
    page = (out / dataset / f"polyp-{polyp['polyp_id'].split('/', 1)[1]}.html").read_text()
    facts = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]*)</dd>", page))
    assert facts["size"] == f"{float(polyp['size_mm']):g} mm"
    assert facts["class"] == CLASS_SCHEMES["triclass"][int(polyp["size_class3"])]
    assert (facts["split"], facts["fold"]) == (polyp["split"], str(int(polyp["fold"])))
    assert (facts["patient"], facts["video"]) == (polyp["patient_id"], polyp["video_id"])
    assert facts["histology"] == (polyp["histology"] or "-")
    assert int(polyp["n_frames"]) > 1 and page.count('class="crop"') == 1 and 'class="box"' in page  # --frames 1
    assert f"1 of {int(polyp['n_frames'])} annotated frames" in page


@pytest.mark.e2e
def test_no_sun_frame_is_copied_into_the_site(site: tuple[Path, str], prepared) -> None:
    out, _ = site
    closed = [n for n in DATASETS if not registry.get(n).redistribute_frames]
    assert closed, "the registry marks SUN and SUN-SEG frames as not redistributable"
    frame_hashes = set()
    for name in closed:
        for rel in pq.read_table(prepared[name].out / schema.FRAMES_FILE, columns=["frame_path"])["frame_path"]:
            frame_hashes.add(hashlib.sha256((prepared[name].raw / rel.as_py()).read_bytes()).digest())
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not {hashlib.sha256(p.read_bytes()).digest() for p in files} & frame_hashes
    for name in closed:  # nothing but pages and plots: no thumbnail, crop or frame of any kind
        assert {p.suffix for p in (out / name).rglob("*") if p.is_file()} == {".html", ".svg"}
        page = next((out / name).glob("polyp-*.html"))
        sources = [url for tag, url in links(page) if tag == "img"]
        assert sources and all(url.startswith("file://") for url in sources)
        assert all(local_target(page, url).is_relative_to(prepared[name].raw.resolve()) for url in sources)
    thumbs = list((out / "real-colon" / "thumbs").glob("*.jpg"))
    assert thumbs and all(t.stat().st_size < 20_000 for t in thumbs)  # REAL-Colon's licence allows thumbnails


@pytest.mark.e2e
def test_every_local_link_and_image_resolves(site: tuple[Path, str]) -> None:
    out, _ = site
    pages = list(out.rglob("*.html"))
    checked = 0
    for page in pages:
        for _, url in links(page):
            target = local_target(page, url)
            if target is not None:
                assert target.is_file(), f"{page.relative_to(out)}: {url}"
                checked += 1
    assert checked > len(pages)


def _without_raw_root(prepared: Prepared, dst: Path) -> Path:
    """A copy of a prepared folder whose recorded raw root no longer exists."""
    copy = link_copy(prepared.out, dst)
    table = pq.read_table(copy / schema.FRAMES_FILE)
    meta = dict(table.schema.metadata)
    meta[schema.META_RAW_ROOT.encode()] = str(dst.parent / "moved-away").encode()
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf)
    replace_file(copy / schema.FRAMES_FILE, buf.getvalue())
    return copy


@pytest.mark.e2e
def test_without_a_raw_dump_shards_give_real_colon_thumbnails_and_sun_pages_say_why(prepared, tmp_path: Path) -> None:
    from polypbench.shards import materialize

    sun = _without_raw_root(prepared["sun"], tmp_path / "sun")
    real_colon = _without_raw_root(prepared["real-colon"], tmp_path / "real-colon")
    materialize(real_colon, size=64, margin=0.5, workers=1, raw_root=prepared["real-colon"].raw)
    printed = run_browse(sun, real_colon, "--out", tmp_path / "site", "--frames", "1")
    assert "sun: 100 polyp pages, no pictures" in printed and "real-colon: 132 polyp pages, 132 thumbnails" in printed
    page = (tmp_path / "site" / "sun" / "polyp-case1.html").read_text()
    assert "No pictures: no raw dump" in page and "does not allow copying" in page and "<img" not in page
    page = (tmp_path / "site" / "real-colon" / "polyp-001-001_1.html").read_text()
    assert "materialize" in page and '<img src="thumbs/001-001_1-' in page


@pytest.mark.e2e
def test_a_missing_frame_is_counted_and_named_and_an_earlier_site_replaced(prepared, tmp_path: Path) -> None:
    raw = link_copy(prepared["real-colon"].raw, tmp_path / "raw-real-colon")
    first = pq.read_table(prepared["real-colon"].out / schema.FRAMES_FILE).to_pandas().sort_values(
        ["polyp_id", "frame_index"]).iloc[0]
    (raw / first["frame_path"]).unlink()
    earlier = tmp_path / "site"  # an earlier site is replaced as a whole
    earlier.mkdir()
    (earlier / "browse.json").write_text("{}")
    (earlier / "gone.html").write_text("a page of a polyp since removed")
    printed = run_browse(prepared["real-colon"].out, "--raw", raw, "--out", earlier, "--frames", "1")
    assert not (earlier / "gone.html").exists() and (earlier / "browse.json").stat().st_size > 2
    assert "131 thumbnails; 1 frames missing or unreadable" in printed
    page = (tmp_path / "site" / "real-colon" / f"polyp-{first['polyp_id'].split('/', 1)[1]}.html").read_text()
    assert f"{first['frame_path']} is missing" in page


@pytest.mark.parametrize("args, message", [
    (["--out", "{other}"], "a folder with other files"),
    (["--raw", "{raw}", "--raw", "{raw}", "--out", "{site}"], "2 --raw for 1 prepared folders"),
])
def test_refusals_are_one_line(prepared, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    values = {"other": tmp_path / "other", "raw": prepared["sun"].raw, "site": tmp_path / "site"}
    result = CliRunner().invoke(main, ["browse", str(prepared["sun"].out), *(a.format(**values) for a in args)])
    assert result.exit_code != 0 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_configs_lists_every_packaged_config() -> None:
    result = CliRunner().invoke(main, ["configs"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    assert sorted(rows) == packaged_configs()
    assert rows["demo-regression"][1:] == ["regression", "tiny-hag", "64", "cpu", "polyp"]
    assert rows["resnet18-hag"][1:] == ["regression", "resnet18-hag", "384", "cuda", "polyp"]
