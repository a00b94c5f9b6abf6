"""PyTorch datasets over a prepared manifest: one sample per annotated box, cropped around the box
(:func:`load_split`), or one item per polyp holding all its frames (:func:`load_polyps`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from polypbench.errors import ConfigError, InputError, choice_error
from polypbench.load.collate import CropImage, PolypVideo
from polypbench.load.common import DEFAULT_SIZE, resolve_raw_root
from polypbench.load.decode import Box, decode_crop
from polypbench.manifest import Manifest

log = logging.getLogger(__name__)

SOURCES = ("auto", "raw", "shards")
"""Where :func:`load_split` reads pixels from: materialized shards when present (``auto``), or one of the two."""

Transform = Callable[[dict[str, Any]], dict[str, Any]]
Size = int | None | Literal["auto"]


def resolve_size(size: Size, transform: Transform | None) -> int | None:
    """The crop side ``size`` asks for: ``"auto"`` is :data:`DEFAULT_SIZE` without a ``transform`` and the native
    crop size (None) with one; an int must be at least 1."""
    if size == "auto":
        return DEFAULT_SIZE if transform is None else None
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ConfigError(f"size {size!r}; expected a positive number of pixels, None (native crops) or 'auto'")
    return size


class Resized:
    """``transform`` after resizing the crop to ``size`` x ``size`` (antialiased; the box moves with it; a shard
    sample's ``window`` is what is resized, then dropped)."""

    def __init__(self, size: int, transform: Transform | None = None) -> None:
        from polypbench.load.augment import UInt8Augment

        self.size, self.transform = size, transform
        self.resize = UInt8Augment(size, augment=False)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        sample = self.resize(sample)
        return self.transform(sample) if self.transform is not None else sample


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
            "image": CropImage(crop),
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
    size: Size = "auto",
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
    instead (``fold`` k required: test fold k, validation fold k + 1 mod 6; :meth:`Manifest.select`).
    ``raw_root`` defaults to the folder recorded at prepare time.

    ``size``: the side of the square crops handed out, resized before ``transform`` (antialiased; ``boxes`` move
    with the image). ``"auto"`` (default): :data:`DEFAULT_SIZE` (384) when no ``transform`` is given, so torch's
    default collate stacks the samples (``DataLoader(load_split(...), batch_size=4)``); with a ``transform``, the
    crops at their native size (the transform decides the pixels, as the training loaders' do). ``None``: native
    crops always (their sizes differ: collate with :func:`~polypbench.load.pad_collate`; torch's default collate
    refuses them in one line). An int: that size always.

    ``decode_size``: the training input size (see :class:`PolypFrames`; with ``size`` N, ``decode_size=N`` decodes
    faster for the same result up to resampling). ``source``: ``raw`` decodes the raw
    frames; ``shards`` reads crops written by ``polypbench materialize`` (:mod:`polypbench.shards`); ``auto``
    (default) reads shards when ``decode_size`` is given and a complete materialization of this manifest with
    this ``margin`` and at least ``decode_size`` pixels exists, raw frames otherwise. The samples are the same
    either way (same rows, order, keys and types; crops of the same region at another pixel scale).
    ``context=True`` asks shards for their stored context around the window as well (see
    :class:`~polypbench.shards.ShardFrames`; for :class:`~polypbench.load.augment.UInt8Augment`, which turns the
    image and fills the corners with real pixels); raw frames ignore it. ``encoded=True`` (training's
    ``device_decode``) hands out the stored JPEG bytes of shards instead of pixels (see
    :class:`~polypbench.shards.ShardFrames`); it needs shards and no ``size``.
    """
    if source not in SOURCES:
        raise choice_error("source", source, SOURCES)
    side = None if encoded and size == "auto" else resolve_size(size, transform)
    if encoded and side is not None:
        raise ConfigError(f"size={side} with encoded=True: encoded samples carry JPEG bytes, not pixels to resize; "
                          "expected size=None")
    if side is not None:
        transform = Resized(side, transform)
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


class PolypSequences(Dataset):
    """One item per polyp: all its frames (or ``max_frames`` of them, evenly spaced), in ``frame_index`` order,
    from a frames dataset of fixed-size crops (:func:`load_polyps`).

    Each item is a dict: ``image`` (:class:`~polypbench.load.collate.PolypVideo`, a tv_tensors.Video, uint8
    (T, 3, S, S)), ``boxes`` (tv_tensors.BoundingBoxes (T, 4), XYXY in crop pixels: transforms v2 move them with
    the frames, one random draw for the whole item), ``frame_index`` (int64 (T,)), ``n_frames`` (T), the polyp's
    ``size_mm`` and ``size_class3`` (tensors) and the ids ``polyp_id``, ``patient_id``, ``dataset``. ``transform``
    receives and returns that dict. ``polyps``: one row per item (ids, labels, ``n_frames`` before
    ``max_frames``).
    """

    def __init__(self, frames: PolypFrames, transform: Transform | None = None, max_frames: int | None = None) -> None:
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max_frames {max_frames}; expected at least 1 (or None: every frame)")
        self.frames, self.transform, self.max_frames = frames, transform, max_frames
        rows = frames.rows.assign(_position=np.arange(len(frames.rows)))
        rows = rows.sort_values(["dataset", "polyp_id", "frame_index"], kind="stable")
        groups = rows.groupby(["dataset", "polyp_id"], sort=False)
        self.members: list[np.ndarray] = [g["_position"].to_numpy() for _, g in groups]
        self.polyps = groups.agg(patient_id=("patient_id", "first"), size_mm=("size_mm", "first"),
                                 size_class3=("size_class3", "first"), n_frames=("frame_index", "size")).reset_index()

    def __len__(self) -> int:
        return len(self.members)

    def indices(self, index: int) -> np.ndarray:
        """Positions in :attr:`frames` of the frames item ``index`` holds."""
        members = self.members[index]
        if self.max_frames is None or len(members) <= self.max_frames:
            return members
        return members[np.linspace(0, len(members) - 1, self.max_frames).round().astype(int)]

    def __getitem__(self, index: int) -> dict[str, Any]:
        samples = [self.frames[int(i)] for i in self.indices(index)]
        shapes = {tuple(s["image"].shape) for s in samples}
        if len(shapes) > 1:
            raise ConfigError(f"polyp {samples[0]['polyp_id']}: frames of different crop sizes; expected "
                              "load_polyps(..., size=N), or a frames transform that makes one size")
        height, width = samples[0]["image"].shape[-2:]
        first = samples[0]
        item = {
            "image": PolypVideo(torch.stack([s["image"].as_subclass(torch.Tensor) for s in samples])),
            "boxes": tv_tensors.BoundingBoxes(torch.cat([s["boxes"].as_subclass(torch.Tensor) for s in samples]),
                                              format="XYXY", canvas_size=(height, width)),
            "frame_index": torch.tensor([s["frame_index"] for s in samples], dtype=torch.int64),
            "n_frames": len(samples),
            "size_mm": first["size_mm"],
            "size_class3": first["size_class3"],
            "polyp_id": first["polyp_id"],
            "patient_id": first["patient_id"],
            "dataset": first["dataset"],
        }
        return self.transform(item) if self.transform is not None else item


def load_polyps(
    prepared_dir: str | Path,
    split: str,
    fold: int | None = None,
    raw_root: str | Path | None = None,
    transform: Transform | None = None,
    *,
    size: int = DEFAULT_SIZE,
    max_frames: int | None = None,
    margin: float = 0.5,
    decode_size: int | None = None,
    source: str = "auto",
    protocol: str = "public",
) -> PolypSequences:
    """The ``split`` of a prepared manifest with one item per polyp (all its frames), for sequence models.

    Frames are the crops :func:`load_split` gives with ``size`` (stacked, so one size: default 384), in
    ``frame_index`` order; ``max_frames`` N keeps N evenly spaced frames of a longer polyp (items of polyps with
    at least N frames then have the same shape, so torch's default collate stacks them; else collate with
    :func:`~polypbench.load.pad_collate`, which pads with empty frames and reports each item's shape).
    ``transform`` receives each item (see :class:`PolypSequences`). The other arguments are :func:`load_split`'s.
    """
    if size is None or size == "auto":
        raise ConfigError(f"size={size!r}: a polyp's frames are stacked into one tensor; expected size=N pixels")
    frames = load_split(prepared_dir, split, fold, raw_root, size=size, margin=margin, decode_size=decode_size,
                        source=source, protocol=protocol)
    return PolypSequences(frames, transform, max_frames)
