"""The released FSG-R18 of the seed code as a config (fsg-r18-loc-paper): masked full frame + MiDaS depth, trained
end to end on CPU at a tiny size with random MiDaS and ResNet weights."""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from polypbench.cli import main
from polypbench.train import data as train_data
from polypbench.train import load_config
from tests.helpers import link_copy

TINY = ["img_size=32", "epochs=1", "batch_size=32", "frames_per_polyp_per_epoch=1", "n_bootstrap=0"]


class _StandInMidas(nn.Module):
    """TEST STAND-IN, used only while polypbench/models/midas.py (lane i20-midas) is not in this tree: a frozen
    (B, 3, H, W) -> (B, H, W) network with build_midas's contract."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)
        nn.init.constant_(self.conv.weight, 1 / 27)  # deterministic: a blur of the channels' sum
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)[:, 0]


@pytest.fixture
def midas(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real build_midas where it exists; a stand-in module otherwise (see :class:`_StandInMidas`)."""
    if importlib.util.find_spec("polypbench.models.midas") is None:
        def build_midas(weights: object = None) -> nn.Module:
            assert weights is None  # depth_weights: random
            return _StandInMidas().eval().requires_grad_(False)

        module = types.ModuleType("polypbench.models.midas")
        module.build_midas = build_midas  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "polypbench.models.midas", module)
    yield
    train_data._DEPTH_NETS.clear()


@pytest.mark.usefixtures("midas")
def test_fsg_r18_loc_paper_trains_on_cpu_with_online_depth(prepared: dict, tmp_path: Path) -> None:
    sets = [a for o in [*TINY, "depth_weights=random"] for a in ("--set", o)]
    res = CliRunner().invoke(main, ["train", "--config", "fsg-r18-loc-paper", "--manifest", str(prepared["sun"].out),
                                    "--out", str(tmp_path / "r"), *sets])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "best.pt").is_file()
    cfg = load_config(tmp_path / "r" / "config.yaml")
    spec = cfg.pixel_spec(cfg.augment)
    assert spec.streams == ("masked_frame", "depth") and (spec.frame, spec.fov_mask, spec.augment_recipe) == (
        "full", True, "seed") and spec.normalize == "seed" and spec.noise == 0.01
    assert ("random", "cpu") in train_data._DEPTH_NETS  # the depth stream ran the network


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
    res = CliRunner().invoke(main, ["train", "--config", "fsg-r18-loc-paper", "--manifest", str(out), "--out",
                                    str(tmp_path / "r"), *[a for o in [*TINY, "depth=shards"] for a in ("--set", o)]])
    assert res.exit_code == 0, res.output
    assert not train_data._DEPTH_NETS  # the run read the stored maps: no network built
