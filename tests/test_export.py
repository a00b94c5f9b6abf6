"""``polypbench export-hf``: a Hugging Face dataset with the crops embedded that loads without polypbench, a
card the Hub reads, and the licence's word on redistributing frames."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from polypbench import datasets as registry
from polypbench.cli import main
from polypbench.errors import InputError, PolypbenchError
from polypbench.export import HOLD_RIGHTS_FLAG, INFO_FILE, export_hf
from polypbench.manifest import Manifest
from tests.helpers import Prepared, link_copy, replace_file

# Runs in a fresh interpreter in which polypbench cannot be imported (as on a machine without it).
NO_POLYPBENCH = """
import json, sys
sys.modules["polypbench"] = None  # any import of polypbench now fails
try:
    import polypbench
except ImportError:
    pass
else:
    raise SystemExit("polypbench is importable")
import datasets, numpy as np
out = {}
for config in ("default", "fold1"):
    ds = datasets.load_dataset(sys.argv[1], config)
    out[config] = {split: list(part["polyp_id"]) for split, part in ds.items()}
train = datasets.load_dataset(sys.argv[1])["train"]
first = train[0]
out["features"] = {name: type(f).__name__ for name, f in train.features.items()}
out["names"] = train.features["size_class3"].names
out["image"] = [first["image"].size, first["image"].mode, int(np.asarray(first["image"]).std() > 0)]
out["box"] = first["box"]
out["first"] = [first["polyp_id"], first["frame_index"]]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def exported(prepared: dict[str, Prepared], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "real-colon"
    export_hf(prepared["real-colon"].out, out, size=32, workers=1, rows_per_file=50)
    return out


@pytest.mark.slow
@pytest.mark.process  # a child interpreter
def test_the_export_loads_with_images_and_without_polypbench(prepared: dict[str, Prepared], exported: Path,
                                                             tmp_path: Path) -> None:
    # a cache of its own: datasets keys its cache by the folder's name and files, which another export can share
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": "",
           "HF_DATASETS_CACHE": str(tmp_path / "hf-cache")}
    result = subprocess.run([sys.executable, "-c", NO_POLYPBENCH, str(exported)], capture_output=True, text=True,
                            env=env, cwd=exported.parent, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    manifest = Manifest.open(prepared["real-colon"].out)
    for split in ("train", "validation", "test"):
        assert sorted(got["default"][split]) == sorted(manifest.select(split)["polyp_id"])
        assert sorted(got["fold1"][split]) == sorted(manifest.select(split, fold=1)["polyp_id"])
    assert got["features"]["image"] == "Image" and got["features"]["size_class3"] == "ClassLabel"
    assert got["features"]["box"] == "List" and got["names"] == ["diminutive", "small", "large"]
    assert got["image"] == [[32, 32], "RGB", 1]
    # the crop and box are load_hf's (JPEG-encoded once)
    from polypbench.load import load_hf

    polyp_id, frame_index = got["first"]
    reference = load_hf(prepared["real-colon"].out, "train", size=32)
    row = next(r for r in reference if r["polyp_id"] == polyp_id and r["frame_index"] == frame_index)
    assert got["box"] == pytest.approx(row["box"], abs=1e-4)
    assert len(list((exported / "data" / "train").glob("*.parquet"))) > 1  # rows_per_file splits the parts


@pytest.mark.slow
def test_the_card_is_a_valid_hub_card_with_the_registry_facts(prepared: dict[str, Prepared], exported: Path) -> None:
    from huggingface_hub import DatasetCard

    spec = registry.get("real-colon")
    card = DatasetCard.load(exported / "README.md")
    assert card.data.license == spec.licence and "license_name" not in card.data.to_dict()
    assert [c["config_name"] for c in card.data.configs] == ["default", *(f"fold{k}" for k in range(5))]
    assert spec.citation.strip() in card.text and spec.description in card.text and spec.homepage in card.text
    info = json.loads((exported / INFO_FILE).read_text())
    assert info["size"] == 32 and info["hold_rights_declared"] is False and info["rows"] == 264
    provenance = Manifest.open(prepared["real-colon"].out).provenance()
    assert info["manifest"] == provenance  # the one provenance record of a manifest
    assert f"public split\n{provenance['split_version']}, sha256 {provenance['split_sha256']})" in card.text


def test_frames_the_licence_keeps_are_refused_unless_the_user_holds_the_right(prepared: dict[str, Prepared],
                                                                              tmp_path: Path) -> None:
    spec = registry.get("sun")
    assert not spec.redistribute_frames and not registry.get("sun-seg").redistribute_frames
    out = tmp_path / "sun"
    with pytest.raises(PolypbenchError) as info:
        export_hf(prepared["sun"].out, out, size=16, workers=1)
    assert HOLD_RIGHTS_FLAG in str(info.value) and "\n" not in str(info.value) and not out.exists()
    runner = CliRunner()
    refused = runner.invoke(main, ["export-hf", str(prepared["sun-seg"].out), "--out", str(out), "--size", "16"])
    assert refused.exit_code == 1 and HOLD_RIGHTS_FLAG in refused.output and not out.exists()
    done = runner.invoke(main, ["export-hf", str(prepared["sun"].out), "--out", str(out), "--size", "16",
                                "--workers", "1", HOLD_RIGHTS_FLAG])
    assert done.exit_code == 0, done.output
    assert "export-hf sun: 200/200 crop (100%)" in done.output  # the progress line's last word
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "other" and card.data.license_link == spec.homepage
    assert HOLD_RIGHTS_FLAG in card.text and spec.licence_terms in card.text
    assert json.loads((out / INFO_FILE).read_text())["hold_rights_declared"] is True


@pytest.mark.slow
def test_the_output_is_replaced_whole_and_other_folders_are_refused(prepared: dict[str, Prepared],
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_hf(prepared["real-colon"].out, out, size=16, workers=1)
    first = sorted(p.relative_to(out) for p in out.rglob("*"))
    export_hf(prepared["real-colon"].out, out, size=24, workers=1)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == first
    assert json.loads((out / INFO_FILE).read_text())["size"] == 24
    assert not (tmp_path / ".export.export").exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="a folder with other files"):
        export_hf(prepared["real-colon"].out, other, size=16, workers=1)
    assert (other / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize("how", ["absolute", "dot-dot"])
def test_a_frame_outside_the_raw_root_is_never_embedded(prepared: dict[str, Prepared], tmp_path: Path,
                                                        how: str) -> None:
    """A manifest row whose frame_path leads out of the raw root (absolute, or up with ..): refused in one line, as
    prepare and verify refuse it, before anything is written."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    src = prepared["real-colon"]
    manifest = shutil.copytree(src.out, tmp_path / "prepared")
    table = pq.read_table(manifest / "frames.parquet")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes((src.raw / table["frame_path"][5].as_py()).read_bytes())
    bad = str(secret) if how == "absolute" else os.path.relpath(secret, src.raw)
    paths = table["frame_path"].to_pylist()
    paths[5] = bad
    table = table.set_column(table.schema.get_field_index("frame_path"), "frame_path", pa.array(paths, pa.string()))
    (manifest / "frames.parquet").unlink()
    pq.write_table(table, manifest / "frames.parquet")
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export-hf", str(manifest), "--out", str(out), "--size", "16", "--workers",
                                       "1", "-q"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert bad in lines[0] and "raw root" in lines[0] and "row 6 frame_path" in lines[0], lines[0]
    assert not out.exists()


def test_an_interrupted_export_resumes_keeping_the_files_it_finished(prepared: dict[str, Prepared], exported: Path,
                                                                    tmp_path: Path) -> None:
    """A run stopped by an unreadable frame keeps the Parquet files it finished in its staging folder; the rerun
    (same manifest, raw root and options) writes only the rest, and the result is the uninterrupted export."""
    src = prepared["real-colon"]
    raw = link_copy(src.raw, tmp_path / "raw")
    frames = Manifest.open(src.out).frames
    last = frames.sort_values(["split", "fold"], kind="stable").iloc[-1]["frame_path"]  # in the last file written
    good = (raw / last).read_bytes()
    replace_file(raw / last, b"not a jpeg")
    out = tmp_path / "real-colon"
    with pytest.raises(InputError, match="unreadable frame"):
        export_hf(src.out, out, raw, size=32, workers=1, rows_per_file=50)
    staging = tmp_path / ".real-colon.export" / "staging"
    finished = {p.relative_to(staging): p.stat().st_ino for p in staging.rglob("*.parquet")}
    assert finished and not out.exists()
    replace_file(raw / last, good)
    export_hf(src.out, out, raw, size=32, workers=1, rows_per_file=50)
    assert {p: (out / p).stat().st_ino for p in finished} == finished  # kept, not written again
    files = sorted(p.relative_to(exported) for p in exported.rglob("*") if p.is_file())
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == files  # no signature file either
    assert all((out / p).read_bytes() == (exported / p).read_bytes() for p in files)
