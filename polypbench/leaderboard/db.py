"""The leaderboard's database: SQLAlchemy models, the engine for any URL, migrations, and atomic write transactions.

``--db`` is a SQLite file path, or any SQLAlchemy URL (``postgresql://user:pw@host/db`` is read with psycopg 3).
The schema is created and upgraded by Alembic (``polypbench/leaderboard/migrations``); the models here and the
migrations are compared by a test. Column lengths come from :mod:`polypbench.leaderboard.limits`, the same numbers
the server validates with.

Everything that must hold across server processes (the daily cap, idempotency keys, the rate limit, claiming a
job) runs in a write transaction from :meth:`Database.transaction`: on SQLite it starts with ``BEGIN IMMEDIATE`` (one
writer at a time across processes; WAL lets readers go on), on PostgreSQL the caller locks the team's row with
``SELECT ... FOR UPDATE`` (:func:`lock_team`).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from polypbench.errors import PolypbenchError
from polypbench.leaderboard import limits
from polypbench.leaderboard.columns import Track

log = logging.getLogger(__name__)

Id = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit ids (SQLite's INTEGER PRIMARY KEY is 64-bit already and must be spelled INTEGER to autoincrement)."""
MAX_ID = 2**63 - 1
"""The largest id a path parameter may carry (larger ones are refused before any query)."""


class Base(DeclarativeBase):
    pass


