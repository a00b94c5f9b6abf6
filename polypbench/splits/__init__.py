"""Fixed public splits (split_manifests/), their verification, and the paper's protocol."""

from polypbench.splits.paper import paper_folds, paper_split
from polypbench.splits.public import (
    SPLIT_FILE_OF,
    SPLIT_VERSION,
    class_counts,
    file_sha256,
    read_split,
    split_file,
    sun_patient_id,
    write_public_splits,
)
from polypbench.splits.verify import verify

__all__ = [
    "SPLIT_FILE_OF",
    "SPLIT_VERSION",
    "class_counts",
    "file_sha256",
    "paper_folds",
    "paper_split",
    "read_split",
    "split_file",
    "sun_patient_id",
    "verify",
    "write_public_splits",
]
