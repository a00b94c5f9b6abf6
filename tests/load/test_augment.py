"""UInt8Augment: the v2 augmentations of SampleTransform on uint8, with boxes moving with the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from polypbench.load.augment import UInt8Augment, color_matrix


def _sample(size: tuple[int, int] = (96, 96), box: tuple[float, ...] = (30, 20, 60, 44), seed: int = 0) -> dict:
    image = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, *size), dtype=np.uint8))
    return {"image": tv_tensors.Image(image),
            "boxes": tv_tensors.BoundingBoxes(torch.tensor([box], dtype=torch.float32), format="XYXY",
                                              canvas_size=size),
            "size_mm": torch.tensor(4.0)}


def _fixed(aug: UInt8Augment, angle: float = 0.0, hflip: bool = False, vflip: bool = False,
           jitter: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 0.0)) -> UInt8Augment:
    aug._draw = lambda: (angle, hflip, vflip, jitter)  # type: ignore[method-assign]
    return aug


def test_without_augmentation_it_is_v2_resize() -> None:
    for size in [(96, 96), (150, 150), (40, 40)]:
        sample = _sample(size, box=(10, 12, 30, 36))
        expected = v2.Resize((64, 64), antialias=True)(dict(sample))
        out = UInt8Augment(64, augment=False)(dict(sample))
        assert out["image"].dtype == torch.uint8 and type(out["image"]) is tv_tensors.Image
        assert torch.equal(out["image"], expected["image"])
        assert torch.allclose(out["boxes"], expected["boxes"], atol=1e-4)
        assert tuple(out["boxes"].canvas_size) == (64, 64) and out["size_mm"] is sample["size_mm"]


@pytest.mark.parametrize(("hflip", "vflip"), [(True, False), (False, True), (True, True)])
def test_flips_are_exactly_v2_flips(hflip: bool, vflip: bool) -> None:
    sample = _sample()
    expected = {k: sample[k] for k in ("image", "boxes")}
    for flip, functional in ((hflip, F.horizontal_flip), (vflip, F.vertical_flip)):
        if flip:
            expected = {k: functional(v) for k, v in expected.items()}
    out = _fixed(UInt8Augment(96), hflip=hflip, vflip=vflip)(dict(sample))
    assert torch.equal(out["image"], expected["image"])
    assert torch.allclose(out["boxes"], expected["boxes"].as_subclass(torch.Tensor), atol=1e-4)


@pytest.mark.parametrize("angle", [-20.0, 7.5, 20.0])
def test_turns_like_v2_rotate_and_the_box_follows(angle: float) -> None:
    sample = _sample(box=(50, 20, 70, 40))
    expected = {k: F.rotate(sample[k], angle) for k in ("image", "boxes")}
    out = _fixed(UInt8Augment(96), angle=angle)(dict(sample))
    same = (out["image"] == expected["image"]).all(0).float().mean()
    assert same > 0.97  # nearest neighbour both; a few pixels on sampling-grid ties differ
    assert torch.allclose(out["boxes"], expected["boxes"].as_subclass(torch.Tensor), atol=0.5)


def test_the_box_encloses_the_turned_and_flipped_object() -> None:
    image = torch.zeros(3, 120, 120, dtype=torch.uint8)
    image[:, 30:50, 60:90] = 255
    aug = UInt8Augment(120, brightness=0, contrast=0, saturation=0, hue=0)
    torch.manual_seed(3)
    for _ in range(10):
        out = aug({"image": tv_tensors.Image(image.clone()),
                   "boxes": tv_tensors.BoundingBoxes([[60, 30, 90, 50]], format="XYXY", canvas_size=(120, 120))})
        ys, xs = torch.nonzero(out["image"][0] > 0, as_tuple=True)
        x0, y0, x1, y1 = out["boxes"][0].tolist()
        assert x0 <= xs.min() + 1 and xs.max() <= x1 and y0 <= ys.min() + 1 and ys.max() <= y1  # within a pixel


@pytest.mark.parametrize(("factors", "reference", "mean", "most"), [
    ((1.15, 1.0, 1.0, 0.0), lambda x: F.adjust_brightness(x, 1.15), 1.0, 1),
    ((1.0, 0.8, 1.0, 0.0), lambda x: F.adjust_contrast(x, 0.8), 1.0, 1),
    ((1.0, 1.0, 1.2, 0.0), lambda x: F.adjust_saturation(x, 1.2), 1.0, 1),
    ((1.0, 1.0, 1.0, 0.02), lambda x: F.adjust_hue(x, 0.02), 2.0, 16),  # a linear approximation of the HSV turn
    ((1.0, 1.0, 1.0, -0.02), lambda x: F.adjust_hue(x, -0.02), 2.0, 16),
])
def test_colour_matrix_matches_each_v2_colour_jitter_step(factors, reference, mean: float, most: int) -> None:
    sample = _sample(seed=1)
    smooth = F.gaussian_blur(sample["image"], [5, 5])  # hue on noise is ill-conditioned; tissue is smooth
    sample["image"] = tv_tensors.Image(smooth)
    out = _fixed(UInt8Augment(96), jitter=factors)(dict(sample))
    diff = (out["image"].int() - reference(smooth).int()).abs().float()
    assert diff.mean() < mean and diff.max() <= most


def test_colour_matrix_keeps_grey_grey() -> None:
    matrix, offset = color_matrix(1.1, 0.9, 1.2, 0.02, mean_gray=100.0)
    grey = np.full(3, 80.0)
    out = matrix @ grey + offset
    assert np.allclose(out, out[0])


def test_context_window_becomes_the_output() -> None:
    sample = _sample((124, 124), box=(40, 40, 70, 60))
    sample["window"] = torch.tensor([14.0, 14.0, 110.0, 110.0])
    out = _fixed(UInt8Augment(96))(dict(sample))
    assert "window" not in out and out["image"].shape == (3, 96, 96)
    assert torch.equal(out["image"], sample["image"][:, 14:110, 14:110])
    assert torch.allclose(out["boxes"], torch.tensor([[26.0, 26.0, 56.0, 46.0]]))
    turned = _fixed(UInt8Augment(96), angle=20.0)(dict(sample, window=sample["window"]))
    assert (turned["image"] == 0).all(0).float().mean() < 0.01  # corners filled from the context, not black


def test_random_draws_follow_torch_seed() -> None:
    aug = UInt8Augment(96)
    torch.manual_seed(5)
    a = aug(_sample())
    torch.manual_seed(5)
    b = aug(_sample())
    c = aug(_sample())
    assert torch.equal(a["image"], b["image"]) and not torch.equal(b["image"], c["image"])


def test_samples_without_boxes_pass_through() -> None:
    image = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (3, 32, 32), dtype=np.uint8))
    out = UInt8Augment(64)({"image": tv_tensors.Image(image), "label": torch.tensor(3)})
    assert out["image"].shape == (3, 64, 64) and set(out) == {"image", "label"}
