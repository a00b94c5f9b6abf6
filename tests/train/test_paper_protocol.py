"""The -paper training protocol against the HAG/GR seed code (cosmoimd/feature-selection-gates), row by row:
the ``paper`` step bit for bit against a restatement of the seed's ``Trainer.fit`` iteration (its model's
parameter order, its float32 target scaler, its two passes and one GradScaler), the per-batch warm-restart LR
curve, the sampler rule, the seed's SUN frame set and the offline ImageNet weights.

The restatements below are written from reading the seed (file:line in each docstring), not imported: the seed
is not a dependency."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts
from torchvision.models import resnet18

from polypbench.errors import ConfigError, InputError
from polypbench.load.sampler import FramesPerPolyp
from polypbench.models import create_model, imagenet_weights
from polypbench.train import load_config
from polypbench.train.routing import build_optimizers, reference_order, train_step
from polypbench.train.schedule import build_schedule
from polypbench.train.tasks import PAPER_SIZE_CODING, TargetStats, get_task
from tests.helpers import seed_pass

LAYERS = ("layer1", "layer2", "layer3", "layer4")
SIZES = torch.tensor([1.0, 3.0, 5.5, 6.0, 7.5, 10.0, 15.0, 20.0])  # 5.5-15 mm: where (s - 10.25) / 9.75 is 1 ulp off


class SeedFSGNetR18(nn.Module):
    """The seed's FSGNetR18 (modules/models/multi_stream_nets.py:95-294) restated: twelve stage gates and fsag_L1 /
    fsag_L2 as parameters of the model itself (so ``parameters()`` lists them first), one torchvision ResNet-18
    per active branch (a new 1-channel conv1 for depth, fc = Identity), gates after every stage, then
    ``fc3(sigmoid(L2) * relu(fc2(sigmoid(L1) * cat(embeddings))))``."""

    def __init__(self, branches: dict[str, int], hidden: int = 128) -> None:
        super().__init__()
        for branch in ("rgb", "mask", "depth"):
            for layer, dim in zip(LAYERS, (64, 128, 256, 512), strict=True):
                setattr(self, f"fsag_{branch}_{layer}", nn.Parameter(torch.zeros(dim)))
        self.branches = nn.ModuleDict()
        for name, channels in branches.items():
            net = resnet18(weights=None)
            if channels != 3:
                net.conv1 = nn.Conv2d(channels, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)
            net.fc = nn.Identity()
            self.branches[name] = net
        dim = 512 * len(branches)
        self.fsag_L1 = nn.Parameter(torch.zeros(dim))
        self.fsag_L2 = nn.Parameter(torch.zeros(hidden))
        self.fsag_rectifier = nn.Sigmoid()
        self.fc2 = nn.Linear(dim, hidden)
        self.fc3 = nn.Linear(hidden, 1)

    def forward(self, rgb: Any = None, mask: Any = None, depth: Any = None) -> torch.Tensor:
        inputs = {"rgb": rgb, "mask": mask, "depth": depth}
        features = []
        for name, b in self.branches.items():
            x = b.maxpool(b.relu(b.bn1(b.conv1(inputs[name]))))
            for layer in LAYERS:
                x = getattr(b, layer)(x) * self.fsag_rectifier(getattr(self, f"fsag_{name}_{layer}")).view(1, -1, 1, 1)
            features.append(torch.flatten(b.avgpool(x), 1))
        x = torch.relu(self.fc2(torch.cat(features, dim=1) * self.fsag_rectifier(self.fsag_L1)))
        return self.fc3(x * self.fsag_rectifier(self.fsag_L2))


def seed_twin(ours: nn.Module) -> SeedFSGNetR18:
    """The seed model holding our multistream-hag (streams masked, depth) weights: ``masked`` is its ``mask``."""
    seed = SeedFSGNetR18({"mask": 3, "depth": 1})
    state = {}
    for stream, branch in (("masked", "mask"), ("depth", "depth")):
        enc = ours.encoders[stream]
        state.update({f"branches.{branch}.{k}": v for k, v in enc.backbone.state_dict().items()})
        state.update({f"fsag_{branch}_{layer}": g.logit for layer, g in zip(LAYERS, enc.gates, strict=True)})
    state.update({"fsag_L1": ours.embed_gate.logit, "fsag_L2": ours.head.gate.logit,
                  "fc2.weight": ours.head.hidden[0].weight, "fc2.bias": ours.head.hidden[0].bias,
                  "fc3.weight": ours.head.out.weight, "fc3.bias": ours.head.out.bias})
    missing, _ = seed.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=False)
    assert sorted(missing) == [f"fsag_rgb_{layer}" for layer in LAYERS]  # the unused rgb gates, as in the seed
    return seed


def seed_scale(target: torch.Tensor) -> torch.Tensor:
    """utils.py:212-224, ``Scaler.scale``: min-max from [0.5, 20] to [-1, 1], on the float32 targets."""
    return (((target - 0.5) / 19.5) * 2 + -1).type(torch.float32)


def weighted_combined_loss(alpha: float, beta: float, gamma: float, t1: float, w1: float, t2: float,
                           w2: float) -> Any:
    """modules/losses/weighted_size_combined_loss.py, ``WeightedCombinedLoss.forward``."""

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        combined = (alpha * F.l1_loss(out, target, reduction="none") + beta * F.mse_loss(out, target, reduction="none")
                    + gamma * F.smooth_l1_loss(out, target, reduction="none"))
        large_1, large_2 = target > t1, target >= t2
        weights = torch.ones_like(combined)
        weights[large_1 & ~large_2] *= w1
        weights[large_2] *= w2
        return (combined * weights).mean()

    return loss


MAIN_LOSS = weighted_combined_loss(0.0, 0.0, 1.0, 5.0, 3.0, 10.0, 5.0)  # config_resnet18_FSAG_LOC_DPT.yml:127-134
GR_LOSS = weighted_combined_loss(0, 0, 1, 5.0, 5.0, 10.0, 10.0)  # runners/build_configuration.py:148


def seed_iteration(model: SeedFSGNetR18, mask: torch.Tensor, depth: torch.Tensor, sizes: torch.Tensor,
                   optimizer: torch.optim.Optimizer, grofs: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   clip_grad: float, clip_gr_grad: float) -> None:
    """One iteration of runners/trainer.py ``Trainer.fit`` (393-528) with FSAG on: scale the targets, zero both
    optimizers once; pass 0 (gates): forward, GR loss, scaled backward, unscale the GROFS optimizer, clip the
    joint norm of ``model.parameters()``, NaN to zero, scaler step GROFS, scaler update; pass 1 (main): the same
    with the main loss and the main optimizer."""
    targets = seed_scale(sizes)
    optimizer.zero_grad()
    grofs.zero_grad()
    for grad_routing in range(2):
        outputs = model(None, mask, depth).squeeze().view(-1)
        targets = targets.view(-1)
        loss_fn, opt, clip = (MAIN_LOSS, optimizer, clip_grad) if grad_routing % 2 == 1 else (GR_LOSS, grofs,
                                                                                              clip_gr_grad)
        seed_pass(model, loss_fn(outputs, targets), opt, scaler, clip)


def seed_optimizers(model: SeedFSGNetR18, lr: float, gate_lr: float,
                    weight_decay: float) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """runners/build_configuration.py:157-185: Adam over every non-'fsag' parameter; Adam over the gates of the
    active prefixes (LOC: fsag_mask_, fsag_rgb_, fsag_depth_) plus fsag_L1, fsag_L2."""
    main = torch.optim.Adam([p for n, p in model.named_parameters() if "fsag" not in n], lr=lr,
                            weight_decay=weight_decay)
    prefixes = ("fsag_mask_", "fsag_rgb_", "fsag_depth_")
    gates = [p for n, p in model.named_parameters() if n.startswith(prefixes)]
    gates.extend(p for n, p in model.named_parameters() if n in ("fsag_L1", "fsag_L2"))
    return main, torch.optim.Adam(gates, lr=gate_lr)


@pytest.fixture(scope="module")
def fsg_r18() -> tuple[nn.Module, SeedFSGNetR18]:
    """Our multistream-hag on the released FSG-R18's streams (masked, depth) with the seed's head and gate init,
    and the seed's model holding the same weights (built once; tests take copies)."""
    torch.manual_seed(0)
    ours = create_model("multistream-hag", 1, streams=("masked", "depth"), gate_init="xavier", head_hidden=128,
                        dropout=0.0)
    return ours, seed_twin(ours)


