"""Team API tokens (a random token is shown once; only its sha256 digest is stored) and the request's team.

:func:`current_team` is the FastAPI dependency of every authenticated route: ``HTTPBearer`` reads the
``Authorization: Bearer <token>`` header, the token's digest finds the team, and the team's own rate limit is
counted (keyed by the team, so no spelling of a token escapes it).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from polypbench.errors import PolypbenchError
from polypbench.leaderboard import limits
from polypbench.leaderboard.db import Database, Team

log = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="The team's API token")


@dataclass(frozen=True)
class TeamRef:
    id: int
    name: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_team(db: Database, name: str) -> str:
    """Create team ``name`` and return its new token (the only time it exists in clear)."""
    name = " ".join(name.split())
    if not name or len(name) > limits.TEAM_NAME:
        raise PolypbenchError(f"team name {name!r}: invalid; expected 1 to {limits.TEAM_NAME} characters")
    token = secrets.token_urlsafe(32)
    with db.transaction() as session:
        if session.scalar(select(Team).where(Team.name == name)) is not None:
            raise PolypbenchError(f"team {name!r} already exists; expected a new team name")
        session.add(Team(name=name, token_hash=hash_token(token)))
    log.info("added team %s", name)
    return token


def team_for(db: Database, token: str) -> TeamRef | None:
    with db.sessions() as session:
        team = session.scalar(select(Team).where(Team.token_hash == hash_token(token)))
        return None if team is None else TeamRef(team.id, team.name)


async def current_team(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> TeamRef:
    """The authenticated team (401 otherwise), after counting the request against the team's rate limit (429)."""
    server = request.app.state.server
    token = credentials.credentials.strip() if credentials is not None else ""
    team = await run_in_threadpool(team_for, server.db, token) if token else None
    if team is None:
        raise HTTPException(401, "missing or invalid API token; expected 'Authorization: Bearer <token>'")
    if not await run_in_threadpool(server.team_limiter.allow, f"team:{team.id}"):
        raise HTTPException(429, f"rate limit exceeded: more than {server.team_limiter.limit} requests per minute "
                                 "for this team; expected fewer")
    return team
