"""Gradient routing (GR): one explicit training step for gated models, in three modes.

``gr_mode="gr"`` (default), the two-pass step described by the paper:
  1. Gate pass. Forward, gate loss, gradients **with respect to the gate parameters only**
     (``torch.autograd.grad``, with the main parameters' ``requires_grad`` switched off for the pass), clip them
     (``clip_gate``), step the gate optimizer. Nothing is written to any ``.grad`` of a main parameter; autograd
     neither records the layers before the first gate nor computes any weight gradient, so this pass costs a
     forward plus an activation-only backward from the loss down to the first gate.
  2. Main pass. Forward again with the updated gates, main loss, ``backward`` with the gates frozen, clip
     (``clip_main``), step the main optimizer. Gate values and gate ``.grad`` are not touched.

``gr_mode="paper"`` reproduces the reference trainer (cosmoimd/feature-selection-gates ``Trainer.fit``) for
faithful reproduction: both passes call ``backward`` over all parameters into shared ``.grad`` buffers; after the
gate pass every gradient (gates and main) is jointly clipped to ``clip_gate`` and NaN/Inf are zeroed, then the gate
optimizer steps; the main pass *adds* its gradients, everything is jointly clipped to ``clip_main`` (gate gradients
count in that norm) and NaN-zeroed, then the main optimizer steps. So the main update uses
clip(grad of gate loss) + grad of main loss. The joint clips sum the norms in the seed model's parameter order
(:func:`reference_order`: gates first), so that with the ``regression-paper`` coding the step is bit-identical to
the seed's (``tests/train/test_paper_protocol.py``).

``gr_mode="paper"`` with a ``scaler`` (``paper_amp: fp16-scaler``) also reproduces the reference's fp16 GradScaler
sequence, defect included: each pass backpropagates the SCALED loss into every parameter, unscales only the
gradients of the optimizer about to step (the gates after the gate pass, the main parameters after the main pass),
then clips the joint norm over ALL parameters, so the clip mixes unscaled gradients with gradients still scaled by
the loss scale (2^16 at the start): the clip coefficient is set by the scaled ones. ``scaler.step`` skips an
optimizer whose unscaled gradients held inf/NaN, and ``scaler.update`` runs after each pass, as in the reference.
Without a scaler (the recommended default, with bf16 autocast) the clip sees only true gradients.

``gr_mode="off"``: one ordinary step; the gates are trained by the main optimizer (their own param group). With a
``scaler`` it is the reference's single pass (its baselines): scaled backward, unscale, clip, NaN to zero, scaler
step and update.

Both forward passes run in the model's current mode, so BatchNorm statistics update twice per GR step and
dropout draws two masks, as in the reference.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from polypbench.errors import ConfigError, choice_error
from polypbench.models import gate_parameters
from polypbench.train.distributed import all_reduce_mean, unwrap

log = logging.getLogger(__name__)

GR_MODES = ("gr", "paper", "off")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = torch.Tensor | Mapping[str, torch.Tensor]


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(main, gates)``: trainable parameters that are not gates, and the gate parameters."""
    gates = gate_parameters(model)
    ids = {id(p) for p in gates}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in ids], gates


def build_optimizers(
    model: nn.Module,
    lr: float,
    gate_lr: float,
    *,
    gr_mode: str = "gr",
    weight_decay: float = 0.0,
    optimizer: Callable[..., Optimizer] = torch.optim.Adam,
) -> tuple[Optimizer, Optimizer | None]:
    """``(main_opt, gate_opt)`` split by :func:`gate_parameters` (Adam by default, as the reference code).

    For ``gr`` and ``paper`` the gate optimizer owns the gates (no weight decay) and the main one the rest; a model
    without gates needs ``gr_mode="off"``. For ``off`` one optimizer holds both, the gates as a second param group
    with ``lr=gate_lr`` and no weight decay, and ``gate_opt`` is ``None``.
    """
    if gr_mode not in GR_MODES:
        raise choice_error("gr_mode", gr_mode, GR_MODES)
    main, gates = split_parameters(model)
    log.info("gr_mode %s: %d main and %d gate parameter tensors", gr_mode, len(main), len(gates))
    if gr_mode == "off":
        groups: list[dict[str, Any]] = [{"params": main, "weight_decay": weight_decay}]
        if gates:
            groups.append({"params": gates, "lr": gate_lr, "weight_decay": 0.0})
        return optimizer(groups, lr=lr), None
    if not gates:
        raise ConfigError(f"gr_mode {gr_mode!r} needs a gated model (a -hag variant); use gr_mode='off'")
    return optimizer(main, lr=lr, weight_decay=weight_decay), optimizer(gates, lr=gate_lr, weight_decay=0.0)


