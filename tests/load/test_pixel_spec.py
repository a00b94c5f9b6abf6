"""The pixel pipeline chosen once: a PixelSpec checks every field and combination in one place (one line each,
listing the valid values), load_split reads a spec or its fields, and a stream is one table entry."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from polypbench.errors import ConfigError
from polypbench.load import IMAGENET_MEAN, IMAGENET_STD, PixelSpec, load_polyps, load_split
from polypbench.load.augment import LOADER_STEPS, UInt8Augment
from polypbench.load.spec import AUGMENTS
from polypbench.load.streams import STREAMS, Pixels, Stream, build_streams, register_stream
from polypbench.models import create_model
from tests.helpers import Prepared


@pytest.mark.parametrize(("fields", "message"), [
    ({"source": "disk"}, "unknown source 'disk'; expected one of: auto, device, raw, shards"),
    ({"augment": "gpu"}, "unknown augment 'gpu'; expected one of: device, loader, none"),
    ({"size": 0}, "size 0; expected a positive number of pixels or None (native crops)"),
    ({"size": True}, "size True; expected a positive number of pixels"),
    ({"decode_size": -3}, "decode_size -3; expected a positive number of pixels or None (full resolution)"),
    ({"margin": -0.1}, "margin -0.1; expected a number >= 0"),
    ({"margin": float("nan")}, "margin nan; expected a number >= 0"),
    ({"context": 1}, "context 1; expected true or false"),
    ({"mean": (0.5,)}, "mean (0.5,); expected three numbers, one per RGB channel"),
    ({"std": (0.2, 0.2, 0.0)}, "std (0.2, 0.2, 0.0); expected three numbers, one per RGB channel, each > 0"),
    ({"streams": ("rgb", "rgb")}, "expected distinct stream names, at least one (or None: one RGB tensor)"),
    ({"streams": ()}, "expected distinct stream names, at least one"),
    ({"streams": ("rgb", "infrared")}, "stream 'infrared' is not built by the pixel pipeline; expected streams "
                                       "from: box_crop, depth, masked, masked_frame, rgb"),
    ({"streams": ("depth",), "depth_weights": "random", "size": 40}, "stream 'depth' with size 40: the depth "
                                                                     "network takes sides that are multiples of 32"),
    ({"streams": ("masked_frame",), "augment": "device"}, "stream 'masked_frame' needs the box mask, which the "
                                                          "loader moves with the frame; expected augment 'none' or "
                                                          "'loader', not 'device'"),
    ({"frame": "window"}, "unknown frame 'window'; expected one of: crop, full"),
    ({"frame": "full", "source": "shards"}, "frame 'full' with source 'shards' and augment 'none': whole frames "
                                            "are read from the raw frames"),
    ({"augment_recipe": "timm"}, "unknown augment_recipe 'timm'; expected one of: polypbench, seed"),
    ({"normalize": "cifar"}, "unknown normalize 'cifar'; expected one of: imagenet, seed"),
    ({"normalize": "seed", "mean": (0.5, 0.5, 0.5)}, "normalize 'seed' with mean (0.5, 0.5, 0.5)"),
    ({"fov_mask": "yes"}, "fov_mask 'yes'; expected true or false"),
    ({"depth": "cache"}, "unknown depth 'cache'; expected one of: online, shards"),
    ({"augment": "loader", "size": None}, "augment 'loader' with size=None: the augmentation makes size x size "
                                          "crops; expected size=N"),
    ({"source": "device"}, "source 'device' hands out JPEG bytes that only the training device decodes and "
                           "augments; expected augment='device', not 'none' (in a training config: device_decode: "
                           "true needs device_augment: true)"),
])
def test_every_rule_fails_in_one_line_naming_the_field_and_what_is_valid(fields: dict[str, Any], message: str
                                                                         ) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        PixelSpec(**fields)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        PixelSpec().replace(**fields)  # a changed spec is checked again


def test_a_valid_spec_is_a_hashable_value() -> None:
    spec = PixelSpec(source="device", augment="device", streams=["rgb", "masked"], mean=[0.5, 0.5, 0.5])
    assert spec.streams == ("rgb", "masked") and spec.mean == (0.5, 0.5, 0.5)  # lists (YAML) become tuples
    assert hash(spec) == hash(PixelSpec(source="device", augment="device", streams=("rgb", "masked"),
                                        mean=(0.5, 0.5, 0.5)))
    assert PixelSpec(size=None).size is None and PixelSpec().size == 384 and PixelSpec().margin == 0.5
    assert set(LOADER_STEPS) == set(AUGMENTS)  # every augment has its loader step


def test_load_split_reads_a_spec_or_its_fields(prepared: dict[str, Prepared]) -> None:
    out = prepared["sun"].out
    by_fields = load_split(out, "test", size=48, margin=0.25)
    by_spec = load_split(out, "test", spec=PixelSpec(size=48, margin=0.25))
    overridden = load_split(out, "test", spec=PixelSpec(size=96, margin=0.25), size=48)  # a keyword wins
    for i in range(3):
        assert torch.equal(by_fields[i]["image"], by_spec[i]["image"])
        assert torch.equal(by_fields[i]["image"], overridden[i]["image"])
    assert by_fields[0]["image"].shape == (3, 48, 48)
    assert not torch.equal(by_fields[0]["image"], load_split(out, "test", size=48)[0]["image"])  # margin 0.5
    # augment="loader": the training augmentation, drawn from torch's generator as the training loaders do
    torch.manual_seed(5)
    augmented = load_split(out, "test", size=48, augment="loader")[0]["image"]
    native = load_split(out, "test", size=None)[0]
    torch.manual_seed(5)
    assert torch.equal(augmented, UInt8Augment(48)(native)["image"])
    assert not torch.equal(augmented, by_spec[0]["image"])
    assert load_polyps(out, "test", spec=PixelSpec(size=32))[0]["image"].shape[1:] == (3, 32, 32)
    # as small as a torchvision dataset: where, which split, the transform, and the pixels as one value
    assert list(inspect.signature(load_split).parameters) == ["prepared_dir", "split", "fold", "raw_root",
                                                              "transform", "protocol", "spec", "keep", "pixels"]


@pytest.fixture
def gray() -> Iterator[Stream]:
    """A stream the pipeline did not have: the crop's mean over its channels."""
    stream = register_stream(Stream("gray", 1, lambda p: p.unit().mean(1, keepdim=True), "the mean over RGB"))
    yield stream
    del STREAMS["gray"]


