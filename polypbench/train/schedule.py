"""Learning-rate schedules (config key ``lr_schedule``), stepped once per training iteration.

``constant`` keeps ``lr`` and ``gate_lr`` as configured (no scheduler: the reference code's setting). ``cosine``
multiplies both by ``(1 + cos(pi * step / total)) / 2``, where ``total`` is ``epochs`` times the batches of an
epoch: the rates fall from their configured values to zero at the last step. The factor is a closed form of the
step, so a resumed run continues exactly; resumed with more ``epochs``, the decay is stretched from there (the rate
steps up once, to where the longer run would be).

``cosine_restarts`` is the seed code's schedule: torch's ``CosineAnnealingWarmRestarts(T_0=lr_t0, T_mult=1,
eta_min=min_lr)`` (``lr_t0`` None: ``epochs``, the seed's ``num_epochs // cycle_limit`` with ``cycle_limit: 1``),
stepped after every batch ``i`` of epoch ``e`` at the fractional epoch ``e + i / n`` (``n`` batches per epoch),
exactly as the seed's ``Trainer.fit`` steps it: the first batch runs at ``lr``, batch ``i >= 1`` of epoch ``e`` at the
rate of ``e + (i - 1) / n``. A resumed run continues exactly (the count of steps is in ``last.pt``).

``lr_schedule_gates: false`` leaves the gate optimizer's rate constant (the seed's ``FSAG_LR: False``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts, LambdaLR

LR_SCHEDULES = ("constant", "cosine", "cosine_restarts")


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


class WarmRestarts:
    """``cosine_restarts``: one torch ``CosineAnnealingWarmRestarts`` per optimizer, stepped after every batch at
    ``epoch + i / steps_per_epoch`` as the seed steps it (see the module docstring)."""

    def __init__(self, optimizers: Sequence[Optimizer], t0: int, min_lr: float, steps_per_epoch: int) -> None:
        self.parts = [CosineAnnealingWarmRestarts(opt, T_0=t0, T_mult=1, eta_min=min_lr) for opt in optimizers]
        self.steps_per_epoch = max(steps_per_epoch, 1)
        self.done = 0

    def step(self) -> None:
        epoch, i = divmod(self.done, self.steps_per_epoch)
        for part in self.parts:
            part.step(epoch + i / self.steps_per_epoch)  # the seed's expression, float for float
        self.done += 1

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done, "parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done = int(state_dict["done"])
        for part, saved in zip(self.parts, state_dict["parts"], strict=True):
            part.load_state_dict(saved)


def build_schedule(name: str, optimizers: Sequence[Optimizer | None], total_steps: int, *, steps_per_epoch: int = 1,
                   t0: int = 1, min_lr: float = 0.0) -> PerStep | WarmRestarts | None:
    """The ``lr_schedule`` ``name`` over ``total_steps`` iterations for the optimizers that exist (None: no
    scheduler, for ``constant``); ``cosine_restarts`` restarts every ``t0`` epochs of ``steps_per_epoch`` batches
    and falls to ``min_lr``."""
    if name == "constant":
        return None
    if name == "cosine_restarts":
        return WarmRestarts([opt for opt in optimizers if opt is not None], t0, min_lr, steps_per_epoch)
    total = max(total_steps, 1)

    def cosine(step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

    return PerStep([opt for opt in optimizers if opt is not None], cosine)
