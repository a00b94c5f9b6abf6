"""DataLoaders for training and inference: transforms v2 (boxes travel with the image), a seeded
frames-per-polyp sampler, and a collate that stacks tensors and keeps ids as lists.

Every batch carries ``image`` (B, 3, S, S) normalized, ``masked`` (the same image with the pixels outside the
polyp box zeroed before normalization: the multistream model's ``masked`` stream), ``size_mm`` (B,),
``size_class3`` (B,), and the lists ``polyp_id``, ``frame_index``, ``dataset``, ``patient_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Sampler
from torchvision import tv_tensors
from torchvision.transforms import v2

from polypbench.errors import ConfigError
from polypbench.load import PolypFrames, load_split
from polypbench.train.config import TrainConfig

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BATCH_STREAMS = ("rgb", "masked")
"""Streams a batch provides (``rgb`` is ``image``); a multistream model may ask for any of them."""


def _box_mask(sample: dict[str, Any]) -> dict[str, Any]:
    """Add ``masked``: the image with every pixel outside the (transformed) box set to zero."""
    image = sample["image"]
    mask = torch.zeros(image.shape[-2:], dtype=torch.bool)
    h, w = mask.shape
    for x0, y0, x1, y1 in sample["boxes"].round().int().tolist():
        mask[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)] = True
    sample["masked"] = tv_tensors.Image(image * mask)
    return sample


class SampleTransform:
    """Resize (+ augment when training) -> the box-masked stream -> float in [0, 1] -> ImageNet normalization."""

    def __init__(self, img_size: int, augment: bool) -> None:
        steps: list[Any] = [v2.Resize((img_size, img_size), antialias=True)]
        if augment:
            steps += [v2.RandomRotation(20), v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(),
                      v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02)]
        self.geometry = v2.Compose(steps)
        self.normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        return self.normalize(_box_mask(self.geometry(sample)))


class FramesPerPolyp(Sampler[int]):
    """Each epoch, ``n`` frames of every polyp (without replacement when it has that many), shuffled; seeded by
    ``seed`` and the epoch (call :meth:`set_epoch`), so a run is reproducible and epochs differ."""

    def __init__(self, polyp_keys: Sequence[object], n: int, seed: int = 0) -> None:
        groups: dict[object, list[int]] = {}
        for i, key in enumerate(polyp_keys):
            groups.setdefault(key, []).append(i)
        self.groups = list(groups.values())
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n * len(self.groups)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        picks = [rng.choice(g, self.n, replace=len(g) < self.n) for g in self.groups]
        order = np.concatenate(picks) if picks else np.array([], dtype=np.int64)
        return iter(rng.permutation(order).tolist())


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors (as plain tensors), keep ids as lists."""
    batch: dict[str, Any] = {}
    for key in ("image", "masked", "size_mm", "size_class3"):
        batch[key] = torch.stack([s[key].as_subclass(torch.Tensor) for s in samples])
    for key in ("polyp_id", "frame_index", "dataset", "patient_id"):
        batch[key] = [s[key] for s in samples]
    return batch


def model_input(batch: dict[str, Any], streams: Sequence[str] | None, device: torch.device,
                non_blocking: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
    """What the model's ``forward`` takes: the image tensor, or ``{stream: tensor}`` for a multistream model."""
    if streams is None:
        return batch["image"].to(device, non_blocking=non_blocking)
    missing = [s for s in streams if s not in BATCH_STREAMS]
    if missing:
        raise ConfigError(f"stream {missing[0]!r} is not built by the training data; expected streams from: "
                          f"{', '.join(BATCH_STREAMS)}")
    key = {"rgb": "image", "masked": "masked"}
    return {s: batch[key[s]].to(device, non_blocking=non_blocking) for s in streams}


def split_dataset(cfg: TrainConfig, split: str, *, augment: bool) -> ConcatDataset[dict[str, Any]]:
    """The ``split`` of every prepared folder in ``cfg`` as one dataset."""
    if not cfg.prepared:
        raise ConfigError("config key 'prepared' is empty; expected at least one prepared manifest folder")
    transform = SampleTransform(cfg.img_size, augment)
    roots: list[str | None] = list(cfg.raw_roots) or [None] * len(cfg.prepared)
    parts = [load_split(d, split, cfg.fold, raw_root=r, transform=transform, margin=cfg.margin)
             for d, r in zip(cfg.prepared, roots)]
    return ConcatDataset(parts)


def polyp_keys(dataset: ConcatDataset[dict[str, Any]]) -> list[tuple[str, str]]:
    """(dataset, polyp_id) per sample, in dataset order."""
    keys: list[tuple[str, str]] = []
    for part in dataset.datasets:
        assert isinstance(part, PolypFrames)
        keys += list(zip(part.rows["dataset"].astype(str), part.rows["polyp_id"].astype(str)))
    return keys


def train_loader(cfg: TrainConfig) -> tuple[DataLoader[dict[str, Any]], FramesPerPolyp]:
    """The training loader (augmented when ``cfg.augment``) and its sampler (call ``set_epoch`` each epoch)."""
    data = split_dataset(cfg, "train", augment=cfg.augment)
    if len(data) == 0:
        raise ConfigError("the train split is empty; check 'prepared' and 'fold'")
    sampler = FramesPerPolyp(polyp_keys(data), cfg.frames_per_polyp_per_epoch, cfg.seed)
    loader = DataLoader(data, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=cfg.num_workers, pin_memory=cfg.device == "cuda", drop_last=False,
                        generator=torch.Generator().manual_seed(cfg.seed),
                        persistent_workers=cfg.num_workers > 0)
    return loader, sampler


def eval_loader(cfg: TrainConfig, split: str, batch_size: int | None = None) -> DataLoader[dict[str, Any]]:
    """Every frame of ``split``, in manifest order, without augmentation."""
    data = split_dataset(cfg, split, augment=False)
    return DataLoader(data, batch_size=batch_size or cfg.batch_size, shuffle=False, collate_fn=collate,
                      num_workers=cfg.num_workers, pin_memory=cfg.device == "cuda")
