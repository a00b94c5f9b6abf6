"""The torch dataset of one split's boxes decoded from the raw frames, the base every pixel source shares
(:class:`~polypbench.load.shards.ShardFrames` reads the same samples from materialized shards)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from polypbench.errors import InputError
from polypbench.load.collate import CropImage
from polypbench.load.common import DEFAULT_MARGIN
from polypbench.load.decode import Box, decode_crop, decode_frame
from polypbench.load.geometry import box_coverage

if TYPE_CHECKING:
    from polypbench.load.depth_store import DepthStore

Transform = Callable[[dict[str, Any]], dict[str, Any]]
"""A sample transform: receives and returns the sample dict (torchvision transforms v2 handle it as is)."""


class PolypFrames(Dataset):
    """Samples of one split of a prepared manifest, decoded from the raw frames.

    Each sample is a dict: ``image`` (tv_tensors.Image, uint8 CHW, the crop; a :class:`CropImage` at its
    native size, whose default collate refuses mixed sizes in one line), ``boxes`` (tv_tensors.BoundingBoxes,
    XYXY in crop coordinates, so v2 transforms move it with the image), ``size_mm`` (float32 tensor),
    ``size_class3`` (int64 tensor), and the ids ``polyp_id``, ``patient_id``, ``dataset``, ``frame_index``.
    ``transform`` receives and returns that dict (torchvision transforms v2 handle it as is).

    ``decode_size`` (the training input size) lets JPEG frames decode at 1/2, 1/4 or 1/8 scale in the DCT domain
    while the crop keeps at least that many pixels a side; ``None`` decodes at full resolution. The crop covers
    the same region either way (:func:`~polypbench.load.crop_window`); only its pixel scale differs.

    ``frame='full'`` hands out the whole frame instead of the crop (the box in frame coordinates). ``mask=True``
    adds ``mask``: float32 (1, H, W), the part of each pixel the box covers (1 inside, 0 outside at full
    resolution: the seed code's box mask; :func:`~polypbench.load.geometry.box_coverage`), which the pixel step
    moves with the image. ``depth`` (``depth: shards``): a :class:`~polypbench.load.depth_store.DepthStore` of
    these rows; samples then carry ``depth`` (1, H, W), the stored map pasted into the frame, moved with it too.
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        raw_root: Path | None,
        transform: Transform | None = None,
        margin: float = DEFAULT_MARGIN,
        decode_size: int | None = None,
        *,
        frame: str = "crop",
        mask: bool = False,
        depth: DepthStore | None = None,
    ) -> None:
        self.rows = rows.reset_index(drop=True)
        self.frame, self.mask, self.depth = frame, mask, depth
        self.raw_root = Path(raw_root) if raw_root is not None else None
        self.transform = transform
        self.margin = margin
        self.decode_size = decode_size
        # Column arrays: a pandas row lookup per sample costs as much as decoding a small crop.
        self._columns = {c: self.rows[c].to_numpy() for c in ("frame_path", "xmin", "ymin", "xmax", "ymax", "size_mm",
                                                             "size_class3", "polyp_id", "patient_id", "dataset",
                                                             "frame_index")}

    def __len__(self) -> int:
        return len(self.rows)

    def _box(self, index: int) -> tuple[int, int, int, int]:
        c = self._columns
        return int(c["xmin"][index]), int(c["ymin"][index]), int(c["xmax"][index]), int(c["ymax"][index])

    def _crop(self, index: int) -> tuple[torch.Tensor, Box]:
        """The crop (uint8 CHW) and the box in its coordinates; subclasses read other sources."""
        frame_path = str(self._columns["frame_path"][index])
        if self.raw_root is None:
            raise InputError(frame_path, "no raw root to read the frame from", "raw_root= the folder of the dump")
        if self.frame == "full":
            image, k = decode_frame(self.raw_root / frame_path, self.decode_size)
            x0, y0, x1, y1 = self._box(index)
            return image, (x0 / k, y0 / k, x1 / k, y1 / k)
        return decode_crop(self.raw_root / frame_path, self._box(index), self.margin, self.decode_size)

    def _box_mask(self, index: int, crop: torch.Tensor, box: Box) -> torch.Tensor:
        """The box mask of sample ``index`` over ``crop`` (whose coordinates ``box`` is in)."""
        full = self._box(index)
        height, width = crop.shape[-2:]
        k = (full[2] - full[0]) / (box[2] - box[0]) if box[2] > box[0] else 1.0
        window = (full[0] - box[0] * k, full[1] - box[1] * k, 0.0, 0.0)  # the crop's origin in full pixels
        return torch.from_numpy(box_coverage(full, window, k, height, width))[None]

    def _sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` before ``transform``."""
        crop, box = self._crop(index)
        sample = {
            "image": CropImage(crop),
            "boxes": tv_tensors.BoundingBoxes(torch.tensor([box], dtype=torch.float32), format="XYXY",
                                              canvas_size=(crop.shape[1], crop.shape[2])),
            **self._labels(index),
        }
        if self.mask:
            sample["mask"] = self._box_mask(index, crop, box)
        if self.depth is not None:
            sample["depth"] = self.depth.canvas(index, crop.shape[-2], crop.shape[-1])
        return sample

    def _labels(self, index: int) -> dict[str, Any]:
        """The targets and ids of sample ``index``."""
        c = self._columns
        return {
            "size_mm": torch.tensor(float(c["size_mm"][index]), dtype=torch.float32),
            "size_class3": torch.tensor(int(c["size_class3"][index]), dtype=torch.int64),
            "polyp_id": str(c["polyp_id"][index]),
            "patient_id": str(c["patient_id"][index]),
            "dataset": str(c["dataset"][index]),
            "frame_index": int(c["frame_index"][index]),
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self._sample(index)
        return self.transform(sample) if self.transform is not None else sample
