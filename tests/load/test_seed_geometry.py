"""The HAG/GR seed code's frame geometry (runners/trainer.py, modules/transforms/transforms_sizing.py of
cosmoimd/feature-selection-gates) against closed-form cases: the circular field-of-view mask, the box mask of a
whole frame, the expanded box crop its RGB models and depth network see, and the masked_frame, box_crop and depth
streams built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from polypbench.load import PixelSpec, load_split
from polypbench.load.augment import UInt8Augment
from polypbench.load.common import SEED_MEAN, SEED_STD
from polypbench.load.geometry import box_coverage, box_windows, crop_resize, fov_mask, minmax
from polypbench.load.spec import RECIPES
from polypbench.load.streams import Pixels, build_streams
from polypbench.manifest import Manifest


def test_fov_mask_is_the_unit_disc_on_a_linspace_grid() -> None:
    # linspace(-1, 1, 5) = -1, -.5, 0, .5, 1: (0, +-1) and (+-1, 0) lie on the circle (kept), (.5, 1) outside
    expected = torch.tensor([[0, 0, 1, 0, 0],
                             [0, 1, 1, 1, 0],
                             [1, 1, 1, 1, 1],
                             [0, 1, 1, 1, 0],
                             [0, 0, 1, 0, 0]], dtype=torch.float32)
    assert torch.equal(fov_mask(5, 5), expected)
    assert torch.equal(fov_mask(4, 4), torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0.0]]))


def test_depth_window_is_the_mask_bounds_grown_by_half_their_extent_and_clipped() -> None:
    mask = torch.zeros(3, 1, 32, 32)
    mask[0, 0, 10:20, 2:12] = 0.3  # rows 10..19, cols 2..11: extent 9 -> int(4.5) = 4 pixels each side
    mask[1, 0, 0:31, 25:32] = 1.0  # rows 0..30 (extent 30 -> 15), cols 25..31 (extent 6 -> 3)
    windows = box_windows(mask)
    assert windows.tolist() == [[0, 6, 15, 23],  # x0 = 2 - 4 clipped to 0
                                [22, 0, 31, 31],  # clipped to the image on three sides
                                [-1, -1, -1, -1]]  # an empty mask: no window
    # resized with align_corners: output column j samples x0 + j (x1 - x0) / (W - 1), exact on a linear ramp
    ramp = torch.arange(32.0).view(1, 1, 1, 32).expand(3, 1, 32, 32).contiguous()
    crops = crop_resize(ramp, windows)
    assert torch.allclose(crops[0, 0, 5], torch.linspace(0, 15, 32), atol=1e-5)
    assert torch.allclose(crops[1, 0, 0], torch.linspace(22, 31, 32), atol=1e-5)
    assert torch.equal(crops[2], torch.zeros(1, 32, 32))
    maps = minmax(torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]]]))
    assert torch.equal(maps, torch.tensor([[[0.0, 1.0]], [[0.0, 0.0]]]))  # a flat map: range clamped to 1e-5


def test_box_coverage_is_the_box_mask_at_any_decode_scale() -> None:
    exact = box_coverage((2, 1, 5, 3), (0, 0, 0, 0), 1, 4, 6)
    expected = np.zeros((4, 6), np.float32)
    expected[1:3, 2:5] = 1
    assert np.array_equal(exact, expected)
    half = box_coverage((1, 0, 5, 3), (0, 0, 0, 0), 2, 2, 3)  # pixels 2x2: box x [1, 5) y [0, 3)
    assert np.allclose(half, [[0.5, 1, 0.5], [0.25, 0.5, 0.25]])


@pytest.fixture(scope="module")
def full_frames(prepared: dict) -> tuple[Path, pd.DataFrame]:
    out = prepared["sun"].out
    return out, Manifest.open(out).frames


def test_full_frame_samples_carry_the_seeds_resized_box_mask(full_frames: tuple[Path, pd.DataFrame]) -> None:
    out, _ = full_frames
    data = load_split(out, "validation", spec=PixelSpec(size=64, frame="full", streams=("masked_frame",)))
    row = data.rows.iloc[0]
    sample = data[0]
    with Image.open(data.raw_root / row["frame_path"]) as frame:
        width, height = frame.size
    assert sample["image"].shape == (3, 64, 64) and sample["mask"].shape == (1, 64, 64)
    # the seed: a binary mask of the frame (1 inside the box), resized with the frame (aspect not kept)
    seed_mask = torch.zeros(1, height, width, dtype=torch.float64)
    seed_mask[:, row["ymin"]:row["ymax"], row["xmin"]:row["xmax"]] = 1
    resized = F.resize(seed_mask, [64, 64], antialias=True).float()
    assert torch.allclose(sample["mask"], resized, atol=1e-5)
    box = sample["boxes"][0].tolist()
    assert box == pytest.approx([row["xmin"] * 64 / width, row["ymin"] * 64 / height, row["xmax"] * 64 / width,
                                 row["ymax"] * 64 / height], abs=1e-4)


def test_the_seed_recipe_moves_the_mask_with_the_frame() -> None:
    aug = UInt8Augment.of_recipe(48, True, RECIPES["seed"])
    assert (aug.degrees, aug.flip, aug.jitter) == (30.0, 0.5, (0.15, 0.15, 0.15, 0.01))
    mask = torch.zeros(1, 48, 48)
    mask[:, 10:30, 5:20] = 1
    image = (mask * 255).to(torch.uint8).expand(3, 48, 48).contiguous()
    aug._draw = lambda: (17.0, True, False, (1.0, 1.0, 1.0, 0.0))  # type: ignore[method-assign]
    out = aug({"image": tv_tensors.Image(image), "mask": mask})
    assert torch.equal(out["image"][0] == 255, out["mask"][0] == 1)  # the same warp, pixel for pixel
    assert not torch.equal(out["mask"], mask) and out["mask"].sum() > 0


def test_masked_frame_and_depth_streams_are_the_seeds() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, 0, 8:16, 10:20] = 1
    mask[1, 0, 20:30, 0:6] = 0.5
    first = lambda x: x[:, 0] * 2  # noqa: E731 - a stand-in depth network: any map of the crop
    pixels = Pixels(images, None, SEED_MEAN, SEED_STD, mask=mask, fov=True, depth_net=first)
    x = build_streams(pixels, ("masked_frame", "depth"))
    assert isinstance(x, dict)
    # the seed: inputs normalised, then circular-masked; masked_rgb = inputs * mask
    mean, std = torch.tensor(SEED_MEAN).view(1, 3, 1, 1), torch.tensor(SEED_STD).view(1, 3, 1, 1)
    inputs = (images.float() / 255 - mean) / std * fov_mask(32, 32)
    assert torch.allclose(x["masked_frame"], inputs * mask, atol=1e-6)
    # depth: the expanded window of the mask cut from inputs, resized, through the network, fov-masked, min-max
    crop = torch.nn.functional.interpolate(inputs[:1, :, 5:19, 6:24], size=[32, 32], mode="bilinear",
                                           align_corners=True)
    depth = crop[:, :1] * 2 * fov_mask(32, 32)
    assert torch.allclose(x["depth"][:1], (depth - depth.min()) / (depth.max() - depth.min()), atol=1e-5)
    assert x["depth"].shape == (2, 1, 32, 32) and box_windows(mask)[1].tolist() == [0, 16, 7, 31]


def test_noise_is_the_training_recipes_last_step() -> None:
    images = torch.full((1, 3, 8, 8), 128, dtype=torch.uint8)
    noisy = Pixels(images, noise=0.01).unit()
    assert 0 < (noisy - 128 / 255).abs().max() < 0.1 and noisy.min() >= 0
    assert PixelSpec(augment_recipe="seed", augment="loader").noise == 0.01
    assert PixelSpec(augment_recipe="seed").noise == 0.0  # evaluation: no noise
    assert PixelSpec(normalize="seed").mean == SEED_MEAN and PixelSpec(normalize="seed").std == SEED_STD
    assert PixelSpec(normalize="seed").replace(normalize="imagenet") == PixelSpec(normalize="imagenet")


def test_box_crop_is_the_expanded_box_resized_with_align_corners() -> None:
    """A known box in a known frame: the window is the box grown by int(0.5 * extent) on each side, clipped; the
    stream (one name: the tensor itself) on a linear ramp is the closed-form bilinear align_corners resize."""
    n = 33
    xs = torch.arange(n, dtype=torch.float32).view(1, n).expand(n, n) / (n - 1)
    ys = xs.t()
    images = torch.stack([xs, ys, (xs + ys) / 2])[None].repeat(2, 1, 1, 1)  # float in [0, 1]: taken as is
    mask = torch.zeros(2, 1, n, n)
    mask[0, 0, 10:20, 12:22] = 1  # rows 10..19, cols 12..21: extent 9 -> 4 pixels each side
    mask[1, 0, 27:33, 1:30] = 1  # rows 27..32 (extent 5 -> 2), cols 1..29 (extent 28 -> 14): clipped on 3 sides
    identity = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    pixels = Pixels(images, None, *identity, mask=mask)
    crop = build_streams(pixels, ("box_crop",))
    assert isinstance(crop, torch.Tensor) and crop.shape == (2, 3, n, n)
    assert pixels.windows().tolist() == [[8, 6, 25, 23], [0, 25, 32, 32]]
    j = torch.arange(n, dtype=torch.float32)
    for i, (x0, y0, x1, y1) in enumerate(pixels.windows().tolist()):
        x = (x0 + j * (x1 - x0) / (n - 1)) / (n - 1)  # output column j samples x0 + j (x1 - x0) / (W - 1)
        y = (y0 + j * (y1 - y0) / (n - 1)) / (n - 1)
        assert torch.allclose(crop[i, 0], x.view(1, n).expand(n, n), atol=1e-6)
        assert torch.allclose(crop[i, 1], y.view(n, 1).expand(n, n), atol=1e-6)
        assert torch.allclose(crop[i, 2], (x.view(1, n) + y.view(n, 1)) / 2, atol=1e-6)
    # the seed normalises and circular-masks the frame before it cuts the crop
    seeded = Pixels(images, None, SEED_MEAN, SEED_STD, mask=mask, fov=True)
    mean, std = torch.tensor(SEED_MEAN).view(1, 3, 1, 1), torch.tensor(SEED_STD).view(1, 3, 1, 1)
    inputs = (images - mean) / std * fov_mask(n, n)
    seed_crop = torch.nn.functional.interpolate(inputs[:1, :, 6:24, 8:26], size=[n, n], mode="bilinear",
                                                align_corners=True)
    assert torch.allclose(build_streams(seeded, ("box_crop",))[:1], seed_crop, atol=1e-6)


def test_box_crop_is_the_crop_the_depth_network_sees() -> None:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, 0, 4:12, 6:30] = 1
    mask[1, 0, 16:31, 3:9] = 0.25
    seen: list[torch.Tensor] = []

    def net(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return x.mean(1)

    pixels = Pixels(images, None, SEED_MEAN, SEED_STD, mask=mask, fov=True, noise=0.01, depth_net=net)
    x = build_streams(pixels, ("box_crop", "depth"))
    assert isinstance(x, dict) and len(seen) == 1
    assert seen[0] is x["box_crop"]  # one computation, the same pixels (noise included)
    alone = Pixels(images, None, SEED_MEAN, SEED_STD, mask=mask, fov=True, depth_net=net)
    build_streams(alone, ("depth",))
    assert torch.equal(seen[1], build_streams(alone, ("box_crop",)))
