"""Training: configuration (``config``), the task table (``tasks``), the typed batch (``batch``), data loaders
(``data``), the gradient-routing step (``routing``), the learning-rate schedules (``schedule``), the loop
(``loop``), its checkpoint and training state (``checkpoint``), the run folder (``rundir``) and what a run records
about its code and data (``provenance``). Inference (``predict``, validation's loop) is :mod:`polypbench.inference`.

The names below are imported on first use: ``import polypbench.train.config`` loads the config and the task
table, not the loop, and no module here imports this package (each imports its siblings directly)."""

from __future__ import annotations

from polypbench.lazy import lazy_exports

_LAZY = {
    "GR_MODES": "polypbench.train.routing",
    "Interrupted": "polypbench.train.loop",
    "RunSummary": "polypbench.train.loop",
    "TASKS": "polypbench.train.tasks",
    "Task": "polypbench.train.tasks",
    "TrainConfig": "polypbench.train.config",
    "TrainingError": "polypbench.train.loop",
    "build_optimizers": "polypbench.train.routing",
    "fit": "polypbench.train.loop",
    "load_config": "polypbench.train.config",
    "packaged_configs": "polypbench.train.config",
    "replace_config": "polypbench.train.config",
    "resolve_config": "polypbench.train.config",
    "run_status": "polypbench.train.rundir",
    "save_config": "polypbench.train.config",
    "split_parameters": "polypbench.train.routing",
    "train_step": "polypbench.train.routing",
}
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
