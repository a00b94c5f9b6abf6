"""CIFAR-100, the paper's broad check of HAG/GR, read through torchvision from a local copy (never downloaded).

``data_root`` holds the python-version release as torchvision expects it: ``cifar-100-python/{train,test,meta}``.
Unlike the reference code, whose "validation" phase loads the CIFAR *test* split (so checkpoints were selected on
the test set), the validation set here is a fixed, class-stratified part of the *train* split
(``val_fraction``); the test split is scored once, with the best checkpoint.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import datasets, tv_tensors

from polypbench.errors import InputError

log = logging.getLogger(__name__)

BASE_FOLDER = "cifar-100-python"
FILES = ("train", "test", "meta")
OFFICIAL_MD5 = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}
VAL_SPLIT_SEED = 0
"""The validation part of the train split is drawn with this fixed seed, so every run validates on the same
images whatever its training seed."""


class _LocalCIFAR100(datasets.CIFAR100):
    """torchvision's CIFAR100 reader without its checksum gate (checked, and reported, by :func:`open_cifar100`)."""

    train_list = [["train", None]]
    test_list = [["test", None]]
    meta = {"filename": "meta", "key": "fine_label_names", "md5": None}


def _md5(path: Path) -> str:
    stat = path.stat()
    return _md5_of(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _md5_of(path: Path, _size: int, _mtime_ns: int) -> str:
    """MD5 of ``path``. The file's size and modification time are arguments only to key the cache: a file that
    changes is read again."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_official(data_root: str | Path) -> bool:
    """Whether every file of the CIFAR-100 copy under ``data_root`` has the official release's checksum."""
    folder = Path(data_root) / BASE_FOLDER
    return all((folder / name).is_file() and _md5(folder / name) == md5 for name, md5 in OFFICIAL_MD5.items())


def open_cifar100(data_root: str | Path, train: bool) -> datasets.CIFAR100:
    """The train or test split of the CIFAR-100 copy under ``data_root``; a one-line error names a missing file.

    A copy whose checksums differ from the official release (a subset, a re-pickling) is read all the same and
    logged as unofficial, so results on it are not mistaken for CIFAR-100 results.
    """
    folder = Path(data_root) / BASE_FOLDER
    for name in FILES:
        path = folder / name
        if not path.is_file():
            raise InputError(path, "missing", f"the CIFAR-100 python release under --data-root "
                             f"({BASE_FOLDER}/{{{','.join(FILES)}}}, from cifar-100-python.tar.gz)")
    split = "train" if train else "test"
    if _md5(folder / split) != OFFICIAL_MD5[split]:
        log.warning("%s: checksum differs from the official CIFAR-100 release; results are not CIFAR-100 results",
                    folder / split)
    try:
        return _LocalCIFAR100(str(data_root), train=train, download=False)
    except (OSError, KeyError, ValueError, EOFError, RuntimeError, pickle.UnpicklingError) as exc:
        raise InputError(folder / split, f"unreadable ({type(exc).__name__}: {exc})",
                         "a CIFAR-100 python pickle with 'data' and 'fine_labels'") from None


class CifarImages(Dataset):
    """Samples ``{"image": uint8 CHW tv_tensors.Image, "label": int64 tensor, "index": int}`` of ``indices`` of a
    torchvision CIFAR dataset (``index`` is the position in the official split); ``transform`` maps the dict.
    :func:`~polypbench.train.batch.collate` makes a :class:`~polypbench.train.batch.Batch` of them (``image``,
    ``label``, ``index``; ``window`` too after :class:`~polypbench.train.device_augment.WindowScale`)."""

    def __init__(self, base: datasets.CIFAR100, indices: np.ndarray | None = None, transform: Any = None) -> None:
        self.images = base.data  # (N, 32, 32, 3) uint8
        self.labels = np.asarray(base.targets, dtype=np.int64)
        self.indices = np.arange(len(self.labels)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = int(self.indices[i])
        sample = {"image": tv_tensors.Image(torch.from_numpy(self.images[index]).permute(2, 0, 1).contiguous()),
                  "label": torch.tensor(self.labels[index]), "index": index}
        return self.transform(sample) if self.transform is not None else sample

    @property
    def sample_labels(self) -> np.ndarray:
        """Label of each sample, in dataset order (what a per-class sampler groups by)."""
        return self.labels[self.indices]


def train_val_indices(labels: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train split kept for training and held out for validation (class-stratified, fixed seed)."""
    all_idx = np.arange(len(labels))
    if val_fraction <= 0:
        return all_idx, all_idx[:0]
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    train, val = train_test_split(all_idx, test_size=val_fraction, random_state=VAL_SPLIT_SEED, stratify=stratify)
    return np.sort(train), np.sort(val)
