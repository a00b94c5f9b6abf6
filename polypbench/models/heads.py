"""The shared prediction head: a hidden layer (optionally gated) and the output layer."""

from __future__ import annotations

import torch
from torch import nn

from polypbench.models.gates import gate_or_identity


class Head(nn.Module):
    """``Linear(in, hidden) -> ReLU -> gate -> Dropout -> Linear(hidden, num_outputs)``.

    The gate sits on the hidden activations as in the reference code (fc2 -> ReLU -> gate -> fc3); it is an
    ``nn.Identity`` when ``gated`` is false. ``hidden=0`` gives a single ``Linear`` (the reference ViT head).
    """

    def __init__(self, in_features: int, num_outputs: int, hidden: int = 256, dropout: float = 0.35,
                 gated: bool = False) -> None:
        super().__init__()
        if num_outputs < 1:
            raise ValueError(f"num_outputs must be >= 1, got {num_outputs}")
        if hidden:
            self.hidden: nn.Module = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True))
            self.gate = gate_or_identity(gated, hidden)
            self.drop: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        else:
            self.hidden, self.gate, self.drop = nn.Identity(), nn.Identity(), nn.Identity()
        self.out = nn.Linear(hidden or in_features, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.gate(self.hidden(x))))
