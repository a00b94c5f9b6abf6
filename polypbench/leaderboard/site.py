"""The HTML pages (no JavaScript): the board, a submission, two entries compared, rank stability. Their errors are
pages too (:func:`polypbench.leaderboard.app.respond`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse

from polypbench.leaderboard import pages
from polypbench.leaderboard.api import ServerDep, SubmissionId, board_for, comparison, load_entry
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


@router.get("/compare", response_class=HTMLResponse)
def compare_html(s: ServerDep, a: Id, b: Id, track: str | None = None, scope: str | None = None) -> str:
    found = comparison(s, a, b, track, scope)
    return pages.compare_page(found["a"], found["b"], found["track"], found["scope"], found["comparisons"],
                              found["replicates"])
