"""PyTorch dataset over a prepared manifest: one sample per annotated box, cropped around the box."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from polypbench.errors import InputError
from polypbench.load.crop import crop_window
from polypbench.manifest import Manifest

log = logging.getLogger(__name__)


def resolve_raw_root(manifest: Manifest, raw_root: str | Path | None) -> Path:
    """The raw root to read frames from: the one given, else the one recorded at prepare time."""
    root = Path(raw_root) if raw_root is not None else manifest.raw_root
    if root is None or not root.is_dir():
        raise InputError(manifest.root, f"raw root {root} is not a folder", "raw_root= the folder the dump was prepared from")
    return root


class PolypFrames(Dataset):
    """Samples of one split of a prepared manifest.

    Each sample is a dict: ``image`` (tv_tensors.Image, uint8 CHW, the crop), ``boxes`` (tv_tensors.BoundingBoxes,
    XYXY in crop coordinates, so v2 transforms move it with the image), ``size_mm`` (float32 tensor),
    ``size_class3`` (int64 tensor), and the ids ``polyp_id``, ``patient_id``, ``dataset``, ``frame_index``.
    ``transform`` receives and returns that dict (torchvision transforms v2 handle it as is).
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        raw_root: Path,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        margin: float = 0.5,
    ) -> None:
        self.rows = rows.reset_index(drop=True)
        self.raw_root = Path(raw_root)
        self.transform = transform
        self.margin = margin

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows.iloc[index]
        path = self.raw_root / row["frame_path"]
        box = (int(row["xmin"]), int(row["ymin"]), int(row["xmax"]), int(row["ymax"]))
        try:
            # Pillow, not torchvision.io: torchvision 0.29 deprecates its image decoders.
            with Image.open(path) as frame:
                left, top, right, bottom = crop_window(box, frame.width, frame.height, self.margin)
                pixels = np.asarray(frame.convert("RGB").crop((left, top, right, bottom)))
        except OSError as exc:
            raise InputError(path, f"unreadable frame ({str(exc).splitlines()[0]})", "a JPEG frame") from None
        crop = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
        boxes = torch.tensor([[box[0] - left, box[1] - top, box[2] - left, box[3] - top]], dtype=torch.float32)
        sample = {
            "image": tv_tensors.Image(crop),
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(bottom - top, right - left)),
            "size_mm": torch.tensor(float(row["size_mm"]), dtype=torch.float32),
            "size_class3": torch.tensor(int(row["size_class3"]), dtype=torch.int64),
            "polyp_id": row["polyp_id"],
            "patient_id": row["patient_id"],
            "dataset": row["dataset"],
            "frame_index": int(row["frame_index"]),
        }
        return self.transform(sample) if self.transform is not None else sample


def load_split(
    prepared_dir: str | Path,
    split: str,
    fold: int | None = None,
    raw_root: str | Path | None = None,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    *,
    margin: float = 0.5,
) -> PolypFrames:
    """The ``split`` (train / validation / test) of a prepared manifest as a torch Dataset.

    With ``fold`` k the public cross-validation folds are used instead of the default split: validation is
    fold k, train the other non-test folds. ``raw_root`` defaults to the folder recorded at prepare time.
    """
    manifest = Manifest.open(prepared_dir)
    rows = manifest.select(split, fold)
    log.info("%s %s%s: %d boxes of %d polyps", manifest.dataset, split, "" if fold is None else f" (fold {fold})",
             len(rows), rows["polyp_id"].nunique())
    return PolypFrames(rows, resolve_raw_root(manifest, raw_root), transform, margin)
