"""Training: configuration (``config``), data loaders (``data``), the gradient-routing step (``routing``) and the
loop (``loop``)."""

from __future__ import annotations

from polypbench.train.config import TrainConfig, load_config, packaged_configs, resolve_config, save_config
from polypbench.train.loop import RunSummary, TrainingError, fit
from polypbench.train.routing import GR_MODES, build_optimizers, split_parameters, train_step

__all__ = [
    "GR_MODES",
    "RunSummary",
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
