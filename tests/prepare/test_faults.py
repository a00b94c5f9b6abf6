"""The fault corpus: one damaged copy of a small synthetic dump per kind of bad input, run through the CLI.

For every fault: without --strict the run succeeds, counts exactly the expected problems, names the file in the
example line, keeps every good row, and prints no traceback; with --strict it stops with one ``Error:`` line naming
the file (a fix such as ``clamped`` never stops it). The last-resort ``internal`` kind never occurs except where
a test provokes it on purpose.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from polypbench.cli import main
from polypbench.prepare import prepare
from tests.helpers import link_copy, replace_file
from tests.prepare.helpers import BASE as _base
from tests.prepare.helpers import KEY, Small, counts


@dataclass
class Fault:
    """What a damaged dump must give: problem counts beyond the clean run's, a string the first line of the
    fault's kind contains, the rows lost, and whether --strict stops."""

    problems: dict[str, int]
    named: str
    lost: int = 0
    strict_stops: bool = True
    kind: str = field(init=False)

    def __post_init__(self) -> None:
        self.kind = next(iter(self.problems))

# ---------------------------------------------------------------------------------------------------- helpers
def xml_with(raw: Path, boxes: int = 1, video: str = "001-001") -> Path:
    """The first annotation of ``video`` (numeric order) with exactly ``boxes`` objects."""
    paths = sorted((raw / f"{video}_annotations").glob("*.xml"), key=lambda p: float(p.stem.rsplit("_", 1)[1]))
    return next(p for p in paths if p.read_bytes().count(b"<object>") == boxes)


def sub(path: Path, pattern: bytes, repl: bytes) -> None:
    data = path.read_bytes()
    new = re.sub(pattern, repl, data, count=1)
    assert new != data, pattern
    replace_file(path, new)


def rename(path: Path, name: str) -> None:
    data = path.read_bytes()
    path.unlink()
    (path.parent / name).write_bytes(data)


def sun_frame(raw: Path, case: int = 1) -> Path:
    txt = raw / "SUN-Positive" / "annotation_txt" / f"case{case}.txt"
    return raw / "SUN-Positive" / f"case{case}" / txt.read_text().split()[0]


def seg_json(raw: Path) -> Path:
    return raw / "TrainDataset" / "Detection" / "bbox_annotation.json"


def edit_json(path: Path, fn: Callable[[dict], None]) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    replace_file(path, json.dumps(doc))


def make_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside.txt").write_text("a folder where a file should be")


def make_link(path: Path, target: str) -> None:
    path.unlink()
    path.symlink_to(target)


# ---------------------------------------------------------------------------------------------------- REAL-Colon
def truncated_xml(raw: Path) -> Fault:
    path = xml_with(raw)
    replace_file(path, path.read_bytes()[:-40])
    return Fault({"malformed_xml": 1}, path.name, lost=1)


def damaged_positive_still_ending_well(raw: Path) -> Fault:
    """Damage in the middle of a positive file that still ends in </annotation> must not pass as a negative."""
    path = xml_with(raw)
    data = path.read_bytes()
    start = data.index(b"<object>")
    replace_file(path, data[:start] + b"\x00garbage\x00" + data[start + 20:])
    return Fault({"malformed_xml": 1}, path.name, lost=1)


def objects_cut_but_well_formed(raw: Path) -> Fault:
    """A positive whose <object> open tag was overwritten: well-terminated, yet not provably negative."""
    path = xml_with(raw)
    sub(path, rb"<object>", b"<obxect>")
    return Fault({"malformed_xml": 1}, path.name, lost=1)


def coordinate_inf(raw: Path) -> Fault:
    path = xml_with(raw)
    sub(path, rb"<xmax>\d+</xmax>", b"<xmax>inf</xmax>")
    return Fault({"bad_value": 1}, "<bndbox/xmax>", lost=1)


def width_1e400(raw: Path) -> Fault:
    path = xml_with(raw)
    sub(path, rb"<width>\d+</width>", b"<width>1e400</width>")
    return Fault({"bad_value": 1}, "<size/width>", lost=1)


