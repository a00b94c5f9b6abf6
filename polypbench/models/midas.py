"""MiDaS v2.1 (the ``midas_v21_384.pt`` release): a frozen monocular relative-depth network for the depth stream.

The seed (cosmoimd/feature-selection-gates, ``runners/trainer.py``) loads ``torch.hub.load("intel-isl/MiDaS",
"MiDaS")``: the v2.1 "large" MidasNet. This module is the same network, written here from reading
isl-org/MiDaS (``midas/midas_net.py``, ``midas/blocks.py``, ``hubconf.py``), with the same parameter names and
shapes, so the official state dict loads strictly:

- ``pretrained.layer1..layer4``: the encoder, a ResNeXt-101 32x8d. ``layer1`` is the stem and first stage in one
  ``Sequential`` (``0`` conv1, ``1`` bn1, ``2`` relu, ``3`` maxpool, ``4`` layer1); ``layer2..4`` are the stages.
  It is built from torchvision's ``resnext101_32x8d(weights=None)``, the architecture of the WSL-Images
  ``resnext101_32x8d_wsl`` MiDaS was trained from (WSL's hub entry instantiates torchvision's ResNet).
- ``scratch.layer{1..4}_rn``: 3x3 convolutions (no bias) taking the four stages (256/512/1024/2048 channels) to 256.
- ``scratch.refinenet{4..1}``: feature-fusion blocks; each adds ``resConfUnit1`` of the skip feature (except the
  deepest, which has none), applies ``resConfUnit2``, and upsamples x2 (bilinear, ``align_corners=True``). A residual
  conv unit is ``r = relu(x); r + conv2(relu(conv1(r)))``: MiDaS's in-place ReLU also rectifies the identity branch,
  and the released weights were trained with that, so it is written out here.
- ``scratch.output_conv``: conv 256->128, x2 bilinear upsampling (``align_corners=False``, no parameters, index 1),
  conv 128->32, ReLU, 1x1 conv 32->1, ReLU (``non_negative=True``).

The output is relative inverse depth (larger = nearer), one map per image at the input resolution; H and W must be
multiples of 32. ``benchmarks/midas_keys.py`` derives the name/shape list of the reference implementation (checked
in as ``tests/data/midas_v21_384_keys.csv``) and compares its outputs with this module's on the same weights.

Input normalisation. The MiDaS release expects RGB in [0, 1] normalised with ImageNet statistics
(:data:`MIDAS_MEAN`, :data:`MIDAS_STD`; its ``transforms.default_transform`` and ``model_loader`` for
``midas_v21_384``), resized so the longer side is 384. The seed does NOT do that: it feeds MiDaS its own
network input, the frame normalised with its datasets' statistics (:data:`SEED_MIDAS_MEAN`, :data:`SEED_MIDAS_STD`,
from ``config_resnet18_FSAG_LOC_DPT.yml``; ``runners/trainer.py`` ``fit``), circular field-of-view mask applied
(zeros outside), the box expanded by 0.5 w / 0.5 h per side and resized bilinearly (``align_corners=True``) to
384x384, under fp16 autocast and ``no_grad``; it then masks the depth map with the same circle and min-max
normalises each map to [0, 1]. Those steps belong to the pixel pipeline (``polypbench.load``), which decides which
normalisation to feed.

Weights are never downloaded: :func:`build_midas` takes a path to ``midas_v21_384.pt`` (see :data:`WEIGHTS_URL`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnext101_32x8d

from polypbench.errors import InputError
from polypbench.load.common import IMAGENET_MEAN, IMAGENET_STD, SEED_MEAN, SEED_STD
from polypbench.models.weights import load_backbone

log = logging.getLogger(__name__)

WEIGHTS_FILE = "midas_v21_384.pt"
WEIGHTS_URL = "https://github.com/isl-org/MiDaS/releases/download/v2_1/midas_v21_384.pt"
MIDAS_MEAN, MIDAS_STD = IMAGENET_MEAN, IMAGENET_STD
"""The MiDaS release's own input normalisation of RGB in [0, 1]: ImageNet's (owned by :mod:`polypbench.load.common`)."""
SEED_MIDAS_MEAN, SEED_MIDAS_STD = SEED_MEAN, SEED_STD
"""What the seed actually feeds MiDaS: its network input, normalised with its polyp datasets' statistics."""
FEATURES = 256
STRIDE = 32  # H and W of the input must be multiples of this (the encoder's output stride)
ENCODER_CHANNELS = (256, 512, 1024, 2048)


