"""Training: configuration (``config``), the task table (``tasks``), the typed batch (``batch``), data loaders
(``data``), the gradient-routing step (``routing``), the learning-rate schedules (``schedule``), the loop
(``loop``), its checkpoint and training state (``checkpoint``), the run folder (``rundir``) and what a run records
about its code and data (``provenance``)."""

from __future__ import annotations

from polypbench.train.config import TrainConfig, load_config, packaged_configs, resolve_config, save_config
from polypbench.train.loop import Interrupted, RunSummary, TrainingError, fit
from polypbench.train.routing import GR_MODES, build_optimizers, split_parameters, train_step
from polypbench.train.rundir import run_status
from polypbench.train.tasks import TASKS, Task

__all__ = [
    "GR_MODES",
    "Interrupted",
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
    "run_status",
    "save_config",
    "split_parameters",
    "train_step",
]
