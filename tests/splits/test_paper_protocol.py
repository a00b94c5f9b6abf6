"""The paper's per-object protocol: pooled polyps, 6 stratified folds, test k / validation k+1."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from polypbench.cli import main
from polypbench.splits import paper_folds, paper_split


def test_paper_folds_pool_polyps_and_stratify(prepared, tmp_path) -> None:
    folds = paper_folds([prepared["real-colon"].out, prepared["sun"].out])
    assert len(folds) == 232 and folds["polyp_id"].is_unique
    counts = pd.crosstab(folds["paper_fold"], folds["size_class3"])
    assert list(counts.index) == [0, 1, 2, 3, 4, 5]
    assert (counts.max() - counts.min() <= 1).all()  # stratified on triclass
    assert (counts.sum(axis=1).max() - counts.sum(axis=1).min()) <= 2
    assert folds.equals(paper_folds([prepared["sun"].out, prepared["real-colon"].out]))  # order-independent
    split = paper_split(folds["paper_fold"], test_fold=5)
    assert set(folds.loc[split == "test", "paper_fold"]) == {5} and set(folds.loc[split == "validation", "paper_fold"]) == {0}
    out = tmp_path / "folds.csv"
    result = CliRunner().invoke(main, ["splits", "paper", str(prepared["real-colon"].out), str(prepared["sun"].out), "--out", str(out)])
    assert result.exit_code == 0 and pd.read_csv(out)["paper_fold"].tolist() == folds["paper_fold"].tolist()
