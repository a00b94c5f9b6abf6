"""A model ready to predict, from a training run or from a submitted model.

- :func:`load_run`: a ``best.pt`` or ``last.pt`` written by ``polypbench train`` (its ``config`` and
  ``size_offset_mm`` inside), or a ``model.safetensors`` with the run's ``config.yaml`` beside it (what
  ``polypbench submit --model`` uploads), or a run folder holding either (``best.pt`` first).
- :func:`load_weights`: an :class:`~polypbench.inference.spec.InferenceConfig` and safetensors weights (a submitted
  model; the sandboxed child's way in): built, the weights loaded strictly, the size offset read from their
  metadata.

Models are built in one place, :func:`build_model` (training builds its model with it too). Weights are tensors
and plain values only: ``torch.load(weights_only=True)`` or safetensors, never a pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polypbench.errors import ConfigError, PolypbenchError
from polypbench.inference.spec import InferenceConfig, ModelError, size_offset
from polypbench.models import create_model
from polypbench.train.checkpoint import BEST, LAST
from polypbench.train.checkpoint import read as read_checkpoint
from polypbench.train.config import read_values
from polypbench.train.tasks import TargetStats, get_task

WEIGHTS_FILE = "model.safetensors"
"""A run folder's weights as safetensors (the config is the folder's ``config.yaml``)."""
CONFIG_FILE = "config.yaml"
CHECKPOINT_KEYS = ("state_dict", "config", "model", "task", "size_offset_mm")
"""What a checkpoint must hold to predict (``best.pt`` and ``last.pt`` both do)."""
RUN_EXPECTED = f"{BEST} or {LAST} from polypbench train, or {WEIGHTS_FILE} beside its {CONFIG_FILE}"


@dataclass
class Model:
    """A model with its weights, ready to predict: the ``module``, its :class:`InferenceConfig`, the
    :class:`~polypbench.train.tasks.TargetStats` its outputs decode with, and where it came from (``source``)."""

    module: nn.Module
    config: InferenceConfig
    stats: TargetStats
    source: str


def build_model(cfg: InferenceConfig) -> nn.Module:
    """The configured architecture, randomly initialised (unless ``model_kwargs`` names local backbone weights),
    with the task's number of outputs."""
    return create_model(cfg.model, get_task(cfg.task).num_outputs, **cfg.model_kwargs)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A ``best.pt`` or ``last.pt`` written by :func:`polypbench.train.fit` (tensors and plain values only)."""
    ckpt = read_checkpoint(path, f"a {BEST} from polypbench train")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise ConfigError(f"{path}: checkpoint lacks {', '.join(missing)}; expected a {BEST} from polypbench train")
    return ckpt


def load_run(path: str | Path) -> Model:
    """The model of a training run: ``path`` is a checkpoint (``.pt``), a ``model.safetensors`` (with
    ``config.yaml`` beside it) or a run folder holding ``best.pt`` or ``model.safetensors``."""
    path = Path(path)
    if path.is_dir():
        found = next((path / name for name in (BEST, WEIGHTS_FILE, LAST) if (path / name).is_file()), None)
        if found is None:
            raise ConfigError(f"{path}: no {BEST}, {WEIGHTS_FILE} or {LAST}; expected a run folder of "
                              "polypbench train")
        path = found
    if path.suffix == ".safetensors":
        config_path = path.parent / CONFIG_FILE
        if not config_path.is_file():
            raise ConfigError(f"{path}: no {CONFIG_FILE} beside it; expected {RUN_EXPECTED}")
        return load_weights(InferenceConfig.of_training(read_values(config_path), str(config_path)), path)
    ckpt = load_checkpoint(path)
    cfg = InferenceConfig.of_training(ckpt["config"], str(path))
    model = build_model(cfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: its weights do not fit its config's model {cfg.model!r} "
                          f"({' '.join(str(exc).split())[:200]}); expected {RUN_EXPECTED}") from None
    return Model(model, cfg, TargetStats.from_checkpoint(ckpt), str(path))


def _mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str | None:
    """What keeps ``state`` from loading strictly into a model whose state dict is ``expected``, or None."""
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    parts = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
             for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if keys]
    return "; ".join(parts) or None


def load_weights(cfg: InferenceConfig, weights: str | Path) -> Model:
    """``cfg``'s model with the safetensors ``weights`` loaded strictly (every tensor present, of its shape) and the
    size offset of their metadata (:func:`~polypbench.inference.spec.size_offset`). A config that cannot be built
    or weights that do not fit are a :class:`~polypbench.inference.spec.ModelError`."""
    from safetensors import safe_open

    try:
        task = get_task(cfg.task)
        model = build_model(cfg)
    except (PolypbenchError, TypeError, ValueError) as exc:
        raise ModelError(f"config: {' '.join(str(exc).split())}") from None
    with safe_open(str(weights), framework="pt") as fh:  # the parser the server checked the upload with
        metadata = fh.metadata() or {}
        state = {key: fh.get_tensor(key) for key in fh.keys()}
    problem = _mismatch(model.state_dict(), state)
    if problem is not None:
        raise ModelError(f"weights do not fit architecture {cfg.model!r}: {problem}")
    offset = size_offset(metadata, cfg.task, task.uses_size_offset)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return Model(model, cfg, TargetStats(size_offset_mm=offset or 0.0), str(weights))