def utcnow() -> dt.datetime:
    """Now, UTC, naive (both backends store it as is)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def utc(seconds: float) -> dt.datetime:
    """``seconds`` since the epoch as a naive UTC time, like :func:`utcnow` (a server's clock reading)."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).replace(tzinfo=None)


class Team(Base):
    """A team; ``token_hash`` is the sha256 hex digest of its API token (the token itself is never stored)."""

    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(limits.TEAM_NAME), unique=True)
    token_hash: Mapped[str] = mapped_column(String(limits.SHA256), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    submissions: Mapped[list[Submission]] = relationship(back_populates="team")


class Submission(Base):
    """One scored entry (append-only: rows are never updated or deleted).

    ``result_json``: per scope (a dataset, ``pooled``; on the private track ``public``, the public part) the
    sanitized aggregate result. ``hidden_json``: the private track's private part, shown only once its phase is
    closed. ``idempotency_key``: the client's key; one submission per (team, key).
    """

    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("team_id", "idempotency_key", name="uq_submission_key"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    track: Mapped[str] = mapped_column(String(16), default=Track.PUBLIC.value)  # a Track's value
    method: Mapped[str] = mapped_column(String(limits.METHOD))
    paper_url: Mapped[str | None] = mapped_column(String(limits.URL), nullable=True)
    code_url: Mapped[str | None] = mapped_column(String(limits.URL), nullable=True)
    filename: Mapped[str] = mapped_column(String(limits.FILENAME))
    declaration: Mapped[bool] = mapped_column(Boolean, default=False)
    config: Mapped[str | None] = mapped_column(Text, nullable=True)
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(limits.SHA256), nullable=True)
    file_sha256: Mapped[str | None] = mapped_column(String(limits.SHA256), nullable=True)
    split_hashes: Mapped[str | None] = mapped_column(String(limits.SPLIT_HASHES), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(limits.IDEMPOTENCY_KEY), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    primary_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    result_json: Mapped[str] = mapped_column(Text)
    hidden_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    team: Mapped[Team] = relationship(back_populates="submissions")


class Replicate(Base):
    """One board metric of one submission in one scope, as :class:`polypbench.evaluate.Replicates` (what
    :mod:`polypbench.evaluate.ranking` needs to rank and compare entries), compactly: ``value`` the point value
    (NULL when undefined), ``replicates`` (R,) and ``jackknife`` (P,) little-endian float32 (NaN where undefined),
    ``strata`` (P,) little-endian int16, ``resamples`` the resample fingerprint. Every number is stored at float32
    precision, the point value included, so that a replicate equal to the point value stays equal to it
    (:mod:`polypbench.leaderboard.records` writes and reads them)."""

    __tablename__ = "replicates"
    __table_args__ = (UniqueConstraint("submission_id", "scope", "key", name="uq_replicate"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    scope: Mapped[str] = mapped_column(String(limits.SCOPE))
    key: Mapped[str] = mapped_column(String(limits.METRIC_KEY))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    replicates: Mapped[bytes] = mapped_column(LargeBinary)
    jackknife: Mapped[bytes] = mapped_column(LargeBinary)
    strata: Mapped[bytes] = mapped_column(LargeBinary)
    resamples: Mapped[str] = mapped_column(String(limits.RESAMPLES))


class Job(Base):
    """A queued model run (the queue is this table). ``kind``: ``model`` (a private-track model submission) or
    ``verify`` (re-run the checkpoint uploaded with public submission ``submission_id``). ``status``: queued,
    running, done, failed. A running job holds a lease (``lease_owner``, ``lease_expires``) that its worker renews;
    a job whose lease ran out (its worker died) is taken again, up to ``MAX_ATTEMPTS`` runs in all."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("team_id", "idempotency_key", name="uq_job_key"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(limits.RATE_KEY), nullable=True)
    lease_expires: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(String(limits.ERROR), nullable=True)
    method: Mapped[str] = mapped_column(String(limits.METHOD))
    paper_url: Mapped[str | None] = mapped_column(String(limits.URL), nullable=True)
    code_url: Mapped[str | None] = mapped_column(String(limits.URL), nullable=True)
    architecture: Mapped[str] = mapped_column(String(limits.ARCHITECTURE))
    config: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(limits.SHA256))
    weights_bytes: Mapped[int] = mapped_column(BigInteger)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(limits.IDEMPOTENCY_KEY), nullable=True)


class Verification(Base):
    """The outcome of re-running a public submission's uploaded checkpoint (insert-only; one per submission)."""

    __tablename__ = "verifications"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    verified: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(String(limits.ERROR))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class RateHit(Base):
    """Requests of one key (``team:<id>`` or ``ip:<address>``) in one fixed window; old windows are deleted."""

    __tablename__ = "rate_hits"
    key: Mapped[str] = mapped_column(String(limits.RATE_KEY), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class Phase(Base):
    """A track's phase: ``closed_at`` set by the organiser reveals the private part's ranking and ends uploads."""

    __tablename__ = "phases"
    track: Mapped[str] = mapped_column(String(16), primary_key=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


@event.listens_for(Submission, "before_update")
@event.listens_for(Submission, "before_delete")
@event.listens_for(Replicate, "before_update")
@event.listens_for(Replicate, "before_delete")
@event.listens_for(Verification, "before_update")
@event.listens_for(Verification, "before_delete")
def _append_only(_mapper: Any, _connection: Any, target: Any) -> None:
    raise PolypbenchError(f"{type(target).__name__.lower()} {target.id}: rows are append-only; expected no update "
                          "or delete")


def database_url(db: str) -> str:
    """A SQLAlchemy URL: ``db`` itself when it has a scheme (``postgresql://`` is read with psycopg 3), else a SQLite
    file at that path."""
    if "://" not in db:
        return f"sqlite:///{db}"
    for prefix in ("postgresql://", "postgres://"):
        if db.startswith(prefix):
            return "postgresql+psycopg://" + db[len(prefix):]
    return db


def _sqlite_setup(engine: Engine) -> None:
    """Transactions under our control: ``BEGIN`` (deferred) for reads, ``BEGIN IMMEDIATE`` for writes; WAL so that
    readers never wait for the writer; a busy timeout instead of "database is locked" errors."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own BEGIN handling off; ours below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(db: str) -> Engine:
    url = database_url(db)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
        _sqlite_setup(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


class Database:
    """One database: ``sessions()`` for reads, ``transaction()`` for atomic writes. ``migrate`` upgrades the schema
    to the newest Alembic revision first; without it the schema must already be current."""

    def __init__(self, db: str, *, migrate: bool = True) -> None:
        self.url = database_url(str(db))
        self.engine = make_engine(str(db))
        self.dialect = self.engine.dialect.name
        if migrate:
            upgrade(self.engine)
        else:
            check_current(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(self.engine.execution_options(immediate=True), expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction, committed on exit (rolled back on an exception). On SQLite it holds the database's
        write lock from its first statement; on PostgreSQL call :func:`lock_team` to serialize per team."""
        with self._writes() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()


def lock_team(session: Session, team_id: int) -> None:
    """Serialize write transactions of one team across processes (PostgreSQL row lock; SQLite's transaction already
    holds the write lock)."""
    session.execute(select(Team.id).where(Team.id == team_id).with_for_update())


def day_start(now: dt.datetime) -> dt.datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def scored_today(session: Session, team_id: int, track: Track = Track.PUBLIC, *, now: dt.datetime) -> int:
    """Scored submissions of ``track`` a team made since 00:00 UTC of ``now``'s day (refused files do not count)."""
    query = select(func.count(Submission.id)).where(Submission.team_id == team_id, Submission.track == track.value,
                                                    Submission.created_at >= day_start(now))
    return int(session.scalar(query) or 0)


def models_today(session: Session, team_id: int, *, now: dt.datetime) -> int:
    """Private-track model submissions a team made since 00:00 UTC of ``now``'s day (queued, running, done or
    failed)."""
    query = select(func.count(Job.id)).where(Job.team_id == team_id, Job.kind == "model",
                                             Job.created_at >= day_start(now))
    return int(session.scalar(query) or 0)


# -- migrations ---------------------------------------------------------------------------------------------------
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


@functools.lru_cache(maxsize=1)
def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision (concurrent callers serialize in env.py)."""
    from alembic import command

    if current_revision(engine) == head_revision():
        return
    command.upgrade(_alembic_config(engine), "head")
    log.info("database schema at revision %s", head_revision())


def check_current(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise PolypbenchError(f"database schema at revision {current}; expected {head} (run `polypbench leaderboard "
                              "migrate --db ...` first)")
