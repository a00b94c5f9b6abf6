"""The -paper configurations are the HAG/GR seed code's model and loss: gate init, head, target scaling, losses,
and the fp16 GradScaler step (paper_amp), each pinned against a closed form or an independent re-statement."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from polypbench.inference.predict import frames_config
from polypbench.load.streams import Pixels, build_streams
from polypbench.models import create_model, gate_parameters
from polypbench.models.gates import Gate
from polypbench.train import load_config
from polypbench.train.routing import build_optimizers, train_step
from polypbench.train.tasks import PAPER_SIZE_CODING, TargetStats, get_task, seed_size_loss
from tests.helpers import seed_pass


def _paper_resnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("resnet18-hag", 1, gate_init="xavier", head_hidden=128, dropout=0.0).eval()


def test_resnet18_hag_paper_head_is_the_closed_form() -> None:
    """Stage gates opened fully (logit 40: sigmoid is 1.0 in float32), the model is the plain ResNet-18 encoder
    followed by out = W3 (s2 * relu(W2 (s1 * e) + b2)) + b3, s = sigmoid of the embedding and hidden gates."""
    model = _paper_resnet()
    plain = create_model("resnet18", 1, head_hidden=128, dropout=0.0).eval()
    plain.encoder.backbone.load_state_dict(model.encoder.backbone.state_dict())
    with torch.no_grad():
        for gate in model.encoder.gates:
            gate.logit.fill_(40.0)
    x = torch.randn(2, 3, 64, 64)
    e = plain.encoder(x)
    s1, s2 = torch.sigmoid(model.embed_gate.logit), torch.sigmoid(model.head.gate.logit)
    w2, b2 = model.head.hidden[0].weight, model.head.hidden[0].bias
    w3, b3 = model.head.out.weight, model.head.out.bias
    expected = (s2 * torch.relu((s1 * e) @ w2.T + b2)) @ w3.T + b3
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-5)
        assert torch.equal(model.encoder(x), e)
    assert model.head.hidden[0].out_features == 128 and isinstance(model.head.drop, nn.Identity)
    assert [g.num_features for g in model.modules() if isinstance(g, Gate)] == [64, 128, 256, 512, 512, 128]


def test_xavier_gate_logits_follow_the_seed_draw() -> None:
    """N(0, 2 / (n + 1)) per logit: sigmoid(logit) centred on 0.5 (the seed's "centred around 0.50")."""
    draws = torch.cat([gate_parameters(_paper_resnet(seed))[3].detach() for seed in range(8)])  # the 512-d gate
    assert abs(float(draws.std()) / math.sqrt(2 / (512 + 1)) - 1) < 0.05  # xavier_normal_ of (1, n): 2 / (n + 1)
    assert abs(float(torch.sigmoid(draws).mean()) - 0.5) < 0.01
    zeros = create_model("resnet18-hag", 1)
    assert all(torch.equal(p, torch.zeros_like(p)) for p in gate_parameters(zeros))


def test_paper_target_scaling_and_decoding() -> None:
    sizes = torch.tensor([0.5, 10.25, 20.0, 5.0])
    assert torch.allclose(PAPER_SIZE_CODING.encode(sizes), torch.tensor([-1.0, 0.0, 1.0, -0.5384615]))
    raw = torch.tensor([[-1.0], [0.0], [1.0], [1.5], [-3.0]])
    assert torch.allclose(PAPER_SIZE_CODING.decode(raw), torch.tensor([0.5, 10.25, 20.0, 22.0, 0.5]))


def test_seed_losses_are_smooth_l1_with_weights_that_never_fire_on_scaled_targets() -> None:
    out, target = torch.randn(64), torch.rand(64) * 2 - 1  # every scaled size of 0.5-20 mm lies in [-1, 1]
    for main_or_gate in (seed_size_loss(3.0, 5.0), seed_size_loss(5.0, 10.0)):
        assert torch.equal(main_or_gate(out, target), F.smooth_l1_loss(out, target))
    big = torch.tensor([0.0, 6.0, 12.0])  # targets in mm would trigger them: 1, 3 and 5 times the term
    per = F.smooth_l1_loss(torch.zeros(3), big, reduction="none")
    assert torch.allclose(seed_size_loss(3.0, 5.0)(torch.zeros(3), big), (per * torch.tensor([1.0, 3.0, 5.0])).mean())
    objective = get_task("regression-paper").objective(load_config("resnet18-hag-paper"), TargetStats())
    raw, mm = torch.randn(8, 1), torch.rand(8) * 19.5 + 0.5
    assert torch.allclose(objective.loss(raw, mm), F.smooth_l1_loss(raw[:, 0], (mm - 10.25) / 9.75))
    assert torch.allclose(objective.gate_loss(raw, mm), objective.loss(raw, mm))


@pytest.mark.parametrize("name", ["resnet18-paper", "resnet18-hag-paper", "vit-tiny-paper", "vit-tiny-hag-paper"])
def test_paper_configs_use_the_seed_model_and_loss(name: str) -> None:
    cfg = load_config(name)
    assert cfg.task == "regression-paper"
    assert cfg.model_kwargs.get("dropout", 0.0) == 0.0
    gated = cfg.model.endswith("-hag")
    assert cfg.gr_mode == ("paper" if gated else "off")
    if gated:
        assert cfg.model_kwargs["gate_init"] == "xavier"
    assert cfg.model_kwargs["head_hidden"] == (0 if cfg.model.startswith("vit") else 128)


@pytest.mark.parametrize("name", ["resnet18-paper", "resnet18-hag-paper", "vit-tiny-paper", "vit-tiny-hag-paper"])
def test_rgb_paper_configs_take_the_seeds_crop(name: str) -> None:
    """The seed's released R18 / ViT-T configs: the whole frame at 384, circular FOV mask of radius 1, PairedTCombo1
    and the dataset normalisation; the model takes the expanded box crop (stream box_crop) as its one tensor."""
    cfg = load_config(name)
    for augment in (True, False):
        spec = cfg.pixel_spec(augment)
        assert (spec.streams, spec.frame, spec.fov_mask, spec.augment_recipe, spec.normalize, spec.size) == (
            ("box_crop",), "full", True, "seed", "seed", 384)
    assert cfg.pixel_spec(True).noise == 0.01 and cfg.pixel_spec().noise == 0.0
    # predict / the board run a checkpoint of it on the same pixels (the training augmentation is no part of it)
    predicted = frames_config(cfg.inference(), ["prepared"]).pixel_spec()
    assert predicted.replace(augment_recipe="seed") == cfg.pixel_spec()
    small = load_config(name, ["img_size=32"])
    model = create_model(small.model, 1, **small.model_kwargs).eval()
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 10:16] = 1
    pixels = Pixels(torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8), None,
                    small.pixel_spec().mean, small.pixel_spec().std, mask=mask, fov=True)
    x = build_streams(pixels, small.pixel_spec().streams)
    assert isinstance(x, torch.Tensor) and x.shape == (2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 1)


