"""Small builders shared by the model and routing tests: 64x64 inputs, random init, no downloads."""

from __future__ import annotations

import torch
from torch import nn

from polypbench.models import create_model

RES = 64


def build(name: str, num_outputs: int = 1, seed: int = 0, **kw: object) -> nn.Module:
    """``create_model`` with a fixed seed; ViTs at 64x64."""
    torch.manual_seed(seed)
    if name.startswith("vit"):
        kw.setdefault("img_size", RES)
    return create_model(name, num_outputs, **kw)


def inputs(model_name: str, batch: int = 2, seed: int = 1, streams: tuple[str, ...] = ("rgb", "masked")):
    """A batch for ``model_name``: a tensor, or a stream dict for the multi-stream models."""
    g = torch.Generator().manual_seed(seed)
    if model_name.startswith("multistream"):
        return {s: torch.randn(batch, 1 if s == "depth" else 3, RES, RES, generator=g) for s in streams}
    return torch.randn(batch, 3, RES, RES, generator=g)
