"""Writing files safely, resuming interrupted work, and running it on a process pool: one helper for each.

- :func:`read_text` / :func:`decode_text`: every text input (annotations, metadata and split tables, configs) read
  as UTF-8 whatever the locale, a leading byte order mark (what Notepad and Excel save) dropped rather than read as
  part of the first name; pandas readers take :data:`TEXT_ENCODING`.
- :func:`atomic_write` / :func:`atomic_output`: a file is either its old content or its complete new content,
  never half-written (temporary file beside it, then one rename); a failed write (disk full, no permission) is
  one :class:`~polypbench.errors.OutputError` naming the path (:func:`writing`).
- :func:`resume_dir`: the one resumable folder: kept by a rerun with the same signature (inputs, options,
  versions), discarded otherwise, its interrupted temporary files removed (``prepare``'s parts, ``materialize``'s
  shards, ``export-hf``'s staging). :class:`PartStore`: the finished parts of a long job in such a folder, each
  kept with a fingerprint of the input it came from, so that a rerun redoes exactly the parts whose input changed.
- :func:`publish_dir`: a folder built in a staging place replaces the published one as a whole; readers see the
  old folder, then (for a moment) none, then the new one, never a mixture. :func:`recover_dir` completes or
  rolls back a publish interrupted by a crash.
- :func:`exclusive`: one run at a time on an output (a lock file).
- :func:`run_pool`: jobs on a spawn-context process pool whose workers exit when the parent process dies, and are
  stopped at once when the parent stops early (an error, Ctrl-C, SIGTERM: see :func:`sigterm_exits`).
- :func:`quick_exit`: a process that imported torch ends in a fraction of a second, not 1-2 s.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import gc
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from polypbench.errors import InputError, OutputError, PolypbenchError

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")


TEXT_ENCODING = "utf-8-sig"
"""The encoding of every text input: UTF-8, with an optional leading byte order mark that is dropped."""


def decode_text(data: bytes, errors: str = "strict") -> str:
    """``data`` as text: UTF-8, a leading byte order mark dropped (``errors`` as for :meth:`bytes.decode`)."""
    return data.decode(TEXT_ENCODING, errors)


def read_text(path: str | Path, errors: str = "strict") -> str:
    """The text of the file at ``path`` (see :func:`decode_text`): never the locale's encoding, never a BOM."""
    return decode_text(Path(path).read_bytes(), errors)


def tmp_path(path: Path) -> Path:
    """The temporary name a file is written under before its rename: ``.<name>.tmp`` beside it."""
    return path.with_name(f".{path.name}.tmp")


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """An OSError while writing ``path`` (disk full, no permission, a file where a folder should be) becomes one
    :class:`OutputError` line naming it."""
    try:
        yield
    except OSError as exc:
        raise OutputError(path, _reason(exc)) from None


def _reason(exc: OSError) -> str:
    """``No space left on device``: the OS's words, also from pyarrow's ``... Detail: [errno 28] ...``."""
    found = re.search(r"\[errno (\d+)\]", str(exc))
    if found:
        return os.strerror(int(found.group(1)))
    return exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one rename, on error it is removed."""
    path = Path(path)
    tmp = tmp_path(path)
    try:
        with writing(path):
            yield tmp
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically (str as UTF-8)."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def atomic_write_json(path: str | Path, obj: object) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically (values JSON cannot hold are written as str)."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB chunks (split files, manifests, checkpoints, uploads)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is absent or unreadable (a file written by an older run)."""
    try:
        return json.loads(read_text(path))
    except (OSError, ValueError):
        return None


SIGNATURE_FILE = "signature.json"
"""The default name of a resumable folder's signature (:func:`resume_dir`)."""


def resume_dir(folder: str | Path, signature: Mapping[str, Any], *, signature_file: str = SIGNATURE_FILE) -> Path:
    """Open ``folder`` for a resumable job: what an interrupted run with the same ``signature`` (its inputs,
    options and versions, as JSON) finished there is kept; a folder made with another signature (or none) is
    discarded, with a log line. Temporary files of interrupted atomic writes (``.*.tmp``, at any depth) are
    removed. The signature is kept in ``folder/signature_file``. Returns ``folder``."""
    folder = Path(folder)
    wanted = json.loads(json.dumps(dict(signature), default=str))
    path = folder / signature_file
    with writing(folder):
        if folder.exists() and read_json(path) != wanted:
            log.warning("discarding partial results in %s: they came from other inputs, options or version", folder)
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.rglob(".*.tmp"):
            stale.unlink()
    if not path.is_file():
        atomic_write_json(path, wanted)
    return folder


