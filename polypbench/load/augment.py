"""Training augmentation on uint8 crops at a fraction of the cost of the transforms v2 chain.

The v2 chain of the training transform (Resize -> RandomRotation(20) -> flips -> ColorJitter(0.2, 0.2, 0.2,
0.02)) costs about 10 ms per 384x384 sample on one core, nearly all of it in the rotation (2.3 ms) and the colour
jitter (7.6 ms), both through float; this does the same in about 0.9 ms (benchmarks/loader_bench.py). The turn
and both flips are one nearest-neighbour affine warp in Pillow (v2's rotation is nearest-neighbour too);
brightness, contrast, saturation and hue are one 3x4 colour matrix (hue as a turn of the chroma plane in YIQ, the
usual linear approximation of v2's HSV shift; no clamping between the steps, which v2 applies in random order).
Boxes move with the image as in v2: the corners are mapped and the enclosing box clamped to the image.

:class:`WindowScale` is the loader's half of device augmentation (the device's half is
:class:`polypbench.train.device_augment.DeviceAugment`); :data:`LOADER_STEPS` picks the loader's step for a
:class:`~polypbench.load.spec.PixelSpec`'s ``augment``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageStat
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from polypbench.load.spec import RECIPES, Recipe

LUMA = np.array([0.299, 0.587, 0.114])
MAPS = ("mask", "depth")
"""Float (1, H, W) maps a sample may carry over its image, resized and moved with it (nearest neighbour)."""
NO_JITTER = (1.0, 1.0, 1.0, 0.0)
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
"""RGB to YIQ, whose chroma plane the hue jitter turns (the loader's and the training device's colour matrices)."""


def color_matrix(brightness: float, contrast: float, saturation: float, hue: float, mean_gray: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(3x3 matrix, offset) applying brightness, contrast (towards ``mean_gray``, the image's mean luma),
    saturation (towards each pixel's luma) and a hue turn of ``hue`` of a full circle, in that order."""
    turn = -2 * math.pi * hue  # the I-Q plane turns the other way round from HSV hue
    rotate = np.array([[1, 0, 0], [0, math.cos(turn), -math.sin(turn)], [0, math.sin(turn), math.cos(turn)]])
    hue_m = np.linalg.inv(RGB_TO_YIQ) @ rotate @ RGB_TO_YIQ
    sat_m = saturation * np.eye(3) + (1 - saturation) * np.outer(np.ones(3), LUMA)
    matrix = contrast * brightness * hue_m @ sat_m
    offset = (1 - contrast) * brightness * mean_gray * np.ones(3)  # grey stays grey under saturation and hue
    return matrix, offset


