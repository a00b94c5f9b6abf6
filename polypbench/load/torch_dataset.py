"""PyTorch datasets over a prepared manifest: one sample per annotated box, cropped around the box
(:func:`load_split`), or one item per polyp holding all its frames (:func:`load_polyps`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from polypbench.errors import ConfigError, choice_error
from polypbench.load.collate import PolypVideo
from polypbench.load.common import DEFAULT_MARGIN, DEFAULT_SIZE, resolve_raw_root
from polypbench.load.frames import PolypFrames, Transform
from polypbench.load.shard_layout import find_materialized
from polypbench.load.shards import ShardFrames
from polypbench.manifest import Manifest
from polypbench.splits import select

log = logging.getLogger(__name__)

SOURCES = ("auto", "raw", "shards")
"""Where :func:`load_split` reads pixels from: materialized shards when present (``auto``), or one of the two."""

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


def load_split(
    prepared_dir: str | Path,
    split: str,
    fold: int | None = None,
    raw_root: str | Path | None = None,
    transform: Transform | None = None,
    *,
    size: Size = "auto",
    margin: float = DEFAULT_MARGIN,
    decode_size: int | None = None,
    source: str = "auto",
    context: bool = False,
    encoded: bool = False,
    protocol: str = "public",
) -> PolypFrames:
    """The ``split`` (train / validation / test) of a prepared manifest as a torch Dataset.

    With ``fold`` k the public cross-validation folds are used instead of the default split: validation is
    fold k, train the other non-test folds. ``protocol="paper"`` uses the HAG/GR paper's per-object folds
    instead (``fold`` k required: test fold k, validation fold k + 1 mod 6; :func:`polypbench.splits.select`).
    ``raw_root`` defaults to the folder recorded at prepare time.

    ``size``: the side of the square crops handed out, resized before ``transform`` (antialiased; ``boxes`` move
    with the image). ``"auto"`` (default): :data:`DEFAULT_SIZE` (384) when no ``transform`` is given, so torch's
    default collate stacks the samples (``DataLoader(load_split(...), batch_size=4)``); with a ``transform``, the
    crops at their native size (the transform decides the pixels, as the training loaders' do). ``None``: native
    crops always (their sizes differ: collate with :func:`~polypbench.load.pad_collate`; torch's default collate
    refuses them in one line). An int: that size always.

    ``decode_size``: the training input size (see :class:`PolypFrames`; with ``size`` N, ``decode_size=N`` decodes
    faster for the same result up to resampling). ``source``: ``raw`` decodes the raw
    frames; ``shards`` reads crops written by ``polypbench materialize`` (:mod:`polypbench.load.shards`); ``auto``
    (default) reads shards when ``decode_size`` is given and a complete materialization of this manifest with
    this ``margin`` and at least ``decode_size`` pixels exists, raw frames otherwise. The samples are the same
    either way (same rows, order, keys and types; crops of the same region at another pixel scale).
    ``context=True`` asks shards for their stored context around the window as well (see
    :class:`~polypbench.load.shards.ShardFrames`; for :class:`~polypbench.load.augment.UInt8Augment`, which turns the
    image and fills the corners with real pixels); raw frames ignore it. ``encoded=True`` (training's
    ``device_decode``) hands out the stored JPEG bytes of shards instead of pixels (see
    :class:`~polypbench.load.shards.ShardFrames`); it needs shards and no ``size``.
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
    rows = select(manifest, split, fold, protocol=protocol)
    shards = None
    if source != "raw":
        shards = find_materialized(manifest.root, margin, decode_size, required=source == "shards")
    log.info("%s %s%s: %d boxes of %d polyps, from %s", manifest.dataset, split,
             "" if fold is None else f" (fold {fold})", len(rows), rows["polyp_id"].nunique(), shards or "raw frames")
    if shards is not None:
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
    margin: float = DEFAULT_MARGIN,
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
