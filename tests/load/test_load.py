"""Loading prepared manifests: torch datasets with boxes through transforms v2, folds, Hugging Face."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from polypbench import load_split
from polypbench.errors import ConfigError, InputError
from polypbench.load import crop_window
from polypbench.manifest import Manifest
from tests.helpers import DATASETS


@pytest.mark.parametrize("name", DATASETS)
def test_samples_are_crops_around_the_box(prepared, name: str) -> None:
    out = prepared[name].out
    ds = load_split(out, "test", size=None)  # native crops
    rows = Manifest.open(out).select("test")
    assert len(ds) == len(rows) > 0
    sample = ds[0]
    row = rows.iloc[0]
    image, boxes = sample["image"], sample["boxes"]
    assert image.dtype == torch.uint8 and image.shape[0] == 3 and image.shape[1] == image.shape[2]
    x0, y0, x1, y1 = boxes[0].tolist()
    assert 0 <= x0 < x1 <= image.shape[2] and 0 <= y0 < y1 <= image.shape[1]
    assert (x1 - x0, y1 - y0) == (row["xmax"] - row["xmin"], row["ymax"] - row["ymin"])
    box = (row["xmin"], row["ymin"], row["xmax"], row["ymax"])
    left, top, right, bottom = crop_window(box, row["width"], row["height"])
    with Image.open(prepared[name].raw / row["frame_path"]) as frame:
        expected = np.asarray(frame.convert("RGB"))[top:bottom, left:right]
    assert np.abs(image.permute(1, 2, 0).numpy().astype(int) - expected.astype(int)).mean() < 2  # same decoder family
    assert sample["size_mm"].item() == pytest.approx(row["size_mm"]) and sample["polyp_id"] == row["polyp_id"]


def test_boxes_travel_with_the_image_through_transforms_v2(prepared) -> None:
    out = prepared["real-colon"].out
    plain = load_split(out, "train", size=None)[0]
    flipped = load_split(out, "train", transform=v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize((96, 96))]))[0]
    width = plain["image"].shape[2]
    x0, _, x1, _ = plain["boxes"][0].tolist()
    fx0, _, fx1, _ = flipped["boxes"][0].tolist()
    scale = 96 / width
    assert flipped["image"].shape[1:] == (96, 96)
    assert fx0 == pytest.approx((width - x1) * scale, abs=1e-3) and fx1 == pytest.approx((width - x0) * scale, abs=1e-3)


def test_folds_partition_the_non_test_patients(prepared) -> None:
    out = prepared["sun"].out
    non_test = set(Manifest.open(out).frames.query("split != 'test'")["patient_id"])
    for k in range(5):
        train = set(load_split(out, "train", fold=k).rows["patient_id"])
        val = set(load_split(out, "validation", fold=k).rows["patient_id"])
        assert train and val and not train & val and train | val == non_test
    with pytest.raises(ConfigError, match="expected one of: 0, 1, 2, 3, 4"):
        load_split(out, "train", fold=7)
    with pytest.raises(ConfigError, match="expected one of: all, test, train, validation"):
        load_split(out, "dev")


def test_missing_raw_root_is_a_one_line_error(prepared, tmp_path) -> None:
    with pytest.raises(InputError, match="raw root"):
        load_split(prepared["sun"].out, "test", raw_root=tmp_path / "nowhere")


@pytest.mark.process  # a child interpreter
def test_plain_hugging_face_loads_the_manifest_without_polypbench(prepared) -> None:
    out = prepared["real-colon"].out
    code = (
        "import sys, json, datasets\n"
        f"ds = datasets.load_dataset({str(out)!r})\n"
        "assert 'polypbench' not in sys.modules\n"
        "print(json.dumps({k: v.num_rows for k, v in ds.items()}))\n"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=out.parent,
                            check=True)
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    frames = Manifest.open(out).frames
    assert counts == frames["split"].value_counts().to_dict()
