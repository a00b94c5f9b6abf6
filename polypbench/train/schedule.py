"""Learning-rate schedules (config key ``lr_schedule``), stepped once per training iteration.

``constant`` keeps ``lr`` and ``gate_lr`` as configured (no scheduler: the reference code's setting). ``cosine``
multiplies both by ``(1 + cos(pi * step / total)) / 2``, where ``total`` is ``epochs`` times the batches of an
epoch: the rates fall from their configured values to zero at the last step. The factor is a closed form of the
step, so a resumed run continues exactly; resumed with more ``epochs``, the decay is stretched from there (the rate
steps up once, to where the longer run would be).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

LR_SCHEDULES = ("constant", "cosine")


class PerStep:
    """One :class:`~torch.optim.lr_scheduler.LambdaLR` per optimizer (the main and the gate optimizer of gradient
    routing), all with the same ``factor(step)``; one ``step()``, one state dict (what ``last.pt`` keeps)."""

    def __init__(self, optimizers: Sequence[Optimizer], factor: Callable[[int], float]) -> None:
        self.parts = [LambdaLR(opt, factor) for opt in optimizers]

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for part, saved in zip(self.parts, state_dict["parts"], strict=True):
            part.load_state_dict(saved)


def build_schedule(name: str, optimizers: Sequence[Optimizer | None], total_steps: int) -> PerStep | None:
    """The ``lr_schedule`` ``name`` over ``total_steps`` iterations for the optimizers that exist (None: no
    scheduler, for ``constant``)."""
    if name == "constant":
        return None
    total = max(total_steps, 1)

    def cosine(step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

    return PerStep([opt for opt in optimizers if opt is not None], cosine)