@pytest.mark.parametrize("scale", [None, 2.0**16], ids=["no-scaler", "scaler-2^16"])
def test_paper_step_is_bit_identical_to_the_seed_iteration(fsg_r18: tuple[nn.Module, SeedFSGNetR18],
                                                           scale: float | None) -> None:
    """Our gr_mode=paper step (regression-paper coding and losses, gate-first clip order) on the released FSG-R18's
    streams equals the seed's iteration exactly, on sizes across 1-20 mm. Without a scaler is the seed on a
    machine without CUDA (its torch.cuda.amp GradScaler disables itself: no scaling); the clips are set low so
    that they act (a clip that does not act cannot show its summation order)."""
    ours, seed = (copy.deepcopy(m).train() for m in fsg_r18)
    start = {k: v.clone() for k, v in seed.state_dict().items()}
    cfg = load_config("resnet18-hag-paper")
    objective = get_task("regression-paper").objective(cfg, TargetStats())
    main, gate = build_optimizers(ours, cfg.lr, cfg.gate_lr, gr_mode="paper", weight_decay=cfg.weight_decay)
    seed_main, seed_gate = seed_optimizers(seed, cfg.lr, cfg.gate_lr, cfg.weight_decay)
    clip_main, clip_gate = (8.0, 8.0) if scale else (0.05, 0.02)

    def scaler() -> torch.amp.GradScaler:
        return torch.amp.GradScaler("cpu", init_scale=scale or 1.0, enabled=scale is not None)

    our_scaler, seed_scaler = scaler(), scaler()
    g = torch.Generator().manual_seed(1)
    for _ in range(2):
        mask, depth = torch.rand(8, 3, 16, 16, generator=g), torch.rand(8, 1, 16, 16, generator=g)
        sizes = SIZES[torch.randperm(8, generator=g)]
        train_step(ours, {"masked": mask, "depth": depth}, sizes, objective.loss, main, gate, gr_mode="paper",
                   gate_loss_fn=objective.gate_loss, clip_main=clip_main, clip_gate=clip_gate,
                   scaler=our_scaler if scale else None)
        seed_iteration(seed, mask, depth, sizes, seed_main, seed_gate, seed_scaler, clip_main, clip_gate)
    expected = seed_twin(ours).state_dict()
    for name, value in seed.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert not torch.equal(start["fc3.weight"], expected["fc3.weight"])  # the steps moved the weights
    assert not torch.equal(start["fsag_L2"], expected["fsag_L2"])


