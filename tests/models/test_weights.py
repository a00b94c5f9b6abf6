"""The ``weights=`` keyword: local torchvision/timm state dicts load into the backbone; bad files fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torchvision

from polypbench.errors import InputError
from polypbench.models import list_models
from polypbench.models.tiny import TinyEncoder
from tests.models.helpers import RES, build


def _checkpoint(name: str, path: Path) -> dict[str, torch.Tensor]:
    """A state dict as torchvision/timm would save it (with its own classifier; a tiny model's: its backbone's),
    written to ``path``."""
    torch.manual_seed(123)
    if name.startswith("vit"):
        net = timm.create_model("vit_tiny_patch16_384", pretrained=False, img_size=RES)
    elif name.startswith("tiny"):
        net = TinyEncoder().backbone
    else:
        net = torchvision.models.resnet18(weights=None)
    state = net.state_dict()
    torch.save(state, path)
    return state


def _backbones(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    if hasattr(model, "encoders"):
        return [(s, e.backbone) for s, e in model.encoders.items()]
    if hasattr(model, "encoder"):
        return [("rgb", model.encoder.backbone)]
    return [("rgb", model.backbone)]


@pytest.mark.parametrize("name", list_models())
def test_weights_round_trip(name: str, tmp_path: Path) -> None:
    path = tmp_path / "backbone.pth"
    state = _checkpoint(name, path)
    kw = {"streams": ("rgb", "depth")} if name.startswith("multistream") else {}
    model = build(name, weights=path, **kw)
    fresh = build(name, **kw)
    for stream, backbone in _backbones(model):
        own = backbone.state_dict()
        loaded = 0
        for key, value in state.items():
            if key not in own:  # the checkpoint's classifier, or a gate slot that replaced an Identity
                continue
            expected = value.sum(1, keepdim=True) if (stream == "depth" and key == "conv1.weight") else value
            assert torch.equal(own[key], expected), key
            loaded += 1
        assert loaded >= len(own) - 24, f"{stream}: only {loaded} of {len(own)} tensors came from the file"
    # and the file really changed something compared with random init
    first = next(iter(_backbones(model)[0][1].parameters()))
    assert not torch.equal(first, next(iter(_backbones(fresh)[0][1].parameters())))


@pytest.mark.parametrize("name", ["resnet18-hag", "vit-tiny-hag"])
def test_mismatched_weights_one_line_error(name: str, tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    _checkpoint("vit-tiny" if name.startswith("resnet") else "resnet18", path)
    with pytest.raises(InputError) as err:
        build(name, weights=path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "keys do not match" in msg


@pytest.mark.slow
def test_shape_mismatch_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    state = _checkpoint("resnet18", path)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, path)
    with pytest.raises(InputError, match="shape mismatch for layer1.0.conv1.weight"):
        build("resnet18", weights=path)
    with pytest.raises(InputError, match="weights file not found"):
        build("resnet18", weights=tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(InputError, match="cannot read weights"):
        build("resnet18", weights=tmp_path / "junk.pth")


def test_vit_384_checkpoint_loads_at_small_img_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_384", pretrained=False)
    torch.save({"state_dict": net.state_dict()}, tmp_path / "vit384.pth")  # wrapped, as many trainers save
    model = build("vit-tiny-hag", weights=tmp_path / "vit384.pth")
    assert model.backbone.pos_embed.shape == (1, 1 + (RES // 16) ** 2, 192)
    assert torch.equal(model.backbone.blocks[5].mlp.fc1.weight, net.blocks[5].mlp.fc1.weight)
