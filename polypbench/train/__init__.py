"""Training: configuration (``config``), the task table (``tasks``), the typed batch (``batch``), data loaders
(``data``), the gradient-routing step (``routing``) and the loop (``loop``)."""

from __future__ import annotations

from polypbench.train.config import TrainConfig, load_config, packaged_configs, resolve_config, save_config
from polypbench.train.loop import RunSummary, TrainingError, fit
from polypbench.train.routing import GR_MODES, build_optimizers, split_parameters, train_step
from polypbench.train.tasks import TASKS, Task

__all__ = [
    "GR_MODES",
    "RunSummary",
    "TASKS",
    "Task",
    "TrainConfig",
    "TrainingError",
    "build_optimizers",
    "fit",
    "load_config",
    "packaged_configs",
    "resolve_config",
    "save_config",
    "split_parameters",
    "train_step",
]
