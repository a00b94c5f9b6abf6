"""``polypbench submit``: validate a prediction file locally (when a manifest is given), upload it, return the score."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from polypbench.errors import PolypbenchError
from polypbench.evaluate import SubmissionError, format_stat, lookup, read_predictions, validate_predictions
from polypbench.leaderboard.board import COLUMNS

log = logging.getLogger(__name__)


def validate_locally(path: Path, manifests: Sequence[str | Path]) -> None:
    """Raise :class:`SubmissionError` listing every problem of ``path`` against the test split of ``manifests``."""
    validate_predictions(read_predictions(path), [Path(m) for m in manifests], name=str(path))
    log.info("%s: valid against %d manifest(s)", path, len(manifests))


def submit(path: str | Path, server: str, token: str, method: str, *, paper_url: str | None = None,
           code_url: str | None = None, timeout: float = 600.0) -> dict[str, Any]:
    """Upload ``path`` to ``server``; return the server's JSON (the scored, aggregate result)."""
    path = Path(path)
    url = server.rstrip("/") + "/api/submissions"
    data = {"method": method, **{k: v for k, v in (("paper_url", paper_url), ("code_url", code_url)) if v}}
    try:
        with path.open("rb") as fh:
            response = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, data=data,
                                  files={"file": (path.name, fh, "application/octet-stream")}, timeout=timeout)
    except httpx.HTTPError as exc:
        message = f"{url}: request failed ({type(exc).__name__}: {exc}); expected a reachable server"
        raise PolypbenchError(message) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 422 and body.get("problems"):
        raise SubmissionError(body["problems"])
    if response.status_code != 200:
        message = body.get("error") or response.text[:200]
        raise PolypbenchError(f"{url}: HTTP {response.status_code}: {' '.join(str(message).split())}")
    return body


def describe(body: dict[str, Any], server: str) -> str:
    """A short terminal summary of the server's answer: the board metrics, pooled, with their 95% CIs."""
    lines = [f"submission {body['id']} by {body['team']} ({body['method']}): {server.rstrip('/')}{body['url']}"]
    width = max(len(label) for label, _, _ in COLUMNS.values())
    for label, key, _ in COLUMNS.values():
        lines.append(f"  {label.ljust(width)}  {format_stat(lookup(body['result'], key), key)}")
    return "\n".join(lines)
