"""Helpers of the evaluate tests: tiny prepared manifests written with the real schema (so Manifest.open() and
scoring run end to end), prediction tables for them, and the hand-computed confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from polypbench import schema
from polypbench.sizes import size_class2, size_class3

PolypSpec = tuple[str, str, float, str, int]
"""(polyp_id, patient_id, size_mm, split, n_frames)."""

SMALL: list[PolypSpec] = [
    ("real-colon/A_1", "A", 3.0, "test", 2),
    ("real-colon/A_2", "A", 7.0, "test", 3),
    ("real-colon/B_1", "B", 12.0, "test", 2),
    ("real-colon/B_2", "B", 4.0, "test", 1),
    ("real-colon/C_1", "C", 8.0, "test", 2),
    ("real-colon/C_2", "C", 15.0, "test", 4),
    ("real-colon/D_1", "D", 6.0, "train", 2),
]
"""Six test polyps of three patients (two of each class) and one train polyp."""

SUN: list[PolypSpec] = [
    ("sun/case1", "case1", 2.0, "test", 3),
    ("sun/case2", "case2", 6.0, "test", 2),
    ("sun/case3", "case3", 11.0, "test", 2),
    ("sun/case4", "case4", 9.0, "test", 1),
    ("sun/case5", "case5", 20.0, "train", 2),
]


def write_manifest(root: Path, dataset: str, polyps: list[PolypSpec], frame_start: int = 100) -> Path:
    """Write frames.parquet and polyps.parquet for ``polyps`` (frame numbers frame_start, frame_start+1, ...)."""
    root.mkdir(parents=True, exist_ok=True)
    meta = schema.parquet_metadata({
        schema.META_POLYPBENCH_VERSION: "0.1.0",
        schema.META_SCHEMA_VERSION: schema.SCHEMA_VERSION,
        schema.META_DATASET: dataset,
        schema.META_SPLIT_VERSION: "v1",
        schema.META_SPLIT_HASH: f"{dataset}-hash",
    })
    frames: dict[str, list] = {name: [] for name in schema.FRAMES.names}
    for pid, patient, size, split, n in polyps:
        for i in range(n):
            row = {
                "dataset": dataset, "patient_id": patient, "video_id": patient, "polyp_id": pid,
                "frame_index": frame_start + i, "frame_path": f"{patient}/{i}.jpg", "width": 64, "height": 48,
                "xmin": 1, "ymin": 1, "xmax": 10, "ymax": 10, "size_mm": size,
                "size_class3": int(size_class3(size)), "size_class2": int(size_class2(size)), "split": split,
                "fold": -1 if split == "test" else 0, "histology": None, "site": None, "endoscope": None,
            }
            for key, value in row.items():
                frames[key].append(value)
    pq.write_table(pa.table(frames, schema=schema.FRAMES.with_metadata(meta)), root / schema.FRAMES_FILE)
    polyp_cols = {
        "polyp_id": [p[0] for p in polyps], "dataset": [dataset] * len(polyps), "patient_id": [p[1] for p in polyps],
        "video_id": [p[1] for p in polyps], "size_mm": [p[2] for p in polyps],
        "size_class3": [int(size_class3(p[2])) for p in polyps],
        "size_class2": [int(size_class2(p[2])) for p in polyps],
        "split": [p[3] for p in polyps], "fold": [-1 if p[3] == "test" else 0 for p in polyps],
        "n_frames": [p[4] for p in polyps], "histology": [None] * len(polyps), "site": [None] * len(polyps),
        "endoscope": [None] * len(polyps),
    }
    pq.write_table(pa.table(polyp_cols, schema=schema.POLYPS.with_metadata(meta)), root / schema.POLYPS_FILE)
    return root


WIDE: list[PolypSpec] = [
    (f"real-colon/P{p}_{i}", f"P{p}", size, "test", 2)
    for p, sizes in enumerate([(3.0, 12.0), (4.0, 7.0), (2.0, 15.0), (6.0, 11.0), (8.0, 3.0), (9.0, 20.0),
                               (4.5, 6.5), (13.0, 2.5)])
    for i, size in enumerate(sizes)
]
"""Sixteen test polyps of eight patients (6 diminutive, 5 small, 5 large; each class from 5-6 patients): enough
patients and polyps per class for intervals to be given (docs/scoring.md, "When there is no honest interval")."""

HAND_CM = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 2]])
"""Rows true (diminutive, small, large), columns predicted: six polyps, four correct."""

TEST = [s for s in SMALL if s[3] == "test"]
HAND_CLASS3 = {"real-colon/A_1": 0, "real-colon/A_2": 2, "real-colon/B_1": 2, "real-colon/B_2": 1,
               "real-colon/C_1": 1, "real-colon/C_2": 2}
"""Per-polyp hard labels giving the confusion matrix HAND_CM."""


def polyp_level(sizes: dict[str, float] | None = None) -> pd.DataFrame:
    df = pd.DataFrame({"polyp_id": list(HAND_CLASS3), "class3": list(HAND_CLASS3.values())})
    df["size_mm"] = [sizes[p] if sizes else s + 1.0 for p, (_, _, s, _, _) in zip(HAND_CLASS3, TEST, strict=True)]
    return df


def wide_polyp_level(offset_mm: float = 1.0) -> pd.DataFrame:
    """Polyp-level sizes for the WIDE manifest: every true size plus ``offset_mm``."""
    return pd.DataFrame({"polyp_id": [p[0] for p in WIDE], "size_mm": [p[2] + offset_mm for p in WIDE]})


def frames(**columns: list) -> pd.DataFrame:
    keys = [(pid, 100 + i) for pid, _, _, _, n in TEST for i in range(n)]
    df = pd.DataFrame(keys, columns=["polyp_id", "frame_index"])
    for name, values in columns.items():
        df[name] = values
    return df


def frame_predictions() -> pd.DataFrame:
    """A valid frame-level file for the SMALL manifest: perfect sizes and probabilities."""
    rows = []
    for pid, _, size, split, n in SMALL:
        if split == "test":
            for i in range(n):
                rows.append({"polyp_id": pid, "frame_index": 100 + i, "size_mm": size, "p0": 0.2, "p1": 0.3, "p2": 0.5})
    return pd.DataFrame(rows)
