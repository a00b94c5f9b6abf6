"""Reference models: ResNet-18, multi-stream ResNet-18 and ViT-Tiny, each plain and with hard-attention gates;
and a tiny CNN (``tiny``, ``tiny-hag``) for smoke tests and CI.

``create_model(name, num_outputs, **kw)`` builds one (see ``list_models()``); ``gate_parameters(model)`` returns
the gate parameters that gradient routing trains separately; ``default_cfg(name)`` a model's input defaults (image
size, crop margin, normalisation, streams), ``meant_for(name)`` the device it is meant to train on. Nothing here
downloads weights.
"""

from __future__ import annotations

from polypbench.models import multistream, resnet, tiny, vit  # noqa: F401  (registers the models)
from polypbench.models.gates import Gate
from polypbench.models.registry import (
    REFERENCE_INPUT,
    create_model,
    default_cfg,
    gate_parameters,
    imagenet_weights,
    list_models,
    meant_for,
    register_model,
)

__all__ = ["REFERENCE_INPUT", "Gate", "create_model", "default_cfg", "gate_parameters", "imagenet_weights",
           "list_models", "meant_for", "register_model"]