def width_above_int32(raw: Path) -> Fault:
    path = xml_with(raw)
    sub(path, rb"<width>\d+</width>", b"<width>4294967296</width>")
    return Fault({"bad_value": 1}, "<size/width>: 4294967296 is out of range", lost=1)


def coordinate_not_a_number(raw: Path) -> Fault:
    path = xml_with(raw)
    sub(path, rb"<ymin>\d+</ymin>", b"<ymin>12px</ymin>")
    return Fault({"bad_value": 1}, "<bndbox/ymin>: '12px' is not a number", lost=1)


def file_name_inf(raw: Path) -> Fault:
    path = xml_with(raw)
    rename(path, "001-001_inf.xml")
    return Fault({"bad_annotation": 1}, "001-001_inf.xml", lost=1)


def file_name_index_above_int32(raw: Path) -> Fault:
    path = xml_with(raw)
    rename(path, "001-001_99999999999.xml")
    return Fault({"bad_value": 1}, "001-001_99999999999.xml", lost=1)


def file_name_negative_index(raw: Path) -> Fault:
    path = xml_with(raw)
    rename(path, "001-001_-10.xml")
    return Fault({"bad_annotation": 1}, "001-001_-10.xml", lost=1)


def unique_id_not_utf8(raw: Path) -> Fault:
    path = xml_with(raw)
    sub(path, rb"<unique_id>001-001_", b"<unique_id>001-\xff01_")
    return Fault({"malformed_xml": 1}, f"{path.name}: <unique_id> is not valid UTF-8", lost=1)


def box_wholly_outside(raw: Path) -> Fault:
    path = xml_with(raw)
    sub(path, rb"<xmin>\d+</xmin>", b"<xmin>5000</xmin>")
    sub(path, rb"<xmax>\d+</xmax>", b"<xmax>6000</xmax>")
    return Fault({"box_outside_image": 1}, path.name, lost=1)


def box_past_the_edge(raw: Path) -> Fault:
    path = xml_with(raw)
    sub(path, rb"<ymax>\d+</ymax>", b"<ymax>99999</ymax>")
    return Fault({"clamped": 1}, path.name, lost=0, strict_stops=False)


def box_starting_on_the_last_column(raw: Path) -> Fault:
    """The owners' exporter caps every coordinate at W-1: this box would become zero-width there; we drop it."""
    path = xml_with(raw)
    width = re.search(rb"<width>(\d+)</width>", path.read_bytes()).group(1)  # type: ignore[union-attr]
    sub(path, rb"<xmin>\d+</xmin>", b"<xmin>" + str(int(width) - 1).encode() + b"</xmin>")
    sub(path, rb"<xmax>\d+</xmax>", b"<xmax>" + str(int(width) + 5).encode() + b"</xmax>")
    return Fault({"box_outside_image": 1}, "capped at", lost=1)


def empty_box(raw: Path) -> Fault:
    path = xml_with(raw)
    data = path.read_bytes()
    xmin = re.search(rb"<xmin>(\d+)</xmin>", data).group(1)  # type: ignore[union-attr]
    sub(path, rb"<xmax>\d+</xmax>", b"<xmax>" + xmin + b"</xmax>")
    return Fault({"empty_box": 1}, path.name, lost=1)


def unknown_lesion(raw: Path) -> Fault:
    path = xml_with(raw)
    sub(path, rb"<unique_id>[^<]+</unique_id>", b"<unique_id>001-001_99</unique_id>")
    return Fault({"unknown_lesion": 1}, path.name, lost=1)


def lesion_of_another_video(raw: Path) -> Fault:
    """A box in a train video naming a test video's lesion would be a test row from a train video."""
    path = xml_with(raw)
    sub(path, rb"<unique_id>[^<]+</unique_id>", b"<unique_id>003-013_1</unique_id>")
    return Fault({"wrong_video": 1}, f"{path.name}: lesion 003-013_1 belongs to video 003-013", lost=1)


