"""Decoding only what the model needs: the crop window of a frame, downscaled in the JPEG's DCT domain.

A REAL-Colon frame is a 1.2-1.4 MP JPEG while the model sees a 384x384 crop. libjpeg can decode at 1/2, 1/4
or 1/8 scale by dropping DCT coefficients (Pillow's ``Image.draft``), which costs a fraction of a full decode, so
a frame is decoded at the smallest scale that still gives the crop window at least ``target`` pixels a side.
The optional GPU path decodes a batch of JPEG byte strings with nvJPEG.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from polypbench.errors import InputError
from polypbench.load.common import DEFAULT_MARGIN
from polypbench.load.crop import crop_window

if TYPE_CHECKING:
    import torch

DCT_SCALES = (1, 2, 4, 8)
"""Downscaling factors libjpeg applies while decoding (Pillow's ``draft``)."""

Box = tuple[float, float, float, float]


def dct_scale(side: int, target: int | None) -> int:
    """The largest factor k in :data:`DCT_SCALES` with ``side / k >= target`` (1 when ``target`` is None, or when
    even a full decode gives fewer than ``target`` pixels)."""
    if target is None:
        return 1
    return max(k for k in DCT_SCALES if k == 1 or side / k >= target)


def draft_scale(image: Image.Image, side: int, target: int | None) -> int:
    """Set up DCT-domain decoding of a not yet decoded ``image`` at :func:`dct_scale` of ``side`` (the side of
    the region that will be cut out, in full-resolution pixels). Returns the factor applied: 1 for a non-JPEG
    (which decodes at full resolution)."""
    k = dct_scale(side, target)
    if k == 1 or image.format != "JPEG":
        return 1
    width, height = image.size
    image.draft("RGB", (width // k, height // k))
    if image.size != (-(-width // k), -(-height // k)):  # libjpeg chose another factor: use the one it chose
        k = round(width / image.width)
    return k


def _scaled_window(window: tuple[int, int, int, int], k: int, image: Image.Image) -> tuple[int, int, int, int]:
    """``window`` (full-resolution pixels) in the pixels of an image decoded at 1/k, same side, inside it."""
    left, top, right, bottom = window
    sl, st = round(left / k), round(top / k)
    return sl, st, min(sl + round((right - left) / k), image.width), min(st + round((bottom - top) / k), image.height)


def box_in_crop(box: tuple[float, float, float, float], window: tuple[int, int, int, int], k: int) -> Box:
    """``box`` (full-resolution pixels) in the coordinates of the crop of ``window`` decoded at 1/k."""
    sl, st = round(window[0] / k), round(window[1] / k)
    return box[0] / k - sl, box[1] / k - st, box[2] / k - sl, box[3] / k - st


def unreadable_frame(path: str | Path, exc: BaseException) -> InputError:
    """The one-line error for a frame Pillow cannot open or decode."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputError(path, f"unreadable frame ({first})", "a JPEG frame")


def _to_chw(image: Image.Image) -> torch.Tensor:
    """uint8 CHW tensor (a view of a writable HWC array) of an image, converted to RGB where needed."""
    import torch  # here, not at the top: materialize's worker processes use this module without torch

    return torch.from_numpy(np.array(image if image.mode == "RGB" else image.convert("RGB"))).permute(2, 0, 1)


def read_crop(path: str | Path, box: tuple[int, int, int, int], margin: float = DEFAULT_MARGIN,
              target: int | None = None) -> tuple[Image.Image, Box]:
    """:func:`decode_crop` as a PIL RGB image (no torch needed): the crop and the box in its coordinates."""
    try:
        with Image.open(path) as image:
            window = crop_window(box, image.width, image.height, margin)
            k = draft_scale(image, max(window[2] - window[0], window[3] - window[1]), target)
            crop = image.crop(_scaled_window(window, k, image))
            crop = crop if crop.mode == "RGB" else crop.convert("RGB")
            crop.load()
    except (OSError, SyntaxError) as exc:
        raise unreadable_frame(path, exc) from None
    return crop, box_in_crop(box, window, k)


def decode_crop(path: str | Path, box: tuple[int, int, int, int], margin: float = DEFAULT_MARGIN,
                target: int | None = None) -> tuple[torch.Tensor, Box]:
    """The :func:`crop_window` of ``box`` (xmin, ymin, xmax, ymax exclusive, full-resolution pixels) in the frame
    at ``path``, decoded at the smallest DCT scale that keeps the window's side >= ``target`` (``None``: full
    resolution). Returns the crop (uint8 CHW) and the box in crop coordinates at the decoded scale.

    Raises :class:`InputError` naming the file when the frame cannot be read.
    """
    crop, box_in = read_crop(path, box, margin, target)
    return _to_chw(crop), box_in


def decode_frame(path: str | Path, target: int | None = None) -> tuple[torch.Tensor, int]:
    """The whole frame at ``path`` (uint8 CHW), decoded at the smallest DCT scale that keeps its shorter side
    >= ``target`` (``None``: full resolution), and the factor k applied (a full-resolution x is x / k in it).

    Raises :class:`InputError` naming the file when the frame cannot be read.
    """
    try:
        with Image.open(path) as image:
            k = draft_scale(image, min(image.width, image.height), target)
            return _to_chw(image), k
    except (OSError, SyntaxError) as exc:
        raise unreadable_frame(path, exc) from None


def decode_window(data: bytes, window: tuple[int, int, int, int] | None = None, target: int | None = None, *,
                  name: str | Path = "<jpeg>") -> tuple[torch.Tensor, int]:
    """Decode the ``window`` (left, top, right, bottom; None: the whole image) of an encoded image such as a
    materialized crop, at the DCT scale that keeps the window's side >= ``target``. Returns the uint8 CHW crop
    and the factor k applied (:func:`box_in_crop` maps coordinates into it). ``name``: the file errors are
    reported against."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if window is None:
                return _to_chw(image), 1
            k = draft_scale(image, max(window[2] - window[0], window[3] - window[1]), target)
            if k == 1 and window == (0, 0, image.width, image.height):
                return _to_chw(image), 1
            return _to_chw(image.crop(_scaled_window(window, k, image))), k
    except (OSError, SyntaxError) as exc:
        raise unreadable_frame(name, exc) from None


def decode_jpeg_batch(data: Sequence[bytes | torch.Tensor], device: str | torch.device = "cuda") -> list[torch.Tensor]:
    """Decode a batch of JPEG byte strings (or uint8 1-D tensors of them) on ``device`` (nvJPEG on a GPU) into
    uint8 CHW RGB tensors.

    The optional GPU path for materialized shards: the CPU only hands over bytes. torchvision 0.29 deprecates
    its decoders in favour of TorchCodec; the deprecation warning is silenced here and nowhere else.
    """
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [b if isinstance(b, torch.Tensor) else torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in data]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                                category=DeprecationWarning)
        return decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)
