"""How a run is carried out: published complete or not at all, resumed by content, one run at a time, and its
worker processes gone with it (a real kill -9 and SIGTERM of `prepare --workers 2`)."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from polypbench import splits
from polypbench.errors import PolypbenchError
from polypbench.fileio import exclusive
from polypbench.manifest import Manifest
from polypbench.prepare import prepare
from polypbench.prepare.engine import work_dir
from tests.helpers import link_copy, replace_file
from tests.prepare.helpers import Small

REPO = Path(__file__).resolve().parents[2]
MANIFEST_FILES = ("frames.parquet", "polyps.parquet", "README.md", "prepare_report.json", "hf")


def first_xml_with_box(raw: Path, video: str) -> Path:
    paths = sorted((raw / f"{video}_annotations").glob("*.xml"), key=lambda p: float(p.stem.rsplit("_", 1)[1]))
    return next(p for p in paths if b"<object>" in p.read_bytes())


def snapshot(out: Path) -> dict[str, bytes] | None:
    """Every file of a manifest directory, or None when it is absent."""
    if not out.exists():
        return None
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ complete or absent
def test_every_moment_of_a_republish_shows_the_old_manifest_none_or_the_new(small: dict[str, Small], tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    raw = link_copy(small["real-colon"].raw, tmp_path / "raw")
    out = tmp_path / "out"
    prepare("real-colon", raw, out, workers=1)
    old = snapshot(out)
    path = first_xml_with_box(raw, "001-001")
    replace_file(path, re.sub(rb"<xmin>(\d+)</xmin>", b"<xmin>1</xmin>", path.read_bytes(), count=1))
    seen: list[dict[str, bytes] | None] = []
    real_replace = os.replace

    def watch(src: Any, dst: Any) -> None:
        seen.append(snapshot(out))
        real_replace(src, dst)
        seen.append(snapshot(out))

    monkeypatch.setattr(os, "replace", watch)
    prepare("real-colon", raw, out, workers=1)
    monkeypatch.undo()
    new = snapshot(out)
    assert old is not None and new is not None and old != new
    assert {k.split("/")[0] for k in new} == set(MANIFEST_FILES)
    assert seen and all(state in (old, None, new) for state in seen), "a reader could see a mixture"
    assert None in seen  # the moment between the two renames


@pytest.mark.parametrize("crash_at", ["merge", "publish"])
def test_a_run_killed_before_or_during_publishing_never_shows_a_half_manifest(
        small: dict[str, Small], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str) -> None:
    """A crash while merging keeps the old manifest; one between the two renames of the publish leaves none,
    which every reader refuses; the next run restores or completes it."""
    from polypbench.prepare import engine

    raw = link_copy(small["real-colon"].raw, tmp_path / "raw")
    out = tmp_path / "out"
    prepare("real-colon", raw, out, workers=1)
    old = snapshot(out)

    class Killed(BaseException):
        """Stands for kill -9: nothing after it runs."""

    if crash_at == "merge":
        def card(*_args: Any) -> str:
            raise Killed()

        monkeypatch.setattr(engine, "dataset_card", card)
    else:
        real_replace = os.replace

        def replace(src: Any, dst: Any) -> None:
            if Path(src).name == "staging":
                raise Killed()
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Killed):
        prepare("real-colon", raw, out, workers=1)
    monkeypatch.undo()
    if crash_at == "merge":
        assert snapshot(out) == old and Manifest.open(out).frames is not None
    else:
        assert not out.exists()
        from polypbench.load import load_split

        for read in (lambda: Manifest.open(out), lambda: splits.verify(out), lambda: load_split(out, "train")):
            with pytest.raises(PolypbenchError, match="no frames.parquet"):
                read()
        import datasets

        with pytest.raises(FileNotFoundError):
            datasets.load_dataset(str(out))
    report = prepare("real-colon", raw, out, workers=1)
    assert report.resumed_units == 3  # the killed run's parts are reused
    new = snapshot(out)
    assert old is not None and new is not None
    assert {k: v for k, v in new.items() if k != "prepare_report.json"} == {
        k: v for k, v in old.items() if k != "prepare_report.json"}  # same input: the same bytes
    assert not work_dir(out).exists() and not out.with_name(".out.old").exists()


def test_a_reader_refuses_a_manifest_replaced_while_it_reads(small: dict[str, Small], tmp_path: Path) -> None:
    raw = link_copy(small["real-colon"].raw, tmp_path / "raw")
    out = tmp_path / "out"
    prepare("real-colon", raw, out, workers=1)
    manifest = Manifest.open(out)
    assert len(manifest.frames)
    prepare("real-colon", raw, out, workers=1)
    with pytest.raises(PolypbenchError, match="was replaced by another `polypbench prepare` while being read"):
        manifest.polyps  # noqa: B018 - the read under test


def test_derived_data_survives_an_unchanged_re_prepare_and_is_dropped_otherwise(small: dict[str, Small],
                                                                               tmp_path: Path) -> None:
    raw = link_copy(small["real-colon"].raw, tmp_path / "raw")
    out = tmp_path / "out"
    prepare("real-colon", raw, out, workers=1)
    (out / "materialized" / "384").mkdir(parents=True)
    (out / "materialized" / "384" / "materialized.json").write_text("{}")
    (out / "verify.json").write_text("{}")
    prepare("real-colon", raw, out, workers=1)
    assert (out / "materialized" / "384" / "materialized.json").is_file() and (out / "verify.json").is_file()
    path = first_xml_with_box(raw, "001-001")
    replace_file(path, re.sub(rb"<xmin>(\d+)</xmin>", b"<xmin>1</xmin>", path.read_bytes(), count=1))
    prepare("real-colon", raw, out, workers=1)
    assert not (out / "materialized").exists() and not (out / "verify.json").exists()


def _crops(out: Path) -> Path:
    """Stand-in materialized crops of the manifest in ``out`` (a finished run's layout: polypbench/shards/)."""
    root = out / "materialized" / "96"
    (root / "train").mkdir(parents=True)
    (root / "train" / "case1.arrow").write_bytes(b"crops")
    (root / "materialized.json").write_text("{}")
    return root


def _cli_prepare(*args: str) -> tuple[int, list[str]]:
    from click.testing import CliRunner

    from polypbench.cli import main

    result = CliRunner().invoke(main, ["prepare", *args, "--workers", "1", "-q"])
    return result.exit_code, result.output.strip().splitlines()


def test_a_typo_never_replaces_another_datasets_manifest(small: dict[str, Small], tmp_path: Path) -> None:
    """`prepare sun-seg ... --out prepared/sun` refuses in one line; --overwrite replaces the manifest but never
    deletes the other dataset's materialized crops (it refuses while they are there)."""
    out = tmp_path / "sun"
    prepare("sun", small["sun"].raw, out, workers=1)
    _crops(out)
    before = snapshot(out)
    code, lines = _cli_prepare("sun-seg", "--raw", str(small["sun-seg"].raw), "--out", str(out))
    assert code != 0 and len(lines) == 1 and lines[0].startswith(f"Error: {out}: holds a finished sun manifest"), lines
    assert "--overwrite" in lines[0] and snapshot(out) == before and not work_dir(out).exists()
    os.replace(out, tmp_path / ".sun.old")  # as a crash between the two renames of a publish leaves it
    code, lines = _cli_prepare("sun-seg", "--raw", str(small["sun-seg"].raw), "--out", str(out))
    assert code != 0 and len(lines) == 1 and "holds a finished sun manifest" in lines[0], lines
    os.replace(tmp_path / ".sun.old", out)
    code, lines = _cli_prepare("sun-seg", "--raw", str(small["sun-seg"].raw), "--out", str(out), "--overwrite")
    assert code != 0 and len(lines) == 1 and f"{out}/materialized" in lines[0] and "crops" in lines[0], lines
    assert snapshot(out) == before
    os.replace(out / "materialized", tmp_path / "kept-crops")  # the user moves them: now it may replace
    code, lines = _cli_prepare("sun-seg", "--raw", str(small["sun-seg"].raw), "--out", str(out), "--overwrite")
    assert code == 0, lines
    assert Manifest.open(out).dataset == "sun-seg" and (tmp_path / "kept-crops" / "96" / "materialized.json").is_file()


def test_a_manifest_of_another_dump_is_replaced_only_with_overwrite(small: dict[str, Small], tmp_path: Path) -> None:
    """The same dataset from another raw root (or under its alias) is another manifest, not an update."""
    out = tmp_path / "sun"
    prepare("sun", small["sun"].raw, out, workers=1)
    other = link_copy(small["sun"].raw, tmp_path / "other-raw")
    before = snapshot(out)
    for args in (("sun", "--raw", str(other)), ("misawa", "--raw", str(small["sun"].raw))):
        code, lines = _cli_prepare(*args, "--out", str(out))
        assert code != 0 and len(lines) == 1 and lines[0].startswith(f"Error: {out}: holds a finished sun"), lines
        assert snapshot(out) == before
    code, lines = _cli_prepare("sun", "--raw", str(other), "--out", str(out), "--overwrite")
    assert code == 0 and Manifest.open(out).raw_root == other.resolve(), lines


def test_the_same_dump_updates_its_own_manifest_without_overwrite(small: dict[str, Small], tmp_path: Path) -> None:
    """Re-running the same command resumes: unchanged units reused, derived data kept while frames are unchanged."""
    out = tmp_path / "sun"
    prepare("sun", small["sun"].raw, out, workers=1)
    _crops(out)
    code, lines = _cli_prepare("sun", "--raw", str(small["sun"].raw), "--out", str(out))
    assert code == 0, lines
    assert json.loads((out / "prepare_report.json").read_text())["resumed_units"] == 0  # parts end with a run
    assert (out / "materialized" / "96" / "train" / "case1.arrow").is_file()


def test_one_run_at_a_time(small: dict[str, Small], tmp_path: Path) -> None:
    out = tmp_path / "out"
    work_dir(out).mkdir()
    with exclusive(work_dir(out) / "lock", "held"), pytest.raises(PolypbenchError, match="another run is writing"):
        prepare("real-colon", small["real-colon"].raw, out, workers=1)


def test_a_run_resolves_its_dataset_once_and_its_card_states_the_manifests_provenance(
        small: dict[str, Small], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry entry is looked up once (the name as given: an alias) and passed down to the split files and
    the card; the card states what frames.parquet records (:meth:`Manifest.provenance`)."""
    from polypbench import datasets

    looked_up: list[str] = []
    get = datasets.get
    monkeypatch.setattr(datasets, "get", lambda name: looked_up.append(name) or get(name))
    out = tmp_path / "misawa"
    prepare("misawa", small["sun"].raw, out, workers=1)
    assert looked_up == ["misawa"]
    provenance = Manifest.open(out).provenance()
    assert provenance["dataset"] == "misawa" and provenance["path"] == str(out.resolve())
    card = (out / "README.md").read_text()
    assert f"`polypbench prepare`\n{provenance['polypbench_version']};" in card
    for key in ("split_version", "split_sha256", "paper_split_sha256"):
        assert provenance[key] and provenance[key] in card, key


# ------------------------------------------------------------------------------------------ resume by content
def test_resume_reuses_unchanged_units_and_reconverts_a_changed_one(small: dict[str, Small], tmp_path: Path) -> None:
    raw = link_copy(small["real-colon"].raw, tmp_path / "raw")
    out = tmp_path / "out"
    broken = first_xml_with_box(raw, "003-013")
    original = broken.read_bytes()
    replace_file(broken, original[:-40])
    with pytest.raises(PolypbenchError, match="003-013_annotations"):
        prepare("real-colon", raw, out, workers=1, strict=True)  # stops at the last video, like an interruption
    done = sorted(p.stem for p in (work_dir(out) / "parts").glob("*.parquet"))
    assert done == ["001-001", "001-012"]
    changed = first_xml_with_box(raw, "001-001")  # same size, new content: still noticed
    replace_file(changed, re.sub(rb"<xmin>\d+</xmin>", b"<xmin>7</xmin>", changed.read_bytes(), count=1).ljust(
        changed.stat().st_size))
    replace_file(broken, original)
    report = prepare("real-colon", raw, out, workers=1)
    assert report.resumed_units == 1  # 001-012; 001-001 changed
    assert json.loads((out / "prepare_report.json").read_text())["resumed_units"] == 1
    fresh = prepare("real-colon", raw, tmp_path / "fresh", workers=1)
    assert pq.read_table(out / "frames.parquet").equals(pq.read_table(tmp_path / "fresh" / "frames.parquet"))
    assert fresh.rows == report.rows and 7 in set(pq.read_table(out / "frames.parquet")["xmin"].to_pylist())


# ------------------------------------------------------------------------------------------ processes and OS
def _cli(*args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "polypbench", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kwargs)


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
@pytest.mark.process
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_end_when_the_parent_is_killed(prepared: Any, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "out"
    proc = _cli("prepare", "sun", "--raw", str(prepared["sun"].raw), "--out", str(out), "--workers", "2")
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
        workers = _children(proc.pid)
        time.sleep(0.01)
    assert len(workers) >= 2, "the pool never started"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "a worker outlived its parent"
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM and b"Traceback" not in stderr, stderr.decode()
    assert not out.exists(), "nothing is published by a killed run"
    report = prepare("sun", prepared["sun"].raw, out, workers=1)  # and the next run completes
    assert report.rows == prepared["sun"].report.rows


@pytest.mark.process  # a `polypbench prepare` process
def test_strict_stops_a_parallel_run_in_one_line(small: dict[str, Small], tmp_path: Path) -> None:
    """The first unit's problem stops the run while the other workers are busy: they are stopped, and nothing but
    the one line is printed (no traceback from the pool's threads or workers)."""
    raw = link_copy(small["real-colon"].raw, tmp_path / "raw")
    path = first_xml_with_box(raw, "001-001")
    replace_file(path, path.read_bytes()[:-40])
    proc = _cli("prepare", "real-colon", "--raw", str(raw), "--out", str(tmp_path / "out"), "--workers", "2",
                "--strict", "-q")
    stdout, stderr = proc.communicate(timeout=120)
    lines = (stdout + stderr).decode().strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and path.name in lines[0], lines


def test_a_full_disk_names_the_path_and_keeps_the_old_manifest(small: dict[str, Small], tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes every write past 4 KiB fail with EFBIG, as a full disk fails with ENOSPC."""
    out = tmp_path / "out"
    prepare("sun", small["sun"].raw, out, workers=1)
    old = snapshot(out)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    proc = _cli("prepare", "sun", "--raw", str(small["sun"].raw), "--out", str(out), "--workers", "1", "-q",
                preexec_fn=limit)
    stdout, stderr = proc.communicate(timeout=120)
    lines = (stdout + stderr).decode().strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith("Error: ") and "cannot write (File too large);" in lines[0], lines
    assert re.search(r"Error: /\S+\.(parquet|json|tmp)", lines[0]), lines  # the file being written
    assert snapshot(out) == old


def test_units_are_gathered_into_full_row_groups(prepared: dict, tmp_path: Path) -> None:
    """prepare writes one table per unit (a video, a case); the manifest holds them in row groups of
    ROW_GROUP_ROWS rows, not one small group per unit (each costs every reader of the manifest)."""
    import pyarrow as pa

    from polypbench import schema

    for name, done in prepared.items():
        frames = pq.ParquetFile(done.out / schema.FRAMES_FILE)
        assert frames.metadata.num_row_groups == 1 and frames.metadata.num_rows == len(Manifest.open(done.out).frames)
        assert all(pq.ParquetFile(p).metadata.num_row_groups <= 1 for p in (done.out / "hf").glob("*.parquet")), name
    path = tmp_path / "t.parquet"
    with schema.RowGroupWriter(path, pa.schema([("x", pa.int64())]), rows=4) as writer:
        for start in range(0, 11, 3):  # tables of 3, 3, 3, 2 rows and an empty one
            writer.write_table(pa.table({"x": list(range(start, min(start + 3, 11)))}))
        writer.write_table(pa.table({"x": pa.array([], pa.int64())}))
    written = pq.ParquetFile(path)
    assert [written.metadata.row_group(g).num_rows for g in range(written.metadata.num_row_groups)] == [4, 4, 3]
    assert written.read()["x"].to_pylist() == list(range(11))