def duplicate_lesion_row(raw: Path) -> Fault:
    csv = raw / "lesion_info.csv"
    text = csv.read_text()
    row = next(line for line in text.splitlines() if line.startswith('"001-001_1"'))
    replace_file(csv, text + row.replace(",5,", ",25,") + "\n")
    n = int(_base["real-colon"].frames["polyp_id"].eq("real-colon/001-001_1").sum())
    return Fault({"bad_metadata": 1, "refused_lesion": n}, "unique_object_id '001-001_1' appears 2 times", lost=n)


def lesion_size_inf(raw: Path) -> Fault:
    csv = raw / "lesion_info.csv"
    text = csv.read_text()
    replace_file(csv, re.sub(r'("001-001_2","001-001",)\d+', r"\1inf", text, count=1))
    n = int(_base["real-colon"].frames["polyp_id"].eq("real-colon/001-001_2").sum())
    return Fault({"bad_metadata": 1, "refused_lesion": n}, "size [mm]: inf is out of range", lost=n)


def missing_frame(raw: Path) -> Fault:
    path = xml_with(raw)
    (raw / "001-001_frames" / (path.stem + ".jpg")).unlink()
    return Fault({"missing_frame": 1}, path.stem + ".jpg", lost=1)


def duplicate_box(raw: Path) -> Fault:
    path = xml_with(raw)
    data = path.read_bytes()
    obj = re.search(rb"\s*<object>.*?</object>", data, re.S).group(0)  # type: ignore[union-attr]
    replace_file(path, data.replace(obj, obj + obj, 1))
    return Fault({"duplicate_box": 1}, path.name, lost=0)


def lesion_without_frames(raw: Path) -> Fault:
    for path in (raw / "003-013_annotations").glob("*.xml"):
        data = path.read_bytes()
        if b"003-013_1<" in data:
            replace_file(path, re.sub(rb"\s*<object>(?:(?!</object>).)*003-013_1<.*?</object>", b"", data, flags=re.S))
    return Fault({"lesion_without_frames": 1}, "lesion 003-013_1",
                 lost=int(_base["real-colon"].frames["polyp_id"].eq("real-colon/003-013_1").sum()))


def annotation_is_a_folder(raw: Path) -> Fault:
    path = xml_with(raw)
    make_dir(path)
    return Fault({"not_a_file": 1}, path.name, lost=1)


def annotation_is_a_fifo(raw: Path) -> Fault:
    path = xml_with(raw)
    path.unlink()
    os.mkfifo(path)
    return Fault({"not_a_file": 1}, path.name, lost=1)


def annotation_symlink_loop(raw: Path) -> Fault:
    path = xml_with(raw)
    make_link(path, path.name)
    return Fault({"bad_symlink": 1}, f"{path.name}: symlink loop", lost=1)


def annotation_dangling_symlink(raw: Path) -> Fault:
    path = xml_with(raw)
    make_link(path, "gone.xml")
    return Fault({"bad_symlink": 1}, f"{path.name}: dangling symlink", lost=1)


def annotation_symlink_outside(raw: Path) -> Fault:
    path = xml_with(raw)
    outside = raw.parent / f"{raw.name}-outside.xml"
    outside.write_bytes(path.read_bytes())
    make_link(path, str(outside))
    return Fault({"bad_symlink": 1}, f"{path.name}: symlink leads outside the raw root", lost=1)


def annotation_second_path(raw: Path) -> Fault:
    """A link to another annotation of the same folder: that file is read once, the link is a duplicate."""
    path = xml_with(raw)
    (path.parent / "001-001_99999.xml").symlink_to(path.name)
    return Fault({"duplicate_input": 1}, "001-001_99999.xml", lost=0)


def video_folder_second_path(raw: Path) -> Fault:
    (raw / "001-099_annotations").symlink_to("001-001_annotations")
    return Fault({"duplicate_input": 1}, "001-099_annotations", lost=0)