class PartStore:
    """Finished parts of a resumable job in ``folder``: ``<key>.<suffix>`` files plus ``<key>.json``.

    ``<key>.json`` is written last and holds the part's fingerprint and info, so its presence with the same
    fingerprint is what marks a part done. :meth:`open` keeps the parts only when the folder was made for the
    job's signature (:func:`resume_dir`; else everything is discarded and logged).
    """

    def __init__(self, folder: Path, signature: Mapping[str, Any]) -> None:
        self.folder = Path(folder)
        self.signature = dict(signature)

    def open(self) -> None:
        """Create the store, discarding it first if it was made for another signature (and any temporary file of
        an interrupted save)."""
        resume_dir(self.folder, self.signature)

    def file(self, key: str, suffix: str) -> Path:
        return self.folder / f"{key}.{suffix}"

    def info(self, key: str) -> dict[str, Any] | None:
        """The info saved with a finished part, or None."""
        doc = read_json(self.file(key, "json"))
        return doc.get("info") if isinstance(doc, dict) else None

    def is_done(self, key: str, fingerprint: object) -> bool:
        """Whether part ``key`` was finished from input with this ``fingerprint`` (None never matches)."""
        return fingerprint is not None and self.fingerprint(key) == json.loads(json.dumps(fingerprint, default=str))

    def fingerprint(self, key: str) -> Any:
        """The fingerprint part ``key`` was finished with, or None (not finished, or not reusable)."""
        doc = read_json(self.file(key, "json"))
        return doc.get("fingerprint") if isinstance(doc, dict) else None

    def save(self, key: str, fingerprint: object, info: Mapping[str, Any],
             files: Mapping[str, Callable[[Path], None]] = {}) -> None:  # noqa: B006 - read-only default
        """Write part ``key``: each ``files[suffix](tmp_path)`` writes one file atomically, then the marker."""
        with writing(self.file(key, "json")):
            self.file(key, "json").unlink(missing_ok=True)  # not done while its files change
        for suffix, write in files.items():
            with atomic_output(self.file(key, suffix)) as tmp:
                write(tmp)
        atomic_write_json(self.file(key, "json"), {"fingerprint": fingerprint, "info": dict(info)})


def _old(final: Path) -> Path:
    return final.with_name(f".{final.name}.old")


def _carry(old: Path, final: Path, keep: Sequence[str]) -> None:
    """Move the ``keep`` entries of the previous folder into the new one (where it lacks them), then drop it."""
    for name in keep:
        if (old / name).exists() and not (final / name).exists():
            os.replace(old / name, final / name)
    shutil.rmtree(old)


