"""The leaderboard server: ``create_app(db_url, labels, ...)`` returns the FastAPI app.

Hidden labels stay hidden: responses carry only aggregate metrics (see :func:`board.sanitize`), validator messages
name keys and rows but never sizes or classes, and server file paths are replaced by the uploaded file's name.
Every error is one JSON line ``{"error": "..."}`` (an invalid file adds ``"problems"``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from polypbench.errors import PolypbenchError
from polypbench.evaluate import SubmissionError, lookup, read_predictions, score
from polypbench.evaluate.truth import Truth, load_truth
from polypbench.leaderboard import PRIMARY, pages
from polypbench.leaderboard.auth import team_for
from polypbench.leaderboard.board import board, check_sort, datasets, entry, sanitize
from polypbench.leaderboard.db import Submission, scored_today, session_factory

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_TEXT_LIMIT = 500


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split()), **extra}, status_code=status)


class RateLimiter:
    """At most ``limit`` requests per ``window`` seconds per key (token, else client IP); ``limit`` 0 disables."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        if self.limit <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True


def _safe_filename(name: str | None) -> str:
    base = Path(name or "predictions").name
    return (_SAFE_NAME.sub("_", base) or "predictions")[:100]


def _text(form: Any, key: str, required: bool = False) -> str | None:
    value = form.get(key)
    if isinstance(value, UploadFile) or value is None or not str(value).strip():
        if required:
            raise PolypbenchError(f"form field {key!r}: missing; expected a non-empty text field")
        return None
    value = " ".join(str(value).split())
    if len(value) > _TEXT_LIMIT:
        raise PolypbenchError(f"form field {key!r}: longer than {_TEXT_LIMIT} characters; expected a shorter value")
    if key.endswith("_url") and not value.startswith(("http://", "https://")):
        raise PolypbenchError(f"form field {key!r}: not an http(s) link; expected https://...")
    return value


