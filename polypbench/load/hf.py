"""Hugging Face ``datasets`` view of a prepared manifest, with a decoded image column."""

from __future__ import annotations

from pathlib import Path

import datasets

from polypbench.load.torch_dataset import resolve_raw_root
from polypbench.manifest import Manifest


def load_hf(prepared_dir: str | Path, split: str, raw_root: str | Path | None = None) -> datasets.Dataset:
    """One split as a ``datasets.Dataset`` with every manifest column plus ``image`` (the full frame, decoded
    lazily by ``datasets.Image``). Without polypbench, ``datasets.load_dataset(prepared_dir)`` gives the same
    rows without images."""
    manifest = Manifest.open(prepared_dir)
    root = resolve_raw_root(manifest, raw_root)
    rows = manifest.select(split)
    rows = rows.assign(image=[str(root / p) for p in rows["frame_path"]])
    ds = datasets.Dataset.from_pandas(rows, preserve_index=False, split=datasets.Split(split))
    return ds.cast_column("image", datasets.Image())
