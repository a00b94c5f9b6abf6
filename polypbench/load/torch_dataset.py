"""PyTorch datasets over a prepared manifest: one sample per annotated box, cropped around the box
(:func:`load_split`), or one item per polyp holding all its frames (:func:`load_polyps`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from polypbench.errors import ConfigError
from polypbench.load.augment import LOADER_STEPS
from polypbench.load.collate import PolypVideo
from polypbench.load.common import DEFAULT_SIZE, resolve_raw_root
from polypbench.load.frames import PolypFrames, Transform
from polypbench.load.shard_layout import find_materialized
from polypbench.load.shards import ShardFrames
from polypbench.load.spec import PixelOptions, PixelSpec, spec_with
from polypbench.load.streams import needs
from polypbench.manifest import Manifest
from polypbench.splits import select

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Unpack

    import pandas as pd

log = logging.getLogger(__name__)


class Then:
    """``first``, then ``then``: two sample transforms as one (picklable, for DataLoader workers)."""

    def __init__(self, first: Transform, then: Transform) -> None:
        self.first, self.then = first, then

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        return self.then(self.first(sample))


def pixel_transform(spec: PixelSpec, transform: Transform | None = None) -> Transform | None:
    """The loader's pixel step for ``spec`` (resize and augmentation: :data:`~polypbench.load.augment.LOADER_STEPS`
    of its ``augment``; none for native crops), then ``transform``."""
    if spec.size is None:
        return transform
    step = LOADER_STEPS[spec.augment](spec.size, spec.recipe)
    return step if transform is None else Then(step, transform)


def load_split(
    prepared_dir: str | Path,
    split: str,
    fold: int | None = None,
    raw_root: str | Path | None = None,
    transform: Transform | None = None,
    *,
    protocol: str = "public",
    spec: PixelSpec | None = None,
    keep: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    **pixels: Unpack[PixelOptions],
) -> PolypFrames:
    """The ``split`` (train / validation / test) of a prepared manifest as a torch Dataset, one sample per box.

    With ``fold`` k the public cross-validation folds are used instead of the default split: validation is
    fold k, train the other non-test folds. ``protocol="paper"`` uses the HAG/GR paper's per-object folds
    instead (``fold`` k required: test fold k, validation fold k + 1 mod 6; :func:`polypbench.splits.select`).
    ``raw_root`` defaults to the folder recorded at prepare time. ``transform`` receives each sample after the
    pipeline's own resize (and augmentation).

    The pixels follow one :class:`~polypbench.load.spec.PixelSpec`: ``spec``, with any of its fields given as
    keywords (``**pixels``) replacing the spec's (docs/loading.md). The common ones:

    - ``size``: the side of the square crops handed out, resized before ``transform`` (antialiased; ``boxes``
      move with the image). ``"auto"`` (default without a ``spec``): :data:`DEFAULT_SIZE` (384) when no
      ``transform`` is given, so torch's default collate stacks the samples; with a ``transform``, the crops at
      their native size (the transform decides the pixels). ``None``: native crops always (collate with
      :func:`~polypbench.load.pad_collate`; torch's default collate refuses them in one line). An int: that size.
    - ``decode_size``: decode at the smallest JPEG scale that keeps this many pixels a side (with ``size`` N,
      ``decode_size=N`` is faster for the same result up to resampling); with ``source="auto"`` (default) it
      also makes the loader read materialized shards of this ``margin`` and at least that size when they exist.
    - ``margin`` (default 0.5), ``source`` (``auto``, ``raw``, ``shards``, ``device``), ``augment`` (``none``,
      ``loader``, ``device``), ``context``, ``frame`` (``crop``, ``full``), ``augment_recipe``: see
      :class:`~polypbench.load.spec.PixelSpec`. Where ``streams`` need the box mask (``masked_frame``, ``depth``)
      the samples carry ``mask``, moved with the image.

    ``keep``: a function of the split's manifest rows returning the rows to use (a subset, in order).

    The samples are the same from raw frames and from shards (same rows, order, keys and types; crops of the
    same region at another pixel scale).
    """
    spec = spec_with(spec, pixels, transform=transform is not None)
    manifest = Manifest.open(prepared_dir)
    rows = select(manifest, split, fold, protocol=protocol)
    if keep is not None:  # e.g. the seed's SUN frame set (config key seed_sun_frames)
        rows = keep(rows)
    source = spec.source_entry
    shards = None
    if source.shards != "never" and spec.frame == "crop":  # shards hold crops; whole frames come from raw frames
        shards = find_materialized(manifest.root, spec.margin, spec.decode_size, required=source.shards == "required")
    log.info("%s %s%s: %d boxes of %d polyps, from %s", manifest.dataset, split,
             "" if fold is None else f" (fold {fold})", len(rows), rows["polyp_id"].nunique(), shards or "raw frames")
    if not source.encoded:  # JPEG bytes get no pixel step: the device decodes and augments them
        transform = pixel_transform(spec, transform)
    mask = needs(spec.streams, "mask")
    depth = None
    if spec.depth == "shards" and needs(spec.streams, "depth") and spec.size is not None:
        from polypbench.load.depth_store import DepthStore

        depth = DepthStore(manifest.root, spec.size, rows, normalize=spec.normalize, fov_mask=spec.fov_mask)
    if shards is not None:
        return ShardFrames(rows, shards, transform, decode_size=spec.decode_size, context=spec.context,
                           encoded=source.encoded, mask=mask)
    return PolypFrames(rows, resolve_raw_root(manifest, raw_root), transform, spec.margin, spec.decode_size,
                       frame=spec.frame, mask=mask, depth=depth)


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
    max_frames: int | None = None,
    protocol: str = "public",
    spec: PixelSpec | None = None,
    **pixels: Unpack[PixelOptions],
) -> PolypSequences:
    """The ``split`` of a prepared manifest with one item per polyp (all its frames), for sequence models.

    Frames are the crops :func:`load_split` gives with ``size`` (stacked, so one size: default 384), in
    ``frame_index`` order; ``max_frames`` N keeps N evenly spaced frames of a longer polyp (items of polyps with
    at least N frames then have the same shape, so torch's default collate stacks them; else collate with
    :func:`~polypbench.load.pad_collate`, which pads with empty frames and reports each item's shape).
    ``transform`` receives each item (see :class:`PolypSequences`). The other arguments are :func:`load_split`'s.
    """
    size = pixels.get("size", DEFAULT_SIZE if spec is None else spec.size)
    if size is None or size == "auto":
        raise ConfigError(f"size={size!r}: a polyp's frames are stacked into one tensor; expected size=N pixels")
    pixels["size"] = size
    frames = load_split(prepared_dir, split, fold, raw_root, protocol=protocol, spec=spec, **pixels)
    return PolypSequences(frames, transform, max_frames)
