"""Model registry (timm style): a name maps to a short factory; ``create_model`` is the only way in."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from polypbench.errors import choice_error
from polypbench.models.gates import Gate, init_gates

Factory = Callable[..., nn.Module]
F = TypeVar("F", bound=Factory)

_MODELS: dict[str, Factory] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Decorator: register ``factory(num_outputs, **kw) -> nn.Module`` under ``name``."""

    def deco(factory: F) -> F:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = factory
        return factory

    return deco


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def create_model(name: str, num_outputs: int, **kw: object) -> nn.Module:
    """Build model ``name`` with a head of ``num_outputs`` (1 = size in mm, 3 = triclass); never downloads.

    Every model has ``forward(x) -> (B, num_outputs)`` and ``forward_features(x) -> (B, D)``. Common keywords:
    ``weights`` (a local torchvision/timm state-dict file for the backbone), ``head_hidden``, ``dropout``, and
    ``gate_init`` (``zeros``, the default, or ``xavier`` as the HAG/GR seed code; see
    :data:`polypbench.models.gates.GATE_INITS`), applied here to every gate of every model.
    Unknown names raise :class:`polypbench.errors.ConfigError` listing the registered ones.
    """
    if name not in _MODELS:
        raise choice_error("model", name, _MODELS)
    gate_init = str(kw.pop("gate_init", "zeros"))
    model = _MODELS[name](num_outputs, **kw)
    init_gates(model, gate_init)
    return model


def gate_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of every :class:`Gate` in ``model`` (found by type, never by name), in module order."""
    return [p for m in model.modules() if isinstance(m, Gate) for p in m.parameters()]
