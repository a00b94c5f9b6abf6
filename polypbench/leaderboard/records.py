"""Recording scored submissions atomically, and reading them back as the public entries the pages show.

:func:`record` is the one write path of a submission: in one transaction it serializes on the team
(:func:`~polypbench.leaderboard.db.lock_team`), answers a repeated idempotency key with the submission it already
made, re-checks the daily cap, and inserts the submission with its replicates. So the cap and the keys hold across
any number of server processes, and a client that lost the answer (a crash between commit and response) gets the
same submission back on retry instead of a second one.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from polypbench.errors import PolypbenchError
from polypbench.evaluate import Replicates
from polypbench.leaderboard.columns import Track
from polypbench.leaderboard.db import (
    Database,
    Replicate,
    Submission,
    Verification,
    lock_team,
    scored_today,
    utcnow,
)
from polypbench.leaderboard.scoring import Scored


class CapReached(PolypbenchError):
    """The team's daily cap is used up (HTTP 429)."""


@dataclass(frozen=True)
class Fields:
    """What a team declares with a submission (validated by the server before it gets here)."""

    method: str
    filename: str
    paper_url: str | None = None
    code_url: str | None = None
    declaration: bool = False
    config: str | None = None
    checkpoint_sha256: str | None = None
    file_sha256: str | None = None
    split_hashes: str | None = None


def by_key(session: Session, team_id: int, key: str | None) -> Submission | None:
    if key is None:
        return None
    return session.scalar(select(Submission).where(Submission.team_id == team_id, Submission.idempotency_key == key))


def record(db: Database, team_id: int, fields: Fields, scored: dict[str, Scored], *, track: Track = Track.PUBLIC,
           key: str | None = None, cap: int | None = None, primary: float | None = None,
           hidden: dict[str, Scored] | None = None,
           before_commit: Callable[[Session, Submission], None] | None = None,
           now: dt.datetime | None = None) -> tuple[Submission, bool]:
    """Insert a submission (and its replicates); (submission, False), or (the earlier one, True) for a repeated
    ``key``. Raises :class:`CapReached` when ``cap`` scored submissions of ``track`` exist today. ``now``: the
    server's clock (:meth:`Settings.clock`), the submission's time and the cap's day; None: the real time."""
    now = now or utcnow()
    with db.transaction() as session:
        lock_team(session, team_id)
        earlier = by_key(session, team_id, key)
        if earlier is not None:
            return earlier, True
        if cap is not None and scored_today(session, team_id, track, now=now) >= cap:
            raise CapReached(f"daily cap reached: {cap} scored submissions per team per UTC day")
        sub = Submission(team_id=team_id, track=track.value, idempotency_key=key, primary_value=primary,
                         result_json=json.dumps({s: v.result for s, v in scored.items()}),
                         hidden_json=None if hidden is None else json.dumps({s: v.result for s, v in hidden.items()}),
                         created_at=now, **asdict(fields))
        session.add(sub)
        session.flush()
        for scope, item in {**scored, **(hidden or {})}.items():
            for metric, reps in item.replicates.items():
                session.add(Replicate(submission_id=sub.id, scope=scope, key=metric, **encode(reps)))
        if before_commit is not None:
            before_commit(session, sub)
    return sub, False


FLOAT = "<f4"
"""How replicate and jackknife values are stored: little-endian float32 (8 KB per metric at 2,000 replicates)."""
STRATUM = "<i2"
"""How each patient's stratum (dataset index) is stored."""


def encode(reps: Replicates) -> dict[str, Any]:
    """The columns of a :class:`~polypbench.leaderboard.db.Replicate` row: every number at float32 precision, the
    point value included (so a replicate equal to the point value stays equal to it; NaN value as NULL)."""
    value = float(np.float32(reps.value))
    return {"value": None if np.isnan(value) else value,
            "replicates": np.asarray(reps.replicates, dtype=FLOAT).tobytes(),
            "jackknife": np.asarray(reps.jackknife, dtype=FLOAT).tobytes(),
            "strata": np.asarray(reps.strata, dtype=STRATUM).tobytes(), "resamples": reps.resamples}


def decode(row: Replicate) -> Replicates:
    """The stored :class:`~polypbench.evaluate.Replicates` (float64 arrays holding the float32 values)."""
    return Replicates(row.key, np.nan if row.value is None else float(row.value),
                      np.frombuffer(row.replicates, dtype=FLOAT).astype(np.float64),
                      np.frombuffer(row.jackknife, dtype=FLOAT).astype(np.float64),
                      np.frombuffer(row.strata, dtype=STRATUM).astype(np.int64), row.resamples)


def replicates(session: Session, ids: list[int], scope: str, key: str) -> dict[int, Replicates]:
    """Submission id -> the stored replicates of metric ``key`` in ``scope`` (ids without them are left out)."""
    if not ids:
        return {}
    rows = session.scalars(select(Replicate).where(
        Replicate.submission_id.in_(ids), Replicate.scope == scope, Replicate.key == key)).all()
    return {row.submission_id: decode(row) for row in rows}


def entry(sub: Submission, verification: Verification | None = None, *, reveal: bool = False) -> dict[str, Any]:
    """The public form of a submission: who, what (its ``track`` a :class:`~.columns.Track`), the reproducibility
    fields and the visible results per scope (the private part only with ``reveal``: after its phase closed)."""
    results = json.loads(sub.result_json)
    if reveal and sub.hidden_json:
        results.update(json.loads(sub.hidden_json))
    return {"id": sub.id, "team": sub.team.name, "track": Track(sub.track), "method": sub.method,
            "paper_url": sub.paper_url, "code_url": sub.code_url, "filename": sub.filename,
            "declaration": sub.declaration, "config": sub.config, "checkpoint_sha256": sub.checkpoint_sha256,
            "file_sha256": sub.file_sha256, "split_hashes": sub.split_hashes,
            "verified": None if verification is None else verification.verified,
            "verification": None if verification is None else verification.detail,
            "submitted": sub.created_at.strftime("%Y-%m-%d %H:%M UTC"), "results": results}


def verifications(session: Session, ids: list[int]) -> dict[int, Verification]:
    if not ids:
        return {}
    return {v.submission_id: v for v in session.scalars(select(Verification).where(
        Verification.submission_id.in_(ids)))}
