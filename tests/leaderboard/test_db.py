"""The schema (Alembic migrations = models; column lengths = validation limits), the database rate limit and the
job queue's claim/lease/retry rules, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import String, select, update

from polypbench.leaderboard import jobs, limits
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.db import Base, Database, Job, RateHit, Submission, Team, current_revision, head_revision
from polypbench.leaderboard.ratelimit import RateLimiter
from polypbench.leaderboard.records import CapReached


def test_the_migrations_build_exactly_the_models(database: Database) -> None:
    assert current_revision(database.engine) == head_revision()
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    Database(database.url, migrate=False).dispose()  # a current schema is accepted without migrating


def test_column_lengths_are_the_validation_limits() -> None:
    expected = {(Team, "name"): limits.TEAM_NAME, (Submission, "method"): limits.METHOD,
                (Submission, "paper_url"): limits.URL, (Submission, "code_url"): limits.URL,
                (Submission, "filename"): limits.FILENAME, (Submission, "split_hashes"): limits.SPLIT_HASHES,
                (Submission, "idempotency_key"): limits.IDEMPOTENCY_KEY, (Job, "method"): limits.METHOD,
                (Job, "architecture"): limits.ARCHITECTURE, (Job, "error"): limits.ERROR}
    for (model, column), length in expected.items():
        kind = model.__table__.c[column].type
        assert isinstance(kind, String) and kind.length == length, (model, column)


def test_the_rate_limit_is_counted_in_the_database_and_forgets_old_windows(database: Database) -> None:
    now = [600.0]
    limiter = RateLimiter(database, limit=2, window_s=60, clock=lambda: now[0])
    other = RateLimiter(database, limit=2, window_s=60, clock=lambda: now[0])  # another process, same database
    assert [limiter.allow("team:1"), other.allow("team:1"), limiter.allow("team:1")] == [True, True, False]
    assert other.allow("ip:10.0.0.1")
    now[0] += 59.0
    assert not other.allow("team:1")  # still the same window
    now[0] += 121.0
    assert limiter.allow("team:2")  # two windows later: the rows of passed windows are deleted
    with database.sessions() as session:
        assert [(h.key, h.count) for h in session.scalars(select(RateHit))] == [("team:2", 1)]


NOON = dt.datetime(2025, 6, 15, 12)
"""The clock of the queue tests (naive UTC, as stored): the daily cap never depends on the wall clock."""


def _job(database: Database, team_id: int, key: str, cap: int = 2, now: dt.datetime = NOON) -> Job:
    new = jobs.NewJob(kind="model", method="m", architecture="resnet18", config="{}", weights_sha256="0" * 64,
                      weights_bytes=1)
    job, replayed = jobs.enqueue(database, team_id, new, key=key, cap=cap, now=now)
    assert not replayed
    return job


def test_the_model_cap_counts_the_clocks_utc_day(database: Database) -> None:
    team_id = _team(database)
    midnight, second = dt.datetime(2025, 6, 16), dt.timedelta(seconds=1)  # naive UTC, as stored
    _job(database, team_id, "key-000001", cap=1, now=midnight - second)
    with pytest.raises(CapReached, match="daily cap reached: 1 model submissions"):
        _job(database, team_id, "key-000002", cap=1, now=midnight - second / 10)
    job = _job(database, team_id, "key-000003", cap=1, now=midnight)  # a new UTC day: a new cap
    assert job.created_at == midnight  # the clock's time, not the wall clock's
    with pytest.raises(CapReached):
        _job(database, team_id, "key-000004", cap=1, now=midnight + 86_399 * second)


def _team(database: Database) -> int:
    add_team(database, "q")
    with database.sessions() as session:
        team_id = session.scalar(select(Team.id))
    assert team_id is not None
    return team_id


def test_a_job_whose_worker_died_is_taken_again_then_given_up(database: Database) -> None:
    team_id = _team(database)
    job = _job(database, team_id, "key-000001")
    assert jobs.enqueue(database, team_id, jobs.NewJob("model", "m", "resnet18", "{}", "0" * 64, 1),
                        key="key-000001")[1]  # the same key: the same job
    first = jobs.claim(database, "worker-a", lease_s=60)
    assert first is not None and first.id == job.id and first.attempts == 1
    assert jobs.claim(database, "worker-b", lease_s=60) is None  # leased: nobody else takes it
    with database.transaction() as session:  # worker-a dies: its lease runs out
        session.execute(update(Job).values(lease_expires=dt.datetime(2000, 1, 1)))
    second = jobs.claim(database, "worker-b", lease_s=60)
    assert second is not None and second.id == job.id and second.attempts == 2
    assert not jobs.renew(database, job.id, "worker-a", 60)  # worker-a, if alive, learns it lost the job
    jobs.fail(database, job.id, "worker-a", "late", retry=True)  # and cannot touch it
    jobs.fail(database, job.id, "worker-b", "server hiccup", retry=True)
    with database.sessions() as session:
        state = session.get(Job, job.id)
        assert state is not None and state.status == "queued" and state.error == "server hiccup"
    with database.transaction() as session:
        session.execute(update(Job).values(not_before=dt.datetime(2000, 1, 1)))
    third = jobs.claim(database, "worker-c", lease_s=60)
    assert third is not None and third.attempts == 3
    with database.transaction() as session:
        session.execute(update(Job).values(lease_expires=dt.datetime(2000, 1, 1)))
    assert jobs.claim(database, "worker-d", lease_s=60) is None  # died 3 times: given up, and said so
    with database.sessions() as session:
        state = session.get(Job, job.id)
        assert state is not None and state.status == "failed" and "each of 3 runs" in str(state.error)
    _job(database, team_id, "key-000002")
    with pytest.raises(CapReached, match="daily cap reached: 2 model submissions"):
        _job(database, team_id, "key-000003")
    jobs.close_phase(database)
    with pytest.raises(jobs.PhaseClosed):
        _job(database, team_id, "key-000004")
