"""The HAG/GR paper's own protocol, offered only for reproducing its numbers (it is NOT the public split).

The reference code pools all objects (REAL-Colon and SUN polyps) and assigns per-object folds with
``StratifiedKFold(6, shuffle=True, random_state=1)`` on the size class; for test fold k the validation fold
is (k + 1) mod 6 and the rest is train. Per-object folds let polyps of one patient sit on both sides. The
paper's exact fold file was never published, so these folds follow its recipe but cannot match it row for row
(see docs/splits.md).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from polypbench.manifest import Manifest


def paper_folds(prepared: list[str | Path], n_folds: int = 6, seed: int = 1) -> pd.DataFrame:
    """Per-object stratified folds over the polyps of all ``prepared`` manifests (ordered by polyp_id)."""
    from sklearn.model_selection import StratifiedKFold  # lazy: importing scikit-learn costs about 1 s

    polyps = pd.concat([Manifest.open(p).polyps for p in prepared], ignore_index=True)
    polyps = polyps.sort_values("polyp_id", kind="stable").reset_index(drop=True)
    cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = pd.Series(-1, index=polyps.index, dtype=int)
    for k, (_, idx) in enumerate(cv.split(polyps, polyps["size_class3"])):
        fold.iloc[idx] = k
    return polyps[["polyp_id", "dataset", "patient_id", "size_mm", "size_class3"]].assign(paper_fold=fold)


def paper_split(paper_fold: pd.Series, test_fold: int, n_folds: int = 6) -> pd.Series:
    """Split name per object for one run of the paper's protocol: test fold k, validation fold k+1, train rest."""
    out = pd.Series("train", index=paper_fold.index)
    out[paper_fold == test_fold] = "test"
    out[paper_fold == (test_fold + 1) % n_folds] = "validation"
    return out
