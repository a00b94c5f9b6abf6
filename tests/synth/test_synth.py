"""Synthetic raw dumps: exact layout facts of each dataset, ground truth that matches the files, determinism."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from polypbench import catalog, datasets
from polypbench.errors import ConfigError
from polypbench.prepare.voc import parse_voc
from polypbench.synth import synthesize
from polypbench.synth.common import SynthSummary
from polypbench.synth.real_colon import frame_size
from tests.helpers import SYNTH, Prepared

SUN_NAME = re.compile(r"^case_M_\d{14}_0U6\d{13}_1_\d{3}_\d{3}-1_a(\d+)_ayy_image(\d{4})\.jpg$")
TXT_LINE = re.compile(r"^(\S+\.jpg) (\d+),(\d+),(\d+),(\d+),0$")


FRAMES, NEGATIVES = SYNTH["frames_per_polyp"], SYNTH["negatives_per_video"]
"""The options the session's dumps were made with (tests/conftest.py, ``dumps``): the layout facts below follow them."""


@pytest.fixture
def real(dumps: dict[str, SynthSummary]) -> SynthSummary:
    return dumps["real-colon"]


@pytest.fixture
def sun(dumps: dict[str, SynthSummary]) -> SynthSummary:
    return dumps["sun"]


@pytest.fixture
def sun_seg(dumps: dict[str, SynthSummary]) -> SynthSummary:
    return dumps["sun-seg"]


