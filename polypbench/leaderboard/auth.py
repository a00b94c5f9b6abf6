"""Team API tokens: a random token is shown once; only its sha256 digest is stored."""

from __future__ import annotations

import hashlib
import logging
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from polypbench.errors import PolypbenchError
from polypbench.leaderboard.db import Team

log = logging.getLogger(__name__)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_team(sessions: sessionmaker[Session], name: str) -> str:
    """Create team ``name`` and return its new token (the only time it exists in clear)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise PolypbenchError(f"team name {name!r}: invalid; expected 1 to 100 characters")
    token = secrets.token_urlsafe(32)
    with sessions() as session:
        if session.scalar(select(Team).where(Team.name == name)) is not None:
            raise PolypbenchError(f"team {name!r} already exists; expected a new team name")
        session.add(Team(name=name, token_hash=hash_token(token)))
        session.commit()
    log.info("added team %s", name)
    return token


def team_for(session: Session, authorization: str | None) -> Team | None:
    """The team of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    token = authorization[7:].strip()
    if not token:
        return None
    return session.scalar(select(Team).where(Team.token_hash == hash_token(token)))