class UInt8Augment:
    """Resize a sample's crop to ``img_size`` x ``img_size`` and, with ``augment``, turn it by up to ``degrees``,
    flip it (each way with probability ``flip``) and jitter its colours; uint8 in, uint8 out. ``boxes`` (optional:
    CIFAR samples have none) move with the image.

    A sample with a ``window`` entry (:class:`~polypbench.shards.ShardFrames` with ``context=True``) holds more
    than the crop: the window is what becomes the output, and a turn fills its corners with the real pixels
    around it instead of black. ``window`` is dropped. Random draws use torch's generator, so DataLoader
    workers are seeded as for v2 transforms.

    A sample with a ``mask`` (float (1, H, W): the box mask, :class:`~polypbench.load.PolypFrames` with
    ``mask=True``) or a stored ``depth`` map (:data:`MAPS`) has it resized (antialiased) and turned and flipped
    with the image (nearest neighbour), as the seed code moves its box mask with its frame. :meth:`of_recipe`
    makes one for a :data:`RECIPES` entry.
    """

    def __init__(self, img_size: int, augment: bool = True, *, degrees: float = 20.0, flip: float = 0.5,
                 brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2, hue: float = 0.02) -> None:
        self.size, self.augment, self.degrees, self.flip = img_size, augment, degrees, flip
        self.jitter = (brightness, contrast, saturation, hue)

    @classmethod
    def of_recipe(cls, img_size: int, augment: bool, recipe: Recipe = RECIPES["polypbench"]) -> UInt8Augment:
        """The loader's step for ``recipe`` (its turn, flips and jitter; its noise is added on the device)."""
        b, c, s, h = recipe.jitter
        return cls(img_size, augment, degrees=recipe.degrees, flip=recipe.flip, brightness=b, contrast=c,
                   saturation=s, hue=h)

    def _draw(self) -> tuple[float, bool, bool, tuple[float, float, float, float]]:
        u = torch.rand(7).tolist()
        angle = (2 * u[0] - 1) * self.degrees
        b, c, s, h = self.jitter
        factors = (1 + (2 * u[3] - 1) * b, 1 + (2 * u[4] - 1) * c, 1 + (2 * u[5] - 1) * s, (2 * u[6] - 1) * h)
        return angle, u[1] < self.flip, u[2] < self.flip, factors

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        image, boxes = sample["image"], sample.get("boxes")
        maps = {k: sample[k] for k in MAPS if k in sample}
        height, width = image.shape[-2:]
        window = sample.pop("window", None)
        left, top, right, bottom = (0.0, 0.0, float(width), float(height)) if window is None else window.tolist()
        scale_x, scale_y = self.size / (right - left), self.size / (bottom - top)
        if abs(scale_x - 1) > 0.01 or abs(scale_y - 1) > 0.01:  # resample once, antialiased, as v2.Resize does
            new = [round(height * scale_y), round(width * scale_x)]
            image = F.resize(image, new, antialias=True)
            boxes = F.resize(boxes, new) if boxes is not None else None
            maps = {k: F.resize(v, new, antialias=True) for k, v in maps.items()}
            scale_x, scale_y = new[1] / width, new[0] / height
            left, top, right, bottom = left * scale_x, top * scale_y, right * scale_x, bottom * scale_y
            height, width = new
        angle, hflip, vflip, factors = self._draw() if self.augment else (0.0, False, False, NO_JITTER)
        # forward map (input -> output): window centre to output centre, turn by angle (counter-clockwise on
        # screen, as v2.functional.rotate), then flip; Pillow takes the inverse (output -> input)
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        fx, fy = (-1.0 if hflip else 1.0), (-1.0 if vflip else 1.0)
        a, b, d, e = fx * cos, fx * sin, -fy * sin, fy * cos
        cx, cy, half = (left + right) / 2, (top + bottom) / 2, self.size / 2
        forward = (a, b, half - a * cx - b * cy, d, e, half - d * cx - e * cy)
        warp = forward != (1.0, 0.0, 0.0, 0.0, 1.0, 0.0) or (width, height) != (self.size, self.size)
        if warp or factors != NO_JITTER:
            sample["image"] = tv_tensors.Image(self._pixels(image, forward if warp else None, factors))
        elif image is not sample["image"]:
            sample["image"] = tv_tensors.Image(image)
        if boxes is not None:
            sample["boxes"] = self._move_boxes(boxes, forward)
        for key, value in maps.items():
            sample[key] = self._move_map(value, forward) if warp else value
        return sample

    def _move_map(self, mask: torch.Tensor, forward: tuple[float, ...]) -> torch.Tensor:
        """The float (1, H, W) map warped by ``forward`` onto the output (nearest neighbour, 0 outside)."""
        a, b, c, d, e, f = forward
        inverse = (a, d, -a * c - d * f, b, e, -b * c - e * f)
        pil = Image.fromarray(mask[0].float().numpy())  # float32: mode F
        pil = pil.transform((self.size, self.size), Image.Transform.AFFINE, inverse, resample=Image.Resampling.NEAREST)
        return torch.from_numpy(np.array(pil))[None]

    def _pixels(self, image: torch.Tensor, forward: tuple[float, ...] | None,
                factors: tuple[float, float, float, float]) -> torch.Tensor:
        """``image`` warped by ``forward`` (None: not at all) onto the output, then colour-jittered."""
        pil = Image.fromarray(image.permute(1, 2, 0).numpy())
        if forward is not None:
            a, b, c, d, e, f = forward  # the linear part is a turn and flips, so its inverse is its transpose
            inverse = (a, d, -a * c - d * f, b, e, -b * c - e * f)
            pil = pil.transform((self.size, self.size), Image.Transform.AFFINE, inverse,
                                resample=Image.Resampling.NEAREST)
        if factors != NO_JITTER:
            mean_gray = float(LUMA @ np.array(ImageStat.Stat(pil.reduce(4)).mean))  # the mean, 16x cheaper
            matrix, offset = color_matrix(*factors, mean_gray=mean_gray)
            pil = pil.convert("RGB", tuple(np.column_stack([matrix, offset]).ravel()))
        return torch.from_numpy(np.array(pil)).permute(2, 0, 1)

    def _move_boxes(self, boxes: torch.Tensor, forward: tuple[float, ...]) -> tv_tensors.BoundingBoxes:
        """Map the corners, take the enclosing box, clamp it to the output (v2's rule for turned boxes)."""
        a, b, c, d, e, f = forward
        x0, y0, x1, y1 = boxes.as_subclass(torch.Tensor).double().unbind(-1)
        xs = torch.stack([a * x + b * y + c for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))])
        ys = torch.stack([d * x + e * y + f for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))])
        out = torch.stack([xs.amin(0), ys.amin(0), xs.amax(0), ys.amax(0)], dim=-1).clamp(0, self.size)
        return tv_tensors.BoundingBoxes(out.float(), format="XYXY", canvas_size=(self.size, self.size))


class WindowScale:
    """Loader-side half of device augmentation: scale a sample so that its crop window is ``img_size`` pixels a
    side (a no-op for shards materialized at ``img_size``), keeping any context, and record the window."""

    def __init__(self, img_size: int) -> None:
        self.size = img_size

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        image = sample["image"]
        height, width = image.shape[-2:]
        window = sample.pop("window", None)
        window = torch.tensor([0.0, 0.0, width, height]) if window is None else window.float()
        scale_x = self.size / float(window[2] - window[0])
        scale_y = self.size / float(window[3] - window[1])
        if abs(scale_x - 1) > 0.01 or abs(scale_y - 1) > 0.01:
            new = [max(1, round(height * scale_y)), max(1, round(width * scale_x))]
            sample["image"] = tv_tensors.Image(F.resize(image, new, antialias=True))
            if "boxes" in sample:
                sample["boxes"] = F.resize(sample["boxes"], new)
            scale = torch.tensor([new[1] / width, new[0] / height] * 2)
            window = window * scale
        sample["window"] = window
        return sample


LOADER_STEPS: dict[str, Callable[[int, Recipe], Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "none": lambda size, _recipe: UInt8Augment(size, augment=False),
    "loader": lambda size, recipe: UInt8Augment.of_recipe(size, True, recipe),
    "device": lambda size, _recipe: WindowScale(size),
}
"""A spec's ``augment`` (:data:`polypbench.load.spec.AUGMENTS`) -> the loader's step for crops of ``size`` and the
spec's augmentation recipe (:data:`polypbench.load.spec.RECIPES`)."""