def files(root: Path) -> dict[str, str]:
    """Every file under root (posix relative path) -> sha256."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- REAL-Colon

def test_real_colon_has_all_videos_and_lesions(real: SynthSummary) -> None:
    root = real.root
    videos = sorted(p.name[:-7] for p in root.glob("*_frames"))
    assert len(videos) == 60 and sorted(p.name[:-12] for p in root.glob("*_annotations")) == videos
    assert real.n_polyps == 132 and real.boxes["polyp_key"].nunique() == 132
    assert Counter(real.boxes["polyp_key"]) == dict.fromkeys(catalog.read_real_colon_lesions()["unique_object_id"],
                                                             FRAMES)
    for name in ("video_info.csv", "lesion_info.csv"):
        assert (root / name).read_bytes() == catalog.shipped_path("real-colon", name).read_bytes()
    top = {p.name for p in root.iterdir() if p.is_file()}
    assert top == {"video_info.csv", "lesion_info.csv", "dataset_description.md"}


def test_real_colon_one_xml_per_jpg_with_unpadded_names(real: SynthSummary) -> None:
    for frames in real.root.glob("*_frames"):
        video = frames.name[:-7]
        jpgs = {p.name[:-4] for p in frames.iterdir()}
        xmls = {p.name[:-4] for p in (real.root / f"{video}_annotations").iterdir()}
        assert jpgs == xmls and jpgs
        suffix = r"\.0" if video == "001-012" else ""
        for stem in jpgs:
            assert re.fullmatch(rf"{video}_(0|[1-9]\d*){suffix}", stem), stem


def test_real_colon_float_suffix_only_for_001_012(real: SynthSummary) -> None:
    with_suffix = {p.parent.name for p in real.root.glob("*_frames/*.0.jpg")}
    assert with_suffix == {"001-012_frames"}
    assert {p.parent.name for p in real.root.glob("*_annotations/*.0.xml")} == {"001-012_annotations"}


def test_real_colon_xml_content(real: SynthSummary) -> None:
    root = real.root
    n_objects: Counter[str] = Counter()
    negatives = 0
    for xml in root.glob("*_annotations/*.xml"):
        data = xml.read_bytes()
        text = data.decode()
        ann = parse_voc(data)
        video = xml.parent.name[:-12]
        assert f"<folder>{video}_frames</folder>" in text and f"<filename>{xml.name[:-4]}.jpg</filename>" in text
        assert "\t\t<database>cosmoimd</database>" in text
        with Image.open(root / f"{video}_frames" / f"{xml.name[:-4]}.jpg") as img:
            brand = "Fujifilm" if img.size == (1248, 959) else "Olympus"
            assert img.size == (ann.width, ann.height) == frame_size(video, brand)
        if not ann.boxes:
            negatives += 1
            assert "<object>" not in text
        for block in re.findall(r"<bndbox>(.*?)</bndbox>", text, re.S):
            assert re.findall(r"<(\w+)>", block) == ["xmin", "xmax", "ymin", "ymax"]
        n_objects[video] += 0
        for box in ann.boxes:
            assert box.unique_id.startswith(video + "_")
            assert 0 <= box.xmin < box.xmax <= ann.width and 0 <= box.ymin < box.ymax <= ann.height
        n_objects[video] = max(n_objects[video], len(ann.boxes))
    assert negatives == 60 * NEGATIVES
    multi = catalog.read_real_colon_lesions().groupby("unique_video_name").size()
    for video, count in multi.items():
        assert (n_objects[video] >= 2) == (count >= 2), video
    assert n_objects["003-012"] >= 2 and set(real.boxes.query("polyp_key.str.startswith('003-012')")["polyp_key"]) == {
        "003-012_1", "003-012_2", "003-012_3"}


def test_real_colon_resolutions_follow_the_table(real: SynthSummary) -> None:
    sizes = real.boxes.drop_duplicates("frame_file").assign(video=lambda d: d.frame_file.str[:7])
    by_video = dict(zip(sizes.video, zip(sizes.width, sizes.height, strict=True), strict=True))
    assert by_video["004-003"] == (1244, 1080) and by_video["004-004"] == (1162, 1007)
    assert by_video["004-012"] == (1160, 1052) and by_video["002-006"] == (1248, 959)
    assert by_video["001-001"] == (1352, 1080)
    videos = catalog.read_real_colon_videos()
    counts = Counter(frame_size(v, b) for v, b in zip(videos.unique_video_name, videos.endoscope_brand, strict=True))
    assert counts[(1352, 1080)] == 29 and counts[(1350, 1080)] == 8
    assert counts[(1248, 959)] == 7 and counts[(1162, 1007)] == 6


# ---------------------------------------------------------------- SUN

def test_sun_txt_lines_and_names(sun: SynthSummary) -> None:
    pos = sun.root / "SUN-Positive"
    txts = sorted(p.name for p in (pos / "annotation_txt").iterdir())
    assert txts == sorted(f"case{n}.txt" for n in range(1, 101))
    for n in range(1, 101):
        lines = (pos / "annotation_txt" / f"case{n}.txt").read_text().splitlines()
        assert len(lines) == FRAMES
        jpgs = {p.name for p in (pos / f"case{n}").iterdir()}
        for line in lines:
            m = TXT_LINE.match(line)
            assert m is not None, line
            assert SUN_NAME.match(m.group(1)) and m.group(1) in jpgs
            x0, y0, x1, y1 = map(int, m.groups()[1:])
            with Image.open(pos / f"case{n}" / m.group(1)) as img:
                assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
                assert img.size in {(1158, 1008), (1240, 1080)}
    assert (pos / "case1" / "case_M_20181001100941_0U62372100109341_1_005_001-1_a2_ayy_image0001.jpg").is_file()


def test_sun_image_numbers_restart_in_every_segment(sun: SynthSummary) -> None:
    for case in (sun.root / "SUN-Positive").glob("case*"):
        if not case.is_dir():
            continue
        parsed = [SUN_NAME.match(p.name) for p in case.iterdir()]
        assert all(parsed)
        segments = {m.group(1) for m in parsed if m}
        numbers = [m.group(2) for m in parsed if m]
        assert len(segments) >= 2 and numbers.count("0001") == len(segments), case.name


def test_sun_negative_cases_have_no_txt(sun: SynthSummary) -> None:
    neg = sun.root / "SUN-Negative"
    cases = sorted(p.name for p in neg.iterdir())
    assert cases == ["case1", "case2"]
    assert all(len(list((neg / c).glob("*.jpg"))) == NEGATIVES for c in cases)
    assert not list(neg.rglob("*.txt"))
    assert not sun.boxes["frame_file"].str.startswith("SUN-Negative").any()


# ---------------------------------------------------------------- SUN-SEG

def _sun_seg_docs(root: Path) -> dict[str, dict]:
    return {p.parent.parent.relative_to(root).as_posix(): json.loads(p.read_text())
            for p in root.rglob("bbox_annotation.json")}


def test_sun_seg_json_uses_singular_annotation_and_matches_masks(sun_seg: SynthSummary) -> None:
    docs = _sun_seg_docs(sun_seg.root)
    assert set(docs) == {"TrainDataset", "TestEasyDataset/Seen", "TestEasyDataset/Unseen", "TestHardDataset/Seen",
                         "TestHardDataset/Unseen"}
    checked = 0
    for subset, doc in docs.items():
        assert "annotation" in doc and "annotations" not in doc and doc["images"]
        boxes = {a["id"]: a["bbox"] for a in doc["annotation"]}
        for image in doc["images"][:6]:
            clip, file_name = image["case_name"], image["file_name"]
            assert re.fullmatch(r"case\d+_\d+", clip) and SUN_NAME.match(file_name + ".jpg")
            assert image["id"] == f"{clip}-a{SUN_NAME.match(file_name + '.jpg').group(1)}-image{file_name[-4:]}"
            mask = np.asarray(Image.open(sun_seg.root / subset / "GT" / clip / f"{file_name}.png"))
            assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
            ys, xs = np.nonzero(mask)
            assert boxes[image["id"]] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            with Image.open(sun_seg.root / subset / "Frame" / clip / f"{file_name}.jpg") as img:
                assert img.size == (image["width"], image["height"]) == mask.shape[::-1]
            checked += 1
        classes = (sun_seg.root / subset / "Classification" / "classification.txt").read_text().splitlines()
        assert len(classes) == len(doc["images"])
        assert all(re.fullmatch(r"\S+\.jpg\t[a-z_]+", line) for line in classes)
    assert checked >= 25


def test_sun_seg_seen_clips_share_cases_with_training_unseen_do_not(sun_seg: SynthSummary) -> None:
    cases: dict[str, set[str]] = defaultdict(set)
    clips: dict[str, set[str]] = defaultdict(set)
    for subset, doc in _sun_seg_docs(sun_seg.root).items():
        for image in doc["images"]:
            cases[subset].add(image["case_name"].split("_")[0])
            clips[subset].add(image["case_name"])
    train = cases["TrainDataset"]
    for subset in ("TestEasyDataset/Seen", "TestHardDataset/Seen"):
        assert cases[subset] and cases[subset] <= train
    for subset in ("TestEasyDataset/Unseen", "TestHardDataset/Unseen"):
        assert cases[subset] and not cases[subset] & train
    all_clips = [c for s in clips.values() for c in s]
    assert len(all_clips) == len(set(all_clips)) and len({c.split("_")[0] for c in all_clips}) == 100


# ---------------------------------------------------------------- ground truth, determinism, converters

@pytest.mark.parametrize("which", ["real", "sun", "sun_seg"])
def test_summary_boxes_match_the_files(which: str, request: pytest.FixtureRequest) -> None:
    summary: SynthSummary = request.getfixturevalue(which)
    boxes = summary.boxes
    assert list(boxes.columns) == ["dataset", "polyp_key", "frame_file", "xmin", "ymin", "xmax", "ymax", "width",
                                   "height", "size_mm"]
    assert summary.n_boxes == len(boxes) and (boxes.xmin < boxes.xmax).all() and (boxes.ymin < boxes.ymax).all()
    assert (boxes.xmin >= 0).all() and (boxes.xmax <= boxes.width).all() and (boxes.ymax <= boxes.height).all()
    assert all((summary.root / f).is_file() for f in boxes.frame_file)
    n_jpg = sum(1 for _ in summary.root.rglob("*.jpg"))
    assert summary.n_images == n_jpg
    if which == "real":
        sizes = catalog.read_real_colon_lesions().set_index("unique_object_id")["size [mm]"]
        assert (boxes.size_mm.to_numpy() == sizes.loc[boxes.polyp_key].to_numpy()).all()
    else:
        sizes = catalog.read_sun_cases().set_index("case_id")["size_mm"]
        assert (boxes.size_mm.to_numpy() == sizes.loc[boxes.polyp_key.astype(int)].to_numpy()).all()


def test_prepare_reads_the_dumps_without_problems(prepared: dict[str, Prepared]) -> None:
    for name in ("real-colon", "sun", "sun-seg"):  # the session's prepare run of the session's dumps
        report, summary = prepared[name].report, prepared[name].synth
        assert report.skipped == 0 and report.rows == summary.n_boxes, report.describe()


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = synthesize("sun", tmp_path / "a", frames_per_polyp=1, negatives_per_video=1, seed=3)
    b = synthesize("sun", tmp_path / "b", frames_per_polyp=1, negatives_per_video=1, seed=3, workers=2)
    c = synthesize("sun", tmp_path / "c", frames_per_polyp=1, negatives_per_video=1, seed=4)
    fa, fb, fc = files(a.root), files(b.root), files(c.root)
    assert fa == fb
    assert fa != fc
    pd.testing.assert_frame_equal(a.boxes, b.boxes)


def test_unknown_dataset_and_non_empty_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="real-colon, sun, sun-seg"):
        synthesize("kvasir", tmp_path / "x")
    assert set(datasets.synth_names()) == {"real-colon", "sun", "sun-seg"}
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(Exception, match="not an empty folder"):
        synthesize("sun", tmp_path / "full")