def test_paper_coding_is_the_seed_scaler_in_float32() -> None:
    sizes = torch.arange(0.5, 20.01, 0.5)
    assert torch.equal(PAPER_SIZE_CODING.encode(sizes), seed_scale(sizes))
    raw = torch.linspace(-1.2, 1.3, 101)
    seed = ((raw - -1) / 2) * 19.5 + 0.5  # utils.py:238-245, Scaler.inverse_scale, clipped to [0.5, 22]
    seed = torch.where(seed < 0.5, 0.5 * torch.ones_like(seed), seed)
    seed = torch.where(seed > 20.0 * 1.10, 20.0 * 1.10 * torch.ones_like(seed), seed)
    assert torch.equal(PAPER_SIZE_CODING.decode(raw[:, None]), seed)


def test_clip_order_is_the_seed_models_order(fsg_r18: tuple[nn.Module, SeedFSGNetR18]) -> None:
    """ResNet models: gates first (the seed's root-level fsag parameters), then the rest in module order; ViT:
    each block's two gates before its layers (the seed Block's own fsag_rgb_ls1/ls2)."""
    ours, seed = fsg_r18
    seed_shapes = [p.shape for n, p in seed.named_parameters() if not n.startswith("fsag_rgb_")]
    assert [p.shape for p in reference_order(ours)] == seed_shapes
    vit = create_model("vit-tiny-hag", 1, img_size=32, head_hidden=0)
    names = {id(p): n for n, p in vit.named_parameters()}
    order = [names[id(p)] for p in reference_order(vit)]
    assert sorted(order) == sorted(names.values())
    block = [n.removeprefix("backbone.blocks.0.") for n in order if n.startswith("backbone.blocks.0.")]
    assert block[:3] == ["ls1.logit", "ls2.logit", "norm1.weight"]
    assert order[:2] == ["backbone.cls_token", "backbone.pos_embed"] and order[-1] == "head.out.bias"


