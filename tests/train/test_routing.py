"""The gradient-routing step: what each pass may touch, and the exact update of each gr_mode."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from polypbench.errors import ConfigError
from polypbench.train import GR_MODES, build_optimizers, split_parameters, train_step
from tests.models.helpers import build, inputs

LR, GATE_LR = 0.1, 0.5
HAG = ["resnet18-hag", "multistream-hag", "vit-tiny-hag"]


def _setup(name: str = "resnet18-hag", seed: int = 0):
    model = build(name, seed=seed, dropout=0.0).train()  # no dropout: both passes see the same network
    x = inputs(name, batch=4, seed=seed + 1)
    y = torch.randn(4, 1, generator=torch.Generator().manual_seed(seed + 2))
    return model, x, y


def _snapshot(params: list[nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def _equal(a: list[torch.Tensor], b: list[nn.Parameter] | list[torch.Tensor]) -> bool:
    return all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def _close(a: list[torch.Tensor], b: list[nn.Parameter] | list[torch.Tensor]) -> None:
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v.detach(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", HAG)
def test_gr_passes_touch_only_their_parameters(name: str) -> None:
    model, x, y = _setup(name)
    main, gates = split_parameters(model)
    main_opt, gate_opt = build_optimizers(model, LR, GATE_LR, gr_mode="gr")
    main0, gates0 = _snapshot(main), _snapshot(gates)
    seen: dict[str, object] = {}

    def at_gate_step(*_hook_args):  # end of pass 1, before the gate update
        seen["main_untouched"] = _equal(main0, main)
        seen["no_main_grads"] = all(p.grad is None for p in main)
        seen["gate_grads"] = all(p.grad is not None for p in gates)

    def at_main_step(*_hook_args):  # end of pass 2, before the main update
        seen["gates_after_pass1"] = _snapshot(gates)
        seen["no_gate_grads"] = all(p.grad is None for p in gates)
        seen["main_grads"] = all(p.grad is not None for p in main)

    gate_opt.register_step_pre_hook(at_gate_step)
    main_opt.register_step_pre_hook(at_main_step)
    out = train_step(model, x, y, F.mse_loss, main_opt, gate_opt, gr_mode="gr")

    assert seen["main_untouched"] and seen["no_main_grads"] and seen["gate_grads"]
    assert seen["no_gate_grads"] and seen["main_grads"]
    assert not _equal(gates0, gates), "pass 1 did not move the gates"
    assert _equal(seen["gates_after_pass1"], gates), "pass 2 moved the gates"
    assert not _equal(main0, main)
    assert set(out) == {"loss", "gate_loss", "grad_norm", "gate_grad_norm"}
    assert all(p.requires_grad for p in model.parameters())


def _reference_update(model: nn.Module, x, y, *, paper: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Plain-SGD expectation, computed by hand on a copy: (main, gates) after one step."""
    ref = copy.deepcopy(model)
    main, gates = split_parameters(ref)
    g0 = torch.autograd.grad(F.l1_loss(ref(x), y), main + gates)
    with torch.no_grad():
        for p, g in zip(gates, g0[len(main):], strict=True):
            p -= GATE_LR * g
    g1 = torch.autograd.grad(F.mse_loss(ref(x), y), main)
    leak = g0[: len(main)] if paper else [torch.zeros_like(g) for g in g1]
    return [p.detach() - LR * (a + b) for p, a, b in zip(main, g1, leak, strict=True)], _snapshot(gates)


@pytest.mark.parametrize("gr_mode", ["gr", "paper"])
def test_two_pass_update_is_exact(gr_mode: str) -> None:
    """gr: main params follow only the main loss at the updated gates; paper: they also get the gate-pass gradient."""
    model, x, y = _setup()
    exp_main, exp_gates = _reference_update(model, x, y, paper=gr_mode == "paper")
    main_opt, gate_opt = build_optimizers(model, LR, GATE_LR, gr_mode=gr_mode, optimizer=torch.optim.SGD)
    train_step(model, x, y, F.mse_loss, main_opt, gate_opt, gr_mode=gr_mode, gate_loss_fn=F.l1_loss,
               clip_gate=None, clip_main=None)
    main, gates = split_parameters(model)
    _close(exp_gates, gates)
    _close(exp_main, main)