def _seed_sequence(model: nn.Module, x: torch.Tensor, y: torch.Tensor, main_opt: torch.optim.Optimizer,
                   gate_opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, clip: float) -> None:
    """The reference trainer's iteration, written out independently: zero both optimizers once; gate pass then main
    pass, each: forward, scaled backward into every parameter, unscale ONE optimizer, clip the joint norm of all
    parameters, NaN to zero, scaler step of that optimizer, scaler update."""
    main_opt.zero_grad()
    gate_opt.zero_grad()
    for opt in (gate_opt, main_opt):
        seed_pass(model, F.smooth_l1_loss(model(x)[:, 0], y), opt, scaler, clip)


def test_paper_amp_reproduces_the_reference_scaler_sequence_and_changes_the_gate_update() -> None:
    torch.manual_seed(0)
    base = create_model("tiny-hag", 1, gate_init="xavier")
    x, y = torch.randn(8, 3, 32, 32), torch.rand(8) * 2 - 1
    ours, ref, unscaled = copy.deepcopy(base), copy.deepcopy(base), copy.deepcopy(base)
    loss = lambda out, t: F.smooth_l1_loss(out[:, 0], t)  # noqa: E731
    opts = {id(m): build_optimizers(m, 1e-3, 1e-2, gr_mode="paper") for m in (ours, ref, unscaled)}
    ours_scaler, ref_scaler = (torch.amp.GradScaler("cpu", init_scale=2.0**16) for _ in range(2))
    for step in range(3):  # the same dropout masks for the three models: the same seed before each step
        torch.manual_seed(step)
        train_step(ours, x, y, loss, *opts[id(ours)], gr_mode="paper", clip_main=1.0, clip_gate=1.0,
                   scaler=ours_scaler)
        main, gate = opts[id(ref)]
        assert gate is not None
        torch.manual_seed(step)
        _seed_sequence(ref, x, y, main, gate, ref_scaler, 1.0)
        torch.manual_seed(step)
        train_step(unscaled, x, y, loss, *opts[id(unscaled)], gr_mode="paper", clip_main=1.0, clip_gate=1.0)
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)
    start = torch.cat([g.detach().flatten() for g in gate_parameters(base)])
    moved = torch.cat([g.detach().flatten() for g in gate_parameters(ours)]) - start
    clean = torch.cat([g.detach().flatten() for g in gate_parameters(unscaled)]) - start
    assert float((moved - clean).norm() / clean.norm()) > 0.1  # the mixed clip changes the gates' updates
