"""What the three writers share: options, seeded random streams, the box record, the summary, file writing
and the (optional) process pool over videos."""

from __future__ import annotations

import io
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from PIL import Image

from polypbench.errors import InputError
from polypbench.fileio import run_pool
from polypbench.progress import Progress
from polypbench.synth.render import JPEG_QUALITY

log = logging.getLogger(__name__)

BOX_COLUMNS = ("dataset", "polyp_key", "frame_file", "xmin", "ymin", "xmax", "ymax", "width", "height", "size_mm")

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True)
class Options:
    """The knobs of one synthesis run (the same for every writer)."""

    frames_per_polyp: int = 4
    negatives_per_video: int = 2
    seed: int = 0
    workers: int = 1


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """An independent random stream per (seed, dataset, video...): the output does not depend on the order or
    the process in which videos are rendered. CRC32 keeps the key hashing stable across runs (unlike hash())."""
    words = [seed % (1 << 63)] + [zlib.crc32(k.encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(words))


@dataclass(frozen=True)
class BoxRecord:
    """Ground truth of one written box (a row of :attr:`SynthSummary.boxes`)."""

    dataset: str
    polyp_key: str | int
    frame_file: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int
    width: int
    height: int
    size_mm: float


Writer = Callable[[Path, Options], tuple[list[BoxRecord], int]]
"""A synthetic writer ``(out, options) -> (boxes, number of frames)``; each dataset's is named by dotted path in its
registry entry (:mod:`polypbench.datasets`), which imports this module only for type checking."""


@dataclass
class SynthSummary:
    """What :func:`polypbench.synth.synthesize` wrote: the dump's root, counts and every box's ground truth."""

    dataset: str
    root: Path
    n_images: int
    records: list[BoxRecord] = field(repr=False, default_factory=list)
    seconds: float = 0.0

    @property
    def boxes(self) -> pd.DataFrame:
        """One row per written box: dataset, polyp_key, frame_file (relative to root, posix), xmin, ymin, xmax,
        ymax (as written), width, height, size_mm."""
        rows = [[getattr(r, c) for c in BOX_COLUMNS] for r in self.records]
        df = pd.DataFrame(rows, columns=list(BOX_COLUMNS))
        types = dict.fromkeys(("xmin", "ymin", "xmax", "ymax", "width", "height"), "int64") | {"size_mm": "float64"}
        return df.astype(types)

    @property
    def n_boxes(self) -> int:
        return len(self.records)

    @property
    def n_polyps(self) -> int:
        return len({r.polyp_key for r in self.records})

    def describe(self) -> str:
        return (f"{self.dataset}: wrote {self.n_images} frames with {self.n_boxes} boxes of {self.n_polyps} polyps "
                f"to {self.root} in {self.seconds:.1f} s (synthetic frames; real ids, sizes and layout)")


def check_empty(out: Path) -> None:
    """Refuse to write into a non-empty folder: stale files from another run would break the layout."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(out, "exists and is not an empty folder", "a new or empty output folder")


def jpeg_bytes(image: Image.Image) -> bytes:
    """JPEG bytes at the renderer's quality, without metadata (deterministic)."""
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def run_jobs(fn: Callable[[J], R], jobs: Sequence[J], workers: int, desc: str = "synth",
             unit: str = "video") -> list[R]:
    """``[fn(job) for job in jobs]`` on at most ``workers`` processes (one per core at most); results in order.
    Progress is shown as ``desc`` (:class:`~polypbench.progress.Progress`: a bar, or a line every few seconds)."""
    results = []
    with Progress(len(jobs), desc, unit=unit) as bar:
        for result in run_pool(fn, jobs, min(workers, os.cpu_count() or 1)):
            results.append(result)
            bar.update()
    return results


def flatten(parts: Iterable[list[BoxRecord]]) -> list[BoxRecord]:
    return [r for part in parts for r in part]
