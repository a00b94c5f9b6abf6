"""The training loop: ``fit(cfg, run_dir)`` trains with the gradient-routing step, validates every epoch
(validation loss plus :func:`polypbench.score` on the validation predictions) and keeps the best checkpoint.

Outputs in ``run_dir``: ``config.yaml`` (resolved), ``metrics.jsonl`` (one JSON line per epoch), ``best.pt``
(``state_dict``, ``config``, ``model``, ``task``, ``size_offset_mm``, ``epoch``, ``val_loss``; best by
validation loss). On CPU a run is deterministic for a given seed.
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
from torch.utils.data import DataLoader

from polypbench.errors import PolypbenchError
from polypbench.evaluate import metric_key, score
from polypbench.models import create_model, gate_parameters
from polypbench.train import distributed
from polypbench.train.config import TrainConfig, save_config
from polypbench.train.data import TrainData, build_data, model_input
from polypbench.train.device_augment import DeviceAugment
from polypbench.train.routing import build_optimizers, train_step

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


def to_outputs(out: torch.Tensor, task: str, size_offset_mm: float) -> torch.Tensor:
    """Model outputs -> size in mm (B,) for regression (the network predicts the offset from the train mean),
    or logits (B, 3) for triclass."""
    return out[:, 0].float() + size_offset_mm if task == "regression" else out.float()


@torch.no_grad()
def run_inference(model: nn.Module, loader: DataLoader[dict[str, Any]], cfg: TrainConfig, size_offset_mm: float,
                  device: torch.device) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """(prediction frame, outputs, targets) over ``loader`` in eval mode; outputs as :func:`to_outputs`.

    Polyp frames give ``polyp_id``, ``frame_index`` and ``size_mm`` or ``p0..p2`` (the prediction-file contract);
    CIFAR images give ``index``, ``label`` and ``pred``.
    """
    model.eval()
    streams = getattr(model, "streams", None)
    target_key = {"regression": "size_mm", "triclass": "size_class3", "classification": "label"}[cfg.task]
    outs, targets = [], []
    ids: list[Any] = []
    for batch in loader:
        x = model_input(batch, streams, device, non_blocking=True)
        if cfg.channels_last and isinstance(x, torch.Tensor):
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            outs.append(to_outputs(model(x), cfg.task, size_offset_mm).cpu())
        targets.append(batch[target_key])
        keys = zip(batch["polyp_id"], batch["frame_index"], strict=True) if "polyp_id" in batch else batch["index"]
        ids += list(keys)
    out = torch.cat(outs) if outs else torch.empty(0)
    target = torch.cat(targets) if targets else torch.empty(0)
    if cfg.task == "classification":
        df = pd.DataFrame({"index": ids, "label": target.numpy(), "pred": out.argmax(dim=1).numpy()})
        return df, out, target
    df = pd.DataFrame(ids, columns=["polyp_id", "frame_index"])
    if cfg.task == "regression":
        df["size_mm"] = out.clamp(min=0).numpy().astype("float64")
    else:
        probs = out.softmax(dim=1).numpy().astype("float64")
        for k in range(3):
            df[f"p{k}"] = probs[:, k]
    return df, out, target


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def loss_function(cfg: TrainConfig, size_offset_mm: float, class_weight: torch.Tensor | None = None) -> Any:
    """``loss(model_output, target)``: L1 / SmoothL1 in mm (regression) or cross-entropy (triclass, optionally
    class-weighted; CIFAR classification)."""
    if cfg.task != "regression":
        return lambda out, y: nn.functional.cross_entropy(out.float(), y, weight=class_weight)
    base = nn.functional.l1_loss if cfg.regression_loss == "l1" else nn.functional.smooth_l1_loss
    return lambda out, y: base(to_outputs(out, "regression", size_offset_mm), y)


def _eval_loss(cfg: TrainConfig, out: torch.Tensor, target: torch.Tensor, class_weight: torch.Tensor | None) -> float:
    """The training loss on evaluation outputs (sizes in mm, or logits), over every evaluated sample."""
    if len(out) == 0:
        return math.nan
    if cfg.task != "regression":
        weight = None if class_weight is None else class_weight.cpu()
        return float(nn.functional.cross_entropy(out, target, weight=weight))
    base = nn.functional.l1_loss if cfg.regression_loss == "l1" else nn.functional.smooth_l1_loss
    return float(base(out, target))


def _accuracy(out: torch.Tensor, target: torch.Tensor, k: int) -> float:
    top = out.topk(min(k, out.shape[1]), dim=1).indices
    return float((top == target[:, None]).any(dim=1).float().mean()) if len(target) else math.nan


def _metrics(cfg: TrainConfig, split: str, preds: pd.DataFrame, out: torch.Tensor,
             target: torch.Tensor) -> dict[str, float | None]:
    """Per-epoch metrics of ``split``: top-1/top-5 accuracy on CIFAR; on polyps :func:`polypbench.score`'s
    per-polyp triclass balanced accuracy and macro F1 (and MAE in mm for regression)."""
    prefix = "val" if split == "validation" else split
    if cfg.task == "classification":
        return {f"{prefix}_top1": _accuracy(out, target, 1), f"{prefix}_top5": _accuracy(out, target, 5)}
    result = score(preds, list(cfg.prepared), split=split, fold=cfg.fold, n_bootstrap=cfg.n_bootstrap,
                   seed=cfg.seed)
    names = [("triclass", "balanced_accuracy"), ("triclass", "macro_f1")]
    if cfg.task == "regression":
        names.append(("size", "mae_mm"))
    metrics = {f"{prefix}_polyp_{m}": result.stat(metric_key("polyp", t, "pooled", m)).value for t, m in names}
    return metrics


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
    model = build_model(cfg).to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    main_opt, gate_opt = build_optimizers(model, cfg.lr, cfg.gate_lr, gr_mode=cfg.gr_mode,
                                          weight_decay=cfg.weight_decay)
    net: nn.Module = torch.compile(model) if cfg.compile else model  # type: ignore[assignment]
    step_model = distributed.wrap(net, ctx, frozen=gate_parameters(model) if cfg.gr_mode == "gr" else ())
    streams = getattr(model, "streams", None)
    class_weight = None if data.class_weight is None else data.class_weight.to(device)
    offset = data.size_offset_mm
    loss_fn = loss_function(cfg, offset, class_weight)
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
            y = batch[data.target_key].to(device, non_blocking=True)
            stats = train_step(step_model, x, y, loss_fn, main_opt, gate_opt, gr_mode=cfg.gr_mode,
                               clip_main=cfg.clip_main, clip_gate=cfg.clip_gate, autocast_dtype=autocast_dtype,
                               channels_last=cfg.channels_last)
            if not math.isfinite(stats["loss"]):
                raise TrainingError(f"non-finite training loss at epoch {epoch} step {steps}; expected a lower lr")
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        if ctx.is_main:
            preds, out, target = run_inference(net, data.validation, cfg, offset, device)
            val_loss = _eval_loss(cfg, out, target, class_weight)
            row: dict[str, Any] = {"epoch": epoch, **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()},
                                   "val_loss": val_loss, **_metrics(cfg, "validation", preds, out, target)}
            row["seconds"] = time.perf_counter() - t0
            if val_loss < best_loss or best_epoch < 0:
                best_loss, best_epoch = val_loss, epoch
                torch.save({"state_dict": model.state_dict(), "config": cfg.to_dict(), "model": cfg.model,
                            "task": cfg.task, "size_offset_mm": offset, "epoch": epoch, "val_loss": val_loss},
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
        test = _score_test(cfg, run_dir, data, device)
    return RunSummary(run_dir, run_dir / "best.pt", best_epoch, best_loss, time.perf_counter() - start, history,
                      test, model)


def _score_test(cfg: TrainConfig, run_dir: Path, data: TrainData, device: torch.device) -> dict[str, float | None]:
    """Score the public test split once, with the best checkpoint; written to ``test_metrics.json``."""
    best = build_model(cfg).to(device)
    best.load_state_dict(torch.load(run_dir / "best.pt", map_location=device, weights_only=True)["state_dict"])
    if cfg.channels_last:
        best.to(memory_format=torch.channels_last)
    assert data.test is not None
    preds, out, target = run_inference(best, data.test, cfg, data.size_offset_mm, device)
    metrics = {"test_loss": _eval_loss(cfg, out, target, None), **_metrics(cfg, "test", preds, out, target)}
    (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