def _score_upload(data: bytes, filename: str, truth: Truth, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Validate and score the uploaded bytes; server paths in problems are replaced by ``filename``."""
    with tempfile.TemporaryDirectory(prefix="polypbench-upload-") as tmp:
        path = Path(tmp) / filename
        path.write_bytes(data)
        try:
            frame = read_predictions(path)
        except SubmissionError as exc:
            raise SubmissionError([p.replace(str(path), filename) for p in exc.problems]) from None
    return sanitize(score(frame, truth, n_bootstrap=n_bootstrap, seed=seed, name=filename))


def create_app(
    db_url: str,
    labels: Sequence[str | Path],
    *,
    daily_cap: int = 5,
    max_upload_bytes: int = 50 * 1024 * 1024,
    rate_limit: int = 60,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> FastAPI:
    """The leaderboard app on database ``db_url`` (SQLite path or URL), scoring against the test split of the
    prepared ``labels`` folders; ``daily_cap`` scored submissions per team per UTC day, uploads up to
    ``max_upload_bytes``, ``rate_limit`` requests per minute per token or IP (0: off)."""
    truth = load_truth([Path(p) for p in labels], "test")
    sessions = session_factory(str(db_url))
    limiter = RateLimiter(rate_limit)
    app = FastAPI(title="polypbench leaderboard", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, "invalid request parameters; expected the documented query and form fields")

    @app.middleware("http")
    async def _rate_limit(request: Request, call_next: Any) -> Any:
        auth = request.headers.get("authorization")
        key = f"token:{auth}" if auth else f"ip:{request.client.host if request.client else '?'}"
        if not limiter.allow(key):
            return error(429, f"rate limit exceeded: more than {limiter.limit} requests per minute; expected fewer")
        return await call_next(request)

    record_lock = asyncio.Lock()  # one server process: serializes the final cap check and insert

    @app.post("/api/submissions")
    async def submit(request: Request) -> JSONResponse:
        with sessions() as session:
            team = team_for(session, request.headers.get("authorization"))
            if team is None:
                return error(401, "missing or invalid API token; expected 'Authorization: Bearer <token>'")
            team_id, team_name = team.id, team.name
            if scored_today(session, team_id) >= daily_cap:
                return error(429, f"daily cap reached: {daily_cap} scored submissions per team per UTC day")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_upload_bytes + 64 * 1024:
            return error(413, f"upload too large: {length} bytes; expected at most {max_upload_bytes} bytes")
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception:  # noqa: BLE001 - any malformed body is the client's error, in one line
            return error(400, "unreadable multipart form; expected fields 'file' and 'method'")
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise PolypbenchError("form field 'file': missing; expected the prediction file upload")
            method = _text(form, "method", required=True)
            paper, code = _text(form, "paper_url"), _text(form, "code_url")
            data = await upload.read(max_upload_bytes + 1)
            if len(data) > max_upload_bytes:
                return error(413, f"upload too large; expected at most {max_upload_bytes} bytes")
            filename = _safe_filename(upload.filename)
            result = await run_in_threadpool(_score_upload, data, filename, truth, n_bootstrap, seed)
        except SubmissionError as exc:
            log.info("team %s: refused a file with %d problem(s)", team_name, len(exc.problems))
            return error(422, f"{len(exc.problems)} problem(s) in the prediction file; nothing was scored",
                         problems=exc.problems)
        except PolypbenchError as exc:
            return error(400, str(exc))
        finally:
            await form.close()
        primary = lookup(result, PRIMARY)
        async with record_lock:  # the cap again, atomically with the insert: concurrent uploads all passed it above
            with sessions() as session:
                if scored_today(session, team_id) >= daily_cap:
                    return error(429, f"daily cap reached: {daily_cap} scored submissions per team per UTC day "
                                 "(reached while this file was scored; it was not recorded)")
                sub = Submission(team_id=team_id, method=method, paper_url=paper, code_url=code, filename=filename,
                                 primary_value=primary.value if primary else None, result_json=json.dumps(result))
                session.add(sub)
                session.commit()
                sub_id = sub.id
        log.info("team %s: submission %d scored", team_name, sub_id)
        return JSONResponse({"id": sub_id, "team": team_name, "method": method, "url": f"/submissions/{sub_id}",
                             "primary": {"metric": PRIMARY, **(primary.to_dict() if primary else {})},
                             "result": result})

    def _board(dataset: str, sort: str) -> tuple[list[dict[str, Any]], list[str]]:
        check_sort(sort)
        with sessions() as session:
            rows = board(session, dataset, sort)
            names = datasets([entry(s) for s in session.query(Submission).limit(1)])
        return rows, names

    @app.get("/api/leaderboard")
    def api_board(dataset: str = "pooled", sort: str = "macro_f1") -> JSONResponse:
        try:
            rows, _ = _board(dataset, sort)
        except PolypbenchError as exc:
            return error(400, str(exc))
        return JSONResponse({"dataset": dataset, "sort": sort, "primary": PRIMARY, "entries": rows})

    @app.get("/", response_class=HTMLResponse)
    def board_html(dataset: str = "pooled", sort: str = "macro_f1") -> Any:
        try:
            rows, names = _board(dataset, sort)
        except PolypbenchError as exc:
            return error(400, str(exc))
        return HTMLResponse(pages.board_page(rows, names, dataset, sort))

    def _entry(sub_id: int) -> dict[str, Any] | None:
        with sessions() as session:
            sub = session.get(Submission, sub_id)
            return None if sub is None else entry(sub)

    @app.get("/api/submissions/{sub_id}")
    def api_detail(sub_id: int) -> JSONResponse:
        found = _entry(sub_id)
        return error(404, f"submission {sub_id} not found") if found is None else JSONResponse(found)

    @app.get("/submissions/{sub_id}", response_class=HTMLResponse)
    def detail_html(sub_id: int) -> Any:
        found = _entry(sub_id)
        return error(404, f"submission {sub_id} not found") if found is None else HTMLResponse(pages.detail_page(found))

    return app
