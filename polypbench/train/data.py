"""DataLoaders for training and inference: transforms v2 (boxes travel with the image), a seeded
frames-per-polyp sampler (shared out between DDP ranks), and a collate that stacks tensors and keeps ids as lists.

Loader workers only decode and augment on uint8 (:class:`~polypbench.load.augment.UInt8Augment`); normalization
and the box-masked stream are computed on whole batches on the training device (:func:`model_input`). A polyp
batch carries ``image`` (B, 3, S, S) uint8, ``box`` (B, 4) in its pixels, ``size_mm`` (B,), ``size_class3`` (B,),
and the lists ``polyp_id``, ``frame_index``, ``dataset``, ``patient_id``. A CIFAR-100 batch carries ``image``,
``label`` (B,) and the list ``index``. :func:`build_data` returns every loader of a run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler
from torchvision import tv_tensors

from polypbench.errors import ConfigError
from polypbench.load import PolypFrames, load_split
from polypbench.load.augment import UInt8Augment
from polypbench.load.decode import decode_jpeg_batch
from polypbench.train.config import TrainConfig
from polypbench.train.device_augment import DeviceAugment, WindowScale

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BATCH_STREAMS = ("rgb", "masked")
"""Streams a batch provides (``rgb`` is ``image``); a multistream model may ask for any of them."""


def normalize_batch(images: torch.Tensor, boxes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """uint8 (B, 3, H, W) images (or float in [0, 1]) -> ``image`` (float, ImageNet-normalized) and, given ``boxes`` (B, 4) XYXY in
    pixels, ``masked``: the same with every pixel outside the box zeroed before normalization.

    Runs wherever ``images`` are: the training loop calls it on the device after a uint8 copy (a quarter of the
    bytes of float), so the loader workers only decode and augment.
    """
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    x = images.float().div_(255) if images.dtype == torch.uint8 else images
    out = {"image": (x - mean) / std}
    if boxes is not None:
        h, w = images.shape[-2:]
        b = boxes.to(images.device).round()
        ys = torch.arange(h, device=images.device).view(1, h, 1)
        xs = torch.arange(w, device=images.device).view(1, 1, w)
        inside = ((ys >= b[:, 1, None, None]) & (ys < b[:, 3, None, None]) & (xs >= b[:, 0, None, None])
                  & (xs < b[:, 2, None, None]))
        out["masked"] = (x * inside[:, None] - mean) / std
    return out


class SampleTransform:
    """One sample, CPU: resize (+ augment when training: turn, flips, colour jitter on uint8, see
    :class:`~polypbench.load.augment.UInt8Augment`) -> ``image`` normalized and, with ``mask``, ``masked`` (the
    box-masked stream). The training loaders stop after the uint8 step and normalize whole batches on the device
    (:func:`normalize_batch`); this per-sample form is for inspection and for users' own loops."""

    def __init__(self, img_size: int, augment: bool, mask: bool = True) -> None:
        self.geometry = UInt8Augment(img_size, augment)
        self.mask = mask

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        sample = self.geometry(sample)
        box = sample["boxes"].as_subclass(torch.Tensor)[:1] if self.mask else None
        out = normalize_batch(sample["image"].as_subclass(torch.Tensor)[None], box)
        sample["image"] = tv_tensors.Image(out["image"][0])
        if self.mask:
            sample["masked"] = tv_tensors.Image(out["masked"][0])
        return sample


