"""The JSON API (``/api``): what the server scores, uploads of both tracks, job status, the board and comparisons.

Uploads use FastAPI's ``File``/``Form`` parameters and the :func:`~polypbench.leaderboard.auth.current_team`
dependency; an ``Idempotency-Key`` header makes a retried upload return the submission (or job) the first attempt
made. Scoring runs in the thread pool; nothing a response carries is per polyp.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from polypbench import __version__
from polypbench.errors import PolypbenchError, choice_error
from polypbench.evaluate import SubmissionError
from polypbench.inference.spec import size_offset
from polypbench.leaderboard import jobs, limits
from polypbench.leaderboard.auth import TeamRef, current_team
from polypbench.leaderboard.board import RANKING_TEST, Board, build, compare_entries, metric_key, row_json, scopes_of
from polypbench.leaderboard.columns import COLUMNS, PRIMARY, Track
from polypbench.leaderboard.db import MAX_ID, Job, Submission, scored_today, utc
from polypbench.leaderboard.db import Team as TeamRow
from polypbench.leaderboard.records import Fields, by_key, entry, record, verifications
from polypbench.leaderboard.scoring import score_public
from polypbench.leaderboard.server import Server, error
from polypbench.leaderboard.tracks import POOLED
from polypbench.leaderboard.uploads import check_safetensors, read_bounded, read_config, safe_filename, save_upload

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api")

_KEY = r"^[A-Za-z0-9_-]{8,64}$"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", pattern=_KEY,
                                              description="client-chosen key; a retry with it returns the first "
                                                          "attempt's submission")]
SubmissionId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _printable(value: str | None) -> str | None:
    """A text form field without control characters (tabs and line breaks aside): refused with HTTP 422 while the
    request is parsed, before anything is scored or stored (PostgreSQL text cannot hold a NUL)."""
    found = _CONTROL.search(value or "")
    if found:
        raise PydanticCustomError("control_character", "control character U+{code:04X} at character {at}; "
                                  "text fields take printable characters, tabs and line breaks",
                                  {"code": ord(found.group()), "at": found.start() + 1})
    return value


Printable = AfterValidator(_printable)
Method = Annotated[str, Form(min_length=1, max_length=limits.METHOD), Printable]
Url = Annotated[str | None, Form(max_length=limits.URL), Printable]
Architecture = Annotated[str, Form(min_length=1, max_length=limits.ARCHITECTURE), Printable]
ConfigText = Annotated[str, Form(min_length=2, max_length=limits.CONFIG), Printable]


def server(request: Request) -> Server:
    s: Server = request.app.state.server
    return s


ServerDep = Annotated[Server, Depends(server)]
Team = Annotated[TeamRef, Depends(current_team)]


def _text(name: str, value: str | None, required: bool = False) -> str | None:
    value = " ".join((value or "").split())
    if not value:
        if required:
            raise PolypbenchError(f"form field {name!r}: empty; expected a non-empty text field")
        return None
    if name.endswith("_url") and not value.startswith(("http://", "https://")):
        raise PolypbenchError(f"form field {name!r}: not an http(s) link; expected https://...")
    return value


def _split_hashes(text: str | None, s: Server) -> str | None:
    """``dataset:sha256,...``; each must be a served dataset's published split hash."""
    if not text:
        return None
    assert s.public is not None
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    for pair in pairs:
        name, _, digest = pair.partition(":")
        if name not in s.public.summaries:
            raise choice_error("split hash dataset", name, s.public.names)
        if digest != s.public.summaries[name]["split_sha256"]:
            raise PolypbenchError(f"form field 'split_hashes': {name}'s split hash {digest[:12]}... is not the split "
                                  "this server scores; expected the published split (polypbench splits verify)")
    return ",".join(pairs)


