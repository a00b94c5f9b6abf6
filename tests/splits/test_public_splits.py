"""The committed public splits: reproducible byte for byte, per patient, following the stated policy."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from polypbench import catalog, sizes
from polypbench.splits import class_counts, read_split, split_file, write_public_splits

REPO = Path(__file__).resolve().parents[2]


def test_regenerated_splits_equal_the_committed_files(tmp_path: Path) -> None:
    for path in write_public_splits(tmp_path):
        committed = REPO / "split_manifests" / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), f"{committed} differs from its regeneration"


def test_package_reads_the_committed_files() -> None:
    for name in ("real-colon", "sun"):
        assert split_file(name).read_bytes() == (REPO / "split_manifests" / name / "v1.csv").read_bytes()
    assert split_file("misawa") == split_file("sun") == split_file("sun-seg")


def test_real_colon_uses_the_official_video_split() -> None:
    table = read_split("real-colon")
    assert len(table) == 60 and table["patient_id"].is_unique
    number = table["patient_id"].str[-3:].astype(int)
    expected = pd.Series("test", index=table.index).mask(number <= 12, "validation").mask(number <= 10, "train")
    assert (table["split"] == expected).all()
    assert (table.loc[table["split"] == "test", "fold"] == -1).all()
    dev = table[table["split"] != "test"]
    assert sorted(dev["fold"].unique()) == [0, 1, 2, 3, 4]
    assert dev["fold"].value_counts().max() - dev["fold"].value_counts().min() <= 4  # grouped, still balanced


def test_sun_holds_out_a_stratified_fifth() -> None:
    table = read_split("sun")
    cases = catalog.read_sun_cases()
    classes = pd.Series(sizes.size_class3(cases["size_mm"]), index="case" + cases["case_id"].astype(str))
    test = table[table["split"] == "test"]
    assert len(test) == 20
    assert classes[test["patient_id"]].value_counts().to_dict() == {0: 12, 1: 4, 2: 4}
    assert (table.loc[table["split"] == "validation", "fold"] == 0).all()
    assert (table.loc[table["split"] == "train", "fold"].between(1, 4)).all()
    for fold, group in table[table["fold"] >= 0].groupby("fold"):
        balanced = ({0: 9, 1: 4, 2: 3}, {0: 10, 1: 3, 2: 3}, {0: 9, 1: 3, 2: 4})
        assert classes[group["patient_id"]].value_counts().to_dict() in balanced, fold


def test_class_counts_cover_every_polyp_once() -> None:
    rc = class_counts("real-colon")
    assert rc["polyps"].sum() == 132 and rc[["diminutive", "small", "large"]].sum().tolist() == [117, 12, 3]
    sun = class_counts("sun")
    assert sun["polyps"].sum() == 100 and sun["patients"].sum() == 100


def test_unknown_dataset_lists_the_valid_names() -> None:
    with pytest.raises(Exception, match="expected one of: misawa, real-colon, sun, sun-seg"):
        split_file("kvasir")
