"""The training tasks: one table entry per task holds everything the harness does differently for it.

A :class:`Task` says how many outputs the model has, which batch field holds the target, which dataset kind it
trains on, what it learns from the training targets before the first step (:class:`TargetStats`), how the
model's outputs relate to the targets (its coding: outputs -> mm or logits, targets -> what the loss compares),
the loss built from the config, the prediction-file columns it writes and the per-epoch metrics it reports.
The config, the loop, the loaders, ``predict`` and the CLI read :data:`TASKS` and never test a task's name, so a
new task is one more entry.

Regression predicts the offset from the mean training size (``SizeCoding(shift=mean)``), with the L1 or
SmoothL1 loss in mm. ``regression-paper`` is the HAG/GR seed code's regression: sizes min-max scaled from
[0.5, 20] mm to [-1, 1] (:data:`PAPER_SIZE_CODING`), decoded back to mm and clipped to [0.5, 22] mm, and its two
losses (:func:`seed_size_loss`): the main pass's and the gate pass's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from polypbench.errors import ConfigError, choice_error


class RunConfig(Protocol):
    """What a task reads of its run's config (:class:`~polypbench.train.config.TrainConfig` is one): the loss
    options, and where and how its predictions are scored. A protocol, so that the task table does not import the
    config, which validates against it."""

    regression_loss: str
    balance_classes: bool
    prepared: list[str]
    fold: int | None
    protocol: str
    n_bootstrap: int
    seed: int


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ColumnFn = Callable[[torch.Tensor], np.ndarray]
"""Decoded outputs -> one prediction-file column."""
T = TypeVar("T")

REGRESSION_LOSSES: dict[str, LossFn] = {"l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss}
"""``regression_loss`` -> loss on (predicted, target) sizes in the coding's units (mm for the default coding)."""


@dataclass(frozen=True)
class TargetStats:
    """What a run learns from its training targets before the first step; saved in ``best.pt``, so that
    ``predict`` decodes as training did. ``size_offset_mm``: mean training size (regression); ``class_counts``:
    training samples per class (class tasks)."""

    size_offset_mm: float = 0.0
    class_counts: tuple[int, ...] = ()

    def to_checkpoint(self) -> dict[str, Any]:
        return {"size_offset_mm": self.size_offset_mm, "class_counts": list(self.class_counts)}

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> TargetStats:
        return cls(float(ckpt["size_offset_mm"]), tuple(int(c) for c in ckpt.get("class_counts", ())))


def always(value: T) -> Callable[..., T]:
    """A table entry that does not depend on the run (its config, its target statistics): ``value`` every time."""

    def same(*_: object) -> T:
        return value

    return same


def mean_size(targets: np.ndarray, _num_outputs: int) -> TargetStats:
    """Regression: the mean training size (boxes weigh equally; the uniform signature's ``num_outputs`` is 1)."""
    return TargetStats(size_offset_mm=float(targets.astype(np.float64).mean()) if len(targets) else 0.0)


def class_counts(targets: np.ndarray, num_outputs: int) -> TargetStats:
    """Class tasks: training samples per class."""
    counts = np.bincount(targets.astype(np.int64), minlength=num_outputs)[:num_outputs]
    return TargetStats(class_counts=tuple(int(c) for c in counts))


