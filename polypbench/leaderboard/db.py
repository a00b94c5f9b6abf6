"""SQLAlchemy models (teams, append-only submissions) and the session factory.

``--db`` is a SQLite file path by default; anything with ``://`` (``postgresql://...``) is passed to SQLAlchemy as is.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text, create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from polypbench.errors import PolypbenchError


class Base(DeclarativeBase):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Team(Base):
    """A team; ``token_hash`` is the sha256 hex digest of its API token (the token itself is never stored)."""

    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    submissions: Mapped[list[Submission]] = relationship(back_populates="team")


class Submission(Base):
    """One scored submission (append-only: rows are never updated or deleted).

    ``result_json`` is the sanitized aggregate result (no per-polyp rows, no server paths); ``primary_*`` is the
    pooled primary metric, for ranking without parsing the JSON.
    """

    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    method: Mapped[str] = mapped_column(String(200))
    paper_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    code_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    filename: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=_now, index=True)
    primary_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    result_json: Mapped[str] = mapped_column(Text)
    team: Mapped[Team] = relationship(back_populates="submissions")


@event.listens_for(Submission, "before_update")
@event.listens_for(Submission, "before_delete")
def _append_only(mapper: Any, connection: Any, target: Submission) -> None:
    raise PolypbenchError(f"submission {target.id}: submissions are append-only; expected no update or delete")


def database_url(db: str) -> str:
    """A SQLAlchemy URL: ``db`` itself when it has a scheme, else a SQLite file at that path."""
    return db if "://" in db else f"sqlite:///{db}"


def make_engine(db: str) -> Engine:
    url = database_url(db)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}} if url.startswith("sqlite") else {}
    engine = create_engine(url, **kwargs)
    Base.metadata.create_all(engine)
    return engine


def session_factory(db: str) -> sessionmaker[Session]:
    """Sessions on ``db`` (tables are created when missing)."""
    return sessionmaker(make_engine(db), expire_on_commit=False)


def scored_today(session: Session, team_id: int) -> int:
    """Scored submissions of a team since 00:00 UTC today."""
    start = _now().replace(hour=0, minute=0, second=0, microsecond=0)
    query = select(func.count(Submission.id)).where(Submission.team_id == team_id, Submission.created_at >= start)
    return int(session.scalar(query) or 0)
