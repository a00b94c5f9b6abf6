"""Verify the frames a prepared manifest references, not only its annotations (``polypbench verify``).

REAL-Colon is 880 GB from a single mirror without checksums, so a truncated download passes ``prepare`` (which
reads only the annotations) and would surface later, in ``materialize`` or the loader. ``verify`` checks every
distinct frame the manifest references: it exists inside the raw root (the same symlink policy as ``prepare``),
is a regular file and a complete JPEG (start-of-image marker, a frame header, end-of-image marker;
:mod:`polypbench.jpeg`, no decode) whose header size equals the manifest's ``width`` x ``height``. Each bad frame
is one line of a counted kind (:data:`polypbench.prepare.problems.KINDS`).

With ``hash``, each frame's sha256 is computed as well, and per split a Merkle root: the RFC 6962 tree hash over
the split's frames in ``frame_path`` order, leaf data = ``frame_path`` (UTF-8), a zero byte, the frame's 32-byte
sha256. Two labs holding identical data get identical roots, and a result can name the exact frames it used.

Written beside the manifest by a passing run: ``verify.json`` (counts and the roots) and, with ``hash``,
``frame_hashes.parquet`` (``frame_path``, ``split``, ``bytes``, ``sha256``). Both name the ``frames.parquet`` they
describe by its sha256; ``prepare`` keeps them across a re-prepare only when that file is unchanged. A run that
finds bad frames writes its record, every problem included, to ``verify.failed.json`` instead: it never replaces a
passing record (a passing run removes it). A raw root holding none of the frames (the wrong ``--raw``) is one
error line, and nothing is written.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from polypbench import __version__
from polypbench.errors import InputError
from polypbench.fileio import atomic_output, atomic_write_json, run_pool, writing
from polypbench.jpeg import JpegError, inspect_bytes, inspect_fd
from polypbench.prepare.inputs import RawRoot, file_type, open_regular, os_problem
from polypbench.prepare.problems import Problem, ProblemError, summarize

# Worker processes import this module to run _check_chunk: pyarrow, pandas and the manifest reader are imported
# inside verify_frames only, so that each spawned worker starts in a fraction of a second.

CHUNK = 256
"""Frames per job sent to a worker."""
_OPEN = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW  # a symlink fails (ELOOP): checked by the policy
_READ = 1 << 20

Frame = tuple[str, int, int]
"""(frame_path, width, height) as the manifest has them."""
Checked = tuple[str, int, str | None, Problem | None]
"""(frame_path, bytes, sha256 hex or None, problem or None)."""


def merkle_root(leaves: list[bytes]) -> str:
    """RFC 6962 Merkle tree hash (hex) of ``leaves`` (each leaf's data, in order): leaf ``sha256(0x00 || data)``,
    node ``sha256(0x01 || left || right)``, a lone last node carried up a level; the empty tree is ``sha256()``."""
    if not leaves:
        return hashlib.sha256().hexdigest()
    level = [hashlib.sha256(b"\0" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        paired = [hashlib.sha256(b"\1" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0].hex()


def leaf(frame_path: str, sha256: str) -> bytes:
    """The leaf data of one frame: its path, a zero byte, its sha256 (32 bytes)."""
    return frame_path.encode("utf-8") + b"\0" + bytes.fromhex(sha256)


def _read_all(fd: int, size: int) -> bytes:
    parts = [os.read(fd, size + 1)]
    while parts[-1]:
        parts.append(os.read(fd, _READ))
    return b"".join(parts)


def _open(root: RawRoot, folders: dict[str, str | None], rel: str) -> tuple[int, int]:
    """Open frame ``rel`` under the symlink policy (each folder resolved once); return (fd, size)."""
    root.check_relative(rel)
    folder, _, name = rel.rpartition("/")
    if folder not in folders:
        folders[folder] = root.resolve(folder, want="dir") if folder else root.real
    real_dir = folders[folder]
    if real_dir is None:
        raise FileNotFoundError(rel)
    try:
        fd = os.open(os.path.join(real_dir, name), _OPEN)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        real = root.resolve(rel)  # a symlinked frame: followed inside the raw root only
        if real is None:
            raise FileNotFoundError(rel) from None
        fd, info = open_regular(real, rel)
        return fd, info.st_size
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ProblemError("not_a_file", f"{rel}: not a regular file ({file_type(info.st_mode)}); expected a JPEG")
    return fd, info.st_size


def check_frame(root: RawRoot, folders: dict[str, str | None], frame: Frame, hash_it: bool) -> Checked:
    """Check one frame; with ``hash_it`` read it whole and hash it."""
    rel, width, height = frame
    size, digest = 0, None
    try:
        fd, size = _open(root, folders, rel)
        try:
            if hash_it:
                data = _read_all(fd, size)
                size, digest = len(data), hashlib.sha256(data).hexdigest()
                jpeg = inspect_bytes(data)
            else:
                jpeg = inspect_fd(fd, size)
        finally:
            os.close(fd)
    except ProblemError as exc:
        return rel, 0, None, exc.problem
    except FileNotFoundError:
        return rel, 0, None, Problem("missing_frame", f"{rel}: no such file; expected the frame the manifest "
                                     "references")
    except JpegError as exc:
        return rel, size, digest, Problem("bad_frame", f"{rel}: {exc}; expected a complete JPEG")
    except OSError as exc:
        return rel, 0, None, os_problem(rel, exc).problem
    if (jpeg.width, jpeg.height) != (width, height):
        return rel, size, digest, Problem("size_mismatch", f"{rel}: JPEG of {jpeg.width}x{jpeg.height}; expected "
                                          f"{width}x{height} as in the manifest")
    return rel, size, digest, None


def _check_chunk(job: tuple[Path, list[Frame], bool]) -> list[Checked]:
    """Worker entry: one chunk of frames (an unexpected error is an ``internal`` problem of its frame)."""
    raw, frames, hash_it = job
    root = RawRoot.of(raw)
    folders: dict[str, str | None] = {}
    out: list[Checked] = []
    for frame in frames:
        try:
            out.append(check_frame(root, folders, frame, hash_it))
        except Exception as exc:  # noqa: BLE001 - the last resort: counted, named, never a traceback
            out.append((frame[0], 0, None, Problem("internal", f"{frame[0]}: internal error ({type(exc).__name__}: "
                                                   f"{exc}); please report it")))
    return out


@dataclass
class VerifyReport:
    """What ``verify`` found (also saved as verify.json beside the manifest)."""

    prepared: Path
    raw: Path
    frames: int
    bytes: int
    seconds: float
    hashed: bool
    splits: dict[str, dict[str, object]]
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self, frames_sha256: str) -> dict[str, object]:
        return {"polypbench": __version__, "frames_sha256": frames_sha256, "raw_root": str(self.raw.resolve()),
                "frames": self.frames, "bytes": self.bytes, "seconds": round(self.seconds, 3), "hashed": self.hashed,
                "splits": self.splits, "problems": summarize(self.problems),
                "all_problems": [p.to_dict() for p in self.problems]}

    def describe(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        lines = [f"{self.prepared}: {self.frames - len(self.problems)} of {self.frames} frames verified "
                 f"({self.bytes / 1e6:.1f} MB{' hashed' if self.hashed else ' checked'}, {rate:,.0f} frames/s) "
                 f"under {self.raw}"]
        for split, info in self.splits.items():
            root = info.get("merkle_root")
            if self.hashed:
                lines.append(f"{split}: {info['frames']} frames, Merkle root "
                             f"{root or 'not recorded (some frames failed)'}")
        return "\n".join(lines)


def verify_frames(prepared: str | Path, raw_root: str | Path | None = None, *, hash_frames: bool = False,
                  workers: int | None = None) -> VerifyReport:
    """Check every frame ``prepared`` references under ``raw_root`` (default: the root recorded at prepare time);
    with ``hash_frames`` also hash them. Writes verify.json (and frame_hashes.parquet) beside the manifest, or
    verify.failed.json when a frame is bad, and returns the report; bad frames are in ``report.problems``, one line
    each. Raises :class:`InputError` when none of the frames is under ``raw_root``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from polypbench import schema
    from polypbench.fileio import file_sha256
    from polypbench.manifest import Manifest
    from polypbench.progress import Progress

    manifest = Manifest.open(prepared)
    raw = Path(raw_root) if raw_root is not None else manifest.raw_root
    if raw is None or not raw.is_dir():
        raise InputError(manifest.root, f"raw root {raw} is not a folder",
                         "--raw the folder the dump was prepared from")
    rows = manifest.frames.drop_duplicates("frame_path")
    frames: list[Frame] = list(zip(rows["frame_path"].astype(str), rows["width"].astype(int),
                                   rows["height"].astype(int), strict=True))
    split_of = dict(zip(rows["frame_path"].astype(str), rows["split"].astype(str), strict=True))
    jobs = [(raw, frames[i:i + CHUNK], hash_frames) for i in range(0, len(frames), CHUNK)]
    checked: list[Checked] = []
    start = time.perf_counter()
    with Progress(len(frames), f"verify {manifest.dataset}", unit="frame") as bar:
        for part in run_pool(_check_chunk, jobs, workers or os.cpu_count() or 1):
            checked += part
            bar.update(len(part))
    seconds = time.perf_counter() - start
    problems = [p for *_, p in checked if p is not None]
    if frames and sum(p.kind == "missing_frame" for p in problems) == len(frames):
        raise InputError(raw, f"0 of {len(frames)} frames of {manifest.root} under it: is this the dump prepare read "
                         f"({manifest.raw_root})?", "--raw the folder the manifest's frames are in")
    splits: dict[str, dict[str, object]] = {}
    for split in schema.SPLITS:
        mine = sorted((c for c in checked if split_of[c[0]] == split), key=lambda c: c[0])
        info: dict[str, object] = {"frames": len(mine), "bytes": sum(c[1] for c in mine)}
        if hash_frames:
            good = all(c[3] is None for c in mine)
            info["merkle_root"] = merkle_root([leaf(c[0], c[2]) for c in mine if c[2]]) if good else None
        splits[split] = info
    report = VerifyReport(manifest.root, raw, len(frames), sum(c[1] for c in checked), seconds, hash_frames, splits,
                          problems)
    frames_sha = file_sha256(manifest.root / schema.FRAMES_FILE)
    if problems:  # a failed run's record goes beside a passing one, never in its place
        atomic_write_json(manifest.root / schema.VERIFY_FAILED_FILE, report.to_dict(frames_sha))
        return report
    if hash_frames:
        table = pa.table({"frame_path": [c[0] for c in checked], "split": [split_of[c[0]] for c in checked],
                          "bytes": pa.array([c[1] for c in checked], pa.int64()),
                          "sha256": pa.array([c[2] for c in checked], pa.string())})
        table = table.sort_by([("split", "ascending"), ("frame_path", "ascending")])
        table = table.replace_schema_metadata(schema.parquet_metadata({schema.META_FRAMES_HASH: frames_sha}))
        with atomic_output(manifest.root / schema.HASHES_FILE) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    atomic_write_json(manifest.root / schema.VERIFY_FILE, report.to_dict(frames_sha))
    with writing(manifest.root / schema.VERIFY_FAILED_FILE):
        (manifest.root / schema.VERIFY_FAILED_FILE).unlink(missing_ok=True)
    return report
