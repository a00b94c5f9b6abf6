"""Hard-attention gate (HAG): a learned, input-independent per-channel weight in (0, 1).

The gate multiplies each channel (or feature) by ``sigmoid(logit)``. The logits start at 0, so every gate starts
at 0.5: the gated network starts as the plain network with its features halved, and gradient routing then learns
which channels to keep. Gates are ordinary modules; :func:`polypbench.models.gate_parameters` finds them by type.
"""

from __future__ import annotations

import torch
from torch import nn


class Gate(nn.Module):
    """``x * sigmoid(logit)`` along one dimension: ``dim=1`` for conv maps (B, C, H, W), ``dim=-1`` for tokens/vectors.

    The same module fits timm's ``LayerScale`` slot (``ls1``/``ls2``), which sees tokens (B, N, D).
    """

    def __init__(self, num_features: int, dim: int = -1) -> None:
        super().__init__()
        self.num_features = num_features
        self.dim = dim
        self.logit = nn.Parameter(torch.zeros(num_features))

    def value(self) -> torch.Tensor:
        """The gate values ``sigmoid(logit)``, shape (num_features,)."""
        return torch.sigmoid(self.logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.ndim
        shape[self.dim] = self.num_features
        return x * torch.sigmoid(self.logit).to(x.dtype).view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, dim={self.dim}"


def gate_or_identity(gated: bool, num_features: int, dim: int = -1) -> nn.Module:
    """A :class:`Gate` for the -hag variants, an ``nn.Identity`` placeholder for the plain ones.

    Plain and gated models then share one forward path and differ only in these slots.
    """
    return Gate(num_features, dim) if gated else nn.Identity()