def reference_order(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter of ``model`` in the order the seed code's model lists them, the order its joint
    ``clip_grad_norm_`` sums in (the total norm of a clip depends on that order by an ulp): the model's own
    ``reference_parameters()`` where it has one (the ViT's gates lead each block), else the gates first and then
    the rest in module order (the seed's FSGNetR18 holds every gate as a parameter of the model itself, which a
    module lists before its children's)."""
    model = unwrap(model)
    own = getattr(model, "reference_parameters", None)
    if callable(own):
        return list(own())
    gates = gate_parameters(model)
    ids = {id(p) for p in gates}
    return [*gates, *(p for p in model.parameters() if id(p) not in ids)]


def _params(opt: Optimizer) -> list[nn.Parameter]:
    return [p for group in opt.param_groups for p in group["params"]]


@contextlib.contextmanager
def _frozen(params: Iterable[nn.Parameter]) -> Iterator[None]:
    """Switch ``requires_grad`` off for ``params`` inside the block (autograd then records nothing for them)."""
    changed = [p for p in params if p.requires_grad]
    for p in changed:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in changed:
            p.requires_grad_(True)


def _autocast(x: Batch, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    first = next(iter(x.values())) if isinstance(x, Mapping) else x
    return torch.autocast(device_type=first.device.type, dtype=dtype)


def _to_channels_last(x: Batch) -> Batch:
    fmt = torch.channels_last
    if isinstance(x, Mapping):
        return {k: v.contiguous(memory_format=fmt) if v.ndim == 4 else v for k, v in x.items()}
    return x.contiguous(memory_format=fmt) if x.ndim == 4 else x


def _clip(params: list[nn.Parameter], max_norm: float | None) -> float:
    """Clip in place to ``max_norm`` (``None``: no clipping); return the norm before clipping."""
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.nn.utils.clip_grad_norm_(grads, math.inf if max_norm is None else max_norm))


def _nan_to_zero(params: Iterable[nn.Parameter]) -> None:
    for p in params:
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)


def _loss(model: nn.Module, x: Batch, y: torch.Tensor, loss_fn: LossFn, dtype: torch.dtype | None) -> torch.Tensor:
    with _autocast(x, dtype):
        return loss_fn(model(x), y)


def train_step(
    model: nn.Module,
    x: Batch,
    y: torch.Tensor,
    loss_fn: LossFn,
    main_opt: Optimizer,
    gate_opt: Optimizer | None,
    *,
    gr_mode: str = "gr",
    gate_loss_fn: LossFn | None = None,
    clip_main: float | None = None,
    clip_gate: float | None = 1.0,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One optimisation step on batch ``(x, y)``; see the module docstring for the three ``gr_mode`` values.

    ``gate_loss_fn`` (default ``loss_fn``) is the gate pass's loss (the reference uses a different one).
    ``autocast_dtype`` (e.g. ``torch.bfloat16``) wraps the forward passes in ``torch.autocast``; ``channels_last``
    converts 4-D inputs (convert the model yourself). Returns ``loss`` and ``grad_norm`` (main pass, norm before
    clipping), plus ``gate_loss`` and ``gate_grad_norm`` for the two-pass modes.
    """
    if gr_mode not in GR_MODES:
        raise choice_error("gr_mode", gr_mode, GR_MODES)
    if (gate_opt is None) != (gr_mode == "off"):
        need = "no gate optimizer" if gr_mode == "off" else "a gate optimizer"
        raise ConfigError(f"gr_mode {gr_mode!r} takes {need}; build both with build_optimizers(gr_mode=...)")
    if scaler is not None and gr_mode == "gr":
        raise ConfigError("a GradScaler (paper_amp) reproduces the reference's steps; gr_mode 'gr' takes none "
                          "(expected gr_mode='paper' or 'off', or bf16 autocast without a scaler)")
    if channels_last:
        x = _to_channels_last(x)
    gate_loss_fn = gate_loss_fn or loss_fn
    main_params = _params(main_opt)

    if gr_mode == "off" and scaler is not None:  # the reference's single pass (its baselines) under its scaler
        main_opt.zero_grad(set_to_none=True)
        loss = _loss(model, x, y, loss_fn, autocast_dtype)
        scaler.scale(loss).backward()
        scaler.unscale_(main_opt)
        every = reference_order(model)
        norm = _clip(every, clip_main)
        _nan_to_zero(every)
        scaler.step(main_opt)
        scaler.update()
        return {"loss": loss.item(), "grad_norm": norm}
    if gr_mode == "off":
        main_opt.zero_grad(set_to_none=True)
        loss = _loss(model, x, y, loss_fn, autocast_dtype)
        loss.backward()
        norm = _clip(main_params, clip_main)
        main_opt.step()
        return {"loss": loss.item(), "grad_norm": norm}

    assert gate_opt is not None
    gate_params = _params(gate_opt)
    if {id(p) for p in gate_params} & {id(p) for p in main_params}:
        raise ConfigError("the gate and main optimizers share parameters; build them with build_optimizers()")

    if gr_mode == "paper" and scaler is not None:
        return _paper_scaled_step(model, x, y, loss_fn, gate_loss_fn, main_opt, gate_opt, scaler, clip_main,
                                  clip_gate, autocast_dtype)
    if gr_mode == "paper":
        every = reference_order(model)
        main_opt.zero_grad(set_to_none=True)
        gate_opt.zero_grad(set_to_none=True)
        gate_loss = _loss(model, x, y, gate_loss_fn, autocast_dtype)
        gate_loss.backward()
        gate_norm = _clip(every, clip_gate)
        _nan_to_zero(every)
        gate_opt.step()
        loss = _loss(model, x, y, loss_fn, autocast_dtype)
        loss.backward()  # adds to the gate pass's (clipped) gradients, as the reference does
        norm = _clip(every, clip_main)
        _nan_to_zero(every)
        main_opt.step()
        return {"loss": loss.item(), "gate_loss": gate_loss.item(), "grad_norm": norm, "gate_grad_norm": gate_norm}

    # gr_mode == "gr": pass 1 touches only the gates, pass 2 only the main parameters. Under DDP pass 1 runs on the
    # wrapped module and averages the gate gradients itself (see polypbench.train.distributed).
    gate_opt.zero_grad(set_to_none=True)
    with _frozen(main_params):
        gate_loss = _loss(unwrap(model), x, y, gate_loss_fn, autocast_dtype)
        grads = torch.autograd.grad(gate_loss, gate_params, allow_unused=True)
    for p, g in zip(gate_params, grads, strict=True):
        p.grad = g
    all_reduce_mean(gate_params)
    gate_norm = _clip(gate_params, clip_gate)
    gate_opt.step()
    gate_opt.zero_grad(set_to_none=True)

    main_opt.zero_grad(set_to_none=True)
    with _frozen(gate_params):
        loss = _loss(model, x, y, loss_fn, autocast_dtype)
        loss.backward()
    norm = _clip(main_params, clip_main)
    main_opt.step()
    return {"loss": loss.item(), "gate_loss": gate_loss.item(), "grad_norm": norm, "gate_grad_norm": gate_norm}


def _paper_scaled_step(model: nn.Module, x: Batch, y: torch.Tensor, loss_fn: LossFn, gate_loss_fn: LossFn,
                       main_opt: Optimizer, gate_opt: Optimizer, scaler: torch.amp.GradScaler,
                       clip_main: float | None, clip_gate: float | None,
                       autocast_dtype: torch.dtype | None) -> dict[str, float]:
    """The paper step under the reference's fp16 GradScaler (see the module docstring: one optimizer unscaled,
    then a joint clip over every parameter; ``.grad`` shared between the passes)."""
    every = reference_order(model)
    main_opt.zero_grad(set_to_none=True)
    gate_opt.zero_grad(set_to_none=True)
    stats: dict[str, float] = {}
    for name, fn, opt, clip in (("gate_", gate_loss_fn, gate_opt, clip_gate), ("", loss_fn, main_opt, clip_main)):
        loss = _loss(model, x, y, fn, autocast_dtype)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)  # only this optimizer's gradients: the others stay scaled
        stats[f"{name}grad_norm"] = _clip(every, clip)
        _nan_to_zero(every)
        scaler.step(opt)
        scaler.update()
        stats[f"{name}loss"] = loss.item()
    return stats

