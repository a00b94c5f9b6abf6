"""DataLoaders for training and inference: transforms v2 (boxes travel with the image), a seeded
frames-per-polyp sampler (shared out between DDP ranks), and :func:`~polypbench.train.batch.collate`, which makes
a typed :class:`~polypbench.train.batch.Batch` of the samples.

What the loaders hand out and what the model gets is the config's pixel pipeline, one
:class:`~polypbench.load.spec.PixelSpec` (:meth:`~polypbench.train.config.TrainConfig.pixel_spec`): loader
workers only decode and resize or augment on uint8 (:class:`~polypbench.load.augment.UInt8Augment`); the streams
(normalized RGB, the box-masked crop, ...) are built on whole batches on the training device (:func:`model_input`,
one :data:`~polypbench.load.streams.STREAMS` entry each). :func:`build_data` returns every loader of a run, for
the config's dataset kind (:data:`DATA`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler
from torchvision import tv_tensors

from polypbench import schema
from polypbench.errors import ConfigError
from polypbench.load import PolypFrames, load_split
from polypbench.load.augment import UInt8Augment
from polypbench.load.decode import decode_jpeg_batch
from polypbench.load.sampler import FramesPerPolyp  # the public sampler (polypbench.load); training's too
from polypbench.load.spec import PixelSpec, depth_weights_error
from polypbench.load.streams import Pixels, build_streams, needs
from polypbench.load.torch_dataset import pixel_transform
from polypbench.train.batch import Batch, collate, pad_stack
from polypbench.train.config import TrainConfig, config_key
from polypbench.train.device_augment import DeviceAugment
from polypbench.train.tasks import TASKS

log = logging.getLogger(__name__)

Loader = DataLoader[dict[str, Any]]
"""A DataLoader over per-sample dicts whose batches are :class:`~polypbench.train.batch.Batch` (:func:`collate`)."""


class SampleTransform:
    """One sample, CPU: resize (+ augment when training: turn, flips, colour jitter on uint8, see
    :class:`~polypbench.load.augment.UInt8Augment`) -> ``image`` normalized and, with ``mask``, ``masked`` (the
    box-masked stream). The training loaders stop after the uint8 step and build the streams of whole batches on
    the device (:func:`model_input`); this per-sample form is for inspection and for users' own loops."""

    def __init__(self, img_size: int, augment: bool, mask: bool = True) -> None:
        self.geometry = UInt8Augment(img_size, augment)
        self.streams = ("rgb", "masked") if mask else ("rgb",)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        sample = self.geometry(sample)
        box = sample["boxes"].as_subclass(torch.Tensor)[:1] if "masked" in self.streams else None
        built = build_streams(Pixels(sample["image"].as_subclass(torch.Tensor)[None], box), self.streams)
        built = built if isinstance(built, dict) else {"rgb": built}  # one stream: its tensor itself
        sample["image"] = tv_tensors.Image(built["rgb"][0])
        if "masked" in built:
            sample["masked"] = tv_tensors.Image(built["masked"][0])
        return sample


def batch_pixels(batch: Batch, spec: PixelSpec, device: torch.device, non_blocking: bool = False,
                 augment: DeviceAugment | None = None) -> Pixels:
    """The pixels of ``batch`` on ``device``, what :data:`~polypbench.load.streams.STREAMS` are built from: stored
    JPEG crops (``source: device``) decoded there, uint8 crops copied there as uint8 (a quarter of the bytes of
    float), then, with ``augment`` (``augment: device``; the batch then carries ``window``), augmented there.
    A batch normalized already (:class:`SampleTransform`'s) brings its streams ready."""
    if batch.image is not None and batch.image.dtype != torch.uint8:
        carried = {"rgb": batch.image, "masked": batch.masked}
        return Pixels(None, ready={k: v.to(device, non_blocking=non_blocking) for k, v in carried.items()
                                   if v is not None})
    if batch.jpeg is not None:  # nvJPEG on a GPU; the bytes stay on the CPU
        if augment is None:
            raise ConfigError("a batch of JPEG bytes (source 'device') needs the device's augmentation; expected "
                              "augment='device' (device_augment: true)")
        images = pad_stack(decode_jpeg_batch(batch.jpeg, device=device))
    elif batch.image is not None:
        images = batch.image.to(device, non_blocking=non_blocking)
    else:
        raise ConfigError("a batch without image or jpeg; expected samples with one of them")
    box = None
    if batch.box is not None and needs(spec.streams, "box"):
        box = batch.box.to(device, non_blocking=non_blocking)
    if augment is not None:
        if batch.window is None:
            raise ConfigError("device augmentation needs batches with a crop window; expected WindowScale samples "
                              "(augment='device')")
        images, box = augment(images, batch.window, box)
    mask = None if batch.mask is None else batch.mask.to(device, non_blocking=non_blocking)
    stored = None if batch.depth is None else batch.depth.to(device, non_blocking=non_blocking)
    online = stored is None and spec.depth == "online" and needs(spec.streams, "depth")
    return Pixels(images, box, spec.mean, spec.std, mask=mask, fov=spec.fov_mask, noise=spec.noise,
                  depth_net=depth_network(spec.depth_weights, device) if online else None, depth_maps=stored)


