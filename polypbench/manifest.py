"""A prepared manifest directory, read back: frames, polyps and the Parquet metadata.

Loaders, scoring and the leaderboard all open a prepared directory through :class:`Manifest`, so the
file names and the checks on them live in one place.

``prepare`` publishes a manifest directory as a whole (polypbench/prepare/engine.py): a reader sees the previous
complete directory or the new complete one, never a mixture. A :class:`Manifest` also notes the directory it
opened, so a re-prepare that replaces it while a reader is still loading its files is refused in one line
instead of mixing the old frames with the new polyps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from polypbench import schema
from polypbench.errors import InputError, choice_error

_T = TypeVar("_T")

PROVENANCE_KEYS: dict[str, str] = {
    "dataset": schema.META_DATASET,
    "split_version": schema.META_SPLIT_VERSION,
    "split_sha256": schema.META_SPLIT_HASH,
    "paper_split_sha256": schema.META_PAPER_SPLIT_HASH,
    "polypbench_version": schema.META_POLYPBENCH_VERSION,
}
"""The keys of :meth:`Manifest.provenance` (after ``path``) -> the Parquet metadata key each is read from."""


@dataclass(frozen=True)
class Manifest:
    """The manifest written by ``polypbench prepare`` into ``root`` (see docs/manifest.md)."""

    root: Path
    identity: tuple[int, int] | None = field(default=None, compare=False)
    """(device, inode) of the directory when opened: the published manifest these reads belong to."""

    @classmethod
    def open(cls, root: str | Path) -> Manifest:
        """Open a prepared directory, refusing one without a readable ``frames.parquet`` of schema version 1."""
        root = Path(root)
        frames = root / schema.FRAMES_FILE
        identity = _identity(root)
        if not frames.is_file():
            raise InputError(root, f"no {schema.FRAMES_FILE}", "a directory written by `polypbench prepare`")
        manifest = cls(root, identity)
        manifest._check(schema.read_metadata(frames))
        return manifest

    def _check(self, value: _T) -> _T:
        """``value``, read from the directory, unless the directory was replaced since :meth:`open`."""
        if self.identity is not None and _identity(self.root) != self.identity:
            raise InputError(self.root, "was replaced by another `polypbench prepare` while being read",
                             "to open it again (a reader never mixes two manifests)")
        return value

    def _table(self, name: str, expected: pa.Schema) -> pd.DataFrame:
        path = self.root / name
        if not path.is_file():
            raise InputError(path, "no such file", f"{name} beside {schema.FRAMES_FILE}")
        table = self._check(pq.read_table(path))
        schema.check_columns(table, expected, path)
        return table.to_pandas()

    @cached_property
    def metadata(self) -> dict[str, str]:
        """polypbench key-value metadata of frames.parquet (version, dataset, split version and hash, raw root)."""
        return self._check(schema.read_metadata(self.root / schema.FRAMES_FILE))

    @property
    def dataset(self) -> str:
        return self.metadata[schema.META_DATASET]

    def provenance(self) -> dict[str, str]:
        """Where this manifest came from, in the one key set every record citing a manifest uses (evaluation
        results and reports, the board, ``export-hf``, the dataset card): ``path`` (the folder, absolute), then
        :data:`PROVENANCE_KEYS` (``polypbench_version``: the version that prepared it; ``""`` when not recorded)."""
        meta = self.metadata
        return {"path": str(self.root.resolve()), **{key: meta.get(name, "") for key, name in PROVENANCE_KEYS.items()}}

    @property
    def raw_root(self) -> Path | None:
        """The raw root recorded at prepare time (a hint: pass ``raw_root`` at load time on another machine)."""
        raw = self.metadata.get(schema.META_RAW_ROOT)
        return Path(raw) if raw else None

    @cached_property
    def frames(self) -> pd.DataFrame:
        """All rows of frames.parquet (one per annotated box)."""
        return self._table(schema.FRAMES_FILE, schema.FRAMES)

    @cached_property
    def polyps(self) -> pd.DataFrame:
        """All rows of polyps.parquet (one per polyp)."""
        return self._table(schema.POLYPS_FILE, schema.POLYPS)

    def select(self, split: str, fold: int | None = None, *, table: str = "frames") -> pd.DataFrame:
        """Rows of one split of the published split (or ``all`` rows) of ``table`` (``frames`` or ``polyps``).

        With ``fold`` k (cross-validation over the non-test rows) ``validation`` is fold k and ``train`` every other
        non-test fold, ``test`` unchanged. Other protocols (the paper's per-object folds) are
        :func:`polypbench.splits.select`'s: the manifest only reads its own columns.
        """
        if split not in schema.SELECTIONS:
            raise choice_error("split", split, schema.SELECTIONS)
        df = self.frames if table == "frames" else self.polyps
        if split == "all":
            return df.reset_index(drop=True)
        if fold is None or split == "test":
            mask = df["split"] == split
        else:
            folds = sorted(int(f) for f in df.loc[df["fold"] >= 0, "fold"].unique())
            if fold not in folds:
                raise choice_error("fold", fold, folds)
            mask = (df["fold"] == fold) if split == "validation" else (df["fold"] >= 0) & (df["fold"] != fold)
        return df.loc[mask].reset_index(drop=True)


def _identity(root: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(root)
    except OSError:
        return None
    return info.st_dev, info.st_ino