# ---------------------------------------------------------------------------------------------------- SUN
def sun_frame_empty(raw: Path) -> Fault:
    path = sun_frame(raw)
    replace_file(path, b"")
    return Fault({"bad_frame": 1}, f"{path.name}: empty file", lost=1)


def sun_frame_truncated(raw: Path) -> Fault:
    path = sun_frame(raw)
    replace_file(path, path.read_bytes()[: path.stat().st_size // 2])
    return Fault({"bad_frame": 1}, f"{path.name}: truncated", lost=1)


def sun_frame_not_a_jpeg(raw: Path) -> Fault:
    path = sun_frame(raw)
    replace_file(path, b"GIF89a" + bytes(100))
    return Fault({"bad_frame": 1}, f"{path.name}: not a JPEG", lost=1)


def sun_frame_is_a_folder(raw: Path) -> Fault:
    path = sun_frame(raw)
    make_dir(path)
    return Fault({"not_a_file": 1}, path.name, lost=1)


def sun_frame_symlink_loop(raw: Path) -> Fault:
    path = sun_frame(raw)
    make_link(path, path.name)
    return Fault({"bad_symlink": 1}, f"{path.name}: symlink loop", lost=1)


def sun_frame_dangling(raw: Path) -> Fault:
    path = sun_frame(raw)
    make_link(path, "nowhere.jpg")
    return Fault({"bad_symlink": 1}, f"{path.name}: dangling symlink", lost=1)


def sun_txt_is_a_folder(raw: Path) -> Fault:
    make_dir(raw / "SUN-Positive" / "annotation_txt" / "case2.txt")
    n = int(_base["sun"].frames["patient_id"].eq("case2").sum())
    return Fault({"not_a_file": 1, "lesion_without_frames": 1}, "case2.txt", lost=n)


def sun_txt_symlink_loop(raw: Path) -> Fault:
    make_link(raw / "SUN-Positive" / "annotation_txt" / "case2.txt", "case2.txt")
    n = int(_base["sun"].frames["patient_id"].eq("case2").sum())
    return Fault({"bad_symlink": 1, "lesion_without_frames": 1}, "case2.txt: symlink loop", lost=n)


def sun_txt_dangling(raw: Path) -> Fault:
    make_link(raw / "SUN-Positive" / "annotation_txt" / "case3.txt", "case33.txt")
    n = int(_base["sun"].frames["patient_id"].eq("case3").sum())
    return Fault({"bad_symlink": 1, "lesion_without_frames": 1}, "case3.txt: dangling symlink", lost=n)


def sun_class_id_undefined(raw: Path) -> Fault:
    """SUN defines class 0 (polyp) and 1 (non-polyp frame): a 7 is a bad line, not a silent negative frame."""
    txt = raw / "SUN-Positive" / "annotation_txt" / "case1.txt"
    lines = txt.read_text().splitlines()
    lines[0] = lines[0].rsplit(",", 1)[0] + ",7"
    replace_file(txt, "\n".join(lines) + "\n")
    return Fault({"bad_annotation": 1}, "case1.txt:1: class_id 7", lost=1)


def sun_coordinate_above_int32(raw: Path) -> Fault:
    txt = raw / "SUN-Positive" / "annotation_txt" / "case1.txt"
    lines = txt.read_text().splitlines()
    name, coords = lines[0].split()
    lines[0] = f"{name} {coords.split(',')[0]},1,99999999999,5,0"
    replace_file(txt, "\n".join(lines) + "\n")
    return Fault({"bad_value": 1}, "case1.txt:1: xmax: 99999999999 is out of range", lost=1)


# ---------------------------------------------------------------------------------------------------- SUN-SEG
def with_marker(path: Path, place: Callable[[dict], None], text: str) -> None:
    """Put a unique number into the json with ``place``, then write ``text`` (json cannot hold it) in its place."""
    doc = json.loads(path.read_text())
    place(doc)
    replace_file(path, json.dumps(doc).replace("12345.5", text, 1))


def first_image(doc: dict) -> dict:
    first = doc["annotation"][0]["id"]
    return next(i for i in doc["images"] if i["id"] == first)


def seg_bbox_infinity(raw: Path) -> Fault:
    with_marker(seg_json(raw), lambda doc: doc["annotation"][0]["bbox"].__setitem__(0, 12345.5), "Infinity")
    return Fault({"bad_value": 1}, "bbox x: inf is not finite", lost=1)


def seg_width_1e400(raw: Path) -> Fault:
    with_marker(seg_json(raw), lambda doc: first_image(doc).__setitem__("width", 12345.5), "1e400")
    return Fault({"bad_value": 1}, "width: inf is not finite", lost=1)


def seg_width_above_int32(raw: Path) -> Fault:
    def change(doc: dict) -> None:
        first_image(doc)["width"] = 2**40

    edit_json(seg_json(raw), change)
    return Fault({"bad_value": 1}, "width: 1099511627776 is out of range", lost=1)


def seg_annotation_not_objects(raw: Path) -> Fault:
    def change(doc: dict) -> None:
        doc["annotation"][0] = [1, 2, 3]

    edit_json(seg_json(raw), change)
    return Fault({"bad_annotation": 1}, "annotation #0", lost=1)


def seg_annotation_not_a_list(raw: Path) -> Fault:
    def change(doc: dict) -> None:
        doc["annotation"] = "boxes"

    edit_json(seg_json(raw), change)
    n = int(_base["sun-seg"].frames["frame_path"].str.startswith("TrainDataset/").sum())
    cases = set(_base["sun-seg"].frames["patient_id"])
    left = set(_base["sun-seg"].frames.loc[~_base["sun-seg"].frames["frame_path"].str.startswith("TrainDataset/"),
                                           "patient_id"])
    return Fault({"bad_annotation": 1, "lesion_without_frames": len(cases - left)}, "'annotation' is str", lost=n)


def seg_loop_symlink(raw: Path) -> Fault:
    (raw / "loop").symlink_to(".")
    return Fault({"bad_symlink": 1}, "loop: symlink to a folder above it", lost=0)


def seg_self_loop_and_dangling_links(raw: Path) -> Fault:
    (raw / "TrainDataset" / "self").symlink_to("self")
    (raw / "TestHardDataset" / "Gone").symlink_to("/nonexistent/SUN-SEG/subset")
    (raw / "README.link").symlink_to("TrainDataset/Detection/bbox_annotation.json")  # a link to a file: no subset
    return Fault({"bad_symlink": 2}, "TestHardDataset/Gone: dangling symlink", lost=0)


def seg_clip_in_two_subsets(raw: Path) -> Fault:
    """A clip of a test subset copied into TrainDataset too (frames and json records): its boxes would be keyed twice
    (polyp_id, frame_index); the later subset's are counted duplicates and never reach the manifest."""
    first = raw / "TestEasyDataset" / "Seen"
    doc = json.loads((first / "Detection" / "bbox_annotation.json").read_text())
    clip = doc["images"][0]["case_name"]
    images = [i for i in doc["images"] if i["case_name"] == clip]
    ids = {i["id"] for i in images}
    boxes = [a for a in doc["annotation"] if a["id"] in ids]
    link_copy(first / "Frame" / clip, raw / "TrainDataset" / "Frame" / clip)

    def add(train: dict) -> None:
        train["images"] += images
        train["annotation"] += boxes

    edit_json(seg_json(raw), add)
    return Fault({"duplicate_box": len(boxes)}, f"TrainDataset/Frame/{clip}/", lost=0)


FAULTS: dict[str, tuple[str, Callable[[Path], Fault]]] = {
    fn.__name__: (dataset, fn)
    for dataset, fns in {
        "real-colon": [truncated_xml, damaged_positive_still_ending_well, objects_cut_but_well_formed, coordinate_inf,
                       width_1e400, width_above_int32, coordinate_not_a_number, file_name_inf,
                       file_name_index_above_int32, file_name_negative_index, unique_id_not_utf8, box_wholly_outside,
                       box_past_the_edge, box_starting_on_the_last_column, empty_box, unknown_lesion,
                       lesion_of_another_video, duplicate_lesion_row,
                       lesion_size_inf, missing_frame, duplicate_box, lesion_without_frames, annotation_is_a_folder,
                       annotation_is_a_fifo, annotation_symlink_loop, annotation_dangling_symlink,
                       annotation_symlink_outside, annotation_second_path, video_folder_second_path],
        "sun": [sun_frame_empty, sun_frame_truncated, sun_frame_not_a_jpeg, sun_frame_is_a_folder,
                sun_frame_symlink_loop, sun_frame_dangling, sun_txt_is_a_folder, sun_txt_symlink_loop, sun_txt_dangling,
                sun_coordinate_above_int32, sun_class_id_undefined],
        "sun-seg": [seg_bbox_infinity, seg_width_1e400, seg_width_above_int32, seg_annotation_not_objects,
                    seg_annotation_not_a_list, seg_loop_symlink, seg_self_loop_and_dangling_links,
                    seg_clip_in_two_subsets],
    }.items()
    for fn in fns
}


# ---------------------------------------------------------------------------------------------------- harmless
def with_bom(path: Path) -> None:
    """Prefix a text file with the UTF-8 byte order mark (what Notepad and Excel save)."""
    replace_file(path, b"\xef\xbb\xbf" + path.read_bytes())


def sun_txt_with_bom(raw: Path) -> None:
    with_bom(raw / "SUN-Positive" / "annotation_txt" / "case1.txt")


def sun_frame_zero_padded(raw: Path) -> None:
    """A complete JPEG followed by 4,096 zero bytes: every reader decodes it."""
    path = sun_frame(raw)
    replace_file(path, path.read_bytes() + bytes(4096))


def seg_json_with_bom(raw: Path) -> None:
    with_bom(seg_json(raw))


def real_colon_text_with_bom(raw: Path) -> None:
    for path in (raw / "lesion_info.csv", raw / "video_info.csv", xml_with(raw), xml_with(raw, boxes=0),
                 xml_with(raw, boxes=2)):
        with_bom(path)


HARMLESS: dict[str, tuple[str, Callable[[Path], None]]] = {
    fn.__name__: (dataset, fn)
    for dataset, fns in {
        "real-colon": [real_colon_text_with_bom],
        "sun": [sun_txt_with_bom, sun_frame_zero_padded],
        "sun-seg": [seg_json_with_bom],
    }.items()
    for fn in fns
}


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["prepare", *args, "--workers", "1"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result.exit_code, result.output


def check_fault(base: Small, raw: Path, out: Path, fault: Fault) -> None:
    """The policy, asserted: counts, the one line, the good rows kept, --strict stops at the fault."""
    code, output = run_cli(base.dataset, "--raw", str(raw), "--out", str(out / "lenient"))
    assert code == 0, output
    report = json.loads((out / "lenient" / "prepare_report.json").read_text())
    expected = dict(base.problems)
    for kind, n in fault.problems.items():
        expected[kind] = expected.get(kind, 0) + n
    assert counts(report) == expected, report["problems"]
    assert "internal" not in report["problems"]
    examples = [p["message"] for p in report["all_problems"] if p["kind"] == fault.kind]
    assert any(fault.named in m for m in examples), examples
    assert all("\n" not in p["message"] for p in report["all_problems"])
    got = pd.read_parquet(out / "lenient" / "frames.parquet")
    assert len(got) == len(base.frames) - fault.lost
    if fault.kind != "clamped":
        kept = got.merge(base.frames, on=[*KEY, "frame_path"], how="left", indicator=True)
        assert (kept["_merge"] == "both").all(), "every row kept is a row of the clean run"
    code, output = run_cli(base.dataset, "--raw", str(raw), "--out", str(out / "strict"), "--strict")
    lines = [line for line in output.strip().splitlines() if not line.startswith(f"prepare {base.dataset}: ")]
    if fault.strict_stops:
        assert code != 0 and len(lines) == 1 and lines[0].startswith("Error: ") and fault.named in lines[0], output
        assert not (out / "strict").exists(), "a failed run publishes nothing"
    else:
        assert code == 0, output


@pytest.mark.parametrize("name", FAULTS)
def test_fault(small: dict[str, Small], tmp_path: Path, name: str) -> None:
    dataset, make = FAULTS[name]
    base = small[dataset]
    raw = link_copy(base.raw, tmp_path / "raw")
    check_fault(base, raw, tmp_path, make(raw))


@pytest.mark.parametrize("name", HARMLESS)
def test_harmless_variation_gives_the_clean_result(small: dict[str, Small], tmp_path: Path, name: str) -> None:
    """Valid input that some reader once misread (a byte order mark, zero padding after a JPEG): the same rows and
    the same problems as the clean dump, nothing dropped."""
    dataset, make = HARMLESS[name]
    base = small[dataset]
    raw = link_copy(base.raw, tmp_path / "raw")
    make(raw)
    code, output = run_cli(dataset, "--raw", str(raw), "--out", str(tmp_path / "out"))
    assert code == 0, output
    report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    assert counts(report) == base.problems, report["problems"]
    got = pd.read_parquet(tmp_path / "out" / "frames.parquet")
    pd.testing.assert_frame_equal(got, base.frames)


@pytest.mark.parametrize("where", ["file", "folder"])
def test_unreadable_input(small: dict[str, Small], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Permission denied on one annotation file or folder (simulated for root, which ignores permissions)."""
    base = small["real-colon"]
    raw = link_copy(base.raw, tmp_path / "raw")
    if where == "file":
        path = xml_with(raw)
        replace_file(path, path.read_bytes())  # its own inode: the mode change stays in this copy
        target = str(path)
        fault = Fault({"unreadable": 1}, f"{Path(target).name}: cannot read (Permission denied)", lost=1)
    else:
        target = str(raw / "001-012_annotations")  # holds no boxes: only the folder's own problem is counted
        fault = Fault({"unreadable": 1}, "001-012_annotations: cannot read (Permission denied)", lost=0)
    os.chmod(target, 0)
    name = "open" if where == "file" else "scandir"
    real: Any = getattr(os, name)

    def deny(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path) == target:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, name, deny)
    try:
        check_fault(base, raw, tmp_path, fault)
    finally:
        os.chmod(target, 0o755)


def test_an_unexpected_error_is_a_counted_internal_problem(small: dict[str, Small], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from polypbench.prepare import real_colon

    base = small["real-colon"]
    name = xml_with(base.raw).name
    real_parse = real_colon.parse_voc

    def broken(data: bytes) -> object:
        if f"<filename>{name[:-4]}.jpg<".encode() in data:
            raise RuntimeError("boom")
        return real_parse(data)

    monkeypatch.setattr(real_colon, "parse_voc", broken)
    report = prepare("real-colon", base.raw, tmp_path / "out", workers=1)
    assert set(report.problems) == {"internal"} and name in report.problems["internal"]["examples"][0]  # type: ignore[index]
    assert "RuntimeError: boom" in report.problems["internal"]["examples"][0]  # type: ignore[index]
    assert report.rows == len(base.frames) - 1


@pytest.mark.parametrize("case", ["out_is_a_file", "out_not_writable", "out_foreign_folder"])
def test_bad_output_is_one_line(small: dict[str, Small], tmp_path: Path, case: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    out = {"out_is_a_file": blocker, "out_not_writable": blocker / "sub" / "out",
           "out_foreign_folder": tmp_path}[case]
    code, output = run_cli("real-colon", "--raw", str(small["real-colon"].raw), "--out", str(out))
    lines = output.strip().splitlines()
    named = str(tmp_path if case == "out_foreign_folder" else blocker)
    assert code != 0 and len(lines) == 1 and lines[0].startswith("Error: ") and named in lines[0], output
    assert blocker.read_text() == "a file"
