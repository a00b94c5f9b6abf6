"""ResNet-18 size regressor/classifier, plain (``resnet18``) and gated (``resnet18-hag``).

The backbone is torchvision's ``resnet18(weights=None)``, used as is: the encoder calls its stem and stages and
puts a gate slot after each of layer1..layer4 (64/128/256/512 channels, ``dim=1``). The gated model has six
gates, as in the reference code: four stage gates, one on the pooled 512-d embedding, one on the head's hidden layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import resnet18

from polypbench.load.streams import single_stream
from polypbench.models.gates import gate_or_identity
from polypbench.models.heads import Head
from polypbench.models.registry import register_model
from polypbench.models.weights import CachedWeights, load_backbone

STAGES = ("layer1", "layer2", "layer3", "layer4")
RESNET18_IMAGENET = CachedWeights(hub_file="resnet18-f37072fd.pth",
                                  url="https://download.pytorch.org/models/resnet18-f37072fd.pth")
"""torchvision's ``ResNet18_Weights.IMAGENET1K_V1`` (what the seed's ``resnet18(pretrained=True)`` loads), in the
torch hub cache under torchvision's file name."""
EMBED_DIM = 512


def _stem_for(in_chans: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # torchvision's conv init
    return conv


def _sum_rgb_stem(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Adapt an RGB checkpoint to a 1-channel stem: sum conv1 over its input channels (a gray image replicated
    to RGB would give the same response)."""
    w = state.get("conv1.weight")
    if w is not None and w.ndim == 4 and w.shape[1] == 3:
        state = {**state, "conv1.weight": w.sum(dim=1, keepdim=True)}
    return state


class ResNetEncoder(nn.Module):
    """torchvision ResNet-18 to a pooled (B, 512) embedding, with a gate slot after each stage.

    ``in_chans=1`` replaces the stem conv (depth maps); an RGB checkpoint is adapted by summing its stem.
    """

    def __init__(self, in_chans: int = 3, gated: bool = False, weights: str | Path | None = None) -> None:
        super().__init__()
        net = resnet18(weights=None)
        net.fc = nn.Identity()
        if in_chans != 3:
            net.conv1 = _stem_for(in_chans)
        if weights is not None:
            load_backbone(net, weights, drop_prefixes=("fc.",), adapt=_sum_rgb_stem if in_chans == 1 else None,
                          expected="a torchvision resnet18 state dict")
        self.backbone = net
        self.gates = nn.ModuleList(
            gate_or_identity(gated, getattr(net, s)[-1].conv2.out_channels, dim=1) for s in STAGES
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.backbone
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        for stage, gate in zip(STAGES, self.gates, strict=True):
            x = gate(getattr(n, stage)(x))
        return torch.flatten(n.avgpool(x), 1)


class ResNetModel(nn.Module):
    """Single-stream ResNet-18: encoder -> embedding gate slot -> :class:`Head`. Input: one tensor (B, C, H, W)
    of its stream, ``rgb`` unless ``streams`` names another one (e.g. ``("box_crop",)``: the seed code's RGB input;
    :func:`~polypbench.load.streams.single_stream`), C that stream's channels."""

    def __init__(self, num_outputs: int, *, gated: bool = False, weights: str | Path | None = None,
                 head_hidden: int = 256, dropout: float = 0.35, streams: Sequence[str] | None = None) -> None:
        super().__init__()
        self.encoder = ResNetEncoder(single_stream(streams).channels, gated, weights)
        self.embed_gate = gate_or_identity(gated, EMBED_DIM)
        self.head = Head(EMBED_DIM, num_outputs, head_hidden, dropout, gated)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The (gated) pooled embedding, (B, 512)."""
        return self.embed_gate(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model("resnet18", imagenet=RESNET18_IMAGENET)
def resnet18_plain(num_outputs: int, **kw: Any) -> ResNetModel:
    """torchvision ResNet-18 with the shared head; no gates."""
    return ResNetModel(num_outputs, gated=False, **kw)


@register_model("resnet18-hag", imagenet=RESNET18_IMAGENET)
def resnet18_hag(num_outputs: int, **kw: Any) -> ResNetModel:
    """ResNet-18 with six gates: after layer1-4, on the embedding, on the head's hidden layer."""
    return ResNetModel(num_outputs, gated=True, **kw)
