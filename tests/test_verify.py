"""`polypbench verify`: every referenced frame present and complete, one line per bad frame, hashes and Merkle
roots that two copies of the same data agree on."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from polypbench.cli import main
from polypbench.prepare import prepare
from polypbench.verify import leaf, merkle_root, verify_frames
from tests.helpers import link_copy, replace_file


def rfc6962(leaves: list[bytes]) -> bytes:
    """The Merkle tree hash exactly as RFC 6962 section 2.1 defines it (recursive)."""
    if not leaves:
        return hashlib.sha256().digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\0" + leaves[0]).digest()
    k = 1 << (len(leaves) - 1).bit_length() - 1
    return hashlib.sha256(b"\1" + rfc6962(leaves[:k]) + rfc6962(leaves[k:])).digest()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 7, 8, 13])
def test_merkle_root_is_rfc6962(n: int) -> None:
    leaves = [f"leaf {i}".encode() for i in range(n)]
    assert merkle_root(leaves) == rfc6962(leaves).hex()


@pytest.fixture()
def copy(prepared: Any, tmp_path: Path) -> tuple[Path, Path]:
    """A hard-link copy of the SUN dump and its manifest."""
    raw = link_copy(prepared["sun"].raw, tmp_path / "raw")
    prepare("sun", raw, tmp_path / "out", workers=1)
    return raw, tmp_path / "out"


@pytest.mark.slow
def test_identical_data_gives_identical_roots(prepared: Any, copy: tuple[Path, Path]) -> None:
    raw, out = copy
    report = verify_frames(out, raw, hash_frames=True, workers=2)
    frames = pd.read_parquet(out / "frames.parquet")
    assert not report.problems and report.frames == frames["frame_path"].nunique()
    record = json.loads((out / "verify.json").read_text())
    hashes = pd.read_parquet(out / "frame_hashes.parquet")
    for split, info in record["splits"].items():
        mine = hashes[hashes["split"] == split].sort_values("frame_path")
        assert info["frames"] == len(mine)
        assert info["merkle_root"] == rfc6962([leaf(p, h) for p, h in zip(mine["frame_path"], mine["sha256"],
                                                                           strict=True)]).hex()
    some = hashes.iloc[0]
    assert some["sha256"] == hashlib.sha256((raw / some["frame_path"]).read_bytes()).hexdigest()
    other = verify_frames(prepared["sun"].out, prepared["sun"].raw, hash_frames=True, workers=1)
    assert other.splits == report.splits  # another copy of the same frames: the same roots


def _jpeg(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.slow
def test_each_bad_frame_is_one_counted_line(copy: tuple[Path, Path], tmp_path: Path) -> None:
    raw, out = copy
    paths = sorted(pd.read_parquet(out / "frames.parquet")["frame_path"].unique())
    damage = {
        "bad_frame": lambda p: replace_file(p, p.read_bytes()[:-100]),
        "missing_frame": lambda p: p.unlink(),
        "size_mismatch": lambda p: replace_file(p, _jpeg((64, 48))),
        "not_a_file": lambda p: (p.unlink(), p.mkdir()),
        "bad_symlink": lambda p: (p.unlink(), p.symlink_to("nowhere.jpg")),
    }
    outside = tmp_path / "outside.jpg"
    outside.write_bytes((raw / paths[-1]).read_bytes())
    damage["outside"] = lambda p: (p.unlink(), p.symlink_to(outside))
    for fn, rel in zip(damage.values(), paths, strict=False):
        fn(raw / rel)
    result = CliRunner().invoke(main, ["verify", str(out), "--raw", str(raw), "--hash", "--workers", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    problems = [line for line in lines if line.split(":")[0] in {*damage, "bad_symlink"}]
    assert len(problems) == len(damage)
    for (kind, _), rel in zip(damage.items(), paths, strict=False):
        line = next(line for line in problems if rel in line)
        assert line.startswith(f"{'bad_symlink' if kind == 'outside' else kind}: "), line
    assert lines[-1].startswith(f"Error: {len(damage)} of {len(paths)} frames failed (")
    record = json.loads((out / "verify.failed.json").read_text())
    assert sum(int(v["count"]) for v in record["problems"].values()) == len(damage)
    assert any(info["merkle_root"] is None for info in record["splits"].values())


@pytest.mark.slow
def test_verify_without_hash_checks_markers_only(copy: tuple[Path, Path]) -> None:
    raw, out = copy
    rel = pd.read_parquet(out / "frames.parquet")["frame_path"].iloc[0]
    data = bytearray((raw / rel).read_bytes())
    data[len(data) // 2] ^= 0xFF  # damage inside the image data: not visible without a decode or a hash
    replace_file(raw / rel, bytes(data))
    assert not verify_frames(out, raw, workers=1).problems
    assert not (out / "frame_hashes.parquet").exists()
    assert os.path.getsize(out / "verify.json") > 0


@pytest.mark.slow
def test_a_wrong_raw_is_one_line_and_keeps_the_record(copy: tuple[Path, Path], tmp_path: Path) -> None:
    """--raw pointing at another folder: not one line per missing frame, one line asking whether this is the dump,
    and the passing record stays."""
    raw, out = copy
    assert not verify_frames(out, raw, workers=1).problems
    record = (out / "verify.json").read_bytes()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    n = pd.read_parquet(out / "frames.parquet")["frame_path"].nunique()
    result = CliRunner().invoke(main, ["verify", str(out), "--raw", str(elsewhere), "--workers", "1", "-q"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {elsewhere}: 0 of {n} frames") and "is this the dump prepare read" in lines[0]
    assert (out / "verify.json").read_bytes() == record and not (out / "verify.failed.json").exists()


@pytest.mark.slow
def test_a_failed_run_never_replaces_a_passing_record(copy: tuple[Path, Path]) -> None:
    raw, out = copy
    assert not verify_frames(out, raw, hash_frames=True, workers=1).problems
    passing = {name: (out / name).read_bytes() for name in ("verify.json", "frame_hashes.parquet")}
    rel = pd.read_parquet(out / "frames.parquet")["frame_path"].iloc[0]
    good = (raw / rel).read_bytes()
    replace_file(raw / rel, good[:-100])
    report = verify_frames(out, raw, hash_frames=True, workers=1)
    assert [p.kind for p in report.problems] == ["bad_frame"]
    assert {name: (out / name).read_bytes() for name in passing} == passing
    failed = json.loads((out / "verify.failed.json").read_text())
    assert failed["problems"]["bad_frame"]["count"] == 1 and rel in failed["all_problems"][0]["message"]
    replace_file(raw / rel, good)
    assert not verify_frames(out, raw, workers=1).problems
    assert not (out / "verify.failed.json").exists(), "a passing run clears the failed record"


def test_a_frame_path_out_of_the_raw_root_is_never_read(copy: tuple[Path, Path], tmp_path: Path) -> None:
    """The containment rule of prepare and export-hf: an absolute frame_path, or one leading up with .., is an
    outside_root problem, even when the file there is a good JPEG."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw, out = copy
    table = pq.read_table(out / "frames.parquet")
    paths = table["frame_path"].to_pylist()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes((raw / paths[0]).read_bytes())
    bad = {paths[0]: str(secret), paths[1]: os.path.relpath(secret, raw)}
    table = table.set_column(table.schema.get_field_index("frame_path"), "frame_path",
                             pa.array([bad.get(p, p) for p in paths], pa.string()))
    (out / "frames.parquet").unlink()
    pq.write_table(table, out / "frames.parquet")
    report = verify_frames(out, raw, workers=1)
    assert sorted((p.kind, p.message.split(":")[0]) for p in report.problems) == sorted(
        ("outside_root", b) for b in bad.values())


@pytest.mark.slow
def test_zero_padding_after_a_complete_frame_passes(copy: tuple[Path, Path]) -> None:
    """A complete JPEG followed by 4,096 zero bytes decodes in every reader: not truncated."""
    raw, out = copy
    rel = pd.read_parquet(out / "frames.parquet")["frame_path"].iloc[0]
    replace_file(raw / rel, (raw / rel).read_bytes() + bytes(4096))
    Image.open(raw / rel).load()
    assert not verify_frames(out, raw, workers=1).problems
