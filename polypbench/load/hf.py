"""Hugging Face ``datasets`` view of a prepared manifest: the manifest's rows with the crops :func:`load_split`
gives, decoded on access (Pillow only: no torch needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets
from PIL import Image

from polypbench.load.common import DEFAULT_MARGIN, DEFAULT_SIZE, resolve_raw_root
from polypbench.load.decode import read_crop
from polypbench.load.spec import PixelSpec
from polypbench.manifest import Manifest
from polypbench.prepare.card import Feature, feature_types
from polypbench.splits import select

FRAME_FILE = "frame_file"
"""The column holding each row's absolute frame path (what the crops are decoded from)."""


def hf_features(types: Mapping[str, Feature] | None = None) -> datasets.Features:
    """``datasets.Features`` of :func:`~polypbench.prepare.card.feature_types` (the manifest's columns, with the
    size classes as ``ClassLabel``), the same features the prepared folder's card declares."""
    out: dict[str, Any] = {}
    for name, kind in (types if types is not None else feature_types()).items():
        if isinstance(kind, tuple):
            out[name] = datasets.ClassLabel(names=list(kind))
        elif kind == "image":
            out[name] = datasets.Image()
        elif isinstance(kind, str):
            out[name] = datasets.Value(kind)
        elif set(kind) == {"list", "length"}:
            out[name] = datasets.List(datasets.Value(kind["list"]), length=kind["length"])
        else:
            raise TypeError(f"feature {name}: {kind!r} has no datasets type here")
    return datasets.Features(out)


def crop_image(path: str | Path, box: tuple[int, int, int, int], size: int | None,
               margin: float = DEFAULT_MARGIN) -> tuple[Image.Image, list[float]]:
    """The crop :func:`load_split` gives for ``box`` in the frame at ``path`` (resized to ``size`` x ``size``,
    antialiased; None: native size) as a PIL RGB image, and the box in its pixels (XYXY)."""
    image, (x0, y0, x1, y1) = read_crop(path, box, margin, size)
    if size is not None and image.size != (size, size):
        sx, sy = size / image.width, size / image.height
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
        x0, x1, y0, y1 = x0 * sx, x1 * sx, y0 * sy, y1 * sy
    return image, [float(x0), float(y0), float(x1), float(y1)]


class _Crops:
    """``set_transform`` function: adds ``image`` (the crop, PIL) and ``box`` (XYXY in its pixels) to each row."""

    def __init__(self, size: int | None, margin: float) -> None:
        self.size, self.margin = size, margin

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        images, boxes = [], []
        for i, path in enumerate(batch[FRAME_FILE]):
            box = (batch["xmin"][i], batch["ymin"][i], batch["xmax"][i], batch["ymax"][i])
            image, crop_box = crop_image(path, box, self.size, self.margin)
            images.append(image)
            boxes.append(crop_box)
        return {**batch, "image": images, "box": boxes}


def load_hf(prepared_dir: str | Path, split: str, raw_root: str | Path | None = None, *, fold: int | None = None,
            protocol: str = "public", size: int | None = DEFAULT_SIZE, margin: float = DEFAULT_MARGIN,
            crop: bool = True) -> datasets.Dataset:
    """One split as a ``datasets.Dataset``: every manifest column (``size_class3`` and ``size_class2`` as
    ``ClassLabel`` with names), ``frame_file`` (the frame's absolute path), and on access ``image``, the crop
    :func:`~polypbench.load.load_split` gives (PIL, ``size`` x ``size``, default 384; ``size=None``: native) and
    ``box``, the polyp box in the crop's pixels (XYXY). ``fold`` and ``protocol`` select rows as in
    ``load_split``. The crops are decoded when rows are read (``Dataset.set_transform``; a later ``set_format``
    replaces it). ``crop=False``: ``image`` is the whole frame instead, a ``datasets.Image`` column.

    Without polypbench, ``datasets.load_dataset(prepared_dir)`` gives the same rows without images, and the
    folder written by ``polypbench export-hf`` the crops embedded."""
    crops = PixelSpec(source="raw", size=size, margin=margin)  # the crop geometry, checked as load_split's
    manifest = Manifest.open(prepared_dir)
    root = resolve_raw_root(manifest, raw_root)
    rows = select(manifest, split, fold, protocol=protocol)
    types = feature_types()
    rows = rows[list(types)].assign(**{FRAME_FILE: [str(root / p) for p in rows["frame_path"]]})
    features = hf_features({**types, FRAME_FILE: "string"})
    ds = datasets.Dataset.from_pandas(rows, features=features, preserve_index=False, split=datasets.Split(split))
    if not crop:
        return ds.add_column("image", ds[FRAME_FILE]).cast_column("image", datasets.Image())
    ds.set_transform(_Crops(crops.size, crops.margin))
    return ds
