"""Frame-level predictions of a model, in the prediction-file contract that ``score`` reads: ``polyp_id``,
``frame_index``, plus the task's columns (:data:`~polypbench.train.tasks.TASKS`: ``size_mm`` for regression, the
probabilities ``p0, p1, p2`` for triclass).

:func:`predict` loads a training run's model (:func:`~polypbench.inference.build.load_run`); :func:`predict_model`
predicts with a loaded one (the sandboxed child's way, after :func:`~polypbench.inference.build.load_weights`).
The frames come from the training data's evaluation loader (:func:`polypbench.train.data.eval_loader`), so a
model sees its crops as it saw them in validation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from polypbench.errors import ConfigError
from polypbench.inference.build import Model, load_run
from polypbench.inference.loop import run_inference
from polypbench.inference.spec import InferenceConfig
from polypbench.train.config import TrainConfig, replace_config
from polypbench.train.data import eval_loader
from polypbench.train.tasks import TASKS

log = logging.getLogger(__name__)

PathOrPaths = str | Path | Sequence[str | Path]


def _paths(value: PathOrPaths | None) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value]


def frames_config(cfg: InferenceConfig, prepared: Sequence[str], *, raw_roots: Sequence[str] = (),
                  fold: int | None = None, protocol: str = "public", device: str = "cpu",
                  num_workers: int = 0) -> TrainConfig:
    """The training config whose evaluation loader gives ``cfg``'s crops of the ``prepared`` folders: ``cfg``'s
    keys, the data's (``fold`` and ``protocol`` as :func:`polypbench.splits.select`) and where it runs; every other
    key keeps its default (none of them changes what inference reads)."""
    return replace_config(TrainConfig(), **cfg.to_dict(), prepared=list(prepared), raw_roots=list(raw_roots),
                          fold=fold, protocol=protocol, device=device, num_workers=num_workers)


def require_polyps(model: Model) -> None:
    """A one-line error unless ``model``'s task predicts polyps (the prediction-file contract)."""
    dataset = TASKS[model.config.task].dataset
    if dataset != "polyp":
        raise ConfigError(f"{model.source}: a {dataset} checkpoint; expected one trained on polyp manifests "
                          "(fit scores the CIFAR-100 test split itself: test_metrics.json)")


def predict_model(model: Model, prepared: PathOrPaths, split: str = "test", *, raw_root: PathOrPaths | None = None,
                  fold: int | None = None, protocol: str = "public", batch_size: int = 64, device: str = "cpu",
                  num_workers: int = 0) -> pd.DataFrame:
    """Frame-level predictions of a loaded ``model`` for ``split`` of the ``prepared`` folders (``raw_root``: one
    per folder, default the roots recorded at prepare time), on ``device``, decoded with the task's coding and the
    model's target stats; progress as :mod:`polypbench.progress` shows it."""
    dirs = _paths(prepared)
    train_cfg = frames_config(model.config, dirs, raw_roots=_paths(raw_root), fold=fold, protocol=protocol,
                              device=device, num_workers=num_workers)
    loader = eval_loader(train_cfg, split, batch_size)
    dev = torch.device(device)
    net = model.module.to(dev)
    if model.config.channels_last:
        net.to(memory_format=torch.channels_last)
    objective = TASKS[model.config.task].objective(train_cfg, model.stats)
    df = run_inference(net, loader, objective, dev, split, pixels=train_cfg.pixel_spec(),
                       channels_last=model.config.channels_last,
                       bf16=model.config.bf16, desc=f"predict {split}").predictions
    log.info("predicted %d frames of %s (%s)", len(df), split, ", ".join(dirs))
    return df


def predict(checkpoint: str | Path, manifest_dir: PathOrPaths, split: str = "test", *,
            raw_root: PathOrPaths | None = None, fold: int | None = None, protocol: str = "public",
            batch_size: int = 64, device: str = "cpu", num_workers: int = 0) -> pd.DataFrame:
    """Frame-level predictions of a training run's model (``checkpoint``: a ``best.pt`` or ``last.pt``, a
    ``model.safetensors`` beside its ``config.yaml``, or the run folder) for ``split`` of one or more prepared
    manifests (``fold`` and ``protocol`` as :func:`polypbench.splits.select`)."""
    model = load_run(checkpoint)
    require_polyps(model)
    return predict_model(model, manifest_dir, split, raw_root=raw_root, fold=fold, protocol=protocol,
                         batch_size=batch_size, device=device, num_workers=num_workers)
