"""Fixed public splits (split_manifests/), their verification, and the paper's protocol.

:func:`select` is the one way to read a split under a protocol (``public``: the manifest's own columns,
``paper``: the paper's per-object folds); :class:`~polypbench.manifest.Manifest` itself knows only the published
split.
"""

from polypbench.splits.generate import write_public_splits
from polypbench.splits.paper import paper_folds, paper_split, row_folds, select
from polypbench.splits.public import (
    SPLIT_VERSION,
    class_counts,
    published_dir,
    read_split,
    split_file,
)
from polypbench.splits.verify import verify

__all__ = [
    "SPLIT_VERSION",
    "class_counts",
    "published_dir",
    "paper_folds",
    "paper_split",
    "read_split",
    "row_folds",
    "select",
    "split_file",
    "verify",
    "write_public_splits",
]
