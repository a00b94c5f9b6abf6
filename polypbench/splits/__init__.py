"""Fixed public splits (split_manifests/), their verification, and the paper's protocol."""

from polypbench.splits.paper import paper_folds, paper_split
from polypbench.splits.public import (
    SPLIT_VERSION,
    class_counts,
    published_dir,
    read_split,
    split_file,
    write_public_splits,
)
from polypbench.splits.verify import verify

__all__ = [
    "SPLIT_VERSION",
    "class_counts",
    "published_dir",
    "paper_folds",
    "paper_split",
    "read_split",
    "split_file",
    "verify",
    "write_public_splits",
]