def _response(sub: Submission, replayed: bool) -> dict[str, Any]:
    e = entry(sub)
    results = e["results"]
    scope = POOLED if POOLED in results else next(iter(results))
    key = metric_key(Track(sub.track), scope, PRIMARY)
    stat = results[scope]["metrics"].get(key) or {}
    return {"id": sub.id, "team": e["team"], "track": sub.track, "method": sub.method, "url": f"/submissions/{sub.id}",
            "replayed": replayed, "scopes": list(results), "primary": {"metric": key, "scope": scope, **stat},
            "results": results}


@router.get("/info")
def info(s: ServerDep) -> dict[str, Any]:
    """The tracks, datasets, splits and limits this server scores (``polypbench submit`` checks a file against it)."""
    settings = s.settings
    tracks: dict[str, Any] = {}
    if s.public is not None:
        tracks[Track.PUBLIC.value] = {**s.public.info(), "daily_cap": settings.daily_cap,
                                      "max_upload_bytes": settings.max_upload_bytes, "formats": [".parquet", ".csv"],
                                      "declaration": "test labels were not used for training or model selection"}
    if s.private is not None:
        tracks[Track.PRIVATE.value] = {**s.private.info(), "daily_cap": settings.model_daily_cap,
                                       "max_model_bytes": settings.max_model_bytes,
                                       "closed": s.closed(Track.PRIVATE), "architectures": s.architectures}
    return {"polypbench_version": __version__, "primary": PRIMARY, "columns": {k: v[1] for k, v in COLUMNS.items()},
            "bootstrap": {"replicates": settings.n_bootstrap, "seed": settings.seed}, "tracks": tracks,
            "rate_limit_per_minute": settings.rate_limit}


