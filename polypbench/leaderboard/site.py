"""The HTML pages (no JavaScript): the board, a submission, a team (its entries and jobs), two entries compared,
rank stability; ``/jobs/{id}`` (the page ``polypbench submit`` prints for a queued model) redirects to its team's
page. Their errors are pages too (:func:`polypbench.leaderboard.app.respond`), a 404 included."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, RedirectResponse

from polypbench.leaderboard import pages
from polypbench.leaderboard.api import (
    ServerDep,
    SubmissionId,
    board_for,
    comparison,
    job_team,
    load_entry,
    load_team,
)
from polypbench.leaderboard.db import MAX_ID

router = APIRouter()
Id = Annotated[int, Query(ge=1, le=MAX_ID)]


@router.get("/", response_class=HTMLResponse)
def board_html(s: ServerDep, track: str | None = None, scope: str | None = None, sort: str = "macro_f1") -> str:
    return pages.board_page(board_for(s, track, scope, sort), s.tracks)


@router.get("/stability", response_class=HTMLResponse)
def stability_html(s: ServerDep, track: str | None = None, scope: str | None = None, sort: str = "macro_f1") -> str:
    return pages.stability_page(board_for(s, track, scope, sort))


@router.get("/submissions/{sub_id}", response_class=HTMLResponse)
def detail_html(s: ServerDep, sub_id: SubmissionId) -> str:
    found = load_entry(s, sub_id)
    if found is None:
        raise HTTPException(404, f"submission {sub_id} not found")  # answered as a page (app.respond)
    return pages.detail_page(found)


@router.get("/teams/{name:path}", response_class=HTMLResponse)
def team_html(s: ServerDep, name: str) -> str:
    found = load_team(s, name)
    if found is None:
        raise HTTPException(404, f"team {name!r} not found")  # answered as a page (app.respond)
    return pages.team_page(found["team"], found["entries"], found["jobs"])


@router.get("/jobs/{job_id}")
def job_html(s: ServerDep, job_id: SubmissionId) -> RedirectResponse:
    team = job_team(s, job_id)
    if team is None:
        raise HTTPException(404, f"job {job_id} not found")
    return RedirectResponse(f"{pages.team_href(team)}#job-{job_id}", status_code=303)


@router.get("/compare", response_class=HTMLResponse)
def compare_html(s: ServerDep, a: Id, b: Id, track: str | None = None, scope: str | None = None) -> str:
    found = comparison(s, a, b, track, scope)
    return pages.compare_page(found["a"], found["b"], found["track"], found["scope"], found["comparisons"],
                              found["replicates"])
