"""The inference loop: a model over a loader in eval mode, the one loop behind ``predict``, the leaderboard's model
runs and training's validation (:func:`polypbench.train.fit` calls it every epoch)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from polypbench.load.spec import PixelSpec
from polypbench.progress import Progress
from polypbench.train.data import Loader, model_input
from polypbench.train.tasks import Evaluation, Objective


@torch.no_grad()
def run_inference(model: nn.Module, loader: Loader, objective: Objective, device: torch.device,
                  split: str = "validation", *, pixels: PixelSpec, channels_last: bool = False,
                  bf16: bool = False, desc: str | None = None, summary: bool = True) -> Evaluation:
    """The model over ``loader`` in eval mode: raw and decoded outputs, targets, and the prediction frame (the
    batches' id columns, then the task's columns: the prediction-file contract for polyps). ``pixels``: the
    pipeline the loader's batches were built for (its streams and normalisation). ``channels_last`` and
    ``bf16`` (autocast) as the config's keys of those names. ``desc``: show progress under that name
    (:class:`~polypbench.progress.Progress`; ``summary``: its closing log line)."""
    model.eval()
    raws, targets = [], []
    ids: dict[str, list[Any]] = {}
    with Progress(len(loader), desc or "", unit="batch", enabled=desc is not None, summary=summary) as bar:
        for batch in loader:
            x = model_input(batch, pixels, device, non_blocking=True)
            if channels_last and isinstance(x, torch.Tensor):
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                raws.append(model(x).float().cpu())
            targets.append(batch.target(objective.task.target))
            for name, values in batch.ids().items():
                ids.setdefault(name, []).extend(values)
            bar.update()
    raw = torch.cat(raws) if raws else torch.empty(0, objective.task.num_outputs)
    target = torch.cat(targets) if targets else torch.empty(0)
    decoded = objective.decode(raw)
    frame = pd.DataFrame({**ids, **objective.columns(decoded, target)})
    return Evaluation(split, frame, raw, decoded, target)