def test_cosine_restarts_follow_torch_stepped_as_the_seed_steps() -> None:
    """lr_schedule cosine_restarts: the rate every batch sees equals torch's CosineAnnealingWarmRestarts stepped
    after every batch at epoch + i / n (runners/trainer.py:588, modules/schedulers/cosine_annealing_warm_restarts.py
    65-70), across a restart; the gate rate stays put with lr_schedule_gates false (the seed's FSAG_LR: False)."""
    n, epochs, t0, lr, min_lr = 7, 5, 2, 2e-4, 5e-6
    ours_opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=lr)
    ref_opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=lr)
    schedule = build_schedule("cosine_restarts", [ours_opt], epochs * n, steps_per_epoch=n, t0=t0, min_lr=min_lr)
    reference = CosineAnnealingWarmRestarts(ref_opt, T_0=t0, T_mult=1, eta_min=min_lr)
    seen, expected = [], []
    for epoch in range(epochs):
        for i in range(n):
            seen.append(ours_opt.param_groups[0]["lr"])
            expected.append(ref_opt.param_groups[0]["lr"])
            assert schedule is not None
            schedule.step()
            reference.step(epoch + i / n)
    assert seen == expected and seen[0] == lr
    assert min(seen) < 2e-5 and max(seen[n * t0:]) == pytest.approx(lr, rel=1e-3)  # fell, then restarted
    state = schedule.state_dict()
    resumed = build_schedule("cosine_restarts", [ours_opt], epochs * n, steps_per_epoch=n, t0=t0, min_lr=min_lr)
    assert resumed is not None
    resumed.load_state_dict(state)
    resumed.step()
    reference.step(epochs + 0 / n)
    assert ours_opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]


@pytest.mark.parametrize(
    "name", ["resnet18-hag-paper", "vit-tiny-hag-paper", "resnet18-paper", "vit-tiny-paper", "fsg-r18-loc-paper"])
def test_paper_configs_carry_the_seed_protocol(name: str) -> None:
    from polypbench.train.loop import build_state, uses_scaler

    cfg = load_config(name)
    assert (cfg.lr_schedule, cfg.lr_schedule_gates, cfg.frame_sampler) == ("cosine_restarts", False, "seed")
    assert (cfg.val_every, cfg.val_frames_per_polyp, cfg.weights, cfg.paper_amp) == (2, 300, "imagenet", "auto")
    assert cfg.lr_t0 in (None, cfg.epochs)
    min_lr = {"resnet18-hag-paper": 5e-6, "fsg-r18-loc-paper": 5e-6, "vit-tiny-hag-paper": 1e-5}
    assert min_lr.get(name, cfg.lr) == cfg.min_lr
    assert not uses_scaler(cfg) and uses_scaler(dataclasses.replace(cfg, device="cuda"))  # fp16 + scaler on CUDA
    if name == "resnet18-hag-paper":
        small = load_config(name, ["model_kwargs={gate_init: xavier, head_hidden: 8, dropout: 0.0}", "img_size=32"])
        state = build_state(small, create_model("tiny-hag", 1), steps_per_epoch=3)
        assert state.gate_opt is not None and state.scheduler is not None
        for _ in range(3):
            state.scheduler.step()
        assert state.gate_opt.param_groups[0]["lr"] == small.gate_lr
        assert state.main_opt.param_groups[0]["lr"] < small.lr


def test_frame_sampler_seed_rule() -> None:
    """min(N, available) frames per polyp without replacement; single-frame polyps skipped and counted
    (modules/datasets/sampler.py:96-123); the default rule pads with replacement."""
    keys = ["a"] * 10 + ["b"] * 3 + ["c"] + ["d"] * 5 + ["e"]
    seed = FramesPerPolyp(keys, 4, seed=0, rule="seed")
    assert seed.skipped == 2 and len(seed) == 4 + 3 + 4
    for epoch in range(3):
        seed.set_epoch(epoch)
        picked = list(seed)
        assert len(picked) == len(set(picked)) == len(seed)
        counts = {k: sum(keys[i] == k for i in picked) for k in "abcde"}
        assert counts == {"a": 4, "b": 3, "c": 0, "d": 4, "e": 0}
    plain = FramesPerPolyp(keys, 4, seed=0)
    assert plain.skipped == 0 and len(list(plain)) == 20
    subset = FramesPerPolyp(keys, 4, seed=0, rule="subset")  # validation: the rule without the skip
    assert len(list(subset)) == len(subset) == 13
    with pytest.raises(ConfigError, match="frame_sampler"):
        load_config("resnet18-hag-paper", ["frame_sampler=without"])


def test_seed_sun_frames_keeps_one_frame_per_image_number() -> None:
    """The seed keys SUN frames by (case, image number) and keeps the first (modules/datasets/dataset.py:862-866,
    1007); image numbers restart in every acquisition segment, frame_index = segment * 10000 + image number."""
    import pandas as pd

    from polypbench.prepare.sun import seed_frames

    rows = pd.DataFrame({"polyp_id": ["1"] * 5 + ["2"] * 2,
                         "frame_index": [20001, 20002, 100001, 100003, 20002, 10001, 20001]})
    kept, dropped = seed_frames(rows)
    assert dropped == 3
    assert kept["frame_index"].tolist() == [20001, 20002, 100003, 10001]


