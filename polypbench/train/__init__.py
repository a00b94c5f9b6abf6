"""Training: the gradient-routing step (``routing``)."""

from __future__ import annotations

from polypbench.train.routing import GR_MODES, build_optimizers, split_parameters, train_step

__all__ = ["GR_MODES", "build_optimizers", "split_parameters", "train_step"]
