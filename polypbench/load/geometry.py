"""The HAG/GR seed code's frame geometry on whole batches, written out from reading its ``runners/trainer.py``
(cosmoimd/feature-selection-gates): the circular field-of-view mask, the box mask of a frame, and the expanded
box crop its RGB models and its depth network see. The streams of :mod:`polypbench.load.streams` are built from
these.

- :func:`fov_mask`: ``create_circular_cropping_mask`` (1 where a pixel's centre on a [-1, 1] grid lies within
  ``radius`` of the centre);
- :func:`box_coverage`: the box mask the seed draws on the full-resolution frame (1 inside the box), as the part of
  each decoded pixel the box covers (the same mask when the frame is decoded at full resolution);
- :func:`box_windows`, :func:`crop_resize`: ``prepare_input(..., expand_factor=0.5)`` (runners/trainer.py:289-342,
  called at 429 and 702): the bounding box of the mask's non-zero pixels, grown by ``int(0.5 * (max - min))``
  pixels on each side, clipped to the image, cut out (inclusive) and resized bilinearly with ``align_corners=True``
  to the image's size. That crop is the input of the seed's RGB models and of its depth network
  (:meth:`polypbench.load.streams.Pixels.box_crop` computes it once for both);
- :func:`minmax`: ``normalize_depth_maps``: each map scaled to [0, 1] by its own minimum and range (>= 1e-5).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

BOX_EXPAND = 0.5
"""The seed's ``expand_factor``: the expanded box crop grows by this fraction of the box's extent on each side."""
FOV_RADIUS = 1.0
"""The seed's ``crop_radius_ratio``: the field-of-view circle's radius, in half image sides."""


def fov_mask(height: int, width: int, radius: float = FOV_RADIUS, device: torch.device | str = "cpu"
             ) -> torch.Tensor:
    """(height, width) float mask: 1 where ``sqrt(x^2 + y^2) <= radius`` on a ``linspace(-1, 1)`` grid of each
    axis, else 0."""
    y = torch.linspace(-1, 1, height, device=device).view(-1, 1)
    x = torch.linspace(-1, 1, width, device=device).view(1, -1)
    return (torch.sqrt(x**2 + y**2) <= radius).float()


def _coverage_1d(low: float, high: float, start: float, k: float, n: int) -> np.ndarray:
    """The part of each of ``n`` pixels (pixel j spans [start + j k, start + (j + 1) k) in full-resolution
    pixels) that [low, high) covers."""
    edges = start + k * np.arange(n + 1, dtype=np.float64)
    return (np.clip(np.minimum(edges[1:], high) - np.maximum(edges[:-1], low), 0, None) / k).astype(np.float32)


def box_coverage(box: tuple[float, float, float, float], window: tuple[float, float, float, float], k: float,
                 height: int, width: int) -> np.ndarray:
    """(height, width) float32 mask of an image whose pixel (i, j) spans full-resolution pixels
    [window_left + j k, + k) x [window_top + i k, + k): the part of it that ``box`` (xmin, ymin, xmax, ymax
    exclusive, full-resolution pixels) covers. With k = 1 and an integer box: 1 inside the box, 0 outside."""
    left, top = window[0], window[1]
    xs = _coverage_1d(box[0], box[2], left, k, width)
    ys = _coverage_1d(box[1], box[3], top, k, height)
    return np.outer(ys, xs)


def box_windows(mask: torch.Tensor, expand: float = BOX_EXPAND) -> torch.Tensor:
    """(B, 4) int64 (x0, y0, x1, y1), inclusive, of each (B, 1, H, W) ``mask``'s non-zero pixels, grown by
    ``int(expand * (max - min))`` on each side and clipped to the image; (-1, -1, -1, -1) for an empty mask."""
    _, _, height, width = mask.shape
    inside = mask[:, 0] > 0
    out = torch.full((len(mask), 4), -1, dtype=torch.int64)
    rows, cols = inside.any(2).cpu(), inside.any(1).cpu()
    for i in range(len(mask)):
        ys, xs = torch.nonzero(rows[i])[:, 0], torch.nonzero(cols[i])[:, 0]
        if ys.numel() == 0 or xs.numel() == 0:
            continue
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
        dy, dx = int(expand * (y1 - y0)), int(expand * (x1 - x0))
        out[i] = torch.tensor([max(0, x0 - dx), max(0, y0 - dy), min(width - 1, x1 + dx), min(height - 1, y1 + dy)])
    return out


def crop_resize(images: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """Each image's inclusive ``window`` (:func:`box_windows`) resized bilinearly (``align_corners=True``) to the
    images' own size; zeros where the window is empty, as the seed code does."""
    _, _, height, width = images.shape
    out = torch.zeros_like(images)
    for i, (x0, y0, x1, y1) in enumerate(windows.tolist()):
        if x0 < 0:
            continue
        crop = images[i:i + 1, :, y0:y1 + 1, x0:x1 + 1]
        out[i] = F.interpolate(crop, size=[height, width], mode="bilinear", align_corners=True)[0]
    return out


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """(B, ...) maps each scaled to [0, 1] by its minimum and its range (at least 1e-5)."""
    flat = maps.reshape(len(maps), -1)
    shape = (-1,) + (1,) * (maps.dim() - 1)
    low, high = flat.min(1)[0].view(shape), flat.max(1)[0].view(shape)
    return (maps - low) / (high - low).clamp(min=1e-5)
