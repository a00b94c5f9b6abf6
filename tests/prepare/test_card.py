"""The dataset card prepare writes: `datasets.load_dataset(prepared)` gives named classes and one configuration per
fold, and the card carries the registry's facts and says where the frames are."""

from __future__ import annotations

from typing import Any

import datasets
import pytest
from huggingface_hub import DatasetCard

from polypbench import datasets as registry
from polypbench.manifest import Manifest
from polypbench.sizes import CLASS_SCHEMES
from tests.helpers import DATASETS, Prepared


def _keys(rows: Any) -> list[tuple[str, int]]:
    return sorted(zip(rows["polyp_id"], (int(i) for i in rows["frame_index"]), strict=True))


def test_load_dataset_names_the_classes_and_has_every_fold(prepared: dict[str, Prepared]) -> None:
    out = prepared["sun"].out
    manifest = Manifest.open(out)
    default = datasets.load_dataset(str(out))
    features = default["train"].features
    assert features["size_class3"].names == list(CLASS_SCHEMES["triclass"]) == ["diminutive", "small", "large"]
    assert features["size_class2"].names == list(CLASS_SCHEMES["binary10"])
    first = default["test"][0]["size_class3"]
    assert default["test"].features["size_class3"].int2str(first) in CLASS_SCHEMES["triclass"]
    for split in ("train", "validation", "test"):
        assert _keys(default[split]) == _keys(manifest.select(split))
    for k in range(5):
        fold = datasets.load_dataset(str(out), f"fold{k}")
        for split in ("train", "validation", "test"):
            assert _keys(fold[split]) == _keys(manifest.select(split, fold=k)), (k, split)
        assert fold["validation"].features["size_class3"].names == ["diminutive", "small", "large"]


@pytest.mark.parametrize("name", DATASETS)
def test_the_card_carries_the_registry_facts_and_where_frames_are(prepared: dict[str, Prepared], name: str) -> None:
    spec = registry.get(name)
    path = prepared[name].out / "README.md"
    card = DatasetCard.load(path)
    assert card.data.license == spec.licence
    if spec.licence == "other":
        assert card.data.license_link == spec.homepage and card.data.license_name
    assert [c["config_name"] for c in card.data.configs] == ["default", *(f"fold{k}" for k in range(5))]
    for fact in (spec.description, spec.homepage, spec.licence_terms, spec.citation.strip()):
        assert fact in card.text
    assert "`frame_path` is relative to the root of the raw" in card.text
    assert str(prepared[name].raw.resolve()) in card.text
