"""Prove that a prepared manifest uses the published split: by hash, and row by row."""

from __future__ import annotations

from pathlib import Path

from polypbench import schema
from polypbench.errors import PolypbenchError
from polypbench.fileio import file_sha256
from polypbench.manifest import Manifest
from polypbench.splits.paper import paper_split_file
from polypbench.splits.public import SPLIT_VERSION, read_split, split_file


def verify(prepared: str | Path, split_dir: str | Path | None = None) -> str:
    """Check ``prepared`` against the published split; return a one-line confirmation or raise.

    Three checks: the split hash recorded in the manifest equals the hash of the published file, every frame row's
    ``split``/``fold`` equals the published assignment of its patient, and no two rows share a (``polyp_id``,
    ``frame_index``) key (the key of a frame prediction).
    """
    manifest = Manifest.open(prepared)
    meta = manifest.metadata
    path = split_file(manifest.dataset, split_dir)
    expected = file_sha256(path)
    recorded = meta.get(schema.META_SPLIT_HASH)
    if recorded != expected:
        raise PolypbenchError(
            f"{manifest.root}: split hash {recorded} differs from the published {path} ({expected}); "
            "re-run `polypbench prepare` with this polypbench version"
        )
    paper = file_sha256(paper_split_file(split_dir))
    if meta.get(schema.META_PAPER_SPLIT_HASH) != paper:
        raise PolypbenchError(f"{manifest.root}: paper fold hash {meta.get(schema.META_PAPER_SPLIT_HASH)} differs "
                              f"from the published {paper_split_file(split_dir)} ({paper}); "
                              "re-run `polypbench prepare`")
    if meta.get(schema.META_SPLIT_VERSION) != SPLIT_VERSION:
        raise PolypbenchError(f"{manifest.root}: split version {meta.get(schema.META_SPLIT_VERSION)!r}; "
                              f"expected {SPLIT_VERSION!r}")
    published = read_split(manifest.dataset, split_dir).set_index("patient_id")
    frames = manifest.frames
    joined = frames[["patient_id", "split", "fold"]].merge(
        published.add_suffix("_published"), left_on="patient_id", right_index=True, how="left"
    )
    wrong = (joined["split"] != joined["split_published"]) | (joined["fold"] != joined["fold_published"])
    if wrong.any():
        row = joined[wrong].iloc[0]
        raise PolypbenchError(
            f"{manifest.root}: {int(wrong.sum())} frame rows disagree with {path}, e.g. patient {row['patient_id']}: "
            f"{row['split']}/{row['fold']}; expected {row['split_published']}/{row['fold_published']}"
        )
    repeated = frames.duplicated(["polyp_id", "frame_index"], keep="first")
    if repeated.any():
        row = frames[repeated].iloc[0]
        raise PolypbenchError(
            f"{manifest.root}: {int(repeated.sum())} frame rows repeat a (polyp_id, frame_index) key, e.g. "
            f"{row['polyp_id']} on frame {row['frame_index']}; expected one row per polyp and frame (re-run "
            "`polypbench prepare`)"
        )
    return (
        f"OK: {manifest.root} ({manifest.dataset}, {len(frames)} frame rows, "
        f"{frames['patient_id'].nunique()} patients) "
        f"uses the published split {SPLIT_VERSION} (sha256 {expected[:12]}) and paper folds (sha256 {paper[:12]})"
    )
