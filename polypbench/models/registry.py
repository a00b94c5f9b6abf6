"""Model registry (timm style): a name maps to a short factory and its input defaults; ``create_model`` is the only
way in.

Each registered model carries its input defaults as timm models carry ``default_cfg``: a
:class:`~polypbench.load.spec.PixelSpec` (image size, crop margin, normalisation mean and std, the streams its
``forward`` takes). A training config without ``img_size`` or ``margin`` reads them (:func:`default_cfg`); the
reference models' are :data:`REFERENCE_INPUT`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from polypbench.errors import choice_error
from polypbench.load.spec import PixelSpec
from polypbench.models.gates import Gate, init_gates
from polypbench.models.weights import CachedWeights

Factory = Callable[..., nn.Module]
F = TypeVar("F", bound=Factory)

REFERENCE_INPUT = PixelSpec()
"""The reference models' input: 384 x 384 crops with margin 0.5, ImageNet normalisation, one RGB tensor (the
loader's defaults, :data:`~polypbench.load.common.DEFAULT_SIZE` and :data:`~polypbench.load.common.DEFAULT_MARGIN`:
one owner of each number)."""

DEVICES = ("cpu", "cuda")
"""What a model is meant to train on (:func:`meant_for`): ``cpu`` (minutes on a laptop) or ``cuda`` (a GPU)."""

_MODELS: dict[str, Factory] = {}
_DEFAULTS: dict[str, PixelSpec] = {}
_IMAGENET: dict[str, CachedWeights | None] = {}
_DEVICES: dict[str, str] = {}


def register_model(name: str, default: PixelSpec = REFERENCE_INPUT, imagenet: CachedWeights | None = None, *,
                   device: str = "cuda") -> Callable[[F], F]:
    """Decorator: register ``factory(num_outputs, **kw) -> nn.Module`` under ``name``, with its input defaults
    ``default`` (a fixed ``size``; ``streams`` as the factory's default ``streams``), where its backbone's
    published ImageNet weights are cached (``imagenet``; None: it has none) and the ``device`` it is meant to train
    on (one of :data:`DEVICES`)."""
    if default.size is None:
        raise ValueError(f"model {name!r}: its default input needs a size, got None")
    if device not in DEVICES:
        raise ValueError(f"model {name!r}: device {device!r}; expected one of {', '.join(DEVICES)}")

    def deco(factory: F) -> F:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = factory
        _DEFAULTS[name] = default
        _IMAGENET[name] = imagenet
        _DEVICES[name] = device
        return factory

    return deco


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def default_cfg(name: str) -> PixelSpec:
    """The input defaults of model ``name`` (timm's ``default_cfg``): ``size`` and ``margin`` (what a training
    config without ``img_size`` / ``margin`` uses), ``mean`` and ``std``, ``streams``."""
    if name not in _DEFAULTS:
        raise choice_error("model", name, _MODELS)
    return _DEFAULTS[name]


def imagenet_weights(name: str) -> CachedWeights | None:
    """Where model ``name``'s backbone ImageNet weights are cached (config key ``weights: imagenet``), or None."""
    if name not in _IMAGENET:
        raise choice_error("model", name, _MODELS)
    return _IMAGENET[name]


def meant_for(name: str) -> str:
    """The device model ``name`` is meant to train on (``polypbench configs`` lists it): ``cpu`` or ``cuda``."""
    if name not in _DEVICES:
        raise choice_error("model", name, _MODELS)
    return _DEVICES[name]


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
