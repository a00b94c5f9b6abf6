"""The task table and the typed batch: every task is complete, codings decode as documented, and a new task is
one more table entry (trained and predicted end to end here without touching the harness)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from polypbench.errors import ConfigError
from polypbench.evaluate import validate_predictions
from polypbench.inference.predict import predict
from polypbench.train import fit, load_config
from polypbench.train.batch import TARGETS, Batch, collate
from polypbench.train.data import DATA
from polypbench.train.tasks import DATASETS, TASKS, SizeCoding, TargetStats, implied_task, inverse_frequency


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_is_complete(name: str) -> None:
    task = TASKS[name]
    assert task.name == name and task.target in TARGETS and task.dataset in DATA and task.columns
    stats = task.fit_stats(np.array([0, 1, 1, 2] if task.target != "size_mm" else [4.0, 6.0, 11.0]))
    objective = task.objective(load_config(None, [f"task={name}", f"dataset={task.dataset}"]), stats)
    raw = torch.randn(5, task.num_outputs)
    target = torch.tensor([3.0, 5.0, 8.0, 12.0, 20.0]) if task.target == "size_mm" else torch.tensor([0, 1, 2, 1, 0])
    assert objective.loss(raw, target).ndim == 0
    columns = objective.columns(objective.decode(raw), target)
    assert list(columns) == [task.target] * task.writes_target + list(task.columns)  # the targets' column first
    assert all(len(v) == 5 for v in columns.values())
    assert not task.writes_target or np.array_equal(columns[task.target], target.numpy())


def test_dataset_kinds_come_from_the_table() -> None:
    assert set(DATASETS) == set(DATA) == {"polyp", "cifar100"}
    assert implied_task("cifar100") == "classification" and implied_task("polyp") is None


def test_regression_predicts_the_offset_from_the_train_mean_in_mm() -> None:
    task = TASKS["regression"]
    stats = task.fit_stats(np.array([4.0, 6.0, 11.0]))
    assert stats == TargetStats(size_offset_mm=7.0)
    objective = task.objective(load_config(None, ["task=regression", "regression_loss=l1"]), stats)
    raw, target = torch.tensor([[0.5], [-9.0]]), torch.tensor([8.0, 1.0])
    assert torch.allclose(objective.decode(raw), torch.tensor([7.5, 0.0]))  # clipped at 0 mm
    assert float(objective.loss(raw, target)) == pytest.approx((0.5 + 3.0) / 2)  # L1 in mm, before clipping


def test_size_coding_scales_and_clips() -> None:
    paper = SizeCoding(shift=10.25, scale=9.75, low=0.5, high=20.0)  # [0.5, 20] mm <-> [-1, 1]
    assert torch.allclose(paper.encode(torch.tensor([0.5, 20.0])), torch.tensor([-1.0, 1.0]))
    assert torch.allclose(paper.decode(torch.tensor([[-1.0], [1.0], [3.0]])), torch.tensor([0.5, 20.0, 20.0]))


def test_balanced_cross_entropy_weighs_by_inverse_frequency() -> None:
    assert torch.allclose(inverse_frequency((2, 1, 0)), torch.tensor([2 / 3, 4 / 3, 0.0]))
    stats = TASKS["triclass"].fit_stats(np.array([0, 0, 1]))
    assert stats.class_counts == (2, 1, 0)
    weighted = TASKS["triclass"].objective(load_config(None, ["task=triclass", "balance_classes=true"]), stats)
    plain = TASKS["triclass"].objective(load_config(None, ["task=triclass"]), stats)
    raw, target = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 1, 0])
    assert not torch.allclose(weighted.loss(raw, target), plain.loss(raw, target))


@pytest.mark.slow
def test_a_new_task_is_one_table_entry(prepared: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scaled = dataclasses.replace(TASKS["regression"], name="regression-scaled",
                                 coding=lambda _: SizeCoding(shift=10.25, scale=9.75, low=0.5, high=20.0))
    monkeypatch.setitem(TASKS, scaled.name, scaled)
    out = prepared["sun"].out
    cfg = load_config("demo", ["task=regression-scaled", "img_size=32", "epochs=1", "batch_size=16",
                               "frames_per_polyp_per_epoch=1", "n_bootstrap=0", f"prepared=[{out}]"])
    summary = fit(cfg, tmp_path)
    assert "val_polyp_mae_mm" in summary.epochs[0]
    df = predict(summary.checkpoint, out, "test")
    assert list(df.columns) == ["polyp_id", "frame_index", "size_mm"] and df["size_mm"].between(0.5, 20).all()
    validate_predictions(df, out, split="test")


def test_collate_makes_a_typed_batch_and_refuses_unknown_keys() -> None:
    samples = [{"image": torch.zeros(3, 4, 4, dtype=torch.uint8), "label": torch.tensor(i), "index": i}
               for i in range(2)]
    batch = collate(samples)
    assert isinstance(batch, Batch) and len(batch) == 2 and batch.image is not None and batch.box is None
    assert batch.ids() == {"index": [0, 1]} and torch.equal(batch.target("label"), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="batch target 'size_mm' is not in this data; expected one of: label"):
        batch.target("size_mm")
    with pytest.raises(ConfigError, match="sample key 'heatmap' has no place in a training batch"):
        collate([{**samples[0], "heatmap": torch.zeros(1, 4, 4)}])
