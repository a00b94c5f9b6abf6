"""The crop around a polyp box that every model sees (and that materialized shards store)."""

from __future__ import annotations

import math

from polypbench.load.common import DEFAULT_MARGIN


def crop_window(box: tuple[int, int, int, int], width: int, height: int,
                margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """Square window around ``box`` (xmin, ymin, xmax exclusive, ymax exclusive) with ``margin`` times the box's
    longer side added on each side, shifted to stay inside the ``width`` x ``height`` image (then clipped if
    the image is smaller). Returns (left, top, right, bottom), right/bottom exclusive.

    Square, so resizing to a square input never distorts the polyp's shape; shifted rather than padded, so the
    crop holds only real pixels.
    """
    xmin, ymin, xmax, ymax = box
    side = max(xmax - xmin, ymax - ymin)
    side = min(max(1, math.ceil(side * (1 + 2 * margin))), width, height) if width and height else side
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    left = int(min(max(round(cx - side / 2), 0), max(width - side, 0)))
    top = int(min(max(round(cy - side / 2), 0), max(height - side, 0)))
    return left, top, min(left + side, width), min(top + side, height)