_DEPTH_NETS: dict[tuple[str, str], torch.nn.Module] = {}


def depth_network(weights: str | None, device: torch.device) -> torch.nn.Module:
    """The frozen depth network (MiDaS v2.1, :func:`polypbench.models.midas.build_midas`) of ``weights`` (a
    ``midas_v21_384.pt`` path, or ``random``: random weights, for tests and smoke runs) on ``device``, built once
    per process."""
    from polypbench.load.spec import RANDOM_DEPTH_WEIGHTS
    from polypbench.models.midas import build_midas

    if weights is None:
        raise depth_weights_error()
    key = (weights, str(device))
    if key not in _DEPTH_NETS:
        net = build_midas(None if weights == RANDOM_DEPTH_WEIGHTS else weights)
        _DEPTH_NETS[key] = net.to(device).eval()
    return _DEPTH_NETS[key]


def model_input(batch: Batch, spec: PixelSpec, device: torch.device, non_blocking: bool = False,
                augment: DeviceAugment | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
    """What the model's ``forward`` takes: the normalized RGB tensor (``spec.streams`` None), the one stream's
    tensor (one name), or ``{stream: tensor}`` (two or more; :func:`~polypbench.load.streams.build_streams`):
    ``spec.streams``, each built on ``device`` from the batch's :func:`batch_pixels` by its
    :data:`~polypbench.load.streams.STREAMS` entry. ``augment``: the device's half of ``spec.augment``
    (:meth:`DeviceAugment.for_spec`)."""
    return build_streams(batch_pixels(batch, spec, device, non_blocking, augment), spec.streams)


def split_dataset(cfg: TrainConfig, split: str, *, augment: bool,
                  notes: list[str] | None = None) -> ConcatDataset[dict[str, Any]]:
    """The ``split`` of every prepared folder in ``cfg`` as one dataset, read as ``cfg.pixel_spec(augment)``
    says; with ``seed_sun_frames`` only the SUN frames the seed keeps (the count dropped is appended to
    ``notes`` and logged)."""
    if not cfg.prepared:
        raise ConfigError(f"{config_key('prepared')}: none given; expected at least one prepared manifest folder")
    spec = cfg.pixel_spec(augment)
    if spec.depth == "online" and spec.depth_weights is None and needs(spec.streams, "depth"):
        raise depth_weights_error()  # before any data is read
    roots: list[str | None] = list(cfg.raw_roots) or [None] * len(cfg.prepared)
    dropped = [0]

    def seed_sun(rows: pd.DataFrame) -> pd.DataFrame:
        from polypbench.prepare.sun import seed_frames

        if not len(rows) or set(rows["dataset"].astype(str)) != {"sun"}:
            return rows
        kept, n = seed_frames(rows)
        dropped[0] += n
        return kept

    keep = seed_sun if cfg.seed_sun_frames else None
    parts = [load_split(d, split, cfg.fold, r, protocol=cfg.protocol, spec=spec, keep=keep)
             for d, r in zip(cfg.prepared, roots, strict=True)]
    data: ConcatDataset[dict[str, Any]] = ConcatDataset(parts)
    if cfg.seed_sun_frames:
        _note(f"seed_sun_frames: {dropped[0]} SUN {split} frames dropped (the seed keys them by image number and "
              "drops the repeats)", notes)
    return data


def polyp_column(dataset: Dataset[dict[str, Any]], column: str) -> np.ndarray:
    """Manifest ``column`` of every sample of a :func:`split_dataset`, in dataset order."""
    assert isinstance(dataset, ConcatDataset)
    parts = [part.rows[column].to_numpy() for part in dataset.datasets if isinstance(part, PolypFrames)]
    assert len(parts) == len(dataset.datasets)
    return np.concatenate(parts) if parts else np.array([])


def polyp_keys(dataset: ConcatDataset[dict[str, Any]]) -> list[tuple[str, str]]:
    """(dataset, polyp_id) per sample, in dataset order."""
    names, polyps = polyp_column(dataset, "dataset").astype(str), polyp_column(dataset, "polyp_id").astype(str)
    return list(zip(names, polyps, strict=True))


@dataclass
class TrainData:
    """The loaders of one run and the targets of its training samples.

    ``train_targets``: the task's target of every training sample, in dataset order (what
    :meth:`~polypbench.train.tasks.Task.fit_stats` learns from: the mean size, the class counts). ``test`` is
    scored by :func:`~polypbench.train.fit` itself only where the labels are public (CIFAR-100); polyp test labels
    are scored by ``polypbench evaluate`` or the leaderboard. ``sources``: what the pixels were read from, one
    entry per dataset (recorded in the run's ``config.yaml``; :func:`polyp_sources`).
    """

    train: Loader
    sampler: FramesPerPolyp
    validation: Loader
    test: Loader | None
    train_targets: np.ndarray
    sources: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the data left out (single-frame polyps the seed's sampler skips, SUN frames the seed drops): printed
    when training starts."""

    def loaders(self) -> dict[str, Loader]:
        """The loaders by split name (``train``, ``validation``, and ``test`` where fit scores it)."""
        return {"train": self.train, "validation": self.validation, **({"test": self.test} if self.test else {})}


def _loader(cfg: TrainConfig, data: Dataset[dict[str, Any]], sampler: Sampler[int] | None = None,
            batch_size: int | None = None) -> Loader:
    return DataLoader(data, batch_size=batch_size or cfg.batch_size, sampler=sampler, shuffle=False,
                      collate_fn=collate, num_workers=cfg.num_workers, pin_memory=cfg.device == "cuda",
                      generator=torch.Generator().manual_seed(cfg.seed), persistent_workers=cfg.num_workers > 0)


def train_loader(cfg: TrainConfig, rank: int = 0, world_size: int = 1,
                 notes: list[str] | None = None) -> tuple[Loader, FramesPerPolyp]:
    """The polyp training loader (augmented when ``cfg.augment``) and its sampler (``frame_sampler``'s rule; call
    ``set_epoch`` each epoch); under DDP this rank's share of each epoch. What is left out goes to ``notes``."""
    data = split_dataset(cfg, "train", augment=cfg.augment, notes=notes)
    if len(data) == 0:
        fold = "" if cfg.fold is None else f" (fold {cfg.fold}, protocol {cfg.protocol})"
        raise ConfigError(f"{config_key('prepared')}: the train split of {', '.join(cfg.prepared)}{fold} is empty; "
                          "expected prepared manifests with training polyps")
    sampler = FramesPerPolyp(polyp_keys(data), cfg.frames_per_polyp_per_epoch, cfg.seed, rank=rank,
                             world_size=world_size, rule=cfg.frame_sampler)
    if sampler.skipped and not sampler.groups:
        raise ConfigError(f"config key 'frame_sampler': 'seed' skips polyps with a single frame, and all "
                          f"{sampler.skipped} training polyps have one; expected frame_sampler: replacement")
    if sampler.skipped:
        _note(f"frame_sampler seed: {sampler.skipped} training polyps with a single frame skipped (the seed's "
              "sampler takes none of them)", notes)
    return _loader(cfg, data, sampler), sampler


def _note(text: str, notes: list[str] | None) -> None:
    """Log what the data rules left out, and add it to ``notes`` (what the run prints at its start)."""
    log.info(text)
    if notes is not None:
        notes.append(text)


def eval_loader(cfg: TrainConfig, split: str, batch_size: int | None = None, frames_per_polyp: int | None = None,
                notes: list[str] | None = None) -> Loader:
    """Every frame of ``split``, in manifest order, without augmentation; with ``frames_per_polyp`` at most that
    many frames of each polyp, drawn without replacement (every polyp keeps at least its one frame), afresh for
    each epoch of the sampler (``loader.sampler.set_epoch``)."""
    data = split_dataset(cfg, split, augment=False, notes=notes)
    sampler = None if frames_per_polyp is None else FramesPerPolyp(polyp_keys(data), frames_per_polyp, cfg.seed,
                                                                   rule="subset")
    return _loader(cfg, data, sampler, batch_size=batch_size)


def pixel_source(part: Dataset[dict[str, Any]]) -> dict[str, Any]:
    """Where one :func:`load_split` dataset reads its pixels: ``shards`` (the materialization's folder and its
    ``materialized.json`` without the shard list) or ``raw`` frames (the raw root)."""
    from polypbench.load.shard_layout import read_spec
    from polypbench.load.shards import ShardFrames

    if isinstance(part, ShardFrames):
        spec = {k: v for k, v in (read_spec(part.root) or {}).items() if k != "shards"}
        return {"source": "shards", "root": str(part.root.resolve()), "decode_size": part.decode_size,
                "shard_spec": spec}
    assert isinstance(part, PolypFrames)
    return {"source": "raw", "raw_root": str(part.raw_root.resolve()) if part.raw_root else None,
            "decode_size": part.decode_size, "margin": part.margin}


def polyp_sources(cfg: TrainConfig, loaders: dict[str, Loader]) -> list[dict[str, Any]]:
    """Per prepared folder of ``cfg``: its dataset, split version and hash (the Parquet metadata), the hash of its
    ``frames.parquet``, and the :func:`pixel_source` of each split in ``loaders``."""
    from polypbench.fileio import file_sha256

    parts = {split: loader.dataset.datasets for split, loader in loaders.items()
             if isinstance(loader.dataset, ConcatDataset)}
    out = []
    for i, folder in enumerate(cfg.prepared):
        frames = Path(folder) / schema.FRAMES_FILE
        meta = schema.read_metadata(frames)
        out.append({"prepared": str(Path(folder).resolve()), "dataset": meta.get(schema.META_DATASET),
                    "split_version": meta.get(schema.META_SPLIT_VERSION),
                    "split_sha256": meta.get(schema.META_SPLIT_HASH),
                    "prepared_with": meta.get(schema.META_POLYPBENCH_VERSION),
                    "frames_sha256": file_sha256(frames),
                    "pixels": {split: pixel_source(p[i]) for split, p in parts.items()}})
    return out


def polyp_data(cfg: TrainConfig, rank: int = 0, world_size: int = 1) -> TrainData:
    """Train and validation loaders over the prepared polyp manifests of ``cfg``."""
    notes: list[str] = []
    train, sampler = train_loader(cfg, rank, world_size, notes)
    targets = polyp_column(train.dataset, TASKS[cfg.task].target)  # the manifest column of the target's name
    validation = eval_loader(cfg, "validation", frames_per_polyp=cfg.val_frames_per_polyp, notes=notes)
    return TrainData(train, sampler, validation, None, targets,
                     polyp_sources(cfg, {"train": train, "validation": validation}), notes)


def cifar_data(cfg: TrainConfig, rank: int = 0, world_size: int = 1) -> TrainData:
    """CIFAR-100 from ``cfg.data_root``: train (minus a fixed held-out ``val_fraction``), validation, test."""
    import polypbench.train.cifar as cifar

    if not cfg.data_root:
        raise ConfigError(f"{config_key('data_root')}: none given for dataset 'cifar100'; expected the folder "
                          f"holding {cifar.BASE_FOLDER}/")
    base_train, base_test = cifar.open_cifar100(cfg.data_root, True), cifar.open_cifar100(cfg.data_root, False)
    keep, held_out = cifar.train_val_indices(np.asarray(base_train.targets), cfg.val_fraction)
    if len(held_out) == 0:
        raise ConfigError(f"config key 'val_fraction': {cfg.val_fraction} holds out no image; expected a fraction "
                          "in (0, 1) (validating on the test split would select checkpoints on test labels)")
    plain = pixel_transform(cfg.pixel_spec())
    train = cifar.CifarImages(base_train, keep, pixel_transform(cfg.pixel_spec(cfg.augment)))
    sampler = FramesPerPolyp(train.sample_labels.tolist(), cfg.per_class_per_epoch or None, cfg.seed, rank=rank,
                             world_size=world_size)
    log.info("cifar100: %d train, %d validation (held out of train), %d test images", len(train), len(held_out),
             len(base_test))
    source = {"dataset": "cifar100", "data_root": str(Path(cfg.data_root).resolve()),
              "official_release": cifar.is_official(cfg.data_root), "train": len(train), "validation": len(held_out),
              "test": len(base_test)}
    return TrainData(_loader(cfg, train, sampler), sampler,
                     _loader(cfg, cifar.CifarImages(base_train, held_out, plain)),
                     _loader(cfg, cifar.CifarImages(base_test, None, plain)), train.sample_labels, [source])


DATA: dict[str, Callable[[TrainConfig, int, int], TrainData]] = {"polyp": polyp_data, "cifar100": cifar_data}
"""Dataset kind (``TrainConfig.dataset``) -> the function that builds its loaders."""


def build_data(cfg: TrainConfig, rank: int = 0, world_size: int = 1) -> TrainData:
    """The loaders for ``cfg.dataset`` (``polyp``: prepared manifests; ``cifar100``: a local CIFAR-100 copy)."""
    return DATA[cfg.dataset](cfg, rank, world_size)