def check_replaceable(out: Path, marker: str, earlier: str, replacer: str) -> None:
    """Refuse an ``--out`` that :func:`publish_dir` would wrongly replace: a file, or a folder with files that is
    not an earlier output (one holding ``marker``). ``earlier`` names such an output in the message, ``replacer``
    what would replace the folder."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "a file, not a folder", f"--out a new folder or {earlier}")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise InputError(out, f"a folder with other files, which the {replacer} would replace",
                         f"--out a new or empty folder, or {earlier}")


def recover_dir(final: str | Path, keep: Sequence[str] = ()) -> None:
    """Finish a :func:`publish_dir` of ``final`` interrupted by a crash: when only the previous folder remains
    (``.<name>.old``), it is put back; when the new one is in place, the previous one's ``keep`` entries are
    carried over and it is removed."""
    final = Path(final)
    old = _old(final)
    if not old.exists():
        return
    with writing(final):
        if not final.exists():
            os.replace(old, final)
            log.warning("%s: restored the previous folder (its replacement was interrupted)", final)
        else:
            _carry(old, final, keep)


def publish_dir(staging: str | Path, final: str | Path, keep: Sequence[str] = ()) -> None:
    """Replace the folder ``final`` by ``staging`` as a whole (``staging`` is consumed).

    The old folder is first renamed aside (``.<name>.old``), then ``staging`` renamed into place, then the old
    folder's ``keep`` entries (derived data worth keeping, e.g. caches) are moved into the new one where it lacks
    them, and the rest removed: ``final`` is the old complete folder, then absent, then the new complete one,
    never a mixture. An earlier interrupted publish is recovered first (:func:`recover_dir`).
    """
    staging, final = Path(staging), Path(final)
    recover_dir(final, keep)
    old = _old(final)
    with writing(final):
        if final.exists():
            os.replace(final, old)
        os.replace(staging, final)
        if old.exists():
            _carry(old, final, keep)


@contextlib.contextmanager
def exclusive(lock: str | Path, what: str) -> Iterator[None]:
    """Hold the lock file ``lock`` while the block runs; another process holding it fails at once with one line
    (two runs writing the same output would corrupt each other's work)."""
    lock = Path(lock)
    with writing(lock):
        handle = open(lock, "a")  # noqa: SIM115 - closed below, after the lock is released
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PolypbenchError(f"{what}: another run is writing it now (lock {lock}); expected one run at a "
                                  "time") from None
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def sigterm_exits() -> Iterator[None]:
    """While the block runs in the main thread, SIGTERM (``kill``, a SLURM time limit) raises SystemExit(143) like
    Ctrl-C raises KeyboardInterrupt: cleanup runs and a process pool is stopped instead of orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: FrameType | None) -> None:
        if _SPAWNING["now"]:
            _SPAWNING["signal"] = signum  # raised once the pool has started (see _spawning)
            return
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@functools.cache  # once per process
def quick_exit() -> None:
    """At interpreter exit, freeze the objects still alive (:func:`gc.freeze`), so that the garbage collections
    Python runs while it tears its modules down skip them: with torch and torchvision imported those took 1.1-1.9 s
    of every process's exit (5 s for a test worker), to free memory the OS takes back anyway. Exit handlers still
    run (files flush and close, pools stop, temporary folders go); only reference cycles alive at exit are left to
    the OS. Once per process: the command line, the sandboxed model run, pool workers, submitit jobs and
    ``serve --workers N``'s processes call it."""
    atexit.register(gc.freeze)


_SPAWNING: dict[str, Any] = {"now": False, "signal": None}


@contextlib.contextmanager
def _spawning() -> Iterator[None]:
    """While worker processes are being spawned, SIGTERM waits: interrupting the parent half-way through writing
    a child's start-up data would make that child print a traceback (EOFError) as it dies."""
    _SPAWNING.update(now=True, signal=None)
    try:
        yield
    finally:
        _SPAWNING["now"] = False
    if _SPAWNING["signal"] is not None:
        raise SystemExit(128 + _SPAWNING["signal"])


def _exit_with_parent(parent: int, initializer: Callable[..., object] | None = None,
                      initargs: tuple[Any, ...] = ()) -> None:
    """Pool initializer: a daemon thread ends this worker within a second once ``parent`` is gone (kill -9,
    SIGTERM), so no worker outlives the run blocked on a queue nobody reads. Ctrl-C is the parent's to handle:
    the worker ignores SIGINT (the parent stops it), so no worker prints a traceback. Then the caller's own
    ``initializer(*initargs)``, if any."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quick_exit()
    if initializer is not None:
        initializer(*initargs)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="polypbench-parent-watch", daemon=True).start()


def run_pool(fn: Callable[[J], R], jobs: Sequence[J], workers: int, *,
             initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = ()) -> Iterator[R]:
    """``fn(job)`` for every job, results in job order: in this process when ``workers`` is 1 (or one job), else
    on a spawn-context pool of at most ``workers`` processes, each first running ``initializer(*initargs)``.
    Leaving the iteration early (an error, Ctrl-C, SIGTERM under :func:`sigterm_exits`) cancels what has not
    started and terminates the running workers; workers exit on their own within a second if this process dies
    (kill -9)."""
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        yield from map(fn, jobs)
        return
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_exit_with_parent,
                               initargs=(os.getpid(), initializer, initargs))
    finished = False
    try:
        with _spawning():
            futures = [pool.submit(fn, job) for job in jobs]
        for future in futures:
            yield future.result()
        finished = True
    finally:
        if not finished:
            # Stop the running jobs instead of waiting for them. The executor then fails every pending future
            # itself; cancelling them here as well would race with it (Python 3.11 prints an InvalidStateError).
            # First close this process's read end of the job queue: once the workers are gone nothing reads it, and
            # a job still being written would block the executor's shutdown forever (CPython gh-94777, fixed in
            # 3.11.5 and 3.12, never in 3.10: `prepare --workers N` under Debian 12's Python 3.11.2 hung here on
            # SIGTERM, tests/prepare/test_engine.py's test_workers_end_when_the_parent_is_killed).
            with contextlib.suppress(AttributeError, OSError):
                pool._call_queue._reader.close()  # type: ignore[attr-defined]
            for process in list((pool._processes or {}).values()):  # no public way before Python 3.14
                with contextlib.suppress(OSError):
                    process.terminate()
        pool.shutdown(wait=True)
