"""The training loop: ``fit(cfg, run_dir)`` trains with the gradient-routing step, validates every epoch
(validation loss plus :func:`polypbench.score` on the validation predictions) and keeps the best checkpoint.

Everything that depends on the task (loss, decoding, prediction columns, metrics) comes from its entry in
:data:`~polypbench.train.tasks.TASKS`. Outputs in ``run_dir``: ``config.yaml`` (resolved), ``metrics.jsonl`` (one
JSON line per epoch), ``best.pt`` (``state_dict``, ``config``, ``model``, ``task``, the task's
:class:`~polypbench.train.tasks.TargetStats` fields ``size_offset_mm`` and ``class_counts``, ``epoch``,
``val_loss``; best by validation loss). On CPU a run is deterministic for a given seed.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from polypbench.errors import PolypbenchError
from polypbench.models import create_model, gate_parameters
from polypbench.train import distributed
from polypbench.train.config import TrainConfig, save_config
from polypbench.train.data import Loader, build_data, model_input
from polypbench.train.device_augment import DeviceAugment
from polypbench.train.routing import build_optimizers, train_step
from polypbench.train.tasks import TASKS, Evaluation, Objective

log = logging.getLogger(__name__)


class TrainingError(PolypbenchError):
    """Training cannot go on (e.g. a non-finite loss)."""


@dataclass
class RunSummary:
    """What :func:`fit` returns: where the outputs are and how the best epoch did."""

    run_dir: Path
    checkpoint: Path
    best_epoch: int
    best_val_loss: float
    seconds: float
    epochs: list[dict[str, Any]] = field(default_factory=list)
    test: dict[str, float | None] = field(default_factory=dict)
    """Test-split metrics of the best checkpoint, where fit scores the test split itself (CIFAR-100)."""
    model: nn.Module | None = field(default=None, repr=False)
    """The model as it ended training (last epoch, not the best checkpoint)."""

    def describe(self) -> str:
        last = self.epochs[-1] if self.epochs else {}
        keys = [k for k in last if k.startswith("val_")]
        metrics = ", ".join(f"{k} {last[k]:.3f}" for k in keys if isinstance(last[k], float))
        text = (f"trained {len(self.epochs)} epochs in {self.seconds:.1f} s; best epoch {self.best_epoch} "
                f"(val loss {self.best_val_loss:.4f}) -> {self.checkpoint}\nlast epoch: {metrics}")
        if self.test:
            text += "\ntest (best checkpoint): " + ", ".join(f"{k} {v:.4f}" for k, v in self.test.items()
                                                             if isinstance(v, float))
        return text


def build_model(cfg: TrainConfig) -> nn.Module:
    """The configured model (random init unless ``model_kwargs`` names local weights)."""
    return create_model(cfg.model, cfg.num_outputs, **cfg.model_kwargs)


@torch.no_grad()
def run_inference(model: nn.Module, loader: Loader, cfg: TrainConfig, objective: Objective,
                  device: torch.device, split: str = "validation") -> Evaluation:
    """The model over ``loader`` in eval mode: raw and decoded outputs, targets, and the prediction frame (the
    batches' id columns, then the task's columns: the prediction-file contract for polyps)."""
    model.eval()
    streams = getattr(model, "streams", None)
    raws, targets = [], []
    ids: dict[str, list[Any]] = {}
    for batch in loader:
        x = model_input(batch, streams, device, non_blocking=True)
        if cfg.channels_last and isinstance(x, torch.Tensor):
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            raws.append(model(x).float().cpu())
        targets.append(batch.target(objective.task.target))
        for name, values in batch.ids().items():
            ids.setdefault(name, []).extend(values)
    raw = torch.cat(raws) if raws else torch.empty(0, objective.task.num_outputs)
    target = torch.cat(targets) if targets else torch.empty(0)
    decoded = objective.decode(raw)
    frame = pd.DataFrame({**ids, **objective.columns(decoded, target)})
    return Evaluation(split, frame, raw, decoded, target)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def evaluate_split(cfg: TrainConfig, objective: Objective, ev: Evaluation) -> tuple[float, dict[str, float | None]]:
    """The training loss over one evaluated split, and that loss with the task's metrics keyed ``val_*`` (the
    validation split) or ``<split>_*``."""
    prefix = "val" if ev.split == "validation" else ev.split
    loss = float(objective.loss(ev.raw, ev.target)) if len(ev.target) else math.nan
    return loss, {f"{prefix}_loss": loss, **{f"{prefix}_{k}": v for k, v in objective.task.metrics(cfg, ev).items()}}


def fit(cfg: TrainConfig, run_dir: str | Path) -> RunSummary:
    """Train ``cfg`` and write ``config.yaml``, ``metrics.jsonl`` and ``best.pt`` into ``run_dir``.

    Launched by torchrun (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel; rank 0 validates and writes
    the files, and every rank returns the same weights (checked at the end).
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("config key 'device' is 'cuda' but no CUDA device is available; expected device=cpu")
    ctx = distributed.setup(cfg.device)
    try:
        return _fit(cfg, run_dir, ctx, start)
    finally:
        distributed.teardown(ctx)


def _fit(cfg: TrainConfig, run_dir: Path, ctx: distributed.DistContext, start: float) -> RunSummary:
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir)
    seed_everything(cfg.seed)
    device = ctx.device
    data = build_data(cfg, ctx.rank, ctx.world_size)
    task = TASKS[cfg.task]
    target_stats = task.fit_stats(data.train_targets)
    objective = task.objective(cfg, target_stats)
    model = build_model(cfg).to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    main_opt, gate_opt = build_optimizers(model, cfg.lr, cfg.gate_lr, gr_mode=cfg.gr_mode,
                                          weight_decay=cfg.weight_decay)
    net: nn.Module = torch.compile(model) if cfg.compile else model  # type: ignore[assignment]
    step_model = distributed.wrap(net, ctx, frozen=gate_parameters(model) if cfg.gr_mode == "gr" else ())
    streams = getattr(model, "streams", None)
    autocast_dtype = torch.bfloat16 if cfg.bf16 else None
    augmenter = DeviceAugment(cfg.img_size, cfg.seed) if cfg.augment and cfg.device_augment else None

    metrics_path = run_dir / "metrics.jsonl"
    if ctx.is_main:
        metrics_path.write_text("")
    best_loss, best_epoch, history = math.inf, -1, []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        data.sampler.set_epoch(epoch)
        model.train()
        sums: dict[str, float] = {}
        steps = 0
        for batch in data.train:
            x = model_input(batch, streams, device, non_blocking=True, augment=augmenter)
            y = batch.target(task.target).to(device, non_blocking=True)
            stats = train_step(step_model, x, y, objective.loss, main_opt, gate_opt, gr_mode=cfg.gr_mode,
                               gate_loss_fn=objective.gate_loss, clip_main=cfg.clip_main, clip_gate=cfg.clip_gate,
                               autocast_dtype=autocast_dtype, channels_last=cfg.channels_last)
            if not math.isfinite(stats["loss"]):
                raise TrainingError(f"non-finite training loss at epoch {epoch} step {steps}; expected a lower lr")
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        if ctx.is_main:
            val_loss, validation = evaluate_split(cfg, objective,
                                                  run_inference(net, data.validation, cfg, objective, device))
            row: dict[str, Any] = {"epoch": epoch, **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()},
                                   **validation}
            row["seconds"] = time.perf_counter() - t0
            if val_loss < best_loss or best_epoch < 0:
                best_loss, best_epoch = val_loss, epoch
                torch.save({"state_dict": model.state_dict(), "config": cfg.to_dict(), "model": cfg.model,
                            "task": cfg.task, **target_stats.to_checkpoint(), "epoch": epoch, "val_loss": val_loss},
                           run_dir / "best.pt")
            row["best"] = best_epoch == epoch
            history.append(row)
            with metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            log.info("epoch %d: %s", epoch, ", ".join(f"{k} {v:.4g}" for k, v in row.items()
                                                        if isinstance(v, float)))
        distributed.barrier(ctx)
    digests = distributed.replica_digests(model, ctx)
    if len(set(digests)) > 1:
        raise TrainingError(f"DDP replicas diverged: rank weight digests differ ({', '.join(d[:8] for d in digests)})")
    test: dict[str, float | None] = {}
    if ctx.is_main and data.test is not None:
        test = _score_test(cfg, run_dir, data.test, objective, device)
    return RunSummary(run_dir, run_dir / "best.pt", best_epoch, best_loss, time.perf_counter() - start, history,
                      test, model)


def _score_test(cfg: TrainConfig, run_dir: Path, loader: Loader, objective: Objective,
                device: torch.device) -> dict[str, float | None]:
    """Score the public test split once, with the best checkpoint; written to ``test_metrics.json``."""
    best = build_model(cfg).to(device)
    best.load_state_dict(torch.load(run_dir / "best.pt", map_location=device, weights_only=True)["state_dict"])
    if cfg.channels_last:
        best.to(memory_format=torch.channels_last)
    _, metrics = evaluate_split(cfg, objective, run_inference(best, loader, cfg, objective, device, split="test"))
    (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
