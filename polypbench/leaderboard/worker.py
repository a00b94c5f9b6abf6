"""The job worker (``polypbench leaderboard worker``): a separate process that takes jobs from the database, runs
each model in a limited child process (:mod:`polypbench.leaderboard.sandbox`), scores the predictions with the one
scorer, and records the outcome in the same transaction that marks the job done.

- ``model`` jobs (private track): predictions of the private test set, scored on its public and private parts;
  the submission's key is ``job:<id>``, so a job finished twice (a worker that lost its lease) records one entry.
- ``verify`` jobs (public track): the uploaded checkpoint re-run on the test frames of the datasets its
  submission covers; the submission is *verified* when the re-run reproduces every prediction column of the
  uploaded file, all of which the scorer may use (sizes within :data:`SIZE_TOLERANCE_MM`, probabilities within
  :data:`PROB_TOLERANCE`, hard labels exactly); a scored column the re-run does not produce is not verified.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from polypbench.errors import PolypbenchError
from polypbench.evaluate.validate import CLASS3, FRAME_KEY, POLYP_KEY, PROBS, SIZE
from polypbench.leaderboard import jobs
from polypbench.leaderboard.db import Database, Job, Submission, Verification
from polypbench.leaderboard.records import Fields, record
from polypbench.leaderboard.sandbox import META_OFFSET, Limits, ModelError, run_job
from polypbench.leaderboard.scoring import score_private
from polypbench.leaderboard.store import Store
from polypbench.leaderboard.tracks import POOLED, PrivateTrack, PublicTrack, open_tracks
from polypbench.leaderboard.uploads import check_safetensors, read_bounded

log = logging.getLogger(__name__)

SIZE_TOLERANCE_MM = 0.1
PROB_TOLERANCE = 0.01
SCORED = ((SIZE, [SIZE], SIZE_TOLERANCE_MM), ("p0..p2", list(PROBS), PROB_TOLERANCE), (CLASS3, [CLASS3], 0.0))
"""The prediction columns the scorer may use, as verification compares them: name, columns, tolerance."""


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
            with tempfile.TemporaryDirectory(prefix=f"polypbench-job{job.id}-") as tmp:
                if job.kind == "model":
                    self._model(job, Path(tmp))
                else:
                    self._verify(job, Path(tmp))
        except ModelError as exc:
            jobs.fail(self.db, job.id, self.owner, str(exc), retry=False)
        except Exception as exc:  # noqa: BLE001 - any other fault is the server's: retried, then reported
            log.exception("job %d", job.id)
            jobs.fail(self.db, job.id, self.owner, f"server error ({type(exc).__name__}); retried", retry=True)
        return True

    def _predict(self, job: Job, prepared: list[Path], work: Path) -> pd.DataFrame:
        weights = self.store.path(job.weights_sha256, ".safetensors")
        offset = check_safetensors(weights).metadata.get(META_OFFSET)
        spec = {"config": json.loads(job.config)["inference"], "weights": str(weights), "size_offset_mm": offset,
                "prepared": [str(p) for p in prepared]}
        out = run_job(spec, self.settings.limits, work,
                      heartbeat=lambda: jobs.renew(self.db, job.id, self.owner, self.settings.lease_s),
                      beat_s=max(0.5, self.settings.lease_s / 3))
        return pd.read_parquet(out)

    def _model(self, job: Job, work: Path) -> None:
        if self.private is None:
            raise PolypbenchError("this worker serves no private track (--private-labels)")
        frames = self._predict(job, self.private.paths, work)
        scored = score_private(frames, self.private, name=f"job {job.id}", n_bootstrap=self.settings.n_bootstrap,
                               seed=self.settings.seed)
        fields = Fields(method=job.method, filename=f"{job.architecture}.safetensors", paper_url=job.paper_url,
                        code_url=job.code_url, declaration=False, config=json.loads(job.config)["text"],
                        checkpoint_sha256=job.weights_sha256)

        def mark_done(session: Any, sub: Submission) -> None:
            held = jobs.holds(session, job.id, self.owner)
            if held is None:
                raise PolypbenchError("the worker lost the job's lease while recording it")
            jobs.done(session, held, sub.id)

        record(self.db, job.team_id, fields, {"public": scored["public"]}, track="private", key=f"job:{job.id}",
               primary=scored["public"].primary(POOLED), hidden={"private": scored["private"]},
               before_commit=mark_done)
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
            jobs.done(session, held, None)
        log.info("job %d: submission %d %s", job.id, sub.id, "verified" if verified else "not verified")


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
