"""Reference baselines that need no model: the floor every method on the board should clear.

``majority`` predicts, for every frame of the split, the training split's most frequent size class (one-hot
``p0, p1, p2``) and the training polyps' median size (``size_mm``). It runs on the base install (no torch), so it
also serves to check a fresh install end to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from polypbench.errors import InputError
from polypbench.manifest import Manifest


def majority_baseline(prepared: Sequence[str | Path], split: str = "test", fold: int | None = None,
                      protocol: str = "public") -> pd.DataFrame:
    """Frame predictions of ``split`` (and ``fold``, under ``protocol``: :func:`polypbench.splits.select`) of the
    prepared manifests: the training split's majority size class and median polyp size, pooled over the manifests
    (each polyp counted once)."""
    from polypbench.splits import select

    manifests = [Manifest.open(d) for d in prepared]
    train = pd.concat([select(m, "train", fold, table="polyps", protocol=protocol) for m in manifests],
                      ignore_index=True)
    if train.empty:
        raise InputError(prepared[0], f"no training polyps (fold {fold}, protocol {protocol})",
                         "a manifest with a train split to take the majority class from")
    majority = int(train["size_class3"].value_counts().sort_index().idxmax())  # ties: the smaller class
    median = float(train["size_mm"].median())
    rows = pd.concat([select(m, split, fold, protocol=protocol) for m in manifests], ignore_index=True)
    out = rows[["polyp_id", "frame_index"]].copy()
    out["size_mm"] = median
    for k in range(3):
        out[f"p{k}"] = np.float64(k == majority)
    return out