def test_weights_imagenet_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """weights: imagenet reads torchvision's file from the torch hub cache, never downloads; missing is one line
    naming the file."""
    from polypbench.models.weights import resolve_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    cached = imagenet_weights("resnet18-hag")
    assert cached is not None and cached.hub_file == "resnet18-f37072fd.pth"
    with pytest.raises(InputError) as err:
        resolve_weights("imagenet", "resnet18-hag", cached)
    text = str(err.value)
    assert "\n" not in text and str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in text
    vit = imagenet_weights("vit-tiny")
    assert vit is not None
    with pytest.raises(InputError, match="models--timm--vit_tiny_patch16_384.augreg_in21k_ft_in1k"):
        resolve_weights("imagenet", "vit-tiny", vit)
    with pytest.raises(ConfigError, match="no published ImageNet weights"):
        resolve_weights("imagenet", "tiny", imagenet_weights("tiny"))
    torch.manual_seed(0)
    source = create_model("resnet18", 1).encoder.backbone
    state = dict(source.state_dict())
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    torch.save({**state, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)},
               tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    path = resolve_weights("imagenet", "resnet18-hag", cached)
    assert path is not None
    loaded = create_model("multistream-hag", 1, streams=("masked", "depth"), weights=str(path))
    assert torch.equal(loaded.encoders["masked"].backbone.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert torch.equal(loaded.encoders["depth"].backbone.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    assert resolve_weights("none", "resnet18", cached) is None


def test_timm_still_names_our_vit_imagenet_file() -> None:
    from timm.models import get_pretrained_cfg

    vit = imagenet_weights("vit-tiny-hag")
    assert vit is not None and get_pretrained_cfg("vit_tiny_patch16_384").hf_hub_id == vit.hf_repo


def test_validation_subset_scored_per_polyp() -> None:
    """val_frames_per_polyp: a subset of each polyp's frames is scored per polyp (the mean of its frames)."""
    import pandas as pd

    from polypbench.train.loop import per_polyp
    from polypbench.train.tasks import Evaluation

    frame = pd.DataFrame({"polyp_id": ["a", "a", "b"], "frame_index": [1, 2, 1], "size_mm": [1.0, 3.0, 7.0]})
    ev = Evaluation("validation", frame, torch.zeros(3, 1), torch.zeros(3), torch.zeros(3))
    out = per_polyp(ev).predictions
    assert out.columns.tolist() == ["polyp_id", "size_mm"] and out["size_mm"].tolist() == [2.0, 7.0]


@pytest.mark.slow
def test_fit_with_the_seed_protocol_keys(prepared: dict[str, Any], tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """One tiny run with the seed's keys: SUN frames keyed by image number (the synthetic SUN repeats every image
    number once: half its boxes dropped, the count printed), validation at epochs 0, 2, ... on a per-polyp subset
    scored per polyp, warm restarts per batch; the seed's sampler on those single-frame polyps refuses in one
    line."""
    import logging

    import pandas as pd

    from polypbench.train import fit
    from polypbench.train.data import polyp_data

    keys = ["model=tiny-hag", "task=regression-paper", "gr_mode=paper", "img_size=32", "epochs=2", "batch_size=16",
            "frames_per_polyp_per_epoch=2", "n_bootstrap=0", "augment=false", f"prepared=[{prepared['sun'].out}]",
            "seed_sun_frames=true", "val_every=2", "val_frames_per_polyp=1", "lr_schedule=cosine_restarts",
            "min_lr=1e-4", "lr=1e-3"]
    cfg = load_config("demo", keys)
    full = polyp_data(load_config("demo", [*keys, "seed_sun_frames=false"]))
    data = polyp_data(cfg)
    n_train, n_kept = len(full.train.dataset), len(data.train.dataset)
    assert n_kept * 2 == n_train and f"seed_sun_frames: {n_train - n_kept} SUN train frames dropped" in data.notes[0]
    with caplog.at_level(logging.INFO, logger="polypbench"):
        summary = fit(cfg, tmp_path / "run")
    assert "SUN train frames dropped" in caplog.text
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert rows["val_loss"].notna().tolist() == [True, False] and summary.best_epoch == 0
    assert rows["val_polyp_mae_mm"].notna().tolist() == [True, False]  # scored per polyp on the subset
    assert rows["lr"].iloc[0] < 1e-3
    with pytest.raises(ConfigError, match="all .* training polyps have one; expected frame_sampler: replacement"):
        polyp_data(load_config("demo", [*keys, "frame_sampler=seed"]))
