"""Multi-stream ResNet-18: one encoder per input stream, embeddings concatenated, one head.

Streams (``streams=`` keyword, default :data:`MULTISTREAM_INPUT`'s ``("rgb", "masked")``; any entry of
:data:`polypbench.load.streams.STREAMS`, whose ``channels`` each encoder takes):
- ``rgb``: the crop around the polyp box, (B, 3, H, W);
- ``masked``: the RGB frame multiplied by the box mask (the reference code's LOC stream), (B, 3, H, W);
- ``depth``: a precomputed depth map, (B, 1, H, W), for users who have one (nothing here computes depth).

``forward`` takes a dict ``{stream: tensor}`` with exactly the model's streams, or a plain tensor when the model
has a single stream. ``weights=`` loads the same torchvision ResNet-18 file into every stream (the depth stem gets
the RGB stem summed over channels). The gated variant has four stage gates per stream, one gate on the
concatenated embedding and one on the head's hidden layer (4 * streams + 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polypbench.errors import ConfigError, choice_error
from polypbench.load.streams import STREAMS
from polypbench.models.gates import gate_or_identity
from polypbench.models.heads import Head
from polypbench.models.registry import REFERENCE_INPUT, register_model
from polypbench.models.resnet import EMBED_DIM, RESNET18_IMAGENET, ResNetEncoder

DEFAULT_STREAMS = ("rgb", "masked")
MULTISTREAM_INPUT = REFERENCE_INPUT.replace(streams=DEFAULT_STREAMS)
"""The multistream models' input defaults: the reference input, as an ``rgb`` and a ``masked`` stream."""


def check_streams(streams: Sequence[str] | None, default: tuple[str, ...] = ("rgb",)) -> tuple[str, ...]:
    """``streams`` (None: ``default``) as a tuple of distinct :data:`~polypbench.load.streams.STREAMS` names, or a
    one-line error."""
    names = default if streams is None else tuple(streams)
    for s in names:
        if s not in STREAMS:
            raise choice_error("stream", s, STREAMS)
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"streams must be non-empty and distinct, got {names!r}")
    return names


class MultiStreamModel(nn.Module):
    """One :class:`ResNetEncoder` per stream -> concatenation -> embedding gate slot -> :class:`Head`."""

    def __init__(self, num_outputs: int, *, streams: Sequence[str] | None = None, gated: bool = False,
                 weights: str | Path | None = None, head_hidden: int = 256, dropout: float = 0.35) -> None:
        super().__init__()
        self.streams = check_streams(streams, DEFAULT_STREAMS)
        self.encoders = nn.ModuleDict({s: ResNetEncoder(STREAMS[s].channels, gated, weights) for s in self.streams})
        dim = EMBED_DIM * len(self.streams)
        self.embed_gate = gate_or_identity(gated, dim)
        self.head = Head(dim, num_outputs, head_hidden, dropout, gated)

    def forward_features(self, x: Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """The (gated) concatenated embedding, (B, 512 * len(streams)), in ``self.streams`` order.

        ``x`` is ``{stream: tensor}``; a single-stream model also takes the tensor itself.
        """
        if isinstance(x, torch.Tensor) and len(self.streams) == 1:
            x = {self.streams[0]: x}
        if not isinstance(x, Mapping) or set(x) != set(self.streams):
            got = sorted(x) if isinstance(x, Mapping) else type(x).__name__
            raise ValueError(f"multistream input must be a dict with keys {list(self.streams)}, got {got}")
        return self.embed_gate(torch.cat([self.encoders[s](x[s]) for s in self.streams], dim=1))

    def forward(self, x: Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model("multistream", MULTISTREAM_INPUT, RESNET18_IMAGENET)
def multistream_plain(num_outputs: int, **kw: Any) -> MultiStreamModel:
    """One ResNet-18 per stream, fused head; no gates."""
    return MultiStreamModel(num_outputs, gated=False, **kw)


@register_model("multistream-hag", MULTISTREAM_INPUT, RESNET18_IMAGENET)
def multistream_hag(num_outputs: int, **kw: Any) -> MultiStreamModel:
    """Multi-stream ResNet-18 with gates after every stage of every stream, on the fused embedding and the head."""
    return MultiStreamModel(num_outputs, gated=True, **kw)
