"""MiDaS v2.1: names and shapes of the released state dict, frozen forward, strict loading, one-line errors.

The network is built once per module (ResNeXt-101: 105M parameters); inputs are 64x64.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from polypbench.errors import InputError
from polypbench.models.midas import WEIGHTS_URL, MidasNet, ResidualConvUnit, build_midas

KEYS = Path(__file__).resolve().parents[1] / "data" / "midas_v21_384_keys.csv"  # benchmarks/midas_keys.py


@pytest.fixture(scope="module")
def midas() -> MidasNet:
    torch.manual_seed(0)
    return build_midas(None)


def test_state_dict_matches_the_midas_repository(midas: MidasNet) -> None:
    with KEYS.open(newline="") as f:
        expected = {row["name"]: tuple(int(n) for n in row["shape"].split("x") if n) for row in csv.DictReader(f)}
    ours = {name: tuple(t.shape) for name, t in midas.state_dict().items()}
    assert len(expected) == 666
    assert sorted(ours.keys() - expected.keys()) == [] and sorted(expected.keys() - ours.keys()) == []
    assert {k: v for k, v in ours.items() if v != expected[k]} == {}


def test_forward_is_frozen_and_keeps_resolution(midas: MidasNet) -> None:
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        depth = midas(x)
    assert depth.shape == (2, 64, 64) and depth.dtype == torch.float32
    assert torch.isfinite(depth).all() and (depth >= 0).all()
    assert not any(p.requires_grad for p in midas.parameters())
    midas.train()  # e.g. from a parent module: the BatchNorm layers must keep their running statistics
    assert not any(m.training for m in midas.modules())
    with pytest.raises(ValueError, match="multiples of 32"):
        midas(torch.zeros(1, 3, 48, 64))


def test_residual_unit_rectifies_its_identity_branch() -> None:
    """MiDaS's in-place ReLU also rectifies the skip connection: with zero convolutions the unit is relu(x)."""
    unit = ResidualConvUnit(4)
    for p in unit.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(unit(x), torch.relu(x))


def test_weights_round_trip(midas: MidasNet, tmp_path: Path) -> None:
    """A state dict saved from our model, wrapped with an optimizer state as MiDaS's own ``load`` accepts and
    without BatchNorm counters (older checkpoints), loads strictly and computes."""
    state = dict(midas.state_dict())
    state["scratch.output_conv.4.bias"] = torch.tensor([0.5])  # so the loaded model's output is not all zeros
    saved = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "midas_v21_384.pt"
    torch.save({"model": saved, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]}}, path)
    loaded = build_midas(path)
    own = loaded.state_dict()
    assert own.keys() == state.keys()
    assert all(torch.equal(own[k], v) for k, v in state.items())
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    with torch.no_grad():
        depth = loaded(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)))
    assert depth.shape == (1, 64, 64) and torch.isfinite(depth).all() and (depth > 0).any()


def test_missing_weights_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "weights" / "midas_v21_384.pt"
    with pytest.raises(InputError) as err:
        build_midas(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    assert WEIGHTS_URL in message and "nothing is downloaded" in message


def test_other_state_dict_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(InputError, match=r"keys do not match.*midas_v21_384\.pt") as err:
        build_midas(path)
    assert "\n" not in str(err.value)
