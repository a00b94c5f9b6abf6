"""A tiny CNN, plain (``tiny``) and gated (``tiny-hag``), for smoke tests and CI: not a reference model.

Each stream's encoder is three stages of ``conv3x3 (stride 2) -> BatchNorm -> ReLU -> conv3x3 -> BatchNorm ->
ReLU`` (16, 32, 64 channels by default) with a gate slot after each stage, then global average pooling. The
gated variant gates the stages, the (concatenated) embedding and the shared :class:`Head`'s hidden layer, as
``resnet18-hag`` does, so it exercises gradient routing exactly like the reference models at a small fraction of
their cost: the training harness's tests and the demo use it where the point is the harness, not the network.

``streams=None`` (default) takes a tensor (B, 3, H, W); ``streams=("rgb", "masked")`` (any of
:data:`polypbench.load.streams.STREAMS`) gives one encoder per stream and takes ``{stream: tensor}``,
as ``multistream``. ``weights=`` loads a state dict of one encoder's ``backbone`` (e.g.
``model.encoders["rgb"].backbone.state_dict()`` of an earlier run) into every stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polypbench.load.streams import STREAMS
from polypbench.models.gates import gate_or_identity
from polypbench.models.heads import Head
from polypbench.models.multistream import check_streams
from polypbench.models.registry import register_model
from polypbench.models.weights import load_backbone

WIDTHS = (16, 32, 64)


def _stage(in_chans: int, out_chans: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out_chans),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False), nn.BatchNorm2d(out_chans), nn.ReLU(inplace=True),
    )


class TinyEncoder(nn.Module):
    """``backbone`` (one stage per width) to a pooled (B, widths[-1]) embedding, a gate slot after each stage."""

    def __init__(self, in_chans: int = 3, widths: Sequence[int] = WIDTHS, gated: bool = False,
                 weights: str | Path | None = None) -> None:
        super().__init__()
        chans = [in_chans, *widths]
        self.backbone = nn.Sequential(*(_stage(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True)))
        for m in self.backbone.modules():
            if isinstance(m, nn.Conv2d):  # torchvision's ResNet init: keeps the activations' scale through stages
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if weights is not None:
            load_backbone(self.backbone, weights, expected="the backbone state dict of a tiny model")
        self.gates = nn.ModuleList(gate_or_identity(gated, w, dim=1) for w in widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage, gate in zip(self.backbone, self.gates, strict=True):
            x = gate(stage(x))
        return x.mean(dim=(2, 3))


class TinyModel(nn.Module):
    """One :class:`TinyEncoder` per stream -> concatenation -> embedding gate slot -> :class:`Head`."""

    def __init__(self, num_outputs: int, *, gated: bool = False, streams: Sequence[str] | None = None,
                 widths: Sequence[int] = WIDTHS, weights: str | Path | None = None, head_hidden: int = 64,
                 dropout: float = 0.35) -> None:
        super().__init__()
        names = check_streams(streams)
        self.streams = None if streams is None else names
        """``None``: forward takes a tensor; otherwise the stream names it takes as a dict."""
        self.encoders = nn.ModuleDict({s: TinyEncoder(STREAMS[s].channels, widths, gated, weights) for s in names})
        dim = widths[-1] * len(names)
        self.embed_gate = gate_or_identity(gated, dim)
        self.head = Head(dim, num_outputs, head_hidden, dropout, gated)

    def forward_features(self, x: Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """The (gated) pooled embedding, (B, widths[-1] * streams)."""
        names = tuple(self.encoders)
        if isinstance(x, torch.Tensor) and len(names) == 1:
            x = {names[0]: x}
        if not isinstance(x, Mapping) or set(x) != set(names):
            got = sorted(x) if isinstance(x, Mapping) else type(x).__name__
            raise ValueError(f"tiny model input must be a dict with keys {list(names)}, got {got}")
        return self.embed_gate(torch.cat([self.encoders[s](x[s]) for s in names], dim=1))

    def forward(self, x: Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model("tiny", device="cpu")
def tiny(num_outputs: int, **kw: Any) -> TinyModel:
    """A tiny CNN (three conv stages) with the shared head; no gates. For smoke tests and CI."""
    return TinyModel(num_outputs, gated=False, **kw)


@register_model("tiny-hag", device="cpu")
def tiny_hag(num_outputs: int, **kw: Any) -> TinyModel:
    """The tiny CNN with gates after each stage, on the embedding and on the head's hidden layer (5 gates)."""
    return TinyModel(num_outputs, gated=True, **kw)