class ResidualConvUnit(nn.Module):
    """Pre-activation residual unit: ``r = relu(x); r + conv2(relu(conv1(r)))`` (3x3 convs with bias)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FusionBlock(nn.Module):
    """RefineNet-style fusion: the coarser path plus the refined skip feature, refined again, upsampled x2."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features)  # noqa: N815  (the released state dict's name)
        self.resConfUnit2 = ResidualConvUnit(features)  # noqa: N815

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class Upsample(nn.Module):
    """Bilinear x2 upsampling as a module (it sits inside ``output_conv``, where the state dict keeps its index)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class Encoder(nn.Module):
    """ResNeXt-101 32x8d cut into the four feature stages MidasNet reads (strides 4, 8, 16, 32)."""

    def __init__(self) -> None:
        super().__init__()
        net = resnext101_32x8d(weights=None)
        self.layer1 = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        self.layer2 = net.layer2
        self.layer3 = net.layer3
        self.layer4 = net.layer4

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return f1, f2, f3, self.layer4(f3)


def _project(channels: int, features: int) -> nn.Conv2d:
    return nn.Conv2d(channels, features, kernel_size=3, padding=1, bias=False)


class Decoder(nn.Module):
    """MiDaS's ``scratch``: stage projections, four fusion blocks (deepest first) and the output head."""

    def __init__(self, features: int = FEATURES) -> None:
        super().__init__()
        c1, c2, c3, c4 = ENCODER_CHANNELS
        self.layer1_rn = _project(c1, features)
        self.layer2_rn = _project(c2, features)
        self.layer3_rn = _project(c3, features)
        self.layer4_rn = _project(c4, features)
        self.refinenet4 = FusionBlock(features)
        self.refinenet3 = FusionBlock(features)
        self.refinenet2 = FusionBlock(features)
        self.refinenet1 = FusionBlock(features)
        self.output_conv = nn.Sequential(
            nn.Conv2d(features, 128, kernel_size=3, padding=1),
            Upsample(),
            nn.Conv2d(128, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, kernel_size=1),
            nn.ReLU(),  # non-negative inverse depth
        )

    def forward(self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor, f4: torch.Tensor) -> torch.Tensor:
        path = self.refinenet4(self.layer4_rn(f4))
        path = self.refinenet3(path, self.layer3_rn(f3))
        path = self.refinenet2(path, self.layer2_rn(f2))
        path = self.refinenet1(path, self.layer1_rn(f1))
        return self.output_conv(path).squeeze(1)


class MidasNet(nn.Module):
    """MiDaS v2.1 (large): (B, 3, H, W) normalised RGB -> (B, H, W) relative inverse depth.

    Once :meth:`freeze` is called the network stays in eval mode: ``train()`` (e.g. from a parent module) does not
    switch its BatchNorm layers back to batch statistics.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pretrained = Encoder()  # the released state dict's names
        self.scratch = Decoder()
        self.frozen = False

    def freeze(self) -> MidasNet:
        """No gradients, eval mode, and eval mode kept through later ``train()`` calls."""
        self.requires_grad_(False)
        self.frozen = True
        return self.eval()

    def train(self, mode: bool = True) -> MidasNet:
        return super().train(mode and not self.frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % STRIDE or x.shape[3] % STRIDE:
            raise ValueError(f"MiDaS expects (B, 3, H, W) with H and W multiples of {STRIDE}; got {tuple(x.shape)}")
        return self.scratch(*self.pretrained(x))


def _complete(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Float32 tensors, and BatchNorm ``num_batches_tracked`` counters supplied (0) where a file has none, as torch
    does for older checkpoints; they are unused in eval mode."""
    out = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    added = 0
    for key in list(out):
        if key.endswith(".running_mean"):
            counter = key.removesuffix("running_mean") + "num_batches_tracked"
            if counter not in out:
                out[counter] = torch.tensor(0, dtype=torch.long)
                added += 1
    if added:
        log.info("MiDaS weights: %d BatchNorm num_batches_tracked counters absent, set to 0", added)
    return out


def build_midas(weights: str | Path | None) -> MidasNet:
    """The MiDaS v2.1 network, frozen (eval mode, no gradients).

    ``weights=None`` gives random initialisation (tests); a path loads ``midas_v21_384.pt`` strictly: a plain
    state dict, or one wrapped with its optimizer state (``{"model": ..., "optimizer": ...}``) as MiDaS's own
    ``load`` accepts. A missing file, or one that is not this network's state dict, is one :class:`InputError`.
    """
    if weights is None:
        return MidasNet().freeze()
    path = Path(weights)
    if not path.is_file():
        raise InputError(path, "MiDaS v2.1 weights file not found",
                         f"{WEIGHTS_FILE}, downloaded by you from {WEIGHTS_URL} (nothing is downloaded at run "
                         "time; a torch.hub user has it in ~/.cache/torch/hub/checkpoints/)")
    with torch.device("meta"):  # no random init of 105M parameters that the file replaces
        model = MidasNet()
    load_backbone(model, path, adapt=_complete, assign=True,
                  expected=f"the MiDaS v2.1 state dict {WEIGHTS_FILE} ({WEIGHTS_URL})")
    return model.freeze()
