"""The public loader API a researcher meets first: fixed-size crops for torch's default collate, the padding
collate, the polyp-balanced sampler, per-polyp items and the Hugging Face view, on real synthetic manifests."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset
from torchvision import tv_tensors
from torchvision.transforms import v2

import polypbench
from polypbench.errors import ConfigError
from polypbench.load import (
    DEFAULT_SIZE,
    FramesPerPolyp,
    PolypFrames,
    PolypSequences,
    load_hf,
    load_polyps,
    load_split,
    pad_collate,
)
from polypbench.manifest import Manifest
from tests.helpers import Prepared


def test_the_readme_dataloader_works_as_written(prepared: dict[str, Prepared]) -> None:
    """README: ``DataLoader(polypbench.load_split(prepared, "train"), batch_size=4, num_workers=2)``."""
    out = prepared["real-colon"].out
    loader = DataLoader(polypbench.load_split(out, "train"), batch_size=4, num_workers=2)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, DEFAULT_SIZE, DEFAULT_SIZE) and batch["image"].dtype == torch.uint8
    assert batch["boxes"].shape == (4, 1, 4) and batch["size_mm"].shape == (4,)
    assert batch["size_class3"].dtype == torch.int64 and len(batch["polyp_id"]) == 4


def test_size_resizes_crop_and_box_before_the_transform(prepared: dict[str, Prepared]) -> None:
    out = prepared["sun"].out
    native, small = load_split(out, "test", size=None), load_split(out, "test", size=48)
    seen: list[tuple[int, ...]] = []

    def record(sample: dict) -> dict:
        seen.append(tuple(sample["image"].shape))
        return sample

    resized_then = load_split(out, "test", transform=record, size=48)
    for i in range(0, len(native), 7):
        a, b = native[i], small[i]
        assert b["image"].shape == (3, 48, 48) and tuple(b["boxes"].canvas_size) == (48, 48)
        scale = 48 / a["image"].shape[2]
        assert torch.allclose(a["boxes"].as_subclass(torch.Tensor) * scale, b["boxes"].as_subclass(torch.Tensor),
                              atol=0.01)
        resized_then[i]
    assert set(seen) == {(3, 48, 48)}
    # with a transform and no size, the transform gets the native crop (what the training loaders rely on)
    flipped = load_split(out, "test", transform=v2.RandomHorizontalFlip(p=1.0))[0]
    assert flipped["image"].shape == native[0]["image"].shape
    with pytest.raises(ConfigError, match="expected a positive number of pixels"):
        load_split(out, "test", size=0)


def test_mixed_sizes_are_one_clear_line_and_pad_collate_pads_them(prepared: dict[str, Prepared]) -> None:
    out = prepared["sun"].out
    native = load_split(out, "train", size=None)
    shapes = [tuple(native[i]["image"].shape) for i in range(8)]
    assert len(set(shapes)) > 1, "the synthetic crops differ in size"
    with pytest.raises(ConfigError) as info:
        next(iter(DataLoader(native, batch_size=8)))
    message = str(info.value)
    assert "\n" not in message and "size=N" in message and "pad_collate" in message
    batch = next(iter(DataLoader(native, batch_size=8, collate_fn=pad_collate)))
    tallest, widest = max(s[1] for s in shapes), max(s[2] for s in shapes)
    assert batch["image"].shape == (8, 3, tallest, widest)
    assert batch["image_shape"].tolist() == [list(s) for s in shapes]
    for i, (_, h, w) in enumerate(shapes):
        assert torch.equal(batch["image"][i, :, :h, :w], native[i]["image"].as_subclass(torch.Tensor))
        assert batch["image"][i, :, h:, :].sum() == 0 and batch["image"][i, :, :, w:].sum() == 0
    assert batch["polyp_id"] == [native[i]["polyp_id"] for i in range(8)]


def test_the_sampler_is_exported_and_balances_polyps(prepared: dict[str, Prepared]) -> None:
    from polypbench.train import data as train_data

    assert train_data.FramesPerPolyp is FramesPerPolyp  # the one the trainer uses
    ds = load_split(prepared["real-colon"].out, "train")
    sampler = FramesPerPolyp.for_dataset(ds, n=3, seed=0)
    picks = list(sampler)
    per_polyp = Counter(ds.rows["polyp_id"].iloc[picks])
    assert set(per_polyp) == set(ds.rows["polyp_id"]) and set(per_polyp.values()) == {3}
    sampler.set_epoch(1)
    assert list(sampler) != picks and sorted(Counter(ds.rows["polyp_id"].iloc[list(sampler)]).values()) == [3] * len(
        per_polyp)
    batch = next(iter(DataLoader(ds, batch_size=4, sampler=sampler)))
    assert batch["image"].shape[0] == 4


def test_load_polyps_holds_every_frame_of_a_polyp_in_order(prepared: dict[str, Prepared]) -> None:
    out = prepared["real-colon"].out
    frames = load_split(out, "train", size=32)
    polyps = load_polyps(out, "train", size=32)
    assert len(polyps) == frames.rows["polyp_id"].nunique() == len(polyps.polyps)
    for index in range(0, len(polyps), 5):
        item = polyps[index]
        rows = frames.rows[frames.rows["polyp_id"] == item["polyp_id"]].sort_values("frame_index")
        assert item["n_frames"] == len(rows) and item["frame_index"].tolist() == rows["frame_index"].tolist()
        assert isinstance(item["image"], tv_tensors.Video) and item["image"].shape == (len(rows), 3, 32, 32)
        for t, position in enumerate(rows.index):
            assert torch.equal(item["image"][t].as_subclass(torch.Tensor), frames[position]["image"])
        assert item["boxes"].shape == (len(rows), 4) and item["size_mm"] == frames[rows.index[0]]["size_mm"]
    # one random draw for the whole item: a flip moves every frame and box together
    flipped = load_polyps(out, "train", transform=v2.RandomHorizontalFlip(p=1.0), size=32)[0]
    plain = polyps[0]
    assert torch.equal(flipped["image"].as_subclass(torch.Tensor), plain["image"].flip(-1).as_subclass(torch.Tensor))
    assert torch.allclose(flipped["boxes"][:, 0], 32 - plain["boxes"][:, 2])


def test_polyp_items_batch_with_max_frames_or_pad_collate(prepared: dict[str, Prepared]) -> None:
    out = prepared["sun-seg"].out
    frames = load_split(out, "train", size=24)
    # one frame fewer for the first polyp: items of 1 and of 2 frames
    trimmed = PolypFrames(frames.rows.drop(index=frames.rows.index[0]), frames.raw_root, frames.transform)
    polyps = PolypSequences(trimmed)
    counts = polyps.polyps["n_frames"].tolist()
    assert sorted(set(counts)) == [1, 2]
    short = counts.index(1)
    pair = [short, short + 1]
    with pytest.raises(ConfigError, match="pad_collate"):
        next(iter(DataLoader(Subset(polyps, pair), batch_size=2)))
    padded = next(iter(DataLoader(Subset(polyps, pair), batch_size=2, collate_fn=pad_collate)))
    assert padded["image"].shape == (2, 2, 3, 24, 24) and padded["n_frames"].tolist() == [1, 2]
    assert padded["image_shape"][:, 0].tolist() == [1, 2] and padded["image"][0, 1].sum() == 0  # an empty frame
    fixed = PolypSequences(trimmed, max_frames=1)
    batch = next(iter(DataLoader(fixed, batch_size=4)))
    assert batch["image"].shape == (4, 1, 3, 24, 24)
    assert len(load_polyps(out, "train", size=24, max_frames=1)[0]["frame_index"]) == 1
    with pytest.raises(ConfigError, match="size=N"):
        load_polyps(out, "train", size=None)


def test_load_hf_gives_the_crops_of_a_fold_with_class_names(prepared: dict[str, Prepared]) -> None:
    out = prepared["sun"].out
    rows = Manifest.open(out).select("validation", fold=2)
    ds = load_hf(out, "validation", fold=2, size=None)
    assert ds.num_rows == len(rows) and ds["polyp_id"] == rows["polyp_id"].tolist()
    assert ds.features["size_class3"].names == ["diminutive", "small", "large"]
    assert ds.features["size_class2"].names == ["<10 mm", ">=10 mm"]
    native = load_split(out, "validation", fold=2, size=None)
    for i in (0, ds.num_rows - 1):
        row = ds[i]
        assert isinstance(row["image"], Image.Image)
        same = native[i]["image"].permute(1, 2, 0).numpy()
        assert np.array_equal(np.asarray(row["image"]), same)  # load_split's crop, pixel for pixel
        assert row["box"] == pytest.approx(native[i]["boxes"][0].tolist())
    small = load_hf(out, "validation", fold=2, size=64)[0]
    assert small["image"].size == (64, 64) and max(small["box"]) <= 64
    with pytest.raises(ConfigError, match="size 0; expected a positive number of pixels"):  # the pixel spec's check
        load_hf(out, "validation", size=0)
    frames = load_hf(out, "validation", crop=False)
    first = frames[0]
    assert first["image"].size == (first["width"], first["height"])


def test_encoded_samples_get_no_pixel_step_in_the_loader(prepared: dict[str, Prepared]) -> None:
    """JPEG bytes (source 'device') are resized and augmented on the device only; the old keyword says so."""
    with pytest.raises(ConfigError, match="source 'device' hands out JPEG bytes .*expected augment='device'"):
        load_split(prepared["sun"].out, "test", size=64, source="device")
    with pytest.raises(ConfigError, match=r"unknown pixel option 'encoded' \(encoded=True is source='device'"):
        load_split(prepared["sun"].out, "test", encoded=True, source="shards")
