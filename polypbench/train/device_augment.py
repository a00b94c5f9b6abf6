"""Training augmentation on the device, for whole batches (``device_augment: true``).

With it the loader workers only decode (and, where the stored crop is not at the input scale, resize): the turn,
the flips and the colour jitter of :class:`~polypbench.load.augment.UInt8Augment` run here as one batched
``grid_sample`` and one batched 3x3 colour matrix, which on a GPU cost next to nothing, so one CPU core feeds
about as many samples per second as it decodes (docs/performance.md). Same draws and same maths as the uint8
path (turn by up to ``degrees``, flips with probability ``flip``, brightness/contrast/saturation/hue jitter as a
colour matrix); the only difference is bilinear instead of nearest-neighbour resampling for the turn.

The loader's half, :class:`~polypbench.load.augment.WindowScale` (re-exported here), makes samples that collate
into a :class:`~polypbench.train.batch.Batch` whose ``image`` is uint8 (padded to the batch's largest crop),
``window`` (B, 4) the crop window in image pixels (the part that becomes the model input; the rest is real
context, so turned corners show tissue) and ``box`` (B, 4) the polyp box;
:func:`~polypbench.train.data.model_input` hands those three to :class:`DeviceAugment`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from polypbench.load.augment import LUMA, RGB_TO_YIQ
from polypbench.load.augment import WindowScale as WindowScale  # the loader's half (re-exported)
from polypbench.load.spec import PixelSpec


def _color_matrices(factors: torch.Tensor, mean_gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, 3) matrices and (B, 3) offsets for brightness, contrast (towards ``mean_gray``), saturation and a
    hue turn, per sample; ``factors`` (B, 4) = (brightness, contrast, saturation, hue)."""
    dev, dtype = factors.device, factors.dtype
    b, c, s, h = factors.unbind(1)
    to_yiq = torch.tensor(RGB_TO_YIQ, device=dev, dtype=dtype)
    turn = -2 * math.pi * h
    rot = torch.zeros(len(h), 3, 3, device=dev, dtype=dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = torch.cos(turn), -torch.sin(turn)
    rot[:, 2, 1], rot[:, 2, 2] = torch.sin(turn), torch.cos(turn)
    hue = torch.linalg.inv(to_yiq) @ rot @ to_yiq
    luma = torch.tensor(LUMA, device=dev, dtype=dtype)
    eye = torch.eye(3, device=dev, dtype=dtype)
    sat = s[:, None, None] * eye + (1 - s)[:, None, None] * torch.ones(3, 1, device=dev, dtype=dtype) * luma
    matrix = (c * b)[:, None, None] * hue @ sat
    offset = ((1 - c) * b * mean_gray)[:, None].expand(-1, 3)
    return matrix, offset


class DeviceAugment:
    """Turn (up to ``degrees``), flip (each way with probability ``flip``) and colour-jitter a batch on its
    device; returns float images in [0, 1] of ``img_size`` and the moved boxes. Draws come from a CPU generator
    seeded with ``seed``, so a run is reproducible."""

    def __init__(self, img_size: int, seed: int = 0, *, degrees: float = 20.0, flip: float = 0.5,
                 brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2, hue: float = 0.02) -> None:
        self.size, self.degrees, self.flip = img_size, degrees, flip
        self.jitter = torch.tensor([brightness, contrast, saturation, hue])
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def for_spec(cls, spec: PixelSpec, seed: int = 0) -> DeviceAugment | None:
        """The device's half of ``spec``'s augmentation: a ``DeviceAugment`` making ``spec.size`` crops with the
        spec's recipe (its noise: :class:`~polypbench.load.streams.Pixels`) when ``spec.augment`` is ``device``,
        else None (nothing to do on the device)."""
        if spec.augment != "device" or spec.size is None:
            return None
        b, c, s, h = spec.recipe.jitter
        return cls(spec.size, seed, degrees=spec.recipe.degrees, flip=spec.recipe.flip, brightness=b, contrast=c,
                   saturation=s, hue=h)

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(angle in degrees, horizontal flip, vertical flip, jitter factors (n, 4)) for ``n`` samples."""
        u = torch.rand(n, 7, generator=self.generator, dtype=torch.float64)
        angle = (2 * u[:, 0] - 1) * self.degrees
        factors = (2 * u[:, 3:] - 1) * self.jitter.double()
        factors[:, :3] += 1
        return angle, u[:, 1] < self.flip, u[:, 2] < self.flip, factors

    def __call__(self, images: torch.Tensor, window: torch.Tensor, box: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        n, _, height, width = images.shape
        dev = images.device
        angle, hflip, vflip, factors = self.draw(n)
        rad = torch.deg2rad(angle)
        cos, sin = torch.cos(rad), torch.sin(rad)
        fx = torch.where(hflip, -1.0, 1.0).double()
        fy = torch.where(vflip, -1.0, 1.0).double()
        window = window.double().cpu()
        cx, cy = (window[:, 0] + window[:, 2]) / 2, (window[:, 1] + window[:, 3]) / 2
        sx, sy = self.size / (window[:, 2] - window[:, 0]), self.size / (window[:, 3] - window[:, 1])
        # forward (input -> output, about the window centre): flip @ turn, as UInt8Augment; theta is its inverse
        # in grid_sample's normalized coordinates (align_corners=False)
        m = torch.stack([torch.stack([fx * cos, fx * sin], -1), torch.stack([-fy * sin, fy * cos], -1)], -2)
        inv = m.transpose(1, 2)  # flips and turns are orthogonal
        half = self.size / 2
        theta = torch.zeros(n, 2, 3, dtype=torch.float64)
        theta[:, 0, :2] = inv[:, 0, :] * (half / sx * 2 / width)[:, None]
        theta[:, 1, :2] = inv[:, 1, :] * (half / sy * 2 / height)[:, None]
        theta[:, 0, 2] = 2 * cx / width - 1
        theta[:, 1, 2] = 2 * cy / height - 1
        grid = F.affine_grid(theta.float().to(dev), [n, 3, self.size, self.size], align_corners=False)
        x = F.grid_sample(images.float().div_(255), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        luma = torch.tensor(LUMA, device=dev, dtype=torch.float32).view(1, 3, 1, 1)
        mean_gray = (x * luma).sum(1).mean((1, 2))
        matrix, offset = _color_matrices(factors.float().to(dev), mean_gray)
        x = (torch.einsum("bij,bjhw->bihw", matrix, x) + offset[:, :, None, None]).clamp_(0, 1)
        moved = None
        if box is not None:
            b = box.double().cpu()
            corners = [(b[:, 0], b[:, 1]), (b[:, 2], b[:, 1]), (b[:, 0], b[:, 3]), (b[:, 2], b[:, 3])]
            xs = torch.stack([m[:, 0, 0] * (px - cx) * sx + m[:, 0, 1] * (py - cy) * sy + half for px, py in corners])
            ys = torch.stack([m[:, 1, 0] * (px - cx) * sx + m[:, 1, 1] * (py - cy) * sy + half for px, py in corners])
            moved = torch.stack([xs.amin(0), ys.amin(0), xs.amax(0), ys.amax(0)], -1).clamp(0, self.size)
            moved = moved.float().to(dev)
        return x, moved
