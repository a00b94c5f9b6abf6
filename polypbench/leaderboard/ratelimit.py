"""The request rate limit, counted in the database so that it holds across server processes.

Fixed one-minute windows: a row per (key, window) whose count each request increments atomically
(``UPDATE ... SET count = count + 1``; the first request of a window inserts the row, and a concurrent first insert
falls back to the update). Keys are ``ip:<client address>`` (every request, before authentication) and
``team:<id>`` (after authentication), so neither spellings of one token nor invalid headers escape it. Memory is
bounded: nothing is kept in the process, and a window's rows are deleted once it has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from polypbench.leaderboard import limits
from polypbench.leaderboard.db import Database, RateHit


class RateLimiter:
    """At most ``limit`` requests per ``window_s`` seconds per key; ``limit`` 0 disables it. ``clock``: seconds
    since the epoch (tests pass their own)."""

    def __init__(self, db: Database, limit: int, window_s: int = 60,
                 clock: Callable[[], float] = time.time) -> None:
        self.db, self.limit, self.window_s, self.clock = db, limit, window_s, clock

    def allow(self, key: str) -> bool:
        if self.limit <= 0:
            return True
        key = key[: limits.RATE_KEY]
        window = int(self.clock() // self.window_s)
        this = (RateHit.key == key) & (RateHit.window == window)
        with self.db.transaction() as session:
            bumped = session.execute(
                update(RateHit).where(this).values(count=RateHit.count + 1)
            ).rowcount  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult, which has rowcount
            if not bumped:
                try:
                    with session.begin_nested():
                        session.add(RateHit(key=key, window=window, count=1))
                except IntegrityError:  # another process inserted it first
                    session.execute(update(RateHit).where(this).values(count=RateHit.count + 1))
                else:  # once per key and window: drop windows that have passed
                    session.execute(delete(RateHit).where(RateHit.window < window - 1))
            count = session.scalar(select(RateHit.count).where(this))
        return int(count or 0) <= self.limit
