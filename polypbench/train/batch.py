"""The typed batch of the training input path, and the collate that builds it from per-sample dicts.

Datasets keep handing out the documented per-sample dicts (:func:`polypbench.load_split`, CIFAR-100's
:class:`~polypbench.train.cifar.CifarImages`); :func:`collate` turns a list of them into one :class:`Batch`, whose
fields are always there (``None`` where the data has none), so the loop and
:func:`~polypbench.train.data.model_input` read fields instead of testing for optional keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from polypbench.errors import ConfigError
from polypbench.load.collate import pad_stack

TARGETS = ("size_mm", "size_class3", "label")
"""Batch fields that hold targets (a task's ``target`` names one)."""
PREDICTION_IDS = ("polyp_id", "frame_index", "index")
"""Batch fields that identify a sample in a prediction file (polyps: the first two; CIFAR-100: ``index``)."""


@dataclass
class Batch:
    """One batch: pixels, targets and ids of B samples.

    Pixels: ``image`` (B, 3, H, W), uint8 from the training loaders (zero-padded at the bottom and right to the
    batch's largest crop when the crops carry context) or float and normalized from
    :class:`~polypbench.train.data.SampleTransform`; ``None`` when the loader hands over ``jpeg`` instead (the
    stored JPEG crops, decoded on the training device: ``device_decode``). ``window`` (B, 4): the crop window in
    image pixels (device augmentation); ``box`` (B, 4): the polyp box in image pixels, XYXY; ``masked``: the
    normalized box-masked stream, where the samples already carry it; ``mask`` (B, 1, H, W): the float box masks
    moved with the images, where a stream needs them; ``depth`` (B, 1, H, W): stored depth maps moved with them
    (``depth: shards``).
    Targets: ``size_mm`` (B,) float32 and ``size_class3`` (B,) int64 for polyps, ``label`` (B,) int64 for
    CIFAR-100. Ids (lists): ``polyp_id``, ``frame_index``, ``dataset``, ``patient_id`` for polyps, ``index``
    (position in the official split) for CIFAR-100.
    """

    image: torch.Tensor | None = None
    jpeg: list[torch.Tensor] | None = None
    window: torch.Tensor | None = None
    box: torch.Tensor | None = None
    masked: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    size_mm: torch.Tensor | None = None
    size_class3: torch.Tensor | None = None
    label: torch.Tensor | None = None
    polyp_id: list[str] | None = None
    frame_index: list[int] | None = None
    dataset: list[str] | None = None
    patient_id: list[str] | None = None
    index: list[int] | None = None

    def __len__(self) -> int:
        return len(self.image) if self.image is not None else len(self.jpeg or ())

    def target(self, name: str) -> torch.Tensor:
        """The target field ``name`` (one of :data:`TARGETS`); a one-line error when this batch has none."""
        if name not in TARGETS:
            raise ConfigError(f"batch target {name!r}: expected one of: {', '.join(TARGETS)}")
        value = getattr(self, name)
        if value is None:
            have = [t for t in TARGETS if getattr(self, t) is not None]
            raise ConfigError(f"batch target {name!r} is not in this data; expected one of: {', '.join(have)}")
        return value

    def ids(self) -> dict[str, list[Any]]:
        """The id columns of a prediction file that this batch has (see :data:`PREDICTION_IDS`)."""
        return {k: getattr(self, k) for k in PREDICTION_IDS if getattr(self, k) is not None}

    def pin_memory(self) -> Batch:
        """The same batch with its tensors in pinned memory (called by ``DataLoader(pin_memory=True)``)."""
        pinned = dataclasses.replace(self)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                setattr(pinned, f.name, value.pin_memory())
        return pinned


SAMPLE_KEYS = ("image", "jpeg", "window", "boxes", "masked", "mask", "depth", *TARGETS, "polyp_id", "frame_index",
               "dataset", "patient_id", "index")
"""Per-sample dict keys that :func:`collate` reads (``boxes`` holds one box per polyp sample)."""


def collate(samples: Sequence[Mapping[str, Any]]) -> Batch:
    """One :class:`Batch` of per-sample dicts that share their keys (tensors stacked as plain tensors, ids kept
    as lists); a key outside :data:`SAMPLE_KEYS` is a one-line error."""
    first = samples[0]
    unknown = sorted(set(first) - set(SAMPLE_KEYS))
    if unknown:
        raise ConfigError(f"sample key {unknown[0]!r} has no place in a training batch; expected keys from: "
                          f"{', '.join(SAMPLE_KEYS)}")

    def tensors(key: str) -> list[torch.Tensor] | None:
        return [s[key].as_subclass(torch.Tensor) for s in samples] if key in first else None

    def stacked(key: str) -> torch.Tensor | None:
        values = tensors(key)
        return None if values is None else torch.stack(values)

    def listed(key: str) -> list[Any] | None:
        return [s[key] for s in samples] if key in first else None

    images, boxes = tensors("image"), tensors("boxes")
    return Batch(
        image=None if images is None else pad_stack(images),
        jpeg=tensors("jpeg"),
        window=stacked("window"),
        box=None if boxes is None else torch.stack([b[0] for b in boxes]),
        masked=stacked("masked"),
        mask=stacked("mask"),
        depth=stacked("depth"),
        size_mm=stacked("size_mm"),
        size_class3=stacked("size_class3"),
        label=stacked("label"),
        polyp_id=listed("polyp_id"),
        frame_index=listed("frame_index"),
        dataset=listed("dataset"),
        patient_id=listed("patient_id"),
        index=listed("index"),
    )
