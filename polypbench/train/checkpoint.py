"""What a resumed run needs back, and the checkpoint that holds it (``last.pt``, written after every epoch).

:class:`TrainState` gathers everything a training step changes: the model, the main and gate optimizers, an LR
scheduler and an AMP ``GradScaler`` where the run has them, and the random generators owned by the run (the
device augmenter's, the loaders'). The process-wide random states (python, numpy, torch, CUDA) are taken per
rank by :func:`rng_state`. ``last.pt`` holds all of it plus the epoch, the history and the best epoch so far, so
that a run stopped after epoch k and resumed trains epoch k+1 exactly as an uninterrupted run would (on CPU with
``num_workers: 0``; tested bit for bit).

A new piece of state (say an EMA of the weights) is one more field of :class:`TrainState` and one more entry in
its :meth:`~TrainState.state_dict` / :meth:`~TrainState.load_state_dict`.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer

from polypbench.errors import ConfigError
from polypbench.fileio import atomic_output

LAST = "last.pt"
BEST = "best.pt"
FORMAT = 1
"""Version of the ``last.pt`` layout; a checkpoint of another version is refused on resume."""


class Scheduler(Protocol):
    """What the loop steps after every iteration and ``last.pt`` keeps: a torch ``LRScheduler``, or
    :class:`polypbench.train.schedule.PerStep` (one per optimizer)."""

    def step(self) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


@dataclass
class TrainState:
    """The mutable state of one run (see the module docstring). ``gate_opt`` is None for ``gr_mode: off``;
    ``scheduler`` and ``scaler`` are None unless the run uses them (the loop steps ``scheduler`` once per
    iteration). ``generators``: named ``torch.Generator`` objects whose state is saved and restored."""

    model: nn.Module
    main_opt: Optimizer
    gate_opt: Optimizer | None = None
    scheduler: Scheduler | None = None
    scaler: torch.amp.GradScaler | None = None
    generators: dict[str, torch.Generator] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only (``torch.load(weights_only=True)`` reads them back)."""
        return {
            "state_dict": self.model.state_dict(),
            "optimizers": {"main": self.main_opt.state_dict(),
                           "gate": self.gate_opt.state_dict() if self.gate_opt is not None else None},
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "generators": {name: g.get_state() for name, g in self.generators.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved; a piece the run has and the checkpoint lacks (or the other way
        round) fails in one line."""
        self.model.load_state_dict(state["state_dict"])
        opts = state["optimizers"]
        self.main_opt.load_state_dict(opts["main"])
        parts: tuple[tuple[str, Any, dict[str, Any] | None], ...] = (
            ("gate optimizer", self.gate_opt, opts.get("gate")),
            ("LR scheduler", self.scheduler, state.get("scheduler")),
            ("GradScaler", self.scaler, state.get("scaler")),
        )
        for name, mine, saved in parts:
            if (mine is None) != (saved is None):
                has = "has" if saved is not None else "has no"
                raise ConfigError(f"the checkpoint {has} {name} state but this run {'has' if mine else 'has no'} "
                                  f"{name}; expected the config the run was started with")
            if mine is not None and saved is not None:
                mine.load_state_dict(saved)
        saved_gens = state.get("generators", {})
        for name, gen in self.generators.items():
            if name in saved_gens:
                gen.set_state(saved_gens[name])


def rng_state() -> dict[str, Any]:
    """This process's random states: python ``random``, numpy's legacy global generator, torch (CPU and, when
    initialised, every CUDA device); only plain values and tensors."""
    np_state = np.random.get_state(legacy=False)
    assert isinstance(np_state, dict)
    mt = np_state["state"]
    return {
        "python": random.getstate(),
        "numpy": {**np_state, "state": {"key": mt["key"].tolist(), "pos": int(mt["pos"])}},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(state["numpy"])
    np_state["state"] = {"key": np.asarray(np_state["state"]["key"], dtype=np.uint32),
                         "pos": int(np_state["state"]["pos"])}
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(payload: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` to a temporary file, then one rename: a kill mid-write leaves the previous file intact."""
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


LAST_KEYS = ("format", "epoch", "state_dict", "optimizers", "config", "rng", "history", "best")
"""What :func:`load_last` requires of a ``last.pt`` before a run resumes from it."""


def read(path: str | Path, expected: str) -> dict[str, Any]:
    """A checkpoint dict from ``path`` (``torch.load`` on the CPU, tensors and plain values only). Whatever makes a
    file unreadable (truncated, tampered, not a checkpoint) is one ConfigError line, ``not a readable
    checkpoint``, ending with ``expected``."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in the zip reader, the unpickler or between
        raise ConfigError(f"{path}: not a readable checkpoint ({reason(exc)}); expected {expected}") from None
    if not isinstance(ckpt, dict):
        raise ConfigError(f"{path}: not a readable checkpoint (a {type(ckpt).__name__}, not a dict); "
                          f"expected {expected}")
    return ckpt


def reason(exc: BaseException) -> str:
    """The exception in a few words: its type and first line (torch's weights-only refusal: the unpickler's own
    complaint, not its advice to load untrusted files with ``weights_only=False``)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, pickle.UnpicklingError) and "WeightsUnpickler error:" in str(exc):
        after = str(exc).split("WeightsUnpickler error:", 1)[1].strip().splitlines()
        lines = [f"damaged, or not only tensors and plain values: {after[0].strip()}" if after else "damaged"]
    first = lines[0] if lines else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


RESUME_EXPECTED = "the last.pt of a polypbench run (or --overwrite to start afresh)"


def load_last(path: str | Path) -> dict[str, Any]:
    """A ``last.pt`` (on the CPU); one line when it is unreadable, incomplete or of another layout."""
    ckpt = read(path, RESUME_EXPECTED)
    if ckpt.get("format") != FORMAT:
        raise ConfigError(f"{path}: checkpoint layout {ckpt.get('format')!r}; expected last.pt format {FORMAT} "
                          "(written by this polypbench version)")
    missing = [k for k in LAST_KEYS if k not in ckpt]
    if missing:
        raise ConfigError(f"{path}: not a readable checkpoint (no {', '.join(missing)}); expected {RESUME_EXPECTED}")
    return ckpt