def test_off_is_one_ordinary_step() -> None:
    model, x, y = _setup()
    ref = copy.deepcopy(model)
    rmain, rgates = split_parameters(ref)
    grads = torch.autograd.grad(F.mse_loss(ref(x), y), rmain + rgates)
    lrs = [LR] * len(rmain) + [GATE_LR] * len(rgates)
    expected = [p.detach() - lr * g for p, g, lr in zip(rmain + rgates, grads, lrs, strict=True)]
    main_opt, gate_opt = build_optimizers(model, LR, GATE_LR, gr_mode="off", optimizer=torch.optim.SGD)
    assert gate_opt is None
    out = train_step(model, x, y, F.mse_loss, main_opt, None, gr_mode="off")
    main, gates = split_parameters(model)
    _close(expected, main + gates)
    assert set(out) == {"loss", "grad_norm"}


def test_gate_clipping_only_in_gate_pass() -> None:
    model, x, y = _setup()
    main_opt, gate_opt = build_optimizers(model, LR, GATE_LR, gr_mode="gr")
    norms: dict[str, float] = {}

    def grad_norm(params):
        return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))

    gate_opt.register_step_pre_hook(lambda o, *_: norms.__setitem__("gate", grad_norm(o.param_groups[0]["params"])))
    main_opt.register_step_pre_hook(lambda o, *_: norms.__setitem__("main", grad_norm(o.param_groups[0]["params"])))
    out = train_step(model, x, y, F.mse_loss, main_opt, gate_opt, clip_gate=1e-3, clip_main=None)
    assert out["gate_grad_norm"] > 1e-3 and norms["gate"] == pytest.approx(1e-3, rel=1e-3)
    assert norms["main"] == pytest.approx(out["grad_norm"], rel=1e-4) and norms["main"] > 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("gr_mode", GR_MODES)
def test_same_seed_same_training(gr_mode: str) -> None:
    runs = []
    for _ in range(2):
        model, x, y = _setup(seed=5)
        main_opt, gate_opt = build_optimizers(model, 1e-3, 1e-2, gr_mode=gr_mode)
        losses = [train_step(model, x, y, F.mse_loss, main_opt, gate_opt, gr_mode=gr_mode)["loss"] for _ in range(2)]
        runs.append((losses, _snapshot(list(model.parameters()))))
    assert runs[0][0] == runs[1][0] and runs[0][0][0] != runs[0][0][1]
    assert _equal(runs[0][1], runs[1][1])


def test_bf16_autocast_and_channels_last_run() -> None:
    model, x, y = _setup()
    model = model.to(memory_format=torch.channels_last)
    main_opt, gate_opt = build_optimizers(model, 1e-3, 1e-2)
    out = train_step(model, x, y, F.mse_loss, main_opt, gate_opt, autocast_dtype=torch.bfloat16, channels_last=True)
    assert all(torch.isfinite(torch.tensor(v)) for v in out.values())


def test_configuration_errors() -> None:
    model, x, y = _setup()
    with pytest.raises(ConfigError, match="gr_mode 'fast'"):
        build_optimizers(model, LR, GATE_LR, gr_mode="fast")
    with pytest.raises(ConfigError, match="needs a gated model"):
        build_optimizers(build("resnet18"), LR, GATE_LR, gr_mode="gr")
    main_opt, gate_opt = build_optimizers(model, LR, GATE_LR)
    with pytest.raises(ConfigError, match="takes no gate optimizer"):
        train_step(model, x, y, F.mse_loss, main_opt, gate_opt, gr_mode="off")
    with pytest.raises(ConfigError, match="takes a gate optimizer"):
        train_step(model, x, y, F.mse_loss, main_opt, None, gr_mode="gr")
    shared = torch.optim.SGD(list(model.parameters()), lr=LR)
    with pytest.raises(ConfigError, match="share parameters"):
        train_step(model, x, y, F.mse_loss, shared, gate_opt, gr_mode="gr")
