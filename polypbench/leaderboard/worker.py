"""The job worker (``polypbench leaderboard worker``): a separate process that takes jobs from the database, runs
each model in a limited child process (:mod:`polypbench.inference.sandbox`), scores the predictions with the one
scorer, and records the outcome in the same transaction that marks the job done.

- ``model`` jobs (private track): predictions of the private test set, scored on its public and private parts;
  the submission's key is ``job:<id>``, so a job finished twice (a worker that lost its lease) records one entry.
- ``verify`` jobs (public track): the uploaded checkpoint re-run on the test frames of the datasets its
  submission covers; the submission is *verified* when the re-run reproduces every prediction column of the
  uploaded file, all of which the scorer may use (sizes within :data:`SIZE_TOLERANCE_MM`, probabilities within
  :data:`PROB_TOLERANCE`, hard labels exactly); a scored column the re-run does not produce is not verified.

A fault of the submission (a model that cannot run, or whose predictions are not valid) fails its job once, with
the reason; any other fault is the server's and is retried. Each run works in a job folder of the temp directory
(:func:`job_folder`) that its worker holds locked; a worker that was killed leaves its folder unlocked, and the next
worker to start removes it (:func:`remove_stale_job_folders`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from polypbench.errors import PolypbenchError
from polypbench.evaluate import SubmissionError
from polypbench.evaluate.validate import CLASS3, FRAME_KEY, POLYP_KEY, PROBS, SIZE
from polypbench.inference.sandbox import Limits, run_job
from polypbench.inference.spec import InferenceConfig, ModelError, ModelRun
from polypbench.leaderboard import jobs
from polypbench.leaderboard.columns import Part, Track
from polypbench.leaderboard.db import Database, Job, Submission, Verification
from polypbench.leaderboard.records import Fields, record
from polypbench.leaderboard.scoring import score_private
from polypbench.leaderboard.store import Store
from polypbench.leaderboard.tracks import POOLED, PrivateTrack, PublicTrack, open_tracks
from polypbench.leaderboard.uploads import read_bounded

log = logging.getLogger(__name__)

SIZE_TOLERANCE_MM = 0.1
PROB_TOLERANCE = 0.01
SCORED = ((SIZE, [SIZE], SIZE_TOLERANCE_MM), ("p0..p2", list(PROBS), PROB_TOLERANCE), (CLASS3, [CLASS3], 0.0))
"""The prediction columns the scorer may use, as verification compares them: name, columns, tolerance."""
JOB_PREFIX = "polypbench-job"
"""Job folders are ``<temp dir>/polypbench-job<job id>-p<worker pid>-<random>``."""
OWNER_LOCK = ".owner.lock"
"""A job folder's lock file, held (``flock``) by the worker that runs the job while the folder exists."""


@contextmanager
def job_folder(job_id: int, root: str | Path | None = None) -> Iterator[Path]:
    """A fresh folder (mode 700) for one run of job ``job_id`` in ``root`` (the temp directory), locked by this
    process until it is removed on exit; a process that dies releases the lock with its descriptors."""
    path = Path(tempfile.mkdtemp(prefix=f"{JOB_PREFIX}{job_id}-p{os.getpid()}-", dir=root))
    fd = os.open(path / OWNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)  # still locked: no other worker takes it for a dead one's
        os.close(fd)