class FramesPerPolyp(Sampler[int]):
    """Each epoch, ``n`` frames of every polyp (every group of equal ``keys``; without replacement when it has that
    many), shuffled; ``n=None`` takes every sample once. Seeded by ``seed`` and the epoch (call :meth:`set_epoch`),
    so a run is reproducible and epochs differ.

    Under DistributedDataParallel, rank ``rank`` of ``world_size`` takes every ``world_size``-th index of the same
    epoch order (padded by wrapping round to a multiple of ``world_size``): the ranks never overlap and together
    cover the epoch.
    """

    def __init__(self, keys: Sequence[object], n: int | None, seed: int = 0, *, rank: int = 0,
                 world_size: int = 1) -> None:
        groups: dict[object, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        self.groups = list(groups.values())
        self.n, self.seed, self.epoch = n, seed, 0
        self.rank, self.world_size = rank, world_size
        self.total = len(keys) if n is None else n * len(self.groups)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.total // self.world_size)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.n is None:
            order = np.concatenate(self.groups) if self.groups else np.array([], dtype=np.int64)
        else:
            picks = [rng.choice(g, self.n, replace=len(g) < self.n) for g in self.groups]
            order = np.concatenate(picks) if picks else np.array([], dtype=np.int64)
        order = rng.permutation(order)
        if self.world_size > 1 and len(order):
            order = np.resize(order, len(self) * self.world_size)[self.rank::self.world_size]
        return iter(order.tolist())


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors (as plain tensors; ``boxes``, one per polyp sample, become ``box`` (B, 4)), keep ids as
    lists."""
    batch: dict[str, Any] = {}
    for key, value in samples[0].items():
        if key == "boxes":
            batch["box"] = torch.stack([s[key].as_subclass(torch.Tensor)[0] for s in samples])
        elif key == "jpeg":  # encoded crops (device_decode): decoded in the training loop
            batch[key] = [s[key] for s in samples]
        elif key == "image" and len({s[key].shape for s in samples}) > 1:  # crops with context (device_augment)
            batch[key] = pad_stack([s[key].as_subclass(torch.Tensor) for s in samples])
        elif isinstance(value, torch.Tensor):
            batch[key] = torch.stack([s[key].as_subclass(torch.Tensor) for s in samples])
        else:
            batch[key] = [s[key] for s in samples]
    return batch


def pad_stack(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """(B, C, H, W) of CHW images of different sizes, zero-padded at the bottom and right to the largest."""
    height, width = max(i.shape[-2] for i in images), max(i.shape[-1] for i in images)
    return torch.stack([torch.nn.functional.pad(i, (0, width - i.shape[-1], 0, height - i.shape[-2]))
                        for i in images])


def model_input(batch: dict[str, Any], streams: Sequence[str] | None, device: torch.device,
                non_blocking: bool = False, augment: DeviceAugment | None = None
                ) -> torch.Tensor | dict[str, torch.Tensor]:
    """What the model's ``forward`` takes: the normalized image tensor, or ``{stream: tensor}`` for a multistream
    model. A uint8 batch (the training loaders') is copied to ``device`` as uint8 and normalized there; with
    ``augment`` (``device_augment: true``; the batch then carries ``window``) it is augmented there first."""
    if streams is not None:
        missing = [s for s in streams if s not in BATCH_STREAMS]
        if missing:
            raise ConfigError(f"stream {missing[0]!r} is not built by the training data; expected streams from: "
                              f"{', '.join(BATCH_STREAMS)}")
        if "masked" in streams and "box" not in batch and "masked" not in batch:
            raise ConfigError("stream 'masked' needs polyp boxes; this dataset has none (expected streams: rgb)")
    if "jpeg" in batch:  # device_decode: nvJPEG on a GPU
        if augment is None:
            raise ConfigError("encoded batches (device_decode) need device_augment=true")
        images = pad_stack(decode_jpeg_batch(batch["jpeg"], device=device))  # the bytes stay on the CPU
    else:
        images = batch["image"].to(device, non_blocking=non_blocking)
    if images.dtype == torch.uint8:
        want_mask = streams is not None and "masked" in streams
        box = batch["box"].to(device, non_blocking=non_blocking) if want_mask else None
        if augment is not None:
            images, box = augment(images, batch["window"], box)
        ready = normalize_batch(images, box)
    else:
        ready = {"image": images}
        if "masked" in batch:
            ready["masked"] = batch["masked"].to(device, non_blocking=non_blocking)
    if streams is None:
        return ready["image"]
    return {s: ready["image" if s == "rgb" else "masked"] for s in streams}


def split_dataset(cfg: TrainConfig, split: str, *, augment: bool) -> ConcatDataset[dict[str, Any]]:
    """The ``split`` of every prepared folder in ``cfg`` as one dataset."""
    if not cfg.prepared:
        raise ConfigError("config key 'prepared' is empty; expected at least one prepared manifest folder")
    device_side = augment and cfg.device_augment
    transform = WindowScale(cfg.img_size) if device_side else UInt8Augment(cfg.img_size, augment)
    roots: list[str | None] = list(cfg.raw_roots) or [None] * len(cfg.prepared)
    if device_side and cfg.device_decode:  # the loader hands over JPEG bytes; nothing to transform
        parts = [load_split(d, split, cfg.fold, margin=cfg.margin, decode_size=cfg.img_size, source="shards",
                            context=True) for d in cfg.prepared]
        for part in parts:
            part.encoded = True  # type: ignore[attr-defined]
        return ConcatDataset(parts)
    parts = [load_split(d, split, cfg.fold, raw_root=r, transform=transform, margin=cfg.margin,
                        decode_size=cfg.img_size, context=True) for d, r in zip(cfg.prepared, roots)]
    return ConcatDataset(parts)


def polyp_keys(dataset: ConcatDataset[dict[str, Any]]) -> list[tuple[str, str]]:
    """(dataset, polyp_id) per sample, in dataset order."""
    keys: list[tuple[str, str]] = []
    for part in dataset.datasets:
        assert isinstance(part, PolypFrames)
        keys += list(zip(part.rows["dataset"].astype(str), part.rows["polyp_id"].astype(str)))
    return keys


@dataclass
class TrainData:
    """The loaders of one run and what the loss needs to know of the training labels.

    ``target_key``: the batch key the loss compares with (``size_mm``, ``size_class3`` or ``label``).
    ``size_offset_mm``: mean training size (the regression head predicts the offset from it; 0 otherwise).
    ``class_weight``: inverse class frequency for a balanced cross-entropy, or ``None``. ``test`` is scored by
    :func:`~polypbench.train.fit` itself only where the labels are public (CIFAR-100); polyp test labels are
    scored by ``polypbench evaluate`` or the leaderboard.
    """

    train: DataLoader[dict[str, Any]]
    sampler: FramesPerPolyp
    validation: DataLoader[dict[str, Any]]
    test: DataLoader[dict[str, Any]] | None
    target_key: str
    size_offset_mm: float = 0.0
    class_weight: torch.Tensor | None = None


def _loader(cfg: TrainConfig, data: Dataset[dict[str, Any]], sampler: Sampler[int] | None = None,
            batch_size: int | None = None) -> DataLoader[dict[str, Any]]:
    return DataLoader(data, batch_size=batch_size or cfg.batch_size, sampler=sampler, shuffle=False,
                      collate_fn=collate, num_workers=cfg.num_workers, pin_memory=cfg.device == "cuda",
                      generator=torch.Generator().manual_seed(cfg.seed), persistent_workers=cfg.num_workers > 0)


def train_loader(cfg: TrainConfig, rank: int = 0, world_size: int = 1
                 ) -> tuple[DataLoader[dict[str, Any]], FramesPerPolyp]:
    """The polyp training loader (augmented when ``cfg.augment``) and its sampler (call ``set_epoch`` each
    epoch); under DDP this rank's share of each epoch."""
    data = split_dataset(cfg, "train", augment=cfg.augment)
    if len(data) == 0:
        raise ConfigError("the train split is empty; check 'prepared' and 'fold'")
    sampler = FramesPerPolyp(polyp_keys(data), cfg.frames_per_polyp_per_epoch, cfg.seed, rank=rank,
                             world_size=world_size)
    return _loader(cfg, data, sampler), sampler


def eval_loader(cfg: TrainConfig, split: str, batch_size: int | None = None) -> DataLoader[dict[str, Any]]:
    """Every frame of ``split``, in manifest order, without augmentation."""
    return _loader(cfg, split_dataset(cfg, split, augment=False), batch_size=batch_size)


def _class_weight(parts: Sequence[Any]) -> torch.Tensor:
    """Inverse frequency of each triclass label among the training boxes (mean 1; absent classes get 0)."""
    counts = np.zeros(3)
    for part in parts:
        counts += np.bincount(part.rows["size_class3"].astype(int), minlength=3)[:3]
    inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    return torch.tensor(inv * (counts > 0).sum() / inv.sum(), dtype=torch.float32)


def polyp_data(cfg: TrainConfig, rank: int = 0, world_size: int = 1) -> TrainData:
    """Train and validation loaders over the prepared polyp manifests of ``cfg``."""
    train, sampler = train_loader(cfg, rank, world_size)
    parts = train.dataset.datasets  # type: ignore[attr-defined]
    offset = 0.0
    if cfg.task == "regression":
        offset = sum(float(p.rows["size_mm"].sum()) for p in parts) / max(1, len(train.dataset))  # type: ignore[arg-type]
    weight = _class_weight(parts) if cfg.task == "triclass" and cfg.balance_classes else None
    target = "size_mm" if cfg.task == "regression" else "size_class3"
    return TrainData(train, sampler, eval_loader(cfg, "validation"), None, target, offset, weight)


def cifar_data(cfg: TrainConfig, rank: int = 0, world_size: int = 1) -> TrainData:
    """CIFAR-100 from ``cfg.data_root``: train (minus a fixed held-out ``val_fraction``), validation, test."""
    from polypbench.train import cifar

    if not cfg.data_root:
        raise ConfigError("dataset 'cifar100' needs config key 'data_root' (--data-root DIR); expected the folder "
                          f"holding {cifar.BASE_FOLDER}/")
    base_train, base_test = cifar.open_cifar100(cfg.data_root, True), cifar.open_cifar100(cfg.data_root, False)
    keep, held_out = cifar.train_val_indices(np.asarray(base_train.targets), cfg.val_fraction)
    if len(held_out) == 0:
        raise ConfigError(f"config key 'val_fraction': {cfg.val_fraction} holds out no image; expected a fraction "
                          "in (0, 1) (validating on the test split would select checkpoints on test labels)")
    plain = UInt8Augment(cfg.img_size, augment=False)
    augment = WindowScale(cfg.img_size) if cfg.augment and cfg.device_augment else UInt8Augment(cfg.img_size, cfg.augment)
    train = cifar.CifarImages(base_train, keep, augment)
    sampler = FramesPerPolyp(train.sample_labels.tolist(), cfg.per_class_per_epoch or None, cfg.seed, rank=rank,
                             world_size=world_size)
    log.info("cifar100: %d train, %d validation (held out of train), %d test images", len(train), len(held_out),
             len(base_test))
    return TrainData(_loader(cfg, train, sampler), sampler,
                     _loader(cfg, cifar.CifarImages(base_train, held_out, plain)),
                     _loader(cfg, cifar.CifarImages(base_test, None, plain)), "label")


def build_data(cfg: TrainConfig, rank: int = 0, world_size: int = 1) -> TrainData:
    """The loaders for ``cfg.dataset`` (``polyp``: prepared manifests; ``cifar100``: a local CIFAR-100 copy)."""
    return cifar_data(cfg, rank, world_size) if cfg.dataset == "cifar100" else polyp_data(cfg, rank, world_size)
