"""Every converter on its synthetic dump, end to end: rows, joins, quirks, splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from polypbench import catalog, schema, sizes
from polypbench.manifest import Manifest
from polypbench.prepare import prepare
from polypbench.prepare.engine import work_dir
from polypbench.splits import read_split, verify

DATASETS = ("real-colon", "sun", "sun-seg")


def truth_keys(prep: Any) -> set[tuple]:
    boxes = prep.synth.boxes
    root = Path(prep.synth.root)
    rel = [(root / f).relative_to(prep.raw).as_posix() for f in boxes["frame_file"]]
    return set(zip(rel, boxes["xmin"], boxes["ymin"], boxes["xmax"], boxes["ymax"], strict=True))


@pytest.mark.parametrize("name", DATASETS)
def test_rows_equal_the_boxes_written(prepared: Any, name: str) -> None:
    prep = prepared[name]
    frames = Manifest.open(prep.out).frames
    assert prep.report.skipped == 0, prep.report.problems
    assert len(frames) == len(prep.synth.boxes) == prep.report.rows
    got = set(zip(frames["frame_path"], frames["xmin"], frames["ymin"], frames["xmax"], frames["ymax"], strict=True))
    assert got == truth_keys(prep)
    assert all((prep.raw / p).is_file() for p in frames["frame_path"])  # paths relative to the raw root
    assert not frames.duplicated(["polyp_id", "frame_index"]).any()


@pytest.mark.parametrize("name", DATASETS)
def test_sizes_and_classes_are_joined_from_the_metadata(prepared: Any, name: str) -> None:
    frames = Manifest.open(prepared[name].out).frames
    if name == "real-colon":
        lesions = catalog.read_real_colon_lesions().set_index("unique_object_id")
        expected = lesions.loc[frames["polyp_id"].str.split("/").str[1], "size [mm]"].to_numpy()
        assert frames["polyp_id"].nunique() == 132
    else:
        cases = catalog.read_sun_cases().set_index("case_id")
        expected = cases.loc[frames["patient_id"].str[4:].astype(int), "size_mm"].to_numpy()
        assert frames["polyp_id"].nunique() == 100
    np.testing.assert_array_equal(frames["size_mm"].to_numpy(), expected.astype(np.float32))
    np.testing.assert_array_equal(frames["size_class3"], sizes.size_class3(frames["size_mm"]))
    np.testing.assert_array_equal(frames["size_class2"], sizes.size_class2(frames["size_mm"]))


@pytest.mark.parametrize("name", DATASETS)
def test_published_split_is_used_and_no_patient_straddles_it(prepared: Any, name: str) -> None:
    out = prepared[name].out
    assert verify(out).startswith("OK")
    frames = Manifest.open(out).frames
    assert (frames.groupby("patient_id")[["split", "fold"]].nunique() == 1).all().all()
    published = read_split(name).set_index("patient_id")
    assert (frames["split"].to_numpy() == published.loc[frames["patient_id"], "split"].to_numpy()).all()
    assert set(frames["split"]) == {"train", "validation", "test"}


@pytest.mark.parametrize("name", DATASETS)
def test_polyps_table_and_metadata(prepared: Any, name: str) -> None:
    out = prepared[name].out
    manifest = Manifest.open(out)
    polyps, frames = manifest.polyps, manifest.frames
    assert polyps["polyp_id"].is_unique
    assert polyps.set_index("polyp_id")["n_frames"].to_dict() == frames["polyp_id"].value_counts().to_dict()
    meta = manifest.metadata
    assert meta[schema.META_DATASET] == name and meta[schema.META_SPLIT_VERSION] == "v1"
    polyps_meta = pq.read_schema(out / "polyps.parquet").metadata
    assert polyps_meta[schema.META_SPLIT_HASH.encode()] == meta[schema.META_SPLIT_HASH].encode()
    assert not work_dir(out).exists() and not (out / ".parts").exists()


def test_real_colon_quirks(prepared: Any) -> None:
    prep = prepared["real-colon"]
    frames = Manifest.open(prep.out).frames
    two = frames.groupby("frame_path")["polyp_id"].nunique()
    assert (two >= 2).any(), "a frame with two polyps must give two rows"
    third = frames["polyp_id"] == "real-colon/003-012_3"  # the 3rd lesion of 003-012 (num_lesions says 2)
    assert frames.loc[third, "size_mm"].iloc[0] == 4.0
    assert "trasnverse" not in set(frames["site"]) and "caecum" not in set(frames["site"])
    assert frames.loc[frames["polyp_id"] == "real-colon/004-003_2", "site"].iloc[0] == "transverse"
    assert set(frames["endoscope"]) == {"Olympus", "Fujifilm"}
    assert "NO POLYP" in set(frames["histology"])
    # video 001-012's ".0" frames are read (as negatives): every XML was counted
    n_xml = sum(1 for _ in prep.raw.glob("*_annotations/*.xml"))
    assert prep.report.files == n_xml and prep.report.negative_frames > 0


def test_sun_frame_keys_survive_restarting_image_numbers(prepared: Any) -> None:
    frames = Manifest.open(prepared["sun"].out).frames
    number = frames["frame_path"].str.extract(r"image(\d+)\.jpg$")[0].astype(int)
    per_case = pd.DataFrame({"polyp": frames["polyp_id"], "number": number})
    assert per_case.duplicated().any(), "the synthetic dump must repeat image numbers within a case"
    assert not frames.duplicated(["polyp_id", "frame_index"]).any()
    assert any("negative cases" in note for note in prepared["sun"].report.notes)


def test_sun_seg_clips_map_to_cases(prepared: Any) -> None:
    frames = Manifest.open(prepared["sun-seg"].out).frames
    assert (frames["video_id"].str.split("_").str[0] == frames["patient_id"]).all()
    assert frames.groupby("patient_id")["video_id"].nunique().max() >= 2
    # frame_index is segment * 10000 + image number, as for SUN, so both views key a frame alike
    parts = frames["frame_path"].str.extract(r"_a(\d+)_ayy_image(\d+)\.jpg$").astype(int)
    assert (frames["frame_index"] == parts[0] * 10000 + parts[1]).all()


@pytest.mark.slow
def test_misawa_is_the_sun_converter_under_its_journal_name(prepared: Any, tmp_path: Path) -> None:
    report = prepare("misawa", prepared["sun"].raw, tmp_path / "misawa", workers=1)
    frames = Manifest.open(tmp_path / "misawa").frames
    sun = Manifest.open(prepared["sun"].out).frames
    assert report.rows == len(sun) and set(frames["dataset"]) == {"misawa"}
    assert (frames["polyp_id"].str.replace("misawa/", "sun/") == sun["polyp_id"]).all()
    assert verify(tmp_path / "misawa").startswith("OK")


@pytest.mark.slow
def test_parallel_output_equals_serial(prepared: Any, tmp_path: Path) -> None:
    prep = prepared["real-colon"]
    prepare("real-colon", prep.raw, tmp_path / "par", workers=2)
    assert pq.read_table(tmp_path / "par" / "frames.parquet").equals(pq.read_table(prep.out / "frames.parquet"))