class Coding(Protocol):
    """How a task's raw model outputs relate to its targets."""

    def outputs(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw outputs (B, num_outputs) as the loss sees them."""

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        """A batch's targets as the loss sees them."""

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw outputs -> predictions: sizes in mm (B,), or logits (B, K)."""


@dataclass(frozen=True)
class SizeCoding:
    """Sizes: the network predicts ``(size_mm - shift) / scale``; decoding maps back to mm, clipped to
    [``low``, ``high``]."""

    shift: float = 0.0
    scale: float = 1.0
    low: float = 0.0
    high: float = math.inf

    def outputs(self, raw: torch.Tensor) -> torch.Tensor:
        return raw[:, 0].float()

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        return (target.float() - self.shift) / self.scale

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return (self.outputs(raw) * self.scale + self.shift).clamp(self.low, self.high)


@dataclass(frozen=True)
class LogitCoding:
    """Classes: outputs are logits, targets class indices."""

    def outputs(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float()

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        return target

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.float()


@dataclass(frozen=True)
class RangeCoding:
    """Sizes min-max scaled from [``lo``, ``hi``] mm to [-1, 1], in float32 and in the seed's own operation order
    (its ``utils.Scaler``): ``((size - lo) / (hi - lo)) * 2 - 1``, decoded ``((t + 1) / 2) * (hi - lo) + lo`` and
    clipped to [``low``, ``high``]. In real arithmetic that is ``(size - 10.25) / 9.75``, but in float32 the two
    forms differ by one ulp for sizes in 5.5-15 mm; the seed's order makes the ``paper`` step bit-identical to the
    seed's."""

    lo: float = 0.5
    hi: float = 20.0
    low: float = 0.5
    high: float = 22.0

    def outputs(self, raw: torch.Tensor) -> torch.Tensor:
        return raw[:, 0].float()

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        return ((target.float() - self.lo) / (self.hi - self.lo)) * 2 - 1

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return (((self.outputs(raw) + 1) / 2) * (self.hi - self.lo) + self.lo).clamp(self.low, self.high)


PAPER_SIZE_CODING = RangeCoding(lo=0.5, hi=20.0, low=0.5, high=22.0)
"""The seed's target scaler: ``((size - 0.5) / 19.5) * 2 - 1`` in float32; its inverse clips to
[0.5 mm, 1.1 x 20 mm]."""


def seed_size_loss(weight_1: float, weight_2: float, threshold_1: float = 5.0, threshold_2: float = 10.0) -> LossFn:
    """The seed's ``WeightedCombinedLoss`` with only its SmoothL1 term (alpha = beta = 0, gamma = 1): the mean of
    SmoothL1 per sample times ``weight_1`` where ``threshold_1 < target < threshold_2`` and ``weight_2`` where
    ``target >= threshold_2``. The seed compares the thresholds (in mm) with the SCALED target, which never
    exceeds 1 for sizes up to 20 mm, so the weights never apply: reproduced as written, not fixed."""

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per = F.smooth_l1_loss(out, target, reduction="none")
        weight = torch.ones_like(per)
        weight[(target > threshold_1) & (target < threshold_2)] = weight_1
        weight[target >= threshold_2] = weight_2
        return (per * weight).mean()

    return loss


def regression_loss(cfg: RunConfig, _stats: TargetStats) -> LossFn:
    """``cfg.regression_loss`` (L1 or SmoothL1; the coding, not the loss, uses the target statistics)."""
    return REGRESSION_LOSSES[cfg.regression_loss]


def inverse_frequency(counts: tuple[int, ...]) -> torch.Tensor:
    """Inverse class frequency, scaled to mean 1 over the classes present (absent classes get 0)."""
    c = np.asarray(counts, dtype=np.float64)
    inv = np.where(c > 0, 1.0 / np.maximum(c, 1), 0.0)
    return torch.tensor(inv * (c > 0).sum() / max(inv.sum(), 1e-12), dtype=torch.float32)


def balanced_cross_entropy(cfg: RunConfig, stats: TargetStats) -> LossFn:
    """Cross-entropy, weighted by inverse training-class frequency when ``cfg.balance_classes``."""
    weight = inverse_frequency(stats.class_counts) if cfg.balance_classes else None
    if weight is None:
        return F.cross_entropy
    return lambda out, y: F.cross_entropy(out, y, weight=weight.to(out.device))


@dataclass
class Evaluation:
    """Inference over one split: the prediction frame (id columns, then the task's columns), the raw model
    outputs, the decoded outputs and the targets, in loader order."""

    split: str
    predictions: pd.DataFrame
    raw: torch.Tensor
    decoded: torch.Tensor
    target: torch.Tensor


MetricsFn = Callable[[RunConfig, Evaluation], dict[str, float | None]]


def polyp_scores(*names: tuple[str, str]) -> MetricsFn:
    """Metrics from :func:`polypbench.score` of the predictions, per polyp: ``polyp_<metric>`` for each
    (score task, metric) in ``names``."""

    def metrics(cfg: RunConfig, ev: Evaluation) -> dict[str, float | None]:
        from polypbench.evaluate import metric_key, score

        result = score(ev.predictions, list(cfg.prepared), split=ev.split, fold=cfg.fold, protocol=cfg.protocol,
                       n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
        return {f"polyp_{metric}": result.stat(metric_key("polyp", task, "pooled", metric)).value
                for task, metric in names}

    return metrics


def top_k(*ks: int) -> MetricsFn:
    """Top-k accuracy of the logits, ``top<k>`` for each k."""

    def metrics(_cfg: RunConfig, ev: Evaluation) -> dict[str, float | None]:
        out, target = ev.decoded, ev.target
        if not len(target):
            return {f"top{k}": math.nan for k in ks}
        hits = {k: (out.topk(min(k, out.shape[1]), dim=1).indices == target[:, None]).any(dim=1) for k in ks}
        return {f"top{k}": float(hit.float().mean()) for k, hit in hits.items()}

    return metrics


def probability(k: int) -> ColumnFn:
    """Softmax probability of class ``k``."""
    return lambda logits: logits.softmax(dim=1)[:, k].numpy().astype("float64")


def size_column(size_mm: torch.Tensor) -> np.ndarray:
    return size_mm.numpy().astype("float64")


def argmax_column(logits: torch.Tensor) -> np.ndarray:
    return logits.argmax(dim=1).numpy()


@dataclass(frozen=True)
class Task:
    """One training task (see the module docstring). ``target`` is a :class:`~polypbench.train.batch.Batch`
    field and, for polyps, the manifest column of the same name; ``columns`` are the prediction-file columns
    written after the ids (``writes_target``: the targets themselves first, in a column named ``target``, where no
    manifest holds the truth, as for CIFAR-100); ``headline``: the keys of ``metrics`` shown on each epoch's line
    (all of them go to ``metrics.jsonl``)."""

    name: str
    dataset: str
    target: str
    num_outputs: int
    stats: Callable[[np.ndarray, int], TargetStats]
    coding: Callable[[TargetStats], Coding]
    loss: Callable[[RunConfig, TargetStats], LossFn]
    columns: Mapping[str, ColumnFn]
    metrics: MetricsFn
    headline: tuple[str, ...] = ()
    writes_target: bool = False
    gate_loss: Callable[[RunConfig, TargetStats], LossFn] | None = None
    """The gate pass's loss in the two-pass modes (None: the same as ``loss``)."""

    @property
    def uses_size_offset(self) -> bool:
        """Whether decoding depends on the mean training size (so a checkpoint must carry ``size_offset_mm``)."""
        return self.coding(TargetStats(size_offset_mm=1.0)) != self.coding(TargetStats())

    def fit_stats(self, targets: np.ndarray) -> TargetStats:
        """:class:`TargetStats` of the training targets (one value per training sample)."""
        return self.stats(np.asarray(targets), self.num_outputs)

    def objective(self, cfg: RunConfig, stats: TargetStats) -> Objective:
        """This task for one run: its loss on raw outputs and its decoding."""
        gate = self.loss if self.gate_loss is None else self.gate_loss
        return Objective(self, stats, self.coding(stats), self.loss(cfg, stats), gate(cfg, stats))


@dataclass(frozen=True)
class Objective:
    """A task with the coding and the loss of one run (built by :meth:`Task.objective`)."""

    task: Task
    stats: TargetStats
    coding: Coding
    criterion: LossFn = field(repr=False)
    gate_criterion: LossFn = field(repr=False)

    def loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of raw model outputs (B, num_outputs) against a batch's targets."""
        return self.criterion(self.coding.outputs(raw), self.coding.encode(target))

    def gate_loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The gate pass's loss (gradient routing), on the same coding."""
        return self.gate_criterion(self.coding.outputs(raw), self.coding.encode(target))

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return self.coding.decode(raw)

    def columns(self, decoded: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
        """The task's prediction-file columns (the targets' first, if it writes them)."""
        truth = {self.task.target: target.numpy()} if self.task.writes_target else {}
        return {**truth, **{name: column(decoded) for name, column in self.task.columns.items()}}


POLYP_CLASS_METRICS = (("triclass", "balanced_accuracy"), ("triclass", "macro_f1"))

TASKS: dict[str, Task] = {t.name: t for t in (
    Task("regression", dataset="polyp", target="size_mm", num_outputs=1, stats=mean_size,
         coding=lambda stats: SizeCoding(shift=stats.size_offset_mm), loss=regression_loss,
         columns={"size_mm": size_column}, metrics=polyp_scores(*POLYP_CLASS_METRICS, ("size", "mae_mm")),
         headline=("polyp_balanced_accuracy", "polyp_mae_mm")),
    Task("regression-paper", dataset="polyp", target="size_mm", num_outputs=1, stats=mean_size,
         coding=always(PAPER_SIZE_CODING), loss=always(seed_size_loss(3.0, 5.0)),
         gate_loss=always(seed_size_loss(5.0, 10.0)),
         columns={"size_mm": size_column}, metrics=polyp_scores(*POLYP_CLASS_METRICS, ("size", "mae_mm")),
         headline=("polyp_balanced_accuracy", "polyp_mae_mm")),
    Task("triclass", dataset="polyp", target="size_class3", num_outputs=3, stats=class_counts,
         coding=always(LogitCoding()), loss=balanced_cross_entropy,
         columns={f"p{k}": probability(k) for k in range(3)}, metrics=polyp_scores(*POLYP_CLASS_METRICS),
         headline=("polyp_balanced_accuracy",)),
    Task("classification", dataset="cifar100", target="label", num_outputs=100, stats=class_counts,
         coding=always(LogitCoding()), loss=always(F.cross_entropy), writes_target=True,
         columns={"pred": argmax_column}, metrics=top_k(1, 5), headline=("top1",)),
)}
"""Every training task, by name (``TrainConfig.task``)."""

DATASETS = tuple(dict.fromkeys(t.dataset for t in TASKS.values()))
"""The dataset kinds the tasks train on (``TrainConfig.dataset``)."""


def get_task(name: str) -> Task:
    """The task called ``name``; unknown names fail listing the valid ones."""
    if name not in TASKS:
        raise choice_error("task", name, TASKS)
    return TASKS[name]


def tasks_for(dataset: str) -> list[str]:
    """Names of the tasks that train on dataset kind ``dataset``, in table order."""
    return [t.name for t in TASKS.values() if t.dataset == dataset]


def implied_task(dataset: str) -> str | None:
    """The task a dataset kind implies when it has exactly one (``cifar100`` -> ``classification``), else None."""
    names = tasks_for(dataset)
    return names[0] if len(names) == 1 else None


def check_task(task: str, dataset: str) -> None:
    """A one-line error unless ``task`` trains on ``dataset``."""
    if get_task(task).dataset != dataset:
        expected = " or ".join(tasks_for(dataset)) or "none (no task trains on it)"
        raise ConfigError(f"config key 'task': {task!r} does not fit dataset {dataset!r}; expected {expected}")
