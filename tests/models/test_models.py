"""Every registered model: shapes, gate placement and init, gates act, weights files, determinism."""

from __future__ import annotations

import pytest
import torch

from polypbench.errors import ConfigError
from polypbench.models import Gate, create_model, gate_parameters, list_models
from tests.models.helpers import build, inputs

MODELS = list_models()
STAGES = [(64, 1), (128, 1), (256, 1), (512, 1)]
# (num_features, dim) of every gate, in module order: the paper's placement.
EXPECTED_GATES: dict[str, list[tuple[int, int]]] = {
    "resnet18": [],
    "resnet18-hag": [*STAGES, (512, -1), (256, -1)],
    "multistream": [],
    "multistream-hag": [*STAGES, *STAGES, (1024, -1), (256, -1)],
    "vit-tiny": [],
    "vit-tiny-hag": [(192, -1)] * 24,
    "tiny": [],
    "tiny-hag": [(16, 1), (32, 1), (64, 1), (64, -1), (64, -1)],
}
FEATURE_DIM = {"resnet18": 512, "multistream": 1024, "vit-tiny": 192, "tiny": 64}


def _family(name: str) -> str:
    return name.removesuffix("-hag")


def test_every_model_has_expectations() -> None:
    assert set(EXPECTED_GATES) == set(MODELS)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("num_outputs", [1, 3])
def test_output_and_feature_shapes(name: str, num_outputs: int) -> None:
    model = build(name, num_outputs).eval()
    x = inputs(name, batch=2)
    with torch.no_grad():
        assert model(x).shape == (2, num_outputs)
        assert model.forward_features(x).shape == (2, FEATURE_DIM[_family(name)])


@pytest.mark.parametrize("name", MODELS)
def test_gate_placement_and_count(name: str) -> None:
    model = build(name)
    gates = [m for m in model.modules() if isinstance(m, Gate)]
    assert [(g.num_features, g.dim) for g in gates] == EXPECTED_GATES[name]
    assert len(gate_parameters(model)) == len(gates)
    if name == "vit-tiny-hag":
        assert all(isinstance(b.ls1, Gate) and isinstance(b.ls2, Gate) for b in model.backbone.blocks)


def test_multistream_gates_scale_with_streams() -> None:
    model = build("multistream-hag", streams=("rgb", "masked", "depth"))
    assert len(gate_parameters(model)) == 4 * 3 + 2
    x = inputs("multistream-hag", streams=("rgb", "masked", "depth"))
    assert model.eval()(x).shape == (2, 1)


@pytest.mark.parametrize("name", [n for n in MODELS if n.endswith("-hag")])
def test_gates_start_at_half_and_each_one_acts(name: str) -> None:
    model = build(name).eval()
    x = inputs(name, batch=1)
    gates = [m for m in model.modules() if isinstance(m, Gate)]
    with torch.no_grad():
        base = model(x)
        for i, gate in enumerate(gates):
            assert torch.equal(gate.value(), torch.full((gate.num_features,), 0.5))
            gate.logit.copy_(torch.randn(gate.num_features) * 3)
            assert not torch.allclose(model(x), base, atol=1e-6), f"gate {i} has no effect"
            gate.logit.zero_()
        assert torch.equal(model(x), base)


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_model(name: str) -> None:
    a, b = build(name, seed=3).eval(), build(name, seed=3).eval()
    x = inputs(name)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    c = build(name, seed=4).eval()
    with torch.no_grad():
        assert not torch.equal(a(x), c(x))


def test_tiny_model_takes_streams_like_multistream() -> None:
    model = build("tiny-hag", 3, streams=("rgb", "masked")).eval()
    assert model.streams == ("rgb", "masked") and len(gate_parameters(model)) == 3 * 2 + 2
    x = inputs("multistream-hag")
    with torch.no_grad():
        assert model(x).shape == (2, 3) and model.forward_features(x).shape == (2, 128)
    assert build("tiny").streams is None  # a plain tensor input, as resnet18
    with pytest.raises(ConfigError, match="stream 'loc'"):
        create_model("tiny", 1, streams=("rgb", "loc"))


def test_unknown_model_lists_registry() -> None:
    with pytest.raises(ConfigError) as err:
        create_model("resnet50", 1)
    assert "'resnet50'" in str(err.value) and all(n in str(err.value) for n in MODELS)


def test_single_stream_takes_a_tensor() -> None:
    model = build("multistream-hag", streams=("depth",)).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), model({"depth": x}))
    two = build("multistream").eval()
    with pytest.raises(ValueError, match="got Tensor"):
        two(torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize("name", ["resnet18", "vit-tiny-hag"])
def test_a_single_stream_model_takes_another_stream_in_place_of_rgb(name: str) -> None:
    """``streams=("box_crop",)``: the same network on that stream's tensor (the pipeline hands one stream's tensor
    itself); two streams or a ViT on a 1-channel stream are one-line errors."""
    plain, crop = build(name).eval(), build(name, streams=("box_crop",)).eval()
    assert plain.state_dict().keys() == crop.state_dict().keys()
    crop.load_state_dict(plain.state_dict())
    x = inputs(name)
    with torch.no_grad():
        assert torch.equal(plain(x), crop(x))
    with pytest.raises(ConfigError, match=r"streams \['rgb', 'masked'\] for a single-stream model; expected one"):
        build(name, streams=("rgb", "masked"))
    with pytest.raises(ConfigError, match="stream 'loc'"):
        build(name, streams=("loc",))


def test_single_stream_models_take_the_streams_channels() -> None:
    depth = build("resnet18", streams=("depth",)).eval()
    assert depth.encoder.backbone.conv1.in_channels == 1
    with torch.no_grad():
        assert depth(torch.randn(2, 1, 64, 64)).shape == (2, 1)
    with pytest.raises(ConfigError, match="stream 'depth' has 1 channel.s.; the ViT models take one 3-channel"):
        build("vit-tiny", streams=("depth",))


def test_unknown_stream_and_bad_input() -> None:
    with pytest.raises(ConfigError, match="stream 'loc'"):
        create_model("multistream", 1, streams=("rgb", "loc"))
    model = build("multistream").eval()
    with pytest.raises(ValueError, match=r"\['rgb', 'masked'\]"):
        model({"rgb": torch.zeros(1, 3, 64, 64)})
