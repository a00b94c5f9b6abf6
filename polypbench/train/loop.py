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
from polypbench.evaluate import score
from polypbench.models import create_model
from polypbench.train.config import TrainConfig, save_config
from polypbench.train.data import eval_loader, model_input, train_loader
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

    def describe(self) -> str:
        last = self.epochs[-1] if self.epochs else {}
        keys = [k for k in last if k.startswith("val_")]
        metrics = ", ".join(f"{k} {last[k]:.3f}" for k in keys if isinstance(last[k], float))
        return (f"trained {len(self.epochs)} epochs in {self.seconds:.1f} s; best epoch {self.best_epoch} "
                f"(val loss {self.best_val_loss:.4f}) -> {self.checkpoint}\nlast epoch: {metrics}")


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
    """(prediction frame, outputs, targets) over ``loader`` in eval mode; outputs as :func:`to_outputs`."""
    model.eval()
    streams = getattr(model, "streams", None)
    outs, targets, ids = [], [], []
    for batch in loader:
        x = model_input(batch, streams, device, non_blocking=True)
        if cfg.channels_last and isinstance(x, torch.Tensor):
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            outs.append(to_outputs(model(x), cfg.task, size_offset_mm).cpu())
        targets.append(batch["size_mm"] if cfg.task == "regression" else batch["size_class3"])
        ids += list(zip(batch["polyp_id"], batch["frame_index"]))
    out = torch.cat(outs) if outs else torch.empty(0)
    target = torch.cat(targets) if targets else torch.empty(0)
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
    class-weighted)."""
    if cfg.task == "triclass":
        return lambda out, y: nn.functional.cross_entropy(out.float(), y, weight=class_weight)
    base = nn.functional.l1_loss if cfg.regression_loss == "l1" else nn.functional.smooth_l1_loss
    return lambda out, y: base(to_outputs(out, "regression", size_offset_mm), y)


def _val_loss(cfg: TrainConfig, out: torch.Tensor, target: torch.Tensor, class_weight: torch.Tensor | None) -> float:
    """The training loss on validation outputs (sizes in mm, or logits), over every validation frame."""
    if len(out) == 0:
        return math.nan
    if cfg.task == "triclass":
        return float(nn.functional.cross_entropy(out, target, weight=None if class_weight is None else class_weight.cpu()))
    base = nn.functional.l1_loss if cfg.regression_loss == "l1" else nn.functional.smooth_l1_loss
    return float(base(out, target))


def _class_weight(loader: Any) -> torch.Tensor:
    """Inverse frequency of each triclass label among the training boxes (mean 1; absent classes get 0)."""
    counts = np.zeros(3)
    for part in loader.dataset.datasets:
        counts += np.bincount(part.rows["size_class3"].astype(int), minlength=3)[:3]
    inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    return torch.tensor(inv * (counts > 0).sum() / inv.sum(), dtype=torch.float32)


def _train_mean_size(loader: Any) -> float:
    sizes = [float(part.rows["size_mm"].mean()) * len(part.rows) for part in loader.dataset.datasets]
    return sum(sizes) / max(1, len(loader.dataset))


def _val_metrics(cfg: TrainConfig, preds: Any) -> dict[str, float | None]:
    result = score(preds, list(cfg.prepared), split="validation", fold=cfg.fold, n_bootstrap=cfg.n_bootstrap,
                   seed=cfg.seed)
    names = [("triclass", "balanced_accuracy"), ("triclass", "macro_f1")]
    out = {f"val_polyp_{m}": result.stat("polyp", t, m).value for t, m in names}
    if cfg.task == "regression":
        size = result.views["polyp"]["size"]["datasets"]["pooled"]
        out["val_polyp_mae_mm"] = size["mae_mm"].value
    return out


def fit(cfg: TrainConfig, run_dir: str | Path) -> RunSummary:
    """Train ``cfg`` and write ``config.yaml``, ``metrics.jsonl`` and ``best.pt`` into ``run_dir``."""
    start = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir)
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("config key 'device' is 'cuda' but no CUDA device is available; expected device=cpu")

    loader, sampler = train_loader(cfg)
    val_loader = eval_loader(cfg, "validation")
    offset = _train_mean_size(loader) if cfg.task == "regression" else 0.0
    model = build_model(cfg).to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    main_opt, gate_opt = build_optimizers(model, cfg.lr, cfg.gate_lr, gr_mode=cfg.gr_mode,
                                          weight_decay=cfg.weight_decay)
    step_model: nn.Module = torch.compile(model) if cfg.compile else model  # type: ignore[assignment]
    streams = getattr(model, "streams", None)
    class_weight = _class_weight(loader).to(device) if cfg.task == "triclass" and cfg.balance_classes else None
    loss_fn = loss_function(cfg, offset, class_weight)
    autocast_dtype = torch.bfloat16 if cfg.bf16 else None
    target_key = "size_mm" if cfg.task == "regression" else "size_class3"

    metrics_path = run_dir / "metrics.jsonl"
    metrics_path.write_text("")
    best_loss, best_epoch, history = math.inf, -1, []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        model.train()
        sums: dict[str, float] = {}
        steps = 0
        for batch in loader:
            x = model_input(batch, streams, device, non_blocking=True)
            y = batch[target_key].to(device, non_blocking=True)
            stats = train_step(step_model, x, y, loss_fn, main_opt, gate_opt, gr_mode=cfg.gr_mode,
                               clip_main=cfg.clip_main, clip_gate=cfg.clip_gate, autocast_dtype=autocast_dtype,
                               channels_last=cfg.channels_last)
            if not math.isfinite(stats["loss"]):
                raise TrainingError(f"non-finite training loss at epoch {epoch} step {steps}; expected a lower lr")
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        preds, out, target = run_inference(step_model, val_loader, cfg, offset, device)
        val_loss = _val_loss(cfg, out, target, class_weight)
        row: dict[str, Any] = {"epoch": epoch, **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()},
                               "val_loss": val_loss, **_val_metrics(cfg, preds)}
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
    return RunSummary(run_dir, run_dir / "best.pt", best_epoch, best_loss, time.perf_counter() - start, history)
