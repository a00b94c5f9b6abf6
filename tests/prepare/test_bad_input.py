"""Bad input: skipped, counted and named without --strict; the first one fails the run with --strict.
Resumable and atomic runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from polypbench.cli import main
from polypbench.errors import InputError, PolypbenchError
from polypbench.prepare import PrepareReport, prepare
from polypbench.prepare.engine import work_dir
from tests.helpers import link_copy, replace_file


def first_positive_xml(raw: Path, video: str = "001-001") -> Path:
    return next(p for p in sorted((raw / f"{video}_annotations").glob("*.xml")) if b"<object>" in p.read_bytes())


def break_xml(raw: Path) -> str:
    path = first_positive_xml(raw)
    replace_file(path, path.read_bytes()[:-40])
    return path.name


def box_outside(raw: Path) -> str:
    path = first_positive_xml(raw)
    data = re.sub(rb"<xmin>\d+</xmin>", b"<xmin>90000</xmin>", path.read_bytes(), count=1)
    replace_file(path, re.sub(rb"<xmax>\d+</xmax>", b"<xmax>99999</xmax>", data, count=1))
    return path.name


def empty_box(raw: Path) -> str:
    path = first_positive_xml(raw)
    data = path.read_bytes()
    xmin = re.search(rb"<xmin>(\d+)</xmin>", data).group(1)  # type: ignore[union-attr]  # synthetic: always there
    replace_file(path, re.sub(rb"<xmax>\d+</xmax>", b"<xmax>" + xmin + b"</xmax>", data, count=1))
    return path.name


def unknown_lesion(raw: Path) -> str:
    path = first_positive_xml(raw)
    data = path.read_bytes()
    replace_file(path, re.sub(rb"<unique_id>[^<]+</unique_id>", b"<unique_id>001-001_99</unique_id>", data, count=1))
    return path.name


def missing_frame(raw: Path) -> str:
    path = first_positive_xml(raw)
    (raw / "001-001_frames" / (path.stem + ".jpg")).unlink()
    return path.stem + ".jpg"


def lesion_without_frames(raw: Path) -> str:
    # every box of lesion 001-005_1 (the only lesion of 001-005) disappears from its XMLs
    for path in (raw / "001-005_annotations").glob("*.xml"):
        data = path.read_bytes()
        if b"<object>" in data:
            replace_file(path, re.sub(rb"\s*<object>.*?</object>", b"", data, flags=re.S))
    return "001-005_1"


CASES = {
    "malformed_xml": break_xml,
    "box_outside_image": box_outside,
    "empty_box": empty_box,
    "unknown_lesion": unknown_lesion,
    "missing_frame": missing_frame,
    "lesion_without_frames": lesion_without_frames,
}


def example(report: PrepareReport, kind: str) -> str:
    """The first message of ``kind`` in a report."""
    examples = report.problems[kind]["examples"]
    assert isinstance(examples, list)
    return str(examples[0])


@pytest.mark.parametrize("kind", CASES)
def test_bad_input_is_skipped_counted_and_named_or_fails_with_strict(prepared: Any, tmp_path: Path, kind: str) -> None:
    raw = link_copy(prepared["real-colon"].raw, tmp_path / "raw")
    named = CASES[kind](raw)
    report = prepare("real-colon", raw, tmp_path / "out", workers=1)
    assert set(report.problems) == {kind}
    assert named in example(report, kind)
    clean = prepared["real-colon"].report.rows
    assert report.rows < clean or kind == "lesion_without_frames" and report.polyps == 131
    result = CliRunner().invoke(main, ["prepare", "real-colon", "--raw", str(raw), "--out", str(tmp_path / "strict"),
                                       "--workers", "1", "--strict"])
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("prepare real-colon: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and named in lines[0], result.output


def test_a_box_past_the_image_edge_is_clamped_kept_and_counted(prepared: Any, tmp_path: Path) -> None:
    raw = link_copy(prepared["real-colon"].raw, tmp_path / "raw")
    path = first_positive_xml(raw)
    replace_file(path, re.sub(rb"<xmax>\d+</xmax>", b"<xmax>99999</xmax>", path.read_bytes(), count=1))
    report = prepare("real-colon", raw, tmp_path / "out", workers=1, strict=True)  # a fix never stops --strict
    assert set(report.problems) == {"clamped"} and report.skipped == 0
    assert report.rows == prepared["real-colon"].report.rows
    frames = pq.read_table(tmp_path / "out" / "frames.parquet").to_pandas()
    row = frames[frames["frame_path"].str.endswith(path.stem + ".jpg")].iloc[0]
    assert row["xmax"] == row["width"] - 1  # REAL-Colon: the owners' exporter caps at W-1 (below)


def owners_coco_box(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """What the REAL-Colon owners' export_coco_format.py makes of a box (shared/research/formats.md): each
    coordinate capped at W-1 (x) or H-1 (y), nothing else changed (negative, zero and negative widths kept)."""
    x0, y0, x1, y1 = box
    return min(x0, width - 1), min(y0, height - 1), min(x1, width - 1), min(y1, height - 1)


def test_real_colon_border_boxes_match_the_owners_exporter(small: Any, tmp_path: Path) -> None:
    """Box for box at the border: the owners' coordinates where they give a usable box; a degenerate box (no
    width or height, before or after their cap) dropped and counted; a negative coordinate clamped to 0 (they
    keep it: docs/datasets.md says where we differ)."""
    raw = link_copy(small["real-colon"].raw, tmp_path / "raw")
    files = [p for p in sorted((raw / "001-001_annotations").glob("*.xml"), key=lambda p: float(p.stem.split("_")[1]))
             if p.read_bytes().count(b"<object>") == 1]
    width = int(re.search(rb"<width>(\d+)</width>", files[0].read_bytes()).group(1))  # type: ignore[union-attr]
    height = int(re.search(rb"<height>(\d+)</height>", files[0].read_bytes()).group(1))  # type: ignore[union-attr]
    w, h = width, height
    cases = {  # name: (box as annotated, what we keep or the problem kind)
        "right edge, exclusive end": ((w - 50, 10, w, 60), "clamped"),
        "far past the bottom": ((10, h - 40, 70, 99999), "clamped"),
        "last pixel already": ((w - 60, h - 60, w - 1, h - 1), None),
        "inside": ((100, 100, 200, 200), None),
        "starts on the last column": ((w - 1, 10, w + 5, 60), "box_outside_image"),
        "left of the image": ((-5, 10, 40, 60), "clamped"),
        "negative width": ((60, 10, 40, 60), "empty_box"),
        "zero height": ((10, 60, 40, 60), "empty_box"),
    }
    for path, (box, _) in zip(files, cases.values(), strict=False):
        data = path.read_bytes()
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
            data = re.sub(rb"<" + tag.encode() + rb">-?\d+</", f"<{tag}>{value}</".encode(), data, count=1)
        replace_file(path, data)
    report = prepare("real-colon", raw, tmp_path / "out", workers=1)
    frames = pq.read_table(tmp_path / "out" / "frames.parquet").to_pandas().set_index("frame_path")
    expected_problems: dict[str, int] = {}
    for path, (name, (box, outcome)) in zip(files, cases.items(), strict=False):
        rel = f"001-001_frames/{path.stem}.jpg"
        if outcome in (None, "clamped"):
            got = tuple(int(v) for v in frames.loc[rel, ["xmin", "ymin", "xmax", "ymax"]])
            owners = owners_coco_box(box, w, h)
            assert got == (max(owners[0], 0), max(owners[1], 0), *owners[2:]), name
            assert got[0] < got[2] < w and got[1] < got[3] < h, name
        else:
            assert rel not in frames.index, name
            assert any(path.name in m for m in report.problems[outcome]["examples"]) or \
                report.problems[outcome]["count"] > 3, name
        if outcome is not None:
            expected_problems[outcome] = expected_problems.get(outcome, 0) + 1
    assert {k: int(v["count"]) for k, v in report.problems.items()} == expected_problems


@pytest.mark.slow
def test_sun_bad_annotation_line_is_named_with_its_line_number(prepared: Any, tmp_path: Path) -> None:
    raw = link_copy(prepared["sun"].raw, tmp_path / "raw")
    txt = next(raw.glob("*/annotation_txt/case7.txt"))
    replace_file(txt, txt.read_text() + "garbage line without a box\n")
    report = prepare("sun", raw, tmp_path / "out", workers=1)
    assert set(report.problems) == {"bad_annotation"}
    n_lines = len(txt.read_text().splitlines())
    assert f"case7.txt:{n_lines}" in example(report, "bad_annotation")


def test_sun_seg_json_with_unknown_image_is_reported(prepared: Any, tmp_path: Path) -> None:
    raw = link_copy(prepared["sun-seg"].raw, tmp_path / "raw")
    path = raw / "TrainDataset" / "Detection" / "bbox_annotation.json"
    stray = '{"id": "case999_1-a1-image0001", "bbox": [1, 1, 5, 5]}, '
    replace_file(path, path.read_text().replace('"annotation": [', '"annotation": [' + stray, 1))
    report = prepare("sun-seg", raw, tmp_path / "out", workers=1)
    assert set(report.problems) == {"bad_annotation"}
    assert "case999_1-a1-image0001" in example(report, "bad_annotation")


def test_metadata_csv_without_a_column_stops_the_run(prepared: Any, tmp_path: Path) -> None:
    raw = link_copy(prepared["real-colon"].raw, tmp_path / "raw")
    csv = raw / "lesion_info.csv"
    replace_file(csv, csv.read_text().replace('"size [mm]"', '"size"', 1))
    with pytest.raises(InputError, match=r"lesion_info\.csv: missing column\(s\) 'size \[mm\]'"):
        prepare("real-colon", raw, tmp_path / "out", workers=1)


def test_an_interrupted_run_keeps_its_work_and_a_rerun_continues(prepared: Any, tmp_path: Path) -> None:
    raw = link_copy(prepared["real-colon"].raw, tmp_path / "raw")
    path = first_positive_xml(raw, "003-001")
    original = path.read_bytes()
    replace_file(path, original[:-40])
    out = tmp_path / "out"
    with pytest.raises(Exception, match="003-001_annotations"):
        prepare("real-colon", raw, out, workers=1, strict=True)  # stops mid-way, like an interruption
    done = sorted(p.stem for p in (work_dir(out) / "parts").glob("*.parquet"))
    assert done and done[-1] < "003-001" and not out.exists()
    replace_file(path, original)
    report = prepare("real-colon", raw, out, workers=1)
    assert report.resumed_units == len(done)
    assert pq.read_table(out / "frames.parquet").equals(pq.read_table(prepared["real-colon"].out / "frames.parquet"))


def test_a_failed_rerun_leaves_the_previous_manifest_intact(prepared: Any, tmp_path: Path) -> None:
    raw = link_copy(prepared["real-colon"].raw, tmp_path / "raw")
    out = tmp_path / "out"
    prepare("real-colon", raw, out, workers=1)
    before = (out / "frames.parquet").read_bytes()
    break_xml(raw)
    with pytest.raises(PolypbenchError, match="malformed XML"):
        prepare("real-colon", raw, out, workers=1, strict=True)
    assert (out / "frames.parquet").read_bytes() == before
