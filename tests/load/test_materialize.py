"""Materialized shards: written in parallel, resumable, deterministic, read back as the same samples as the raw
frames, and shared out between workers and ranks without overlap."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import ConcatDataset, DataLoader
from torchvision import tv_tensors

from polypbench import load_split
from polypbench.errors import ConfigError, InputError
from polypbench.load import PolypFrames
from polypbench.load.shard_layout import SHARD_SCHEMA, SPEC_FILE
from polypbench.manifest import Manifest
from polypbench.shards import ShardFrames, find_materialized, materialize
from polypbench.train.data import FramesPerPolyp, SampleTransform, collate, polyp_keys
from tests.helpers import link_copy, replace_file


def _copy(prepared, tmp: Path, name: str = "real-colon") -> Path:
    """A private copy of a prepared folder (the session's is shared: shards in it would change other tests)."""
    return Path(shutil.copytree(prepared[name].out, tmp / name))


@pytest.fixture(scope="module")
def shards(prepared, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = _copy(prepared, tmp_path_factory.mktemp("materialized"))
    return materialize(out, size=96, workers=1)  # two workers write the same bytes (tested below)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _resized(image: torch.Tensor, size: int = 48) -> torch.Tensor:
    return F.interpolate(image[None].float(), size=(size, size), mode="bilinear", antialias=True)[0]


@pytest.mark.slow
def test_materialize_writes_one_shard_per_video_and_a_description(shards: Path) -> None:
    prepared = shards.parent.parent
    frames = Manifest.open(prepared).frames
    info = json.loads((shards / SPEC_FILE).read_text())
    assert shards == prepared / "materialized" / "96"
    assert (info["size"], info["margin"], info["context"], info["quality"]) == (96, 0.5, 0.15, 90)
    assert info["rows"] == len(frames) and info["splits"] == frames["split"].value_counts().to_dict()
    assert len(info["shards"]) == frames.groupby(["split", "video_id"]).ngroups
    for entry in info["shards"]:
        with pa.memory_map(str(shards / entry["path"])) as source:
            table = pa.ipc.open_file(source).read_all()
        assert table.schema == SHARD_SCHEMA and table.num_rows == entry["rows"] > 0
        assert set(table["dataset"].to_pylist()) == {"real-colon"}
        assert entry["path"].startswith(entry["split"] + "/")


@pytest.mark.slow
def test_shards_give_the_same_samples_as_raw_frames(shards: Path) -> None:
    prepared = shards.parent.parent
    for split in ("train", "test"):
        from_shards = load_split(prepared, split, decode_size=96, size=None)
        from_raw = load_split(prepared, split, source="raw", size=None)
        assert isinstance(from_shards, ShardFrames) and type(from_raw) is PolypFrames
        assert from_shards.rows.equals(from_raw.rows) and len(from_shards) == len(from_raw)
        for i in range(len(from_raw)):
            a, b = from_shards[i], from_raw[i]
            assert list(a) == list(b) and all(type(a[k]) is type(b[k]) for k in a)
            ids = ("polyp_id", "patient_id", "dataset", "frame_index", "size_mm", "size_class3")
            assert all(a[k] == b[k] for k in ids)
            assert isinstance(a["image"], tv_tensors.Image) and a["image"].dtype == torch.uint8
            assert a["image"].shape[1:] == (96, 96) and tuple(a["boxes"].canvas_size) == (96, 96)
            # the same region at another scale: boxes agree relative to the crop, pixels within JPEG tolerance
            rel_a, rel_b = a["boxes"] / a["image"].shape[2], b["boxes"] / b["image"].shape[2]
            assert torch.allclose(rel_a, rel_b, atol=0.01)
            side = min(48, b["image"].shape[2])
            assert (_resized(a["image"], side) - _resized(b["image"], side)).abs().mean() < 6


@pytest.mark.slow
def test_load_split_picks_shards_only_when_they_fit(shards: Path) -> None:
    prepared = shards.parent.parent
    assert isinstance(load_split(prepared, "test", decode_size=64), ShardFrames)  # 96 px crops are enough
    assert type(load_split(prepared, "test")) is PolypFrames  # decode_size None: full resolution
    assert type(load_split(prepared, "test", decode_size=128)) is PolypFrames  # crops too small
    assert type(load_split(prepared, "test", decode_size=96, margin=0.3)) is PolypFrames  # other margin
    assert isinstance(load_split(prepared, "test", source="shards"), ShardFrames)
    with pytest.raises(InputError, match="no finished materialization with margin 0.3"):
        load_split(prepared, "test", margin=0.3, source="shards")
    with pytest.raises(ConfigError, match="expected one of: auto, device, raw, shards"):
        load_split(prepared, "test", source="disk")
    fold = load_split(prepared, "train", fold=1, decode_size=96)
    assert isinstance(fold, ShardFrames) and len(fold) == len(load_split(prepared, "train", fold=1))
    half = load_split(prepared, "test", decode_size=48, size=None)  # 96 px crops decoded at 1/2 in the DCT domain
    full = load_split(prepared, "test", decode_size=96, size=None)
    assert half[0]["image"].shape[1:] == (48, 48)
    assert torch.allclose(half[0]["boxes"] * 2, full[0]["boxes"].as_subclass(torch.Tensor), atol=1.0)


@pytest.mark.slow
def test_the_trainer_reads_shard_backed_datasets(shards: Path) -> None:
    prepared = shards.parent.parent
    part = load_split(prepared, "train", decode_size=96, transform=SampleTransform(64, augment=True))
    data = ConcatDataset([part])
    keys = polyp_keys(data)  # asserts isinstance(part, PolypFrames) and reads part.rows
    assert keys == list(zip(part.rows["dataset"], part.rows["polyp_id"], strict=True))
    loader = DataLoader(data, batch_size=4, sampler=FramesPerPolyp(keys, 1, seed=0), collate_fn=collate,
                        num_workers=2)
    batch = next(iter(loader))
    assert batch.image is not None and batch.masked is not None and batch.polyp_id is not None
    assert batch.image.shape == (4, 3, 64, 64) and batch.masked.shape == (4, 3, 64, 64)
    assert len(batch.polyp_id) == 4


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sun", "sun-seg"])
def test_every_dataset_materializes_to_the_same_samples(prepared, tmp_path: Path, name: str) -> None:
    out = _copy(prepared, tmp_path, name)
    materialize(out, size=32, workers=1)
    from_shards = load_split(out, "test", decode_size=32, size=None)
    from_raw = load_split(out, "test", source="raw", size=None)
    assert isinstance(from_shards, ShardFrames) and from_shards.rows.equals(from_raw.rows)
    for i in range(0, len(from_raw), max(1, len(from_raw) // 8)):
        a, b = from_shards[i], from_raw[i]
        assert a["polyp_id"] == b["polyp_id"] and a["frame_index"] == b["frame_index"]
        assert torch.allclose(a["boxes"] / 32, b["boxes"] / b["image"].shape[2], atol=0.02)
        side = min(32, b["image"].shape[2])
        assert (_resized(a["image"], side) - _resized(b["image"], side)).abs().mean() < 6


@pytest.mark.slow
def test_context_view_holds_the_window_and_real_pixels_around_it(shards: Path) -> None:
    prepared = shards.parent.parent
    plain = load_split(prepared, "test", decode_size=96, size=None)
    wide = ShardFrames(plain.rows, shards, context=True)
    for i in range(len(plain)):
        a, b = plain[i], wide[i]
        left, top, right, bottom = (int(v) for v in b["window"])
        assert (right - left, bottom - top) == (96, 96) and b["image"].shape[1] >= 96
        assert torch.equal(b["image"][:, top:bottom, left:right], a["image"])
        assert torch.allclose(b["boxes"] - torch.tensor([left, top, left, top]), a["boxes"].as_subclass(torch.Tensor))
    assert any(s["image"].shape[1:] == (124, 124) for s in (wide[i] for i in range(len(wide))))  # 96 + 2 x 14


@pytest.mark.slow
def test_rerun_skips_finished_shards_and_resumes_an_interrupted_run(prepared, tmp_path: Path) -> None:
    out = _copy(prepared, tmp_path)
    root = materialize(out, size=64, workers=1)
    before = _files(root)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.arrow")}
    assert materialize(out, size=64, workers=1) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.arrow")} == stamps  # nothing rewritten
    # interrupted: one shard never renamed into place (a partial temporary file instead), no description
    victim = sorted(stamps)[3]
    victim.rename(victim.with_name(f".{victim.name}.tmp"))
    (root / SPEC_FILE).unlink()
    assert find_materialized(out, 0.5, 64) is None  # an unfinished run is never read
    assert type(load_split(out, "test", decode_size=64)) is PolypFrames
    with pytest.raises(InputError, match="no finished materialization"):
        load_split(out, "test", source="shards")
    materialize(out, size=64, workers=1)
    assert _files(root) == before  # the same bytes, the partial file gone
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.arrow") if p != victim} == {
        p: t for p, t in stamps.items() if p != victim}
    # other options: the old shards are discarded, not mixed in
    materialize(out, size=64, quality=70, workers=1)
    assert json.loads((root / SPEC_FILE).read_text())["quality"] == 70
    assert all(p.stat().st_mtime_ns != stamps[p] for p in stamps)


@pytest.mark.slow
def test_materialize_is_deterministic_whatever_the_number_of_workers(prepared, shards: Path, tmp_path: Path) -> None:
    out = _copy(prepared, tmp_path)
    again = materialize(out, size=96, workers=2)
    assert _files(again) == _files(shards)


@pytest.mark.slow
def test_corrupt_frame_stops_materialize_with_a_one_line_error(prepared, tmp_path: Path) -> None:
    raw = link_copy(prepared["real-colon"].raw, tmp_path / "raw")
    out = _copy(prepared, tmp_path)
    bad = raw / Manifest.open(out).frames["frame_path"].iloc[-1]
    replace_file(bad, bad.read_bytes()[:200])
    for workers in (1, 2):
        with pytest.raises(InputError) as info:
            materialize(out, size=32, workers=workers, raw_root=raw)
        assert str(bad) in str(info.value) and "\n" not in str(info.value)
    assert find_materialized(out, 0.5, 32) is None


@pytest.mark.slow
def test_corrupt_shard_row_is_a_one_line_error_naming_the_shard(prepared, tmp_path: Path) -> None:
    out = _copy(prepared, tmp_path)
    root = materialize(out, size=32, workers=1)
    ds = load_split(out, "test", decode_size=32)
    path = ds.paths[int(ds._shard[0])]
    table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    jpeg = table["jpeg"].to_pylist()
    jpeg[int(ds._row[0])] = b"\xff\xd8 truncated"
    table = table.set_column(table.schema.get_field_index("jpeg"), "jpeg", pa.array(jpeg, pa.binary()))
    path.unlink()
    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)
    ds = load_split(out, "test", decode_size=32)
    with pytest.raises(InputError) as info:
        ds[0]
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert root.is_dir()


def test_bad_options_are_refused_with_the_expected_values(prepared, tmp_path: Path) -> None:
    out = _copy(prepared, tmp_path)
    for kwargs, match in [({"size": 8}, "expected an integer >= 16"), ({"margin": -1}, "expected >= 0"),
                          ({"context": 2}, r"expected a fraction of the crop in \[0, 1\]"),
                          ({"quality": 0}, "expected a JPEG quality in 1..100")]:
        with pytest.raises(ConfigError, match=match):
            materialize(out, **kwargs)


@pytest.mark.slow
def test_fit_trains_from_shards_without_the_raw_frames(shards: Path, tmp_path: Path) -> None:
    from polypbench.train import fit, load_config

    nowhere = tmp_path / "no-raw-frames-here"
    nowhere.mkdir()
    cfg = load_config("demo", ["img_size=64", "margin=0.5", "epochs=1", "batch_size=8", "frames_per_polyp_per_epoch=1",
                               "n_bootstrap=0", f"prepared=[{shards.parent.parent}]", f"raw_roots=[{nowhere}]"])
    summary = fit(cfg, tmp_path / "run")
    assert summary.checkpoint.is_file() and len(summary.epochs) == 1
    pixels = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["provenance"]["data"][0]["pixels"]
    for split in ("train", "validation"):  # what source="auto" picked is recorded, with the shard spec
        assert pixels[split]["source"] == "shards" and pixels[split]["root"] == str(shards.resolve())
        assert pixels[split]["shard_spec"]["size"] == 96 and pixels[split]["shard_spec"]["margin"] == 0.5
    with pytest.raises(InputError, match="no-raw-frames-here"):  # the raw path really has no frames there
        load_split(shards.parent.parent, "train", raw_root=nowhere, source="raw")[0]


@pytest.mark.slow
def test_cli_materialize(prepared, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from polypbench.cli import main

    out = _copy(prepared, tmp_path, "sun")
    res = CliRunner().invoke(main, ["materialize", str(out), "--size", "64", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == f"wrote {out / 'materialized' / '64'}"
    assert "materialize sun: " in res.stderr and "shard (100%)" in res.stderr  # progress, also in a log file
    assert find_materialized(out, 0.5, 64) == out / "materialized" / "64"
    res = CliRunner().invoke(main, ["materialize", str(out), "--quality", "0"])
    assert res.exit_code != 0 and "'--quality': 0 is not in the range 1<=x<=100" in res.output
