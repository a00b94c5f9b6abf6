"""The job queue is the ``jobs`` table: no broker. A job survives server and worker restarts and is retried.

- :func:`enqueue` (server): one transaction, serialized per team; a repeated idempotency key returns the job it
  made; the private track's daily cap on model submissions and its phase are checked there.
- :func:`claim` (worker): the oldest runnable job (queued and due, or running with an expired lease: its worker
  died) becomes ``running`` with a lease for this worker; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock
  on SQLite, so two workers never take one job.
- :func:`renew` extends the lease while the job runs; a worker that lost its lease drops the job.
- :func:`fail`: retried later (``retry``: a server-side fault) up to :data:`MAX_ATTEMPTS` runs, else ``failed``
  with a one-line reason the team sees (a fault of the submission, e.g. weights that do not fit the architecture,
  is never retried); a verification that failed is the submission's verification outcome, with that reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update

from polypbench.errors import PolypbenchError
from polypbench.leaderboard import limits
from polypbench.leaderboard.columns import Track
from polypbench.leaderboard.db import Database, Job, Phase, Verification, lock_team, models_today, utcnow
from polypbench.leaderboard.records import CapReached

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RETRY_DELAY = dt.timedelta(seconds=5)


class PhaseClosed(PolypbenchError):
    """The track's phase is closed: no more submissions (HTTP 409)."""


@dataclass(frozen=True)
class NewJob:
    kind: str
    method: str
    architecture: str
    config: str
    weights_sha256: str
    weights_bytes: int
    paper_url: str | None = None
    code_url: str | None = None
    submission_id: int | None = None


def phase_closed(session: Any, track: Track) -> dt.datetime | None:
    """When ``track``'s phase was closed; None while it runs."""
    phase = session.get(Phase, track.value)
    return None if phase is None else phase.closed_at


def close_phase(db: Database, track: Track = Track.PRIVATE) -> dt.datetime:
    """Close ``track``'s phase (idempotent); when it was closed."""
    with db.transaction() as session:
        phase = session.get(Phase, track.value)
        if phase is None:
            phase = Phase(track=track.value, closed_at=utcnow())
            session.add(phase)
        elif phase.closed_at is None:
            phase.closed_at = utcnow()
        closed = phase.closed_at
    assert closed is not None
    log.info("%s track closed at %s", track, closed)
    return closed


def enqueue(db: Database, team_id: int, new: NewJob, *, key: str | None = None, cap: int | None = None,
            now: dt.datetime | None = None) -> tuple[Job, bool]:
    """Queue a job; (job, False), or (the earlier job, True) for a repeated ``key``. ``now``: the server's clock
    (:meth:`Settings.clock`), the job's creation time and the model cap's day; None: the real time."""
    now = now or utcnow()
    with db.transaction() as session:
        lock_team(session, team_id)
        if key is not None:
            earlier = session.scalar(select(Job).where(Job.team_id == team_id, Job.idempotency_key == key))
            if earlier is not None:
                return earlier, True
        if new.kind == "model":
            if phase_closed(session, Track.PRIVATE) is not None:
                raise PhaseClosed("the private track's phase is closed; expected no more model submissions")
            if cap is not None and models_today(session, team_id, now=now) >= cap:
                raise CapReached(f"daily cap reached: {cap} model submissions per team per UTC day")
        job = Job(team_id=team_id, idempotency_key=key, status="queued", attempts=0, not_before=utcnow(),
                  created_at=now, **asdict(new))
        session.add(job)
        session.flush()
    log.info("queued %s job %d", new.kind, job.id)
    return job, False


def claim(db: Database, owner: str, lease_s: float) -> Job | None:
    """Take the oldest runnable job for ``owner``; None when there is none."""
    while True:
        with db.transaction() as session:
            now = utcnow()
            runnable = or_(and_(Job.status == "queued", Job.not_before <= now),
                           and_(Job.status == "running", Job.lease_expires < now))
            job = session.scalar(select(Job).where(runnable).order_by(Job.id).limit(1)
                                 .with_for_update(skip_locked=True))
            if job is None:
                return None
            if job.attempts >= MAX_ATTEMPTS:  # its workers kept dying: give up, say so
                _failed(session, job, f"the worker stopped during each of {job.attempts} runs; the job was given up")
                continue
            job.status, job.attempts, job.lease_owner = "running", job.attempts + 1, owner
            job.lease_expires = now + dt.timedelta(seconds=lease_s)
            job.started_at = now
        log.info("claimed job %d (attempt %d)", job.id, job.attempts)
        return job


def renew(db: Database, job_id: int, owner: str, lease_s: float) -> bool:
    """Extend the lease; False when ``owner`` no longer holds the job."""
    with db.transaction() as session:
        result = session.execute(update(Job).where(Job.id == job_id, Job.lease_owner == owner,
                                                   Job.status == "running")
                                 .values(lease_expires=utcnow() + dt.timedelta(seconds=lease_s)))
        return bool(result.rowcount)  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult


def holds(session: Any, job_id: int, owner: str) -> Job | None:
    """The job, locked, if ``owner`` still runs it (checked in the transaction that records its outcome)."""
    job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    return job if job is not None and job.status == "running" and job.lease_owner == owner else None


def done(job: Job, submission_id: int | None) -> None:
    """Mark ``job`` done (a job :func:`holds` gave: the caller's transaction records it)."""
    job.status, job.finished_at, job.error = "done", utcnow(), None
    if submission_id is not None:
        job.submission_id = submission_id


def fail(db: Database, job_id: int, owner: str, error: str, *, retry: bool) -> None:
    with db.transaction() as session:
        job = holds(session, job_id, owner)
        if job is None:
            return
        message = " ".join(error.split())[: limits.ERROR]
        if retry and job.attempts < MAX_ATTEMPTS:
            job.status, job.lease_owner, job.lease_expires = "queued", None, None
            job.not_before, job.error = utcnow() + RETRY_DELAY * job.attempts, message
            log.warning("job %d: %s (will retry)", job_id, message)
        else:
            _failed(session, job, message)


def _failed(session: Any, job: Job, message: str) -> None:
    """Mark ``job`` failed for good; a failed verification is recorded as the submission's outcome (shown on its
    page with the reason), as a completed one would be."""
    job.status, job.finished_at, job.error = "failed", utcnow(), message
    if job.kind == "verify" and job.submission_id is not None and session.scalar(
            select(Verification).where(Verification.submission_id == job.submission_id)) is None:
        detail = f"not verified: the re-run failed: {message}"[: limits.ERROR]
        session.add(Verification(submission_id=job.submission_id, verified=False, detail=detail))
    log.warning("job %d (%s) failed: %s", job.id, job.kind, message)


def describe(job: Job) -> dict[str, Any]:
    """A job as its team sees it; ``page``: where a browser shows it (on its team's page)."""
    def when(t: dt.datetime | None) -> str | None:
        return None if t is None else t.strftime("%Y-%m-%d %H:%M:%S UTC")

    return {"id": job.id, "kind": job.kind, "status": job.status, "attempts": job.attempts, "method": job.method,
            "architecture": job.architecture, "weights_sha256": job.weights_sha256, "created": when(job.created_at),
            "started": when(job.started_at), "finished": when(job.finished_at), "error": job.error,
            "submission_id": job.submission_id, "url": f"/api/jobs/{job.id}",
            "page": f"/jobs/{job.id}"}
