"""Hard-attention gate (HAG): a learned, input-independent per-channel weight in (0, 1).

The gate multiplies each channel (or feature) by ``sigmoid(logit)``. The logits start at 0 (``gate_init="zeros"``),
so every gate starts at exactly 0.5: the gated network starts as the plain network with its features halved, and
gradient routing then learns which channels to keep. ``gate_init="xavier"`` draws them as the HAG/GR seed code does
(see :data:`GATE_INITS`). Gates are ordinary modules; :func:`polypbench.models.gate_parameters` finds them by type.
"""

from __future__ import annotations

from collections.abc import Callable

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


def _xavier(logit: torch.Tensor) -> None:
    """The seed code's draw: ``nn.init.xavier_normal_`` of a (1, n) tensor with the sigmoid gain (1), i.e.
    N(0, 2 / (n + 1)) per logit, so sigmoid(logit) is centred on 0.5 with a spread that shrinks with n."""
    nn.init.xavier_normal_(logit.view(1, -1), gain=nn.init.calculate_gain("sigmoid"))


GATE_INITS: dict[str, Callable[[torch.Tensor], object]] = {
    "zeros": nn.init.zeros_,
    "xavier": _xavier,
}
"""How gate logits are initialised (``create_model(..., gate_init=...)``), in place on the logit tensor."""


@torch.no_grad()
def init_gates(model: nn.Module, method: str) -> None:
    """(Re)initialise the logits of every :class:`Gate` of ``model`` with ``GATE_INITS[method]``, in module order."""
    from polypbench.errors import choice_error

    if method not in GATE_INITS:
        raise choice_error("gate_init", method, GATE_INITS)
    for module in model.modules():
        if isinstance(module, Gate):
            GATE_INITS[method](module.logit)


def gate_or_identity(gated: bool, num_features: int, dim: int = -1) -> nn.Module:
    """A :class:`Gate` for the -hag variants, an ``nn.Identity`` placeholder for the plain ones.

    Plain and gated models then share one forward path and differ only in these slots.
    """
    return Gate(num_features, dim) if gated else nn.Identity()
