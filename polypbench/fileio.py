"""Writing files safely, resuming interrupted work, and running it on a process pool: one helper for each.

- :func:`atomic_write` / :func:`atomic_output`: a file is either its old content or its complete new content,
  never half-written (temporary file beside it, then one rename).
- :class:`PartStore`: the finished parts of a long job, each kept with a fingerprint of the input it came from,
  so that a rerun redoes exactly the parts whose input changed; the store is discarded when the job's signature
  (inputs, options, versions) differs.
- :func:`publish_dir`: a folder built in a staging place replaces the published one as a whole; readers see the
  old folder, then (for a moment) none, then the new one, never a mixture.
- :func:`run_pool`: jobs on a spawn-context process pool whose workers exit when the parent process dies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")


def tmp_path(path: Path) -> Path:
    """The temporary name a file is written under before its rename: ``.<name>.tmp`` beside it."""
    return path.with_name(f".{path.name}.tmp")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one rename, on error it is removed."""
    path = Path(path)
    tmp = tmp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically (str as UTF-8)."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def atomic_write_json(path: str | Path, obj: object) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically (values JSON cannot hold are written as str)."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is absent or unreadable (a file written by an older run)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class PartStore:
    """Finished parts of a resumable job in ``folder``: ``<key>.<suffix>`` files plus ``<key>.json``.

    ``<key>.json`` is written last and holds the part's fingerprint and info, so its presence with the same
    fingerprint is what marks a part done. :meth:`open` keeps the parts only when ``signature.json`` equals the
    job's signature (else everything is discarded and logged).
    """

    SIGNATURE = "signature.json"

    def __init__(self, folder: Path, signature: Mapping[str, Any]) -> None:
        self.folder = Path(folder)
        self.signature = json.loads(json.dumps(dict(signature), default=str))

    def open(self) -> None:
        """Create the store, discarding it first if it was made for another signature."""
        sig_path = self.folder / self.SIGNATURE
        if self.folder.exists() and read_json(sig_path) != self.signature:
            log.warning("discarding partial results in %s: they came from other inputs, options or version",
                        self.folder)
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not sig_path.is_file():
            atomic_write_json(sig_path, self.signature)

    def file(self, key: str, suffix: str) -> Path:
        return self.folder / f"{key}.{suffix}"

    def info(self, key: str) -> dict[str, Any] | None:
        """The info saved with a finished part, or None."""
        doc = read_json(self.file(key, "json"))
        return doc.get("info") if isinstance(doc, dict) else None

    def is_done(self, key: str, fingerprint: object) -> bool:
        """Whether part ``key`` was finished from input with this ``fingerprint``."""
        doc = read_json(self.file(key, "json"))
        return isinstance(doc, dict) and doc.get("fingerprint") == json.loads(json.dumps(fingerprint, default=str))

    def save(self, key: str, fingerprint: object, info: Mapping[str, Any],
             files: Mapping[str, Callable[[Path], None]] = {}) -> None:  # noqa: B006 - read-only default
        """Write part ``key``: each ``files[suffix](tmp_path)`` writes one file atomically, then the marker."""
        self.file(key, "json").unlink(missing_ok=True)  # not done while its files change
        for suffix, write in files.items():
            with atomic_output(self.file(key, suffix)) as tmp:
                write(tmp)
        atomic_write_json(self.file(key, "json"), {"fingerprint": fingerprint, "info": dict(info)})


def publish_dir(staging: Path, final: Path) -> None:
    """Replace the folder ``final`` by ``staging`` as a whole (``staging`` is consumed).

    The old folder is first renamed aside, then ``staging`` renamed into place, then the old one removed: at no
    moment does ``final`` hold a mixture of old and new files. A leftover ``.<name>.old`` of an interrupted
    publish is removed first.
    """
    final = Path(final)
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if old.exists():
        shutil.rmtree(old)


def _exit_with_parent(parent: int) -> None:
    """Pool initializer: a daemon thread ends this worker within a second once ``parent`` is gone (kill -9,
    SIGTERM), so no worker outlives the run blocked on a queue nobody reads."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="polypbench-parent-watch", daemon=True).start()


def run_pool(fn: Callable[[J], R], jobs: Sequence[J], workers: int) -> Iterator[R]:
    """``fn(job)`` for every job, results in job order: in this process when ``workers`` is 1 (or one job), else
    on a spawn-context pool of at most ``workers`` processes. Leaving the iteration early cancels what has not
    started; workers exit on their own if this process dies."""
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        yield from map(fn, jobs)
        return
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_exit_with_parent,
                               initargs=(os.getpid(),))
    try:
        yield from pool.map(fn, jobs, chunksize=1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