@router.post("/submissions")
async def submit(s: ServerDep, team: Team, file: Annotated[UploadFile, File()], method: Method,
                 declaration: Annotated[bool, Form()] = False, paper_url: Url = None, code_url: Url = None,
                 config: Annotated[str | None, Form(max_length=limits.CONFIG), Printable] = None,
                 checkpoint_sha256: Annotated[str | None, Form(max_length=limits.SHA256), Printable] = None,
                 split_hashes: Annotated[str | None, Form(max_length=limits.SPLIT_HASHES), Printable] = None,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """A public-track prediction file: validated, scored per covered dataset (and pooled), recorded."""
    if s.public is None:
        return error(404, "this server has no public track; expected a model upload to /api/models")
    settings = s.settings
    with s.db.sessions() as session:
        earlier = by_key(session, team.id, idempotency_key)
        if earlier is not None:
            return JSONResponse(_response(earlier, True))
        if scored_today(session, team.id, now=utc(settings.clock())) >= settings.daily_cap:
            return error(429, f"daily cap reached: {settings.daily_cap} scored submissions per team per UTC day")
    if not declaration:
        raise PolypbenchError("form field 'declaration': missing; expected true, declaring that the test labels "
                              "were not used for training or model selection (public labels: an honour system)")
    if checkpoint_sha256 and not _HEX64.match(checkpoint_sha256):
        raise PolypbenchError("form field 'checkpoint_sha256': expected 64 lowercase hex digits")
    filename = safe_filename(file.filename)
    fields = Fields(method=str(_text("method", method, required=True)), filename=filename,
                    paper_url=_text("paper_url", paper_url), code_url=_text("code_url", code_url),
                    declaration=True, config=config or None, checkpoint_sha256=checkpoint_sha256 or None,
                    split_hashes=_split_hashes(split_hashes, s))
    incoming = s.store.incoming(Path(filename).suffix)
    try:
        size, sha = await save_upload(file, incoming)
        if size > settings.max_upload_bytes:
            return error(413, f"upload of {size} bytes; expected at most {settings.max_upload_bytes} bytes")
        public = s.public

        def score() -> dict[str, Any]:
            with s.scoring:  # at most limits.SCORING_SLOTS files in memory at once
                frame = read_bounded(incoming, filename, public.row_cap)
                return score_public(frame, public, name=filename, n_bootstrap=settings.n_bootstrap,
                                    seed=settings.seed)

        try:
            scored = await run_in_threadpool(score)
        except SubmissionError as exc:
            log.info("team %s: refused a file with %d problem(s)", team.name, len(exc.problems))
            raise
        if not scored:
            raise SubmissionError([f"{filename}: no rows of a served dataset's test split; expected polyp ids of "
                                   f"{', '.join(public.names)}"])
        s.store.keep(incoming, sha, Path(filename).suffix.lower())
    finally:
        incoming.unlink(missing_ok=True)
    first = scored.get(POOLED) or next(iter(scored.values()))
    fields = replace(fields, file_sha256=sha)
    sub, replayed = await run_in_threadpool(
        lambda: record(s.db, team.id, fields, scored, key=idempotency_key, cap=settings.daily_cap,
                       primary=first.primary(POOLED), now=utc(settings.clock())))
    if s.after_commit is not None and not replayed:
        s.after_commit(sub.id)
    log.info("team %s: submission %d scored (%s)", team.name, sub.id, ", ".join(scored))
    with s.db.sessions() as session:
        return JSONResponse(_response(session.get(Submission, sub.id) or sub, replayed))


async def _weights(s: Server, upload: UploadFile, architecture: str, config: str) -> tuple[str, int, str]:
    """Check and keep uploaded weights; (sha256, bytes, the job's config JSON). Everything the model run checks
    before it runs the model is checked here (the header as safetensors reads it, the task, the size offset), so
    that such a fault is refused now instead of using up a job and the team's daily cap."""
    if architecture not in s.architectures:
        raise choice_error("architecture", architecture, s.architectures)
    inference = read_config(config, architecture, s.tasks)
    incoming = s.store.incoming(".safetensors")
    try:
        size, sha = await save_upload(upload, incoming)
        if size > s.settings.max_model_bytes:
            raise PolypbenchError(f"weights of {size} bytes; expected at most {s.settings.max_model_bytes} bytes")
        weights = await run_in_threadpool(check_safetensors, incoming, safe_filename(upload.filename, "weights"))
        size_offset(weights.metadata, inference.task, s.tasks[inference.task])
        s.store.keep(incoming, sha, ".safetensors")
    finally:
        incoming.unlink(missing_ok=True)
    return sha, size, json.dumps({"text": config, "inference": inference.to_dict()})


@router.post("/models", status_code=202)
async def submit_model(s: ServerDep, team: Team, weights: Annotated[UploadFile, File()], architecture: Architecture,
                       config: ConfigText, method: Method, paper_url: Url = None, code_url: Url = None,
                       idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """A private-track model (architecture + config + safetensors): queued; the worker runs and scores it."""
    if s.private is None:
        return error(404, "this server has no private track; expected a prediction file at /api/submissions")
    with s.db.sessions() as session:
        earlier = session.scalar(select(Job).where(Job.team_id == team.id, Job.idempotency_key == idempotency_key)) \
            if idempotency_key else None
    if earlier is not None:
        return JSONResponse({**jobs.describe(earlier), "replayed": True}, status_code=202)
    if s.closed(Track.PRIVATE):
        raise jobs.PhaseClosed("the private track's phase is closed; expected no more model submissions")
    sha, size, job_config = await _weights(s, weights, architecture, config)
    new = jobs.NewJob(kind="model", method=str(_text("method", method, required=True)), architecture=architecture,
                      config=job_config, weights_sha256=sha, weights_bytes=size,
                      paper_url=_text("paper_url", paper_url), code_url=_text("code_url", code_url))
    job, replayed = await run_in_threadpool(
        lambda: jobs.enqueue(s.db, team.id, new, key=idempotency_key, cap=s.settings.model_daily_cap,
                             now=utc(s.settings.clock())))
    return JSONResponse({**jobs.describe(job), "replayed": replayed}, status_code=202)


@router.post("/submissions/{sub_id}/checkpoint", status_code=202)
async def submit_checkpoint(s: ServerDep, team: Team, sub_id: SubmissionId, weights: Annotated[UploadFile, File()],
                            architecture: Architecture, config: ConfigText) -> JSONResponse:
    """The checkpoint behind a public submission: queued to be re-run on the test frames (the verified badge)."""
    with s.db.sessions() as session:
        sub = session.get(Submission, sub_id)
        if sub is None or sub.team_id != team.id or Track(sub.track) is not Track.PUBLIC:
            return error(404, f"submission {sub_id} not found among this team's public submissions")
        earlier = session.scalar(select(Job).where(Job.team_id == team.id, Job.idempotency_key == f"verify:{sub_id}"))
        method = sub.method
    if earlier is not None:
        return JSONResponse({**jobs.describe(earlier), "replayed": True}, status_code=202)
    sha, size, job_config = await _weights(s, weights, architecture, config)
    new = jobs.NewJob(kind="verify", method=method, architecture=architecture, config=job_config,
                      weights_sha256=sha, weights_bytes=size, submission_id=sub_id)
    job, replayed = await run_in_threadpool(lambda: jobs.enqueue(s.db, team.id, new, key=f"verify:{sub_id}"))
    return JSONResponse({**jobs.describe(job), "replayed": replayed}, status_code=202)


@router.get("/jobs")
def list_jobs(s: ServerDep, team: Team) -> dict[str, Any]:
    """The team's jobs, newest first (at most 100)."""
    with s.db.sessions() as session:
        found = session.scalars(select(Job).where(Job.team_id == team.id).order_by(Job.id.desc()).limit(100)).all()
        return {"team": team.name, "jobs": [jobs.describe(j) for j in found]}


@router.get("/jobs/{job_id}")
def job_status(s: ServerDep, team: Team, job_id: SubmissionId) -> JSONResponse:
    with s.db.sessions() as session:
        job = session.get(Job, job_id)
        if job is None or job.team_id != team.id:
            return error(404, f"job {job_id} not found among this team's jobs")
        return JSONResponse(jobs.describe(job))


def served_track(s: Server, name: str | None) -> Track:
    """The track a request names (``?track=``), refused unless this server serves it; the first served without
    one."""
    if not name:
        return s.tracks[0]
    found = next((t for t in s.tracks if t.value == name), None)
    if found is None:
        raise choice_error("track", name, s.tracks)
    return found


def _scope(s: Server, track: Track, scope: str | None) -> tuple[str, list[str], bool]:
    closed = s.closed(track) if track is Track.PRIVATE else False
    names = s.public.scopes if track is Track.PUBLIC and s.public is not None else []
    scopes = scopes_of(track, names, closed)
    return scope or (POOLED if track is Track.PUBLIC else scopes[-1]), scopes, closed


def board_for(s: Server, track: str | None, scope: str | None, sort: str) -> Board:
    served = served_track(s, track)
    scope, scopes, closed = _scope(s, served, scope)
    return build(s.db, served, scope, sort, closed=closed, scopes=scopes)


@router.get("/leaderboard")
def leaderboard(s: ServerDep, track: str | None = None, scope: str | None = None,
                sort: str = "macro_f1") -> dict[str, Any]:
    """The board: each team's best entry with its stats, rank group (``rank``; null when not ranked), the test's
    ``p_vs_above`` and rank ``stability``; ``ranking`` says how the rank groups are formed."""
    board = board_for(s, track, scope, sort)
    return {"track": board.track, "scope": board.scope, "sort": board.sort, "ranked_by": board.ranked_by,
            "ranking": RANKING_TEST, "primary": PRIMARY, "closed": board.closed,
            "entries": [row_json(r) for r in board.rows]}


@router.get("/stability")
def stability(s: ServerDep, track: str | None = None, scope: str | None = None,
              sort: str = "macro_f1") -> dict[str, Any]:
    """The bootstrap distribution of each ranked entry's rank: ``rank_distribution[i][k]`` is the share of the
    replicates giving entry ``entries[i]`` rank k + 1; ``kendall_tau`` the mean Kendall's tau between the observed
    ranking and the replicates'."""
    board = board_for(s, track, scope, sort)
    return {"track": board.track, "scope": board.scope, "ranked_by": board.ranked_by,
            "replicates": board.n_replicates, "entries": board.stability_ids, "rank_distribution": board.distribution,
            "kendall_tau": board.kendall_tau}


def load_entry(s: Server, sub_id: int) -> dict[str, Any] | None:
    with s.db.sessions() as session:
        sub = session.get(Submission, sub_id)
        if sub is None:
            return None
        reveal = Track(sub.track) is Track.PRIVATE and s.closed(Track.PRIVATE)
        return entry(sub, verifications(session, [sub.id]).get(sub.id), reveal=reveal)


def load_team(s: Server, name: str) -> dict[str, Any] | None:
    """A team's page: its entries (newest first, both tracks, as :func:`load_entry` shows each) and its jobs
    (newest first, at most 100, as :func:`.jobs.describe` gives them); None for an unknown team."""
    with s.db.sessions() as session:
        team = session.scalar(select(TeamRow).where(TeamRow.name == name))
        if team is None:
            return None
        subs = session.scalars(select(Submission).where(Submission.team_id == team.id)
                               .order_by(Submission.id.desc())).all()
        found = verifications(session, [sub.id for sub in subs])
        closed = s.closed(Track.PRIVATE) if any(Track(sub.track) is Track.PRIVATE for sub in subs) else False
        entries = [entry(sub, found.get(sub.id), reveal=closed and Track(sub.track) is Track.PRIVATE)
                   for sub in subs]
        queued = session.scalars(select(Job).where(Job.team_id == team.id).order_by(Job.id.desc()).limit(100)).all()
        return {"team": team.name, "entries": entries, "jobs": [jobs.describe(j) for j in queued]}


def job_team(s: Server, job_id: int) -> str | None:
    """The name of the team that queued job ``job_id``; None for an unknown job."""
    with s.db.sessions() as session:
        return session.scalar(select(TeamRow.name).join(Job, Job.team_id == TeamRow.id).where(Job.id == job_id))


@router.get("/submissions/{sub_id}")
def submission(s: ServerDep, sub_id: SubmissionId) -> JSONResponse:
    found = load_entry(s, sub_id)
    return error(404, f"submission {sub_id} not found") if found is None else JSONResponse(found)


def comparison(s: Server, a: int, b: int, track: str | None, scope: str | None) -> dict[str, Any]:
    entries = {i: load_entry(s, i) for i in (a, b)}
    for i, e in entries.items():
        if e is None:
            raise PolypbenchError(f"submission {i} not found; expected two ids from the board")
    ea, eb = entries[a], entries[b]
    assert ea is not None and eb is not None
    served = served_track(s, track or ea["track"].value)
    scope, _, _ = _scope(s, served, scope)
    for e in (ea, eb):
        if e["track"] is not served or scope not in e["results"]:
            raise PolypbenchError(f"submission {e['id']} has no {served} result in scope {scope!r}; expected two "
                                  "entries of the same board")
    comparisons, n = compare_entries(s.db, served, scope, ea, eb)
    return {"track": served, "scope": scope, "a": ea, "b": eb, "comparisons": comparisons, "replicates": n}


@router.get("/compare")
def compare(s: ServerDep, a: Annotated[int, Query(ge=1, le=MAX_ID)], b: Annotated[int, Query(ge=1, le=MAX_ID)],
            track: str | None = None, scope: str | None = None) -> dict[str, Any]:
    """Entries ``a`` and ``b`` on each board column: their stats, the paired difference A - B (a STAT with its
    interval and ``p_greater``) and P(A better), over ``replicates`` paired bootstrap replicates."""
    found = comparison(s, a, b, track, scope)
    return {"track": found["track"], "scope": found["scope"], "a": a, "b": b, "replicates": found["replicates"],
            "metrics": {k: c.to_dict() for k, c in found["comparisons"].items()}}
