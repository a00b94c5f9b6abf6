"""What every request of the leaderboard needs (:class:`Server`, ``app.state.server``) and the one-line JSON error
answer; the routes (:mod:`.api`, :mod:`.site`) and the app (:mod:`.app`) import it, it imports none of them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse

from polypbench.leaderboard import limits
from polypbench.leaderboard.columns import Track
from polypbench.leaderboard.config import Settings, model_catalog
from polypbench.leaderboard.db import Database
from polypbench.leaderboard.jobs import phase_closed
from polypbench.leaderboard.ratelimit import RateLimiter
from polypbench.leaderboard.store import Store
from polypbench.leaderboard.tracks import PrivateTrack, PublicTrack


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """The API's error answer: ``{"error": "<one line>", ...extra}`` with HTTP ``status``."""
    return JSONResponse({"error": " ".join(str(message).split()), **extra}, status_code=status)


@dataclass
class Server:
    """Everything a request needs; ``app.state.server``. ``after_commit(submission_id)`` runs after a submission is
    committed and before it is answered (a fault-injection point for tests; None in service)."""

    settings: Settings
    db: Database
    store: Store
    public: PublicTrack | None
    private: PrivateTrack | None
    team_limiter: RateLimiter
    ip_limiter: RateLimiter
    after_commit: Callable[[int], None] | None = None
    _catalog: tuple[list[str], dict[str, bool]] | None = None
    scoring: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(
        limits.SCORING_SLOTS))

    def catalog(self) -> tuple[list[str], dict[str, bool]]:
        """(model names, tasks) a model upload may name: the settings', else looked up once, in a child process
        (``serve`` does that once for all its workers)."""
        if self._catalog is None:
            names, tasks = self.settings.architectures, self.settings.tasks
            if names is None or tasks is None:
                found = model_catalog()
                names, tasks = found[0] if names is None else names, found[1] if tasks is None else tasks
            self._catalog = (names, tasks)
        return self._catalog

    @property
    def architectures(self) -> list[str]:
        """Registered model names a model upload may name."""
        return self.catalog()[0]

    @property
    def tasks(self) -> dict[str, bool]:
        """Tasks a submitted model may have, each with whether its weights must carry the size offset."""
        return self.catalog()[1]

    @property
    def tracks(self) -> list[Track]:
        """The tracks this server serves, public first."""
        return [t for t, on in ((Track.PUBLIC, self.public), (Track.PRIVATE, self.private)) if on is not None]

    def closed(self, track: Track) -> bool:
        with self.db.sessions() as session:
            return phase_closed(session, track) is not None
