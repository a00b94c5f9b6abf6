"""The leaderboard server: ``create_app(...)`` returns the FastAPI app (routes in :mod:`.api` and :mod:`.site`; what
a request needs, :class:`~.server.Server`, in :mod:`.server`).

Every error of the API (``/api/...``) is one JSON line ``{"error": "..."}`` (an invalid prediction file adds
``"problems"``), whatever raised it: a refused request, the first validation error of a parameter, an over-large or
malformed body, an id beyond 64 bits, an unexpected exception (HTTP 500, logged). A browser route (a page) answers
the same errors with an HTML page (``error.html.j2``) saying the same line. Middleware, outermost first: the
per-address rate limit (before any authentication or body reading), then the streaming body-size limit of the route.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from polypbench.errors import PolypbenchError
from polypbench.evaluate import SubmissionError
from polypbench.fileio import quick_exit
from polypbench.leaderboard import api, limits, site
from polypbench.leaderboard.config import Settings, model_catalog
from polypbench.leaderboard.db import Database
from polypbench.leaderboard.jobs import PhaseClosed
from polypbench.leaderboard.ratelimit import RateLimiter
from polypbench.leaderboard.records import CapReached
from polypbench.leaderboard.server import Server, error
from polypbench.leaderboard.store import Store
from polypbench.leaderboard.tracks import open_tracks
from polypbench.leaderboard.uploads import BodyLimit, json_error
from polypbench.templating import render

log = logging.getLogger(__name__)


def is_api(path: str) -> bool:
    """Whether ``path`` is an API route (JSON errors) rather than a page (HTML errors)."""
    return path == "/api" or path.startswith("/api/")


def error_page(status: int, message: str, problems: Sequence[str] = ()) -> str:
    """The HTML page of an error answered on a browser route: the status and the same one-line reason."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return render("error.html.j2", title=f"{status} {phrase}", message=" ".join(str(message).split()),
                  problems=list(problems))


def respond(request: Request, status: int, message: str, **extra: Any) -> Response:
    """An error answer: one JSON line on an API route, an HTML page on a browser route."""
    if is_api(request.url.path):
        return error(status, message, **extra)
    return HTMLResponse(error_page(status, message, extra.get("problems", ())), status_code=status)


def build_server(settings: Settings, *, migrate: bool = True,
                 after_commit: Callable[[int], None] | None = None) -> Server:
    if not settings.labels and not settings.private_labels:
        raise PolypbenchError("no track to serve: expected --labels (public track) and/or --private-labels")
    db = Database(settings.db, migrate=migrate)
    store = Store(settings.store_dir())
    public, private = open_tracks(settings, store.root)
    return Server(settings, db, store, public, private, RateLimiter(db, settings.rate_limit, clock=settings.clock),
                  RateLimiter(db, settings.ip_rate_limit, clock=settings.clock), after_commit)


class AddressLimit:
    """ASGI middleware: the per-client-address rate limit, counted before anything else reads the request."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app, self.limiter = app, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.limiter.limit > 0:
            client = scope.get("client")
            key = f"ip:{client[0] if client else '?'}"
            if not await run_in_threadpool(self.limiter.allow, key):
                message = (f"rate limit exceeded: more than {self.limiter.limit} requests per minute from this "
                           "address; expected fewer")
                start, body = json_error(429, message)
                if not is_api(scope.get("path", "")):
                    body = error_page(429, message).encode()
                    start["headers"] = [(b"content-type", b"text/html; charset=utf-8"),
                                        (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
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
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if exc.status_code != 400 or "parsing the body" not in str(exc.detail) else \
            "unreadable request body; expected a multipart form with the documented fields"
        return respond(request, exc.status_code, str(detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        message = f"{_where(first.get('loc', ()))}: {first.get('msg', 'invalid')}"
        return respond(request, 422, f"{message}; expected the documented fields (see /api/info and "
                                     "docs/leaderboard.md)")

    @app.exception_handler(SubmissionError)
    async def _problems(request: Request, exc: SubmissionError) -> Response:
        return respond(request, 422, f"{len(exc.problems)} problem(s) in the prediction file; nothing was scored",
                       problems=exc.problems)

    @app.exception_handler(CapReached)
    async def _cap(request: Request, exc: CapReached) -> Response:
        return respond(request, 429, str(exc))

    @app.exception_handler(PhaseClosed)
    async def _closed(request: Request, exc: PhaseClosed) -> Response:
        return respond(request, 409, str(exc))

    @app.exception_handler(PolypbenchError)
    async def _refused(request: Request, exc: PolypbenchError) -> Response:
        return respond(request, 400, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return respond(request, 500, "internal server error; it was logged")


def create_app(db: str | Path | Settings, labels: Sequence[str | Path] = (), *, migrate: bool = True,
               after_commit: Callable[[int], None] | None = None, **options: Any) -> FastAPI:
    """The leaderboard app: ``create_app(settings)``, or ``create_app(db, labels, **settings fields)``."""
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
    """The app of one of ``serve --workers N``'s processes: settings from the environment; the parent migrated.
    The process ends as a command does (:func:`~polypbench.fileio.quick_exit`)."""
    quick_exit()
    return create_app(Settings.from_env(), migrate=False)


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Migrate the database once, then run ``workers`` server processes (uvicorn) on one socket."""
    import os

    import uvicorn

    Database(settings.db).dispose()  # create or upgrade the schema once, before any server process starts
    if settings.private_labels and (settings.architectures is None or settings.tasks is None):  # only model
        # uploads (the private track) need the catalog: a public-only board starts without the child's torch import
        names, tasks = model_catalog()
        settings.architectures = names if settings.architectures is None else settings.architectures
        settings.tasks = tasks if settings.tasks is None else settings.tasks
    if workers == 1:
        uvicorn.run(create_app(settings, migrate=False), host=host, port=port, log_level="info")
        return
    os.environ.update(settings.to_env())
    uvicorn.run("polypbench.leaderboard.app:app_from_env", factory=True, workers=workers, host=host, port=port,
                log_level="info")
