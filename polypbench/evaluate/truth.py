"""The ground truth of one split, read from one or more prepared manifests through the public :class:`Manifest` API.

Everything the scorer and the validator need: the polyps of the split (size, class, patient, dataset), their
annotated frames (the keys a frame-level prediction file must cover), the patients (with their dataset as
bootstrap stratum) and the polyps outside the split (so rows of other splits are named as such, not as unknown).
Polyps are coded 0..n_polyps-1 in the order of the ``polyps`` table (sorted by dataset, then id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from polypbench.errors import InputError
from polypbench.manifest import Manifest
from polypbench.splits import paper_split, row_folds, select

FRAME_KEY_SHIFT = 32


def frame_key(polyp_code: np.ndarray, frame_index: np.ndarray) -> np.ndarray:
    """One int64 per (polyp code, frame_index): ``code << 32 | frame_index`` (frame indices are int32, >= 0)."""
    return (np.asarray(polyp_code, dtype=np.int64) << FRAME_KEY_SHIFT) | (
        np.asarray(frame_index, dtype=np.int64) & 0xFFFFFFFF)


ManifestLike = Manifest | str | Path


@dataclass(frozen=True)
class Truth:
    """Ground truth of ``split`` (and ``fold``).

    Arrays: ``polyp_size``, ``polyp_patient`` (per polyp code); ``frame_polyp``, ``frame_index`` (per frame row).
    Tables: ``polyps`` (``polyp_id``, ``dataset``, ``patient_id``, ``size_mm``, ``size_class3``, ``histology``
    (None where the manifest has none), ``patient``) and
    ``patients`` (``dataset``, ``patient_id``, ``stratum``: index of its dataset in ``datasets``), in code order.
    ``all_polyp_ids`` = the ``polyps`` table's ids followed by the manifests' polyps outside the selection (codes >=
    n_polyps, their split in ``other_split``); ``known_polyps``/``known_splits`` give the same ids with every
    polyp's split.
    """

    split: str
    fold: int | None
    manifests: tuple[dict[str, str], ...]
    datasets: tuple[str, ...]
    polyps: pd.DataFrame
    patients: pd.DataFrame
    frame_polyp: np.ndarray
    frame_index: np.ndarray
    all_polyp_ids: pd.Index
    other_split: np.ndarray
    protocol: str = "public"

    # -- arrays per polyp -------------------------------------------------------------------------------------
    @property
    def polyp_size(self) -> np.ndarray:
        return self.polyps["size_mm"].to_numpy(dtype=np.float64)

    @property
    def polyp_patient(self) -> np.ndarray:
        return self.polyps["patient"].to_numpy(dtype=np.int64)

    # -- sizes and keys ---------------------------------------------------------------------------------------
    @property
    def n_polyps(self) -> int:
        return len(self.polyps)

    @property
    def n_patients(self) -> int:
        return len(self.patients)

    @property
    def n_frames(self) -> int:
        return len(self.frame_polyp)

    @property
    def frame_keys(self) -> np.ndarray:
        return frame_key(self.frame_polyp, self.frame_index)

    @property
    def known_polyps(self) -> pd.Index:
        return self.all_polyp_ids

    @property
    def known_splits(self) -> np.ndarray:
        return np.concatenate([np.full(self.n_polyps, self.split, dtype=object), self.other_split.astype(object)])

    @property
    def split_label(self) -> str:
        """``test``, ``validation (fold 2)``, ``test (paper fold 3)``."""
        if self.fold is None:
            return self.split
        return f"{self.split} ({'paper fold' if self.protocol == 'paper' else 'fold'} {self.fold})"

    @classmethod
    def from_manifests(
        cls, manifests: ManifestLike | Sequence[ManifestLike], *, split: str = "test", fold: int | None = None,
        protocol: str = "public",
    ) -> Truth:
        """Read the truth of ``split`` (or ``all``) under ``protocol`` from one manifest, or several (one per
        dataset, scored pooled); see :func:`polypbench.splits.select`."""
        items = [manifests] if isinstance(manifests, (Manifest, str, Path)) else list(manifests)
        if not items:
            raise InputError("manifest", "no manifest given", "at least one prepared directory")
        opened = [m if isinstance(m, Manifest) else Manifest.open(m) for m in items]
        where = ", ".join(str(m.root) for m in opened)
        polyps, frames, everything, info = [], [], [], []
        for m in opened:
            polyps.append(select(m, split, fold, table="polyps", protocol=protocol).reindex(
                columns=["polyp_id", "dataset", "patient_id", "size_mm", "size_class3", "histology"]))
            frames.append(select(m, split, fold, protocol=protocol)[["polyp_id", "frame_index"]])
            known = m.polyps[["polyp_id", "split"]]
            if protocol == "paper" and fold is not None:  # name other rows by their split under this protocol
                known = known.assign(split=paper_split(row_folds(m, "polyps"), fold).to_numpy())
            everything.append(known)
            info.append(m.provenance())
        table = pd.concat(polyps, ignore_index=True)
        if table.empty:
            raise InputError(where, f"no polyps in the {split} split", f"a manifest with {split} rows")
        dup = table["polyp_id"].duplicated()
        if dup.any():
            raise InputError(where, f"polyp_id {table.loc[dup, 'polyp_id'].iloc[0]!r} appears twice",
                             "each polyp in one manifest only (was a manifest given twice?)")
        size = table["size_mm"].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~(np.isfinite(size) & (size >= 0))
        if bad.any():
            raise InputError(where, f"polyp {table['polyp_id'].iloc[int(np.flatnonzero(bad)[0])]!r} has no valid "
                             "size_mm", "a finite ground-truth size per polyp")
        table = table.sort_values(["dataset", "polyp_id"], kind="stable", ignore_index=True)
        datasets = tuple(sorted(table["dataset"].unique()))
        key = table["dataset"].astype(str) + "\x00" + table["patient_id"].astype(str)
        codes, uniques = pd.factorize(key, sort=True)
        table["patient"] = codes.astype(np.int64)
        pairs = [str(u).split("\x00", 1) for u in uniques]
        patients = pd.DataFrame({"dataset": [d for d, _ in pairs], "patient_id": [p for _, p in pairs]})
        patients["stratum"] = np.array([datasets.index(d) for d in patients["dataset"]], dtype=np.int64)

        frame_table = pd.concat(frames, ignore_index=True)
        frame_polyp = pd.Index(table["polyp_id"]).get_indexer(frame_table["polyp_id"])
        if (frame_polyp < 0).any():
            orphan = frame_table["polyp_id"].iloc[int(np.flatnonzero(frame_polyp < 0)[0])]
            raise InputError(where, f"frame rows of polyp {orphan!r} that polyps.parquet lacks",
                             "consistent manifest files")
        n_frames = np.bincount(frame_polyp, minlength=len(table))
        if (n_frames == 0).any():
            raise InputError(where, f"polyp {table['polyp_id'].iloc[int(np.flatnonzero(n_frames == 0)[0])]!r} has "
                             "no frame rows", "consistent manifest files")
        all_known = pd.concat(everything, ignore_index=True).drop_duplicates("polyp_id")
        others = all_known[~all_known["polyp_id"].isin(table["polyp_id"])]
        truth = cls(
            split=split,
            fold=fold,
            protocol=protocol,
            manifests=tuple(info),
            datasets=datasets,
            polyps=table,
            patients=patients,
            frame_polyp=frame_polyp.astype(np.int64),
            frame_index=frame_table["frame_index"].to_numpy(dtype=np.int64),
            all_polyp_ids=pd.Index(np.concatenate([table["polyp_id"].to_numpy(dtype=object),
                                                   others["polyp_id"].to_numpy(dtype=object)])),
            other_split=others["split"].to_numpy(dtype=object),
        )
        keys = truth.frame_keys
        if len(pd.unique(keys)) != len(keys):
            raise InputError(where, "duplicate (polyp_id, frame_index) frame rows", "one row per polyp per frame")
        return truth


def load_truth(
    manifest: ManifestLike | Truth | Sequence[ManifestLike], split: str = "test", fold: int | None = None,
    protocol: str = "public",
) -> Truth:
    """The truth of ``split`` from one manifest or several (a :class:`Truth` is returned as is)."""
    if isinstance(manifest, Truth):
        return manifest
    return Truth.from_manifests(manifest, split=split, fold=fold, protocol=protocol)
