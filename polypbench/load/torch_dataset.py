"""PyTorch dataset over a prepared manifest: one sample per annotated box, cropped around the box."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from polypbench.errors import ConfigError, InputError, choice_error
from polypbench.load.decode import Box, decode_crop
from polypbench.manifest import Manifest

log = logging.getLogger(__name__)

SOURCES = ("auto", "raw", "shards")
"""Where :func:`load_split` reads pixels from: materialized shards when present (``auto``), or one of the two."""

Transform = Callable[[dict[str, Any]], dict[str, Any]]


def resolve_raw_root(manifest: Manifest, raw_root: str | Path | None) -> Path:
    """The raw root to read frames from: the one given, else the one recorded at prepare time."""
    root = Path(raw_root) if raw_root is not None else manifest.raw_root
    if root is None or not root.is_dir():
        raise InputError(manifest.root, f"raw root {root} is not a folder",
                         "raw_root= the folder the dump was prepared from")
    return root


class PolypFrames(Dataset):
    """Samples of one split of a prepared manifest, decoded from the raw frames.

    Each sample is a dict: ``image`` (tv_tensors.Image, uint8 CHW, the crop), ``boxes`` (tv_tensors.BoundingBoxes,
    XYXY in crop coordinates, so v2 transforms move it with the image), ``size_mm`` (float32 tensor),
    ``size_class3`` (int64 tensor), and the ids ``polyp_id``, ``patient_id``, ``dataset``, ``frame_index``.
    ``transform`` receives and returns that dict (torchvision transforms v2 handle it as is).

    ``decode_size`` (the training input size) lets JPEG frames decode at 1/2, 1/4 or 1/8 scale in the DCT domain
    while the crop keeps at least that many pixels a side; ``None`` decodes at full resolution. The crop covers
    the same region either way (:func:`~polypbench.load.crop_window`); only its pixel scale differs.
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        raw_root: Path | None,
        transform: Transform | None = None,
        margin: float = 0.5,
        decode_size: int | None = None,
    ) -> None:
        self.rows = rows.reset_index(drop=True)
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
        return decode_crop(self.raw_root / frame_path, self._box(index), self.margin, self.decode_size)

    def _sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` before ``transform``."""
        crop, box = self._crop(index)
        return {
            "image": tv_tensors.Image(crop),
            "boxes": tv_tensors.BoundingBoxes(torch.tensor([box], dtype=torch.float32), format="XYXY",
                                              canvas_size=(crop.shape[1], crop.shape[2])),
            **self._labels(index),
        }

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


def load_split(
    prepared_dir: str | Path,
    split: str,
    fold: int | None = None,
    raw_root: str | Path | None = None,
    transform: Transform | None = None,
    *,
    margin: float = 0.5,
    decode_size: int | None = None,
    source: str = "auto",
    context: bool = False,
    encoded: bool = False,
    protocol: str = "public",
) -> PolypFrames:
    """The ``split`` (train / validation / test) of a prepared manifest as a torch Dataset.

    With ``fold`` k the public cross-validation folds are used instead of the default split: validation is
    fold k, train the other non-test folds. ``protocol="paper"`` uses the HAG/GR paper's per-object folds
    instead (``fold`` k required: test fold k, validation fold k + 1 mod 6; :meth:`Manifest.select`). ``raw_root`` defaults to the folder recorded at prepare time.

    ``decode_size``: the training input size (see :class:`PolypFrames`). ``source``: ``raw`` decodes the raw
    frames; ``shards`` reads crops written by ``polypbench materialize`` (:mod:`polypbench.shards`); ``auto``
    (default) reads shards when ``decode_size`` is given and a complete materialization of this manifest with
    this ``margin`` and at least ``decode_size`` pixels exists, raw frames otherwise. The samples are the same
    either way (same rows, order, keys and types; crops of the same region at another pixel scale).
    ``context=True`` asks shards for their stored context around the window as well (see
    :class:`~polypbench.shards.ShardFrames`; for :class:`~polypbench.load.augment.UInt8Augment`, which turns the
    image and fills the corners with real pixels); raw frames ignore it. ``encoded=True`` (training's
    ``device_decode``) hands out the stored JPEG bytes of shards instead of pixels (see
    :class:`~polypbench.shards.ShardFrames`); it needs shards.
    """
    if source not in SOURCES:
        raise choice_error("source", source, SOURCES)
    manifest = Manifest.open(prepared_dir)
    rows = manifest.select(split, fold, protocol=protocol)
    shards = None
    if source != "raw":
        from polypbench.shards import find_materialized

        shards = find_materialized(manifest.root, margin, decode_size, required=source == "shards")
    log.info("%s %s%s: %d boxes of %d polyps, from %s", manifest.dataset, split,
             "" if fold is None else f" (fold {fold})", len(rows), rows["polyp_id"].nunique(), shards or "raw frames")
    if shards is not None:
        from polypbench.shards import ShardFrames

        return ShardFrames(rows, shards, transform, decode_size=decode_size, context=context, encoded=encoded)
    if encoded:
        raise ConfigError(f"{prepared_dir}: encoded=True hands out the JPEG crops of materialized shards; expected "
                          "source='shards' (or 'auto' with a materialization that fits)")
    return PolypFrames(rows, resolve_raw_root(manifest, raw_root), transform, margin, decode_size)
