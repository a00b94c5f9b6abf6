"""One owner for the image size, the crop margin and the normalisation (each model's registered input defaults,
as timm's default_cfg), and one pixel spec per training config that the loaders, model_input and the device
augmentation follow."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import polypbench
from polypbench.errors import ConfigError
from polypbench.load import PixelSpec
from polypbench.models import create_model, default_cfg, list_models, register_model
from polypbench.models import registry as model_registry
from polypbench.models.tiny import tiny
from polypbench.train.batch import collate
from polypbench.train.config import from_dict, load_config
from polypbench.train.data import SampleTransform, model_input
from polypbench.train.device_augment import DeviceAugment

SMALL = PixelSpec(size=32, margin=0.25, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture
def small_model() -> Iterator[str]:
    """A model registered with other input defaults than the reference's."""
    name = "tiny-small-input"
    register_model(name, SMALL)(tiny)
    yield name
    del model_registry._MODELS[name], model_registry._DEFAULTS[name]


def test_a_config_without_img_size_or_margin_takes_the_models(small_model: str) -> None:
    cfg = from_dict({"model": small_model})
    assert (cfg.img_size, cfg.margin) == (32, 0.25)
    assert from_dict(cfg.to_dict()) == cfg  # what a run saves holds the numbers
    assert (from_dict({"model": small_model, "img_size": 48, "margin": 0.0}).img_size,
            from_dict({"model": small_model, "margin": 0.0}).margin) == (48, 0.0)
    spec = cfg.pixel_spec()
    assert (spec.size, spec.margin, spec.decode_size, spec.mean, spec.std) == (32, 0.25, 32, SMALL.mean, SMALL.std)
    for name in list_models():  # every registered model has its defaults; the reference ones are 384 and 0.5
        assert (from_dict({"model": name}).img_size, from_dict({"model": name}).margin) == (
            default_cfg(name).size, default_cfg(name).margin)
    assert (default_cfg("resnet18-hag").size, default_cfg("resnet18-hag").margin) == (384, 0.5)
    assert default_cfg("multistream").streams == ("rgb", "masked") and default_cfg("tiny").streams is None
    with pytest.raises(ConfigError, match="unknown model 'resnet50'; expected one of: multistream"):
        default_cfg("resnet50")


def test_vit_takes_its_registered_input_size() -> None:
    model = create_model("vit-tiny", 1)
    assert model.backbone.patch_embed.img_size == (default_cfg("vit-tiny").size,) * 2


@pytest.mark.parametrize(("overrides", "source", "where"), [
    (["augment=true"], "auto", "loader"),
    (["augment=false"], "auto", "none"),
    (["augment=true", "device_augment=true"], "auto", "device"),
    (["augment=true", "device_augment=true", "device_decode=true"], "device", "device"),
    (["augment=false", "device_augment=true", "device_decode=true"], "auto", "none"),  # nothing to decode there
])
def test_a_config_is_one_pixel_spec(overrides: list[str], source: str, where: str) -> None:
    cfg = load_config("demo", [*overrides, "model=multistream-hag"])
    train = cfg.pixel_spec(cfg.augment)
    assert (train.source, train.augment, train.size, train.margin, train.context) == (source, where, 64, 0.25, True)
    assert train.streams == ("rgb", "masked")  # the model's default streams
    evaluate = cfg.pixel_spec()
    assert (evaluate.source, evaluate.augment) == ("auto", "none")
    assert (DeviceAugment.for_spec(train) is not None) == (where == "device")
    assert cfg.pixel_spec().replace(streams=None) == load_config("demo", overrides).pixel_spec()
    assert load_config("demo", [*overrides, "model_kwargs={streams: [rgb]}"]).pixel_spec().streams == ("rgb",)


def test_config_combinations_are_the_specs_to_check() -> None:
    with pytest.raises(ConfigError, match="device_decode: true needs device_augment: true"):
        load_config("demo", ["device_decode=true"])
    with pytest.raises(ConfigError, match="stream 'infrared' is not built by the pixel pipeline"):
        load_config("demo", ["model_kwargs={streams: [rgb, infrared]}"])


def test_model_input_builds_the_specs_streams_with_its_normalisation() -> None:
    g = torch.Generator().manual_seed(0)
    samples = [{"image": torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8, generator=g),
                "boxes": torch.tensor([[2.0, 2.0, 6.0, 5.0]]), "size_mm": torch.tensor(4.0)} for _ in range(2)]
    batch = collate(samples)
    unit = batch.image.float() / 255 if batch.image is not None else None
    assert unit is not None
    x = model_input(batch, SMALL, torch.device("cpu"))
    assert isinstance(x, torch.Tensor) and torch.equal(x, (unit - 0.5) / 0.25)
    both = model_input(batch, SMALL.replace(streams=("masked", "rgb")), torch.device("cpu"))
    assert isinstance(both, dict) and list(both) == ["masked", "rgb"] and torch.equal(both["rgb"], x)
    assert torch.equal(both["masked"][:, :, 2:5, 2:6], x[:, :, 2:5, 2:6])
    assert torch.equal(both["masked"][:, :, 0], torch.full_like(x[:, :, 0], -2.0))  # zero, normalised
    # SampleTransform's batches come normalised, streams and all: passed on as they are
    ready = collate([SampleTransform(8, augment=False)(dict(s, image=s["image"].clone())) for s in samples])
    passed = model_input(ready, PixelSpec(streams=("rgb", "masked")), torch.device("cpu"))
    assert isinstance(passed, dict) and ready.masked is not None and torch.equal(passed["masked"], ready.masked)
    with pytest.raises(ConfigError, match="a batch of JPEG bytes .source 'device'. needs the device's "
                                          "augmentation"):
        model_input(collate([{"jpeg": torch.zeros(4, dtype=torch.uint8)}]), SMALL, torch.device("cpu"))


def _numeric_defaults(path: Path) -> Iterator[str]:
    """``img_size``, ``margin`` and ``size`` defaults written as numbers: function arguments and class fields."""
    names = ("img_size", "margin", "size")
    for node in ast.walk(ast.parse(path.read_text())):
        pairs: list[tuple[str, ast.expr | None]] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = [*node.args.posonlyargs, *node.args.args]
            pairs += [(a.arg, d) for a, d in zip(args[len(args) - len(node.args.defaults):], node.args.defaults,
                                                 strict=True)]
            pairs += [(a.arg, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            pairs.append((node.target.id, node.value))
        for name, default in pairs:
            if name in names and isinstance(default, ast.Constant) and type(default.value) in (int, float):
                yield f"{path.name}: {name}={default.value}"


def test_the_models_and_the_trainer_read_size_and_margin_from_their_owner() -> None:
    """No literal 384 or 0.5 default in models/ or train/: the model's registered input is the owner."""
    root = Path(polypbench.__file__).parent
    found = [hit for folder in ("models", "train") for path in sorted((root / folder).rglob("*.py"))
             for hit in _numeric_defaults(path)]
    assert found == []