def _pid_alive(name: str) -> bool:
    """Whether the worker named in a job folder's name (``-p<pid>-``) may still run (True when none is named)."""
    found = re.search(r"-p(\d+)-", name)
    if found is None:
        return True
    try:
        os.kill(int(found.group(1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_job_folders(root: str | Path | None = None) -> list[Path]:
    """Remove the job folders in ``root`` (the temp directory) left by workers that died (killed mid-run): those
    of this user whose lock is free, or that have no lock yet and whose worker's pid is gone. A live worker's folder
    is never touched. Returns what was removed (each logged: its spec.json named the store and the private data)."""
    removed = []
    for path in sorted(Path(root or tempfile.gettempdir()).glob(f"{JOB_PREFIX}*")):
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        try:
            fd = os.open(path / OWNER_LOCK, os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:  # made, not yet locked; or its worker died right then
            if _pid_alive(path.name):
                continue
            fd = -1
        except OSError:
            continue
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its worker is alive
            shutil.rmtree(path, ignore_errors=True)
        finally:
            if fd >= 0:
                os.close(fd)
        removed.append(path)
        log.warning("removed %s: the job folder of a worker that stopped mid-run", path)
    return removed


@dataclass
class WorkerSettings:
    n_bootstrap: int = 1000
    seed: int = 0
    lease_s: float = 60.0
    poll_s: float = 2.0
    limits: Limits = Limits()


class Worker:
    """Runs jobs from ``db``: ``run_once`` takes and finishes at most one; ``run`` loops until ``stop`` is set."""

    def __init__(self, db: Database, store: Store, *, public: PublicTrack | None = None,
                 private: PrivateTrack | None = None, settings: WorkerSettings | None = None) -> None:
        self.db, self.store, self.public, self.private = db, store, public, private
        self.settings = settings or WorkerSettings()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:100]
        self.stop = threading.Event()

    def run(self) -> None:
        log.info("worker %s: polling every %.1f s", self.owner, self.settings.poll_s)
        while not self.stop.is_set():
            if not self.run_once():
                self.stop.wait(self.settings.poll_s)

    def run_once(self) -> bool:
        job = jobs.claim(self.db, self.owner, self.settings.lease_s)
        if job is None:
            return False
        try:
            with job_folder(job.id) as work:
                if job.kind == "model":
                    self._model(job, work)
                else:
                    self._verify(job, work)
        except ModelError as exc:  # the submission's fault: reported once, never retried
            jobs.fail(self.db, job.id, self.owner, str(exc), retry=False)
        except Exception as exc:  # noqa: BLE001 - any other fault is the server's: retried, then reported
            log.exception("job %d", job.id)
            jobs.fail(self.db, job.id, self.owner, f"server error ({type(exc).__name__}); retried", retry=True)
        return True

    def _predict(self, job: Job, prepared: list[Path], work: Path) -> pd.DataFrame:
        weights = self.store.path(job.weights_sha256, ".safetensors")
        config = InferenceConfig.from_dict(json.loads(job.config)["inference"], f"job {job.id}")
        out = run_job(ModelRun(config, str(weights), tuple(str(p) for p in prepared)), self.settings.limits, work,
                      heartbeat=lambda: jobs.renew(self.db, job.id, self.owner, self.settings.lease_s),
                      beat_s=max(0.5, self.settings.lease_s / 3))
        return pd.read_parquet(out)

    def _model(self, job: Job, work: Path) -> None:
        if self.private is None:
            raise PolypbenchError("this worker serves no private track (--private-labels)")
        frames = self._predict(job, self.private.paths, work)
        check_outputs(frames)
        try:
            scored = score_private(frames, self.private, name=f"job {job.id}", n_bootstrap=self.settings.n_bootstrap,
                                   seed=self.settings.seed)
        except SubmissionError as exc:  # the model's own predictions: its fault (details for the organiser only)
            log.warning("job %d: the model's predictions were refused: %s", job.id, "; ".join(exc.problems))
            raise ModelError(f"the model's predictions were refused by the validator ({len(exc.problems)} "
                             "problem(s)); expected valid predictions of every test frame") from None
        fields = Fields(method=job.method, filename=f"{job.architecture}.safetensors", paper_url=job.paper_url,
                        code_url=job.code_url, declaration=False, config=json.loads(job.config)["text"],
                        checkpoint_sha256=job.weights_sha256)

        def mark_done(session: Any, sub: Submission) -> None:
            held = jobs.holds(session, job.id, self.owner)
            if held is None:
                raise PolypbenchError("the worker lost the job's lease while recording it")
            jobs.done(held, sub.id)

        live, final = scored[Part.PUBLIC], scored[Part.PRIVATE]  # the live board's part, the final ranking's
        record(self.db, job.team_id, fields, {Part.PUBLIC.value: live}, track=Track.PRIVATE, key=f"job:{job.id}",
               primary=live.primary(POOLED), hidden={Part.PRIVATE.value: final}, before_commit=mark_done)
        log.info("job %d: model scored", job.id)

    def _verify(self, job: Job, work: Path) -> None:
        if self.public is None:
            raise PolypbenchError("this worker serves no public track (--labels)")
        with self.db.sessions() as session:
            sub = session.get(Submission, job.submission_id)
            if sub is None or sub.file_sha256 is None:
                raise ModelError("verification: the submission's prediction file is not kept")
            covered = [s for s in json.loads(sub.result_json) if s != POOLED]
            suffix = Path(sub.filename).suffix.lower()
        uploaded_path = self.store.path(sub.file_sha256, suffix)
        uploaded = read_bounded(uploaded_path, sub.filename, self.public.row_cap)
        frames = self._predict(job, [self.public.paths[d] for d in covered], work)
        verified, detail = compare_predictions(uploaded, frames)
        with self.db.transaction() as session:
            held = jobs.holds(session, job.id, self.owner)
            if held is None:
                return
            if session.scalar(select(Verification).where(Verification.submission_id == sub.id)) is None:
                session.add(Verification(submission_id=sub.id, verified=verified, detail=detail))
            jobs.done(held, None)
        log.info("job %d: submission %d %s", job.id, sub.id, "verified" if verified else "not verified")


def check_outputs(frames: pd.DataFrame) -> None:
    """Raise :class:`ModelError` when the model's predictions hold non-finite values (NaN or infinite weights or
    activations): the submission's fault. Names the columns only: nothing about the hidden frames."""
    bad = [c for c in (SIZE, *PROBS) if c in frames and not np.isfinite(frames[c].to_numpy(float)).all()]
    if bad:
        raise ModelError(f"the model's outputs are non-finite ({', '.join(bad)}) on some test frames; expected finite "
                         "sizes and probabilities")


def compare_predictions(uploaded: pd.DataFrame, rerun: pd.DataFrame) -> tuple[bool, str]:
    """(verified, one-line detail): do the re-run frame predictions reproduce the uploaded ones?"""
    if FRAME_KEY not in uploaded:
        return False, "not verified: the file has polyp-level rows; verification needs the frame-level file that " \
                      "`polypbench predict` writes"
    keys = [POLYP_KEY, FRAME_KEY]
    left = uploaded.assign(**{POLYP_KEY: uploaded[POLYP_KEY].astype(str)})
    right = rerun.assign(**{POLYP_KEY: rerun[POLYP_KEY].astype(str)})
    merged = left.merge(right, on=keys, how="inner", suffixes=("", "_rerun"))
    if len(merged) != len(right) or len(merged) != len(left):
        return False, f"not verified: the re-run predicted {len(right)} frames, the file has {len(left)} rows, " \
                      f"{len(merged)} in common"
    checks = []
    for name, cols, tolerance in SCORED:
        if not any(c in left for c in cols):
            continue
        if not all(c in right for c in cols):
            made = ", ".join(c for c in (SIZE, *PROBS, CLASS3) if c in right) or "nothing"
            return False, f"not verified: the file's {name} is scored but the re-run does not produce it (the " \
                          f"checkpoint predicts {made})"
        diff = np.max(np.abs(merged[cols].to_numpy(float) - merged[[f"{c}_rerun" for c in cols]].to_numpy(float)),
                      axis=1)
        checks.append((name, diff, tolerance))
    if not checks:
        return False, "not verified: the file lacks the prediction columns the checkpoint produces"
    for name, diff, tolerance in checks:
        bad = ~(diff <= tolerance)
        if bad.any():
            return False, (f"not verified: {int(bad.sum())} of {len(diff)} frames differ in {name} by more than "
                           f"{tolerance:g} (largest {np.nanmax(diff):.3g})")
    return True, f"verified: the server re-ran the checkpoint on {len(merged)} test frames and got the same " \
                 f"predictions ({', '.join(f'{n} within {t:g}' for n, _, t in checks)})"


def run_worker(worker: Worker, max_seconds: float | None = None) -> None:
    """Loop (for ``max_seconds`` when given, e.g. in tests)."""
    if max_seconds is not None:
        timer = threading.Timer(max_seconds, worker.stop.set)
        timer.daemon = True
        timer.start()
    try:
        worker.run()
    finally:
        worker.stop.set()


def main(settings: Any, limits: Limits, *, once: bool = False) -> None:
    """The ``leaderboard worker`` command: serve the tracks of ``settings`` (a :class:`~.config.Settings`)."""
    import signal

    remove_stale_job_folders()
    db = Database(settings.db)
    store = Store(settings.store_dir())
    public, private = open_tracks(settings, store.root)
    worker = Worker(db, store, public=public, private=private,
                    settings=WorkerSettings(n_bootstrap=settings.n_bootstrap, seed=settings.seed, limits=limits))
    try:
        if once:
            while worker.run_once():
                pass
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: worker.stop.set())
        worker.run()
    finally:
        db.dispose()
