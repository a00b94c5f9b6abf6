"""The leaderboard server: ``create_app(...)`` returns the FastAPI app (routes in :mod:`.api` and :mod:`.site`).

Every error is one JSON line ``{"error": "..."}`` (an invalid prediction file adds ``"problems"``), whatever raised
it: a refused request, the first validation error of a parameter, an over-large or malformed body, an id beyond
64 bits, an unexpected exception (HTTP 500, logged). Middleware, outermost first: the per-address rate limit
(before any authentication or body reading), then the streaming body-size limit of the route.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from polypbench.errors import PolypbenchError
from polypbench.evaluate import SubmissionError
from polypbench.leaderboard import limits
from polypbench.leaderboard.config import Settings, list_architectures
from polypbench.leaderboard.db import Database
from polypbench.leaderboard.jobs import PhaseClosed, phase_closed
from polypbench.leaderboard.ratelimit import RateLimiter
from polypbench.leaderboard.records import CapReached
from polypbench.leaderboard.store import Store
from polypbench.leaderboard.tracks import PrivateTrack, PublicTrack, open_tracks
from polypbench.leaderboard.uploads import BodyLimit, json_error

log = logging.getLogger(__name__)


def error(status: int, message: str, **extra: Any) -> JSONResponse:
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
    _architectures: list[str] | None = None
    scoring: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(
        limits.SCORING_SLOTS))

    @property
    def architectures(self) -> list[str]:
        """Registered model names a model upload may name (looked up once, in a child process, unless the settings
        list them: ``serve`` does that once for all its workers)."""
        if self._architectures is None:
            found = self.settings.architectures
            self._architectures = found if found is not None else list_architectures()
        return self._architectures

    @property
    def tracks(self) -> list[str]:
        return [t for t, on in (("public", self.public), ("private", self.private)) if on is not None]

    def closed(self, track: str) -> bool:
        with self.db.sessions() as session:
            return phase_closed(session, track) is not None


def build_server(settings: Settings, *, migrate: bool = True,
                 after_commit: Callable[[int], None] | None = None) -> Server:
    if not settings.labels and not settings.private_labels:
        raise PolypbenchError("no track to serve: expected --labels (public track) and/or --private-labels")
    db = Database(settings.db, migrate=migrate)
    store = Store(settings.store_dir())
    public, private = open_tracks(settings, store.root)
    return Server(settings, db, store, public, private, RateLimiter(db, settings.rate_limit),
                  RateLimiter(db, settings.ip_rate_limit), after_commit)


class AddressLimit:
    """ASGI middleware: the per-client-address rate limit, counted before anything else reads the request."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app, self.limiter = app, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.limiter.limit > 0:
            client = scope.get("client")
            key = f"ip:{client[0] if client else '?'}"
            if not await run_in_threadpool(self.limiter.allow, key):
                start, body = json_error(429, f"rate limit exceeded: more than {self.limiter.limit} requests per "
                                              "minute from this address; expected fewer")
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _body_limit(settings: Settings) -> Callable[[str], int]:
    def limit_for(path: str) -> int:
        if path == "/api/submissions":
            return settings.max_upload_bytes + limits.FORM_OVERHEAD
        if path == "/api/models" or (path.startswith("/api/submissions/") and path.endswith("/checkpoint")):
            return settings.max_model_bytes + limits.FORM_OVERHEAD
        return limits.SMALL_BODY

    return limit_for


def _where(loc: Sequence[Any]) -> str:
    kinds = {"body": "form field", "query": "query parameter", "path": "path parameter", "header": "header"}
    if not loc:
        return "request"
    kind = kinds.get(str(loc[0]), str(loc[0]))
    return f"{kind} {str(loc[-1])!r}" if len(loc) > 1 else kind


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if exc.status_code != 400 or "parsing the body" not in str(exc.detail) else \
            "unreadable request body; expected a multipart form with the documented fields"
        return error(exc.status_code, str(detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        message = f"{_where(first.get('loc', ()))}: {first.get('msg', 'invalid')}"
        return error(422, f"{message}; expected the documented fields (see /api/info and docs/leaderboard.md)")

    @app.exception_handler(SubmissionError)
    async def _problems(request: Request, exc: SubmissionError) -> JSONResponse:
        return error(422, f"{len(exc.problems)} problem(s) in the prediction file; nothing was scored",
                     problems=exc.problems)

    @app.exception_handler(CapReached)
    async def _cap(request: Request, exc: CapReached) -> JSONResponse:
        return error(429, str(exc))

    @app.exception_handler(PhaseClosed)
    async def _closed(request: Request, exc: PhaseClosed) -> JSONResponse:
        return error(409, str(exc))

    @app.exception_handler(PolypbenchError)
    async def _refused(request: Request, exc: PolypbenchError) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error(500, "internal server error; it was logged")


def create_app(db: str | Path | Settings, labels: Sequence[str | Path] = (), *, migrate: bool = True,
               after_commit: Callable[[int], None] | None = None, **options: Any) -> FastAPI:
    """The leaderboard app: ``create_app(settings)``, or ``create_app(db, labels, **settings fields)``."""
    from polypbench.leaderboard import api, site

    settings = db if isinstance(db, Settings) else Settings(db=str(db), labels=[str(p) for p in labels], **options)
    server = build_server(settings, migrate=migrate, after_commit=after_commit)
    app = FastAPI(title="polypbench leaderboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    _install_handlers(app)
    app.include_router(api.router)
    app.include_router(site.router)
    app.add_middleware(BodyLimit, limit_for=_body_limit(settings))
    app.add_middleware(AddressLimit, limiter=server.ip_limiter)
    return app


def app_from_env() -> FastAPI:
    """The app of one of ``serve --workers N``'s processes: settings from the environment; the parent migrated."""
    return create_app(Settings.from_env(), migrate=False)


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Migrate the database once, then run ``workers`` server processes (uvicorn) on one socket."""
    import os

    import uvicorn

    Database(settings.db).dispose()  # create or upgrade the schema once, before any server process starts
    if settings.architectures is None:
        settings.architectures = list_architectures()
    if workers == 1:
        uvicorn.run(create_app(settings, migrate=False), host=host, port=port, log_level="info")
        return
    os.environ.update(settings.to_env())
    uvicorn.run("polypbench.leaderboard.app:app_from_env", factory=True, workers=workers, host=host, port=port,
                log_level="info")
