"""Frame-level predictions from a training checkpoint, in the prediction-file contract that ``score`` reads:
``polyp_id``, ``frame_index``, plus the task's columns (:data:`~polypbench.train.tasks.TASKS`: ``size_mm`` for
regression, the probabilities ``p0, p1, p2`` for triclass)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from polypbench.errors import ConfigError
from polypbench.train.checkpoint import read as read_checkpoint
from polypbench.train.config import TrainConfig, from_dict
from polypbench.train.data import eval_loader
from polypbench.train.loop import build_model, run_inference
from polypbench.train.tasks import TASKS, TargetStats

log = logging.getLogger(__name__)

CHECKPOINT_KEYS = ("state_dict", "config", "model", "task", "size_offset_mm")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A ``best.pt`` written by :func:`polypbench.train.fit` (tensors and plain values only)."""
    ckpt = read_checkpoint(path, "a best.pt from polypbench train")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise ConfigError(f"{path}: checkpoint lacks {', '.join(missing)}; expected a best.pt from polypbench train")
    return ckpt


def predict(checkpoint: str | Path, manifest_dir: str | Path | Sequence[str | Path], split: str = "test", *,
            raw_root: str | Path | Sequence[str | Path] | None = None, fold: int | None = None,
            protocol: str = "public", batch_size: int = 64, device: str = "cpu",
            num_workers: int = 0) -> pd.DataFrame:
    """Frame-level predictions of ``checkpoint`` (a ``best.pt`` or ``last.pt``) for ``split`` of one or more
    prepared manifests (``fold`` and ``protocol`` as :func:`polypbench.splits.select`); progress as
    :mod:`polypbench.progress` shows it."""
    ckpt = load_checkpoint(checkpoint)
    dirs = [manifest_dir] if isinstance(manifest_dir, (str, Path)) else list(manifest_dir)
    roots = [] if raw_root is None else [raw_root] if isinstance(raw_root, (str, Path)) else list(raw_root)
    values = dict(ckpt["config"], prepared=[str(d) for d in dirs], raw_roots=[str(r) for r in roots], fold=fold,
                  protocol=protocol, device=device, num_workers=num_workers, compile=False, paper_amp="none")
    cfg = from_dict(values, str(checkpoint))
    if cfg.dataset != "polyp":
        raise ConfigError(f"{checkpoint}: a {cfg.dataset} checkpoint; expected one trained on polyp manifests "
                          "(fit scores the CIFAR-100 test split itself: test_metrics.json)")
    model = build_model(cfg)
    model.load_state_dict(ckpt["state_dict"])
    return predict_model(model, cfg, TargetStats.from_checkpoint(ckpt), split, batch_size=batch_size)


def predict_model(model: torch.nn.Module, cfg: TrainConfig, stats: TargetStats, split: str = "test", *,
                  batch_size: int = 64) -> pd.DataFrame:
    """Frame-level predictions of a loaded ``model`` for ``split`` of ``cfg``'s manifests, on ``cfg.device``,
    decoded with the task's coding and ``stats`` (what :func:`predict` does after reading a checkpoint)."""
    dev = torch.device(cfg.device)
    model.to(dev)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    objective = TASKS[cfg.task].objective(cfg, stats)
    df = run_inference(model, eval_loader(cfg, split, batch_size), cfg, objective, dev, split,
                       desc=f"predict {split}").predictions
    log.info("predicted %d frames of %s (%s)", len(df), split, ", ".join(cfg.prepared))
    return df
