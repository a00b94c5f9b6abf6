"""The released FSG-R18 of the seed code as a config (fsg-r18-loc-paper): masked full frame + MiDaS depth, trained
end to end on CPU at a tiny size with random MiDaS and ResNet weights; an RGB -paper config on the seed's crop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from polypbench.cli import main
from polypbench.load.spec import PixelSpec
from polypbench.train import data as train_data
from polypbench.train import load_config
from tests.helpers import link_copy

pytestmark = pytest.mark.slow  # each trains end to end (MiDaS ResNeXt-101 at 32 px on the CPU)

TINY = ["weights=none", "img_size=32", "epochs=1", "batch_size=32", "frames_per_polyp_per_epoch=1", "n_bootstrap=0"]


@pytest.fixture(scope="module")
def midas() -> Iterator[None]:
    """The depth networks this module's tests built (train.data caches them per weights and device; building the
    random MiDaS costs seconds) are dropped after the module."""
    yield
    train_data._DEPTH_NETS.clear()


def _trained_spec(config: str, manifest: Path, out: Path, *overrides: str) -> PixelSpec:
    """Train ``config`` on ``manifest`` with :data:`TINY` and ``overrides`` through the CLI into ``out``; the pixel
    spec of the run's saved config."""
    sets = [a for o in [*TINY, *overrides] for a in ("--set", o)]
    res = CliRunner().invoke(main, ["train", "--config", config, "--manifest", str(manifest), "--out", str(out),
                                    *sets])
    assert res.exit_code == 0, res.output
    assert (out / "best.pt").is_file()
    cfg = load_config(out / "config.yaml")
    return cfg.pixel_spec(cfg.augment)


@pytest.mark.usefixtures("midas")
def test_fsg_r18_loc_paper_trains_on_cpu_with_online_depth(prepared: dict, tmp_path: Path) -> None:
    spec = _trained_spec("fsg-r18-loc-paper", prepared["sun"].out, tmp_path / "r", "depth_weights=random")
    assert spec.streams == ("masked_frame", "depth") and (spec.frame, spec.fov_mask, spec.augment_recipe) == (
        "full", True, "seed") and spec.normalize == "seed" and spec.noise == 0.01
    assert ("random", "cpu") in train_data._DEPTH_NETS  # the depth stream ran the network


def test_resnet18_paper_trains_on_the_seeds_crop(prepared: dict, tmp_path: Path) -> None:
    """An RGB -paper config (the seed's R18 baseline) end to end on CPU: the whole frame with the seed's
    augmentation, the model on the expanded box crop (stream box_crop)."""
    spec = _trained_spec("resnet18-paper", prepared["sun"].out, tmp_path / "r")
    assert (spec.streams, spec.frame, spec.fov_mask, spec.augment_recipe, spec.normalize, spec.size) == (
        ("box_crop",), "full", True, "seed", "seed", 32)


def test_the_depth_stream_without_weights_is_one_line(prepared: dict, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["train", "--config", "fsg-r18-loc-paper", "--manifest", str(prepared["sun"].out),
                                    "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and res.output.count("\n") == 1
    assert "stream 'depth' needs the depth network's weights; expected depth_weights: the path of " \
           "midas_v21_384.pt" in res.output


@pytest.mark.usefixtures("midas")
def test_depth_shards_are_the_online_maps_moved_with_the_frame(prepared: dict, tmp_path: Path) -> None:
    """``materialize --depth-weights`` stores the online stream's maps; read back without augmentation the shard
    stream is the online one up to the resampling of the paste (a per-map correlation near 1); then a run trains
    on them."""
    from polypbench.load import load_split
    from polypbench.train.batch import collate
    from polypbench.train.data import model_input

    out = link_copy(prepared["sun"].out, tmp_path / "sun")  # materialize writes into it
    net = train_data.depth_network("random", torch.device("cpu"))  # the cached network every step below uses
    with torch.no_grad():  # random MiDaS ends in a ReLU of mostly negative values: shift it so the maps vary
        net.scratch.output_conv[4].bias.fill_(1.0)
    res = CliRunner().invoke(main, ["materialize", str(out), "--size", "32", "--depth-weights", "random"])
    assert res.exit_code == 0, res.output
    cfg = load_config("fsg-r18-loc-paper", [*TINY, "depth_weights=random", f"prepared=[{out}]"])
    online = cfg.pixel_spec()
    stored = online.replace(depth="shards")
    device = torch.device("cpu")
    x = [model_input(collate([load_split(out, "validation", spec=s)[i] for i in range(8)]), s, device)["depth"]
         for s in (online, stored)]
    a, b = (t.flatten(1) - t.flatten(1).mean(1, keepdim=True) for t in x)
    correlation = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    assert correlation.min() > 0.9 and not torch.equal(x[0], x[1])
    train_data._DEPTH_NETS.clear()
    _trained_spec("fsg-r18-loc-paper", out, tmp_path / "r", "depth=shards")
    assert not train_data._DEPTH_NETS  # the run read the stored maps: no network built
