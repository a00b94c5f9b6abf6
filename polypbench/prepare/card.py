"""The Hugging Face dataset card of a prepared directory, so ``datasets.load_dataset(<dir>)`` works alone."""

from __future__ import annotations

from polypbench import __version__

HF_DIR = "hf"


def dataset_card(dataset: str, split_rows: dict[str, int], split_version: str, split_sha256: str) -> str:
    """README.md with YAML ``configs:`` mapping each non-empty split to its Parquet file under ``hf/``."""
    files = "\n".join(
        f"  - split: {split}\n    path: {HF_DIR}/{split}.parquet" for split, n in split_rows.items() if n > 0
    )
    counts = ", ".join(f"{split} {n}" for split, n in split_rows.items())
    return f"""---
configs:
- config_name: default
  data_files:
{files}
tags:
- medical
- colonoscopy
- polyp-size
---
# polypbench manifest: {dataset}

One row per annotated polyp box (a frame with two polyps has two rows), written by `polypbench prepare`
{__version__}. Columns and their meaning: polypbench docs/manifest.md. `frame_path` is relative to the raw
dataset root, which is not redistributed: obtain the frames from the dataset's owners.

- Split: polypbench public split {split_version} (sha256 {split_sha256}), assigned per patient.
- Rows per split: {counts}.
- `frames.parquet` holds every row; `hf/<split>.parquet` the same rows by split (for `datasets.load_dataset`).

```python
import datasets
ds = datasets.load_dataset("<this directory>")   # train / validation / test, no polypbench needed
```
Cite the dataset's own paper (see polypbench docs/datasets.md) and respect its license.
"""