def test_a_new_stream_is_one_table_entry(gray: Stream) -> None:
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    spec = PixelSpec(size=16, streams=("rgb", "gray"))  # the spec knows it now
    x = build_streams(Pixels(images, None, spec.mean, spec.std), spec.streams)
    assert isinstance(x, dict) and set(x) == {"rgb", "gray"} and x["gray"].shape == (2, 1, 16, 16)
    assert torch.equal(x["gray"], images.float().div(255).mean(1, keepdim=True))
    model = create_model("tiny", 1, streams=("rgb", "gray"))  # a model reads the stream's channels from its entry
    assert model(x).shape == (2, 1)
    with pytest.raises(ValueError, match="stream 'gray' is registered twice"):
        register_stream(gray)


def test_rgb_and_masked_streams_are_the_normalised_crop_and_its_box() -> None:
    images = torch.randint(0, 256, (2, 3, 6, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    box = torch.tensor([[1.2, 0.6, 4.4, 3.0], [0.0, 0.0, 8.0, 6.0]])  # rounded: x 1..3, y 1..2; the whole image
    x = build_streams(Pixels(images, box), ("rgb", "masked"))
    assert isinstance(x, dict)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    unit = images.float() / 255
    inside = torch.zeros(2, 1, 6, 8)
    inside[0, :, 1:3, 1:4] = 1
    inside[1] = 1
    assert torch.equal(x["rgb"], (unit - mean) / std)
    assert torch.equal(x["masked"], (unit * inside - mean) / std)
    assert torch.equal(build_streams(Pixels(images), None), x["rgb"])  # no streams: the RGB tensor itself
    other = build_streams(Pixels(images, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)), None)
    assert torch.equal(other, (unit - 0.5) / 0.25)  # the spec's normalisation


def test_a_stream_without_what_it_needs_fails_in_one_line() -> None:
    images = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ConfigError, match=r"stream 'masked' needs polyp boxes; this data has none \(expected "
                                          r"streams from: rgb\)"):
        build_streams(Pixels(images), ("rgb", "masked"))
    with pytest.raises(ConfigError, match=r"stream 'depth' needs box masks moved with the frame .*; this data has "
                                          r"none \(expected streams from: rgb\)"):
        build_streams(Pixels(images), ("depth",))
    ready = Pixels(None, ready={"rgb": torch.zeros(1, 3, 4, 4)})  # normalised already (SampleTransform)
    assert torch.equal(build_streams(ready, None), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ConfigError, match="holds normalised streams .rgb. and no pixels"):
        build_streams(Pixels(None, torch.zeros(1, 4), ready={"rgb": torch.zeros(1, 3, 4, 4)}), ("masked",))
