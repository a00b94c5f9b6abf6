"""Server-rendered HTML (no JavaScript): the board, a submission, a comparison of two entries, rank stability.

The pages are autoescaped templates (``polypbench/templates``): every value is escaped there; this module only
picks the numbers (:class:`~polypbench.evaluate.Stat` values, read with :func:`~polypbench.evaluate.lookup`) and
formats them (with :mod:`polypbench.evaluate.format`).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

from polypbench.evaluate import Stat, format_stat, lookup, parse_key
from polypbench.evaluate.format import (
    FLAG,
    LEGEND,
    format_interval,
    format_notes,
    format_p,
    format_support,
    format_value,
)
from polypbench.evaluate.keys import TASKS, candidate_keys, class_slugs
from polypbench.leaderboard.board import (
    PRIMARY_COLUMN,
    RANKING_TEST,
    Board,
    Comparison,
    cells,
    entry_track,
    metric_key,
    support,
)
from polypbench.leaderboard.charts import NARROW_IN, WIDE_IN, Point, whisker_chart
from polypbench.leaderboard.columns import COLUMNS, PRIMARY, TEXT_SORTS, Track
from polypbench.leaderboard.tracks import POOLED
from polypbench.sizes import DIMINUTIVE_MAX_MM, LARGE_MIN_MM
from polypbench.templating import render

NOTES = {
    Track.PUBLIC: "Public track: the test labels of these datasets are public, so this board is an honour-system "
                  "registry (as WILDS's): each entry declares that the test labels were not used for training or "
                  "model selection and may give its code, config, checkpoint hash and split hash. An entry is "
                  "'verified' when the server re-ran its uploaded checkpoint on the test frames it holds and got the "
                  "same predictions.",
    Track.PRIVATE: "Private track: models are run by the server on test frames and labels no participant sees. The "
                   "live board shows the public part of the hidden test set; the final ranking uses the private part "
                   "and is revealed when the organiser closes the phase. Only pooled summary metrics are shown.",
}


CLASSES = (f"diminutive \u2264 {DIMINUTIVE_MAX_MM:g} mm, small {DIMINUTIVE_MAX_MM:g}-{LARGE_MIN_MM:g} mm, "
           f"large \u2265 {LARGE_MIN_MM:g} mm")
"""The triclass size classes in words (from :mod:`polypbench.sizes`), for "how to read this"."""
BADGES = {
    "verified": "the server re-ran the uploaded checkpoint on the test frames and reproduced every prediction column "
                "of the file (sizes within 0.1 mm, probabilities within 0.01, hard labels exactly)",
    "declared": "the team declared that the test labels were not used for training or model selection (the public "
                "track's honour system: the labels are public)",
    "repro": "the entry names what reproduces it: its training config and/or the sha256 of its checkpoint (on the "
             "entry's page)",
}
"""Each badge of a board row and what it means: its tooltip and the legend under the board (docs/leaderboard.md)."""


def _links(item: dict[str, Any]) -> list[tuple[str, str]]:
    """(url, text) of the paper and code links; anything but http(s) is dropped (no ``javascript:`` links)."""
    pairs = ((item.get("paper_url"), "paper"), (item.get("code_url"), "code"))
    return [(url, text) for url, text in pairs if url and str(url).startswith(("http://", "https://"))]


def _badges(r: dict[str, Any]) -> list[str]:
    out = []
    if r.get("verified"):
        out.append("verified")
    if r.get("declaration"):
        out.append("declared")
    if r.get("config") or r.get("checkpoint_sha256"):
        out.append("repro")
    return out


def team_href(team: str) -> str:
    """The team's page (its entries and jobs); the name percent-encoded whole, ``/`` included."""
    return "/teams/" + quote(team, safe="")


def _cell(stat: Stat | None, key: str, own_support: str = "") -> dict[str, Any]:
    """A number of the board as its value and its interval (:func:`~polypbench.evaluate.format.format_value`,
    :func:`~polypbench.evaluate.format.format_interval`: together :func:`~polypbench.evaluate.format_stat`), so that
    the page may wrap between them, never inside the interval (a reason for no interval may wrap: ``withheld``);
    ``own_support`` when the cell rests on other polyps and patients than its row; ``notes`` why its interval is
    flagged or withheld (shown on hover)."""
    withheld = stat is not None and stat.value is not None and stat.ci95 is None
    return {"value": format_value(stat, key), "ci": format_interval(stat, key), "support": own_support,
            "notes": format_notes(stat), "withheld": withheld}


def _p_first(p: float | None) -> str:
    return "-" if p is None else f"{p:.2f}"


def _charts(board: Board) -> list[dict[str, Any]]:
    """One whisker chart per board column (:mod:`.charts`), the primary's first; entries in board order."""
    if not board.rows:
        return []
    out = []
    for name, (label, key, higher) in COLUMNS.items():
        points = [Point(f"{'-' if r.get('rank') is None else r['rank']} {r['team']}: {r['method']}",
                        r["metrics"][name]) for r in board.rows]
        primary = key == PRIMARY
        draw = partial(whisker_chart, points, label, higher_is_better=higher, unit_interval=not key.endswith("_mm"),
                       primary=primary)
        out.append({"name": name, "label": label, "src": draw(width_in=WIDE_IN if primary else NARROW_IN),
                    "narrow": draw(width_in=NARROW_IN) if primary else None, "primary": primary,
                    "alt": f"{label}: each entry's value (dot) and 95% interval (whisker), in board order"})
    return out


def board_page(board: Board, tracks: list[Track]) -> str:
    """The board: the primary metric's chart, a table sortable by ``?sort=`` links with track and scope tabs, the
    badges' legend and the legend of the number format, the other metrics' charts, "how to read this" (folded)."""
    def href(**q: str) -> str:
        return "/?" + urlencode({"track": board.track, "scope": board.scope, "sort": board.sort, **q})

    track_links = [(t, None if t == board.track else "/?" + urlencode({"track": t})) for t in tracks]
    scope_links = [(s, None if s == board.scope else href(scope=s)) for s in board.scopes]
    heads = [("#", None, False, ""), ("team", href(sort="team"), board.sort == "team", ""),
             ("method", href(sort="method"), board.sort == "method", ""),
             *[(label, href(sort=k), board.sort == k, "metric primary" if k == PRIMARY_COLUMN else "metric")
               for k, (label, _, _) in COLUMNS.items()],
             ("n polyps / patients", None, False, ""), ("rank 95%", None, False, ""), ("P(1st)", None, False, ""),
             ("submitted", href(sort="submitted"), board.sort == "submitted", "")]
    shown = []
    for r in board.rows:
        stability = r.get("stability") or {}
        lo, hi = stability.get("rank_95") or (None, None)
        shown.append({"id": int(r["id"]), "rank": "-" if r.get("rank") is None else r["rank"], "team": r["team"],
                      "team_href": team_href(r["team"]), "method": r["method"], "badges": _badges(r),
                      "submitted": r["submitted"], "links": _links(r),
                      "metrics": [_cell(stat, key, own) for stat, key, own in cells(r)],
                      "support": support(r),
                      "rank_95": "-" if lo is None else str(lo) if lo == hi else f"{lo}-{hi}",
                      "p_first": _p_first(stability.get("p_first"))})
    query = urlencode({"track": board.track, "scope": board.scope, "sort": board.sort})
    scope_label = "Part" if board.track is Track.PRIVATE else "Dataset"
    title = f"polypbench leaderboard ({board.track}: {board.scope})"
    charts = _charts(board)
    used = sorted({b for r in shown for b in r["badges"]}, key=list(BADGES).index)
    return render("board.html.j2", title=title, tracks=track_links, scopes=scope_links, scope_label=scope_label,
                  note=NOTES[board.track], heads=heads, rows=shown, sort_keys=[*COLUMNS, *TEXT_SORTS],
                  ranked_by=COLUMNS[board.ranked_by][0], primary_label=COLUMNS[PRIMARY_COLUMN][0],
                  classes=CLASSES, ranking_test=RANKING_TEST, legend=LEGEND, flag=FLAG, badges=BADGES, used_badges=used,
                  primary_chart=charts[0] if charts else None, other_charts=charts[1:],
                  track=board.track, scope=board.scope, stability_href=f"/stability?{query}",
                  api_href=f"/api/leaderboard?{query}", nav=_nav(board.track, board.scope))


def _nav(track: Track | None = None, scope: str | None = None) -> list[tuple[str, str]]:
    """The links of the page header: the board, rank stability and the API of the scope shown (else the
    defaults)."""
    query = "" if track is None else "?" + urlencode({"track": track, "scope": scope or ""})
    return [("board", f"/{query}"), ("rank stability", f"/stability{query}"), ("API", "/api/info")]


def _label(key: str) -> str:
    """``macro_f1``, or ``sensitivity (>=10 mm)`` for a per-class key."""
    _, task, _, metric, cls = parse_key(key)
    return metric if cls is None else f"{metric} ({class_slugs(task).get(cls, cls)})"


def _tables(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per view and task, one table of every metric the result has: a row per metric, a column per dataset, each
    cell its number (value and interval) with, where it differs from its column's first row, the polyps and
    patients it rests on; ``notes``, why an interval is flagged or withheld, listed under the table."""
    datasets = list(result.get("counts", {}))
    tables = []
    for view in result.get("views", {}):
        for task in TASKS:
            columns = [ds for ds in datasets
                       if any(lookup(result, k) is not None for k in candidate_keys(view, task, ds))]
            if not columns:
                continue
            keys = {ds: candidate_keys(view, task, ds) for ds in columns}
            rows: list[dict[str, Any]] = []
            notes: list[str] = []
            first: dict[str, str] = {}
            for i, key in enumerate(keys[columns[0]]):
                found = [(ds, keys[ds][i], lookup(result, keys[ds][i])) for ds in columns]
                if all(stat is None for _, _, stat in found):
                    continue
                shown = []
                for ds, full, stat in found:
                    own = format_support(stat)
                    first.setdefault(ds, own)
                    shown.append({"value": format_stat(stat, full), "support": "" if own in (first[ds], "-") else own,
                                  "notes": format_notes(stat), "key": full})
                    if format_notes(stat):
                        notes.append(f"{ds}, {_label(full)}: {format_notes(stat)}")
                rows.append({"label": _label(key), "cells": shown})
            tables.append({"view": view, "task": task, "datasets": columns,
                           "support": [first.get(ds, "-") for ds in columns], "rows": rows, "notes": notes})
    return tables


def _summary(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The board's columns in each scope of an entry (what the board shows of it), with their support."""
    track = entry_track(entry)
    out = []
    for scope, result in entry["results"].items():
        found = [(lookup(result, metric_key(track, scope, key)), metric_key(track, scope, key))
                 for _, key, _ in COLUMNS.values()]
        sup = next((s for s in (format_support(stat) for stat, _ in found) if s != "-"), "-")
        out.append({"scope": scope, "metrics": [_cell(stat, key) for stat, key in found], "support": sup})
    return out


def detail_page(entry: dict[str, Any]) -> str:
    """One submission: who and how (badges, declaration, verification, hashes), the board's metrics per scope, then
    every aggregate metric per scope, view and task (folded: a table per task, a column per dataset)."""
    results = entry["results"]
    first: dict[str, Any] = next(iter(results.values()), {})
    verification = entry.get("verification") or "no checkpoint uploaded"
    track = entry_track(entry)
    meta = [("team", entry["team"]), ("track", track.value), ("method", entry["method"]),
            ("submitted", entry["submitted"]),
            ("declaration", "test labels not used for training or model selection" if entry.get("declaration")
             else "not needed: the server ran the model on data it keeps hidden" if track is Track.PRIVATE
             else "-"),
            ("verification", verification if track is Track.PUBLIC else "run by the server"),
            ("checkpoint sha256", entry.get("checkpoint_sha256") or "-"),
            ("file sha256", entry.get("file_sha256") or "-"), ("split hashes", entry.get("split_hashes") or "-"),
            ("scopes", ", ".join(results)), ("level", first.get("predictions", {}).get("level", "")),
            ("bootstrap replicates", first.get("bootstrap", {}).get("replicates", ""))]
    scopes = [(scope, _tables(result)) for scope, result in results.items()]
    return render("submission.html.j2", title=f"submission {int(entry['id'])}", meta=meta, links=_links(entry),
                  badges=BADGES, entry_badges=_badges(entry), team=entry["team"], method=entry["method"],
                  team_href=team_href(entry["team"]),
                  heads=[label for label, _, _ in COLUMNS.values()], summary=_summary(entry),
                  config=entry.get("config") or "", scopes=scopes, legend=LEGEND, flag=FLAG)


def team_page(team: str, entries: list[dict[str, Any]], jobs: list[dict[str, Any]]) -> str:
    """A team: its entries (each with its badges and the primary metric in its first scope, pooled when it has it)
    and its jobs (queued and finished model runs and verifications: status, times, the one-line reason of a failed
    one, the submission a finished one made); a job's row is ``#job-<id>``, where ``/jobs/<id>`` leads."""
    shown = []
    for e in entries:
        track = entry_track(e)
        scope = POOLED if POOLED in e["results"] else next(iter(e["results"]), "")
        key = metric_key(track, scope, PRIMARY)
        stat = lookup(e["results"][scope], key) if scope else None
        shown.append({"id": int(e["id"]), "track": track.value, "method": e["method"], "badges": _badges(e),
                      "scopes": ", ".join(e["results"]), "scope": scope,
                      "primary": _cell(stat, key), "submitted": e["submitted"]})
    return render("team.html.j2", title=f"team {team}", team=team, entries=shown, jobs=jobs, badges=BADGES,
                  primary_label=COLUMNS[PRIMARY_COLUMN][0], legend=LEGEND)


def _p_better(c: Comparison) -> str:
    """P(A better than B) through the one formatter (:func:`~polypbench.evaluate.format.format_p`)."""
    if c.difference is None:
        return "-"
    return format_p(replace(c.difference, p_greater=c.p_a_better))


def compare_page(a: dict[str, Any], b: dict[str, Any], track: Track, scope: str, comparisons: dict[str, Comparison],
                 n: int) -> str:
    """A and B on each board metric of ``scope`` with the polyps and patients they rest on, the paired difference
    A - B with its interval (:func:`polypbench.evaluate.ranking.compare_replicates`) and P(A better)."""
    rows = []
    for name, (label, key, higher) in COLUMNS.items():
        full = metric_key(track, scope, key)
        c = comparisons[name]
        sup_a, sup_b = format_support(c.a), format_support(c.b)
        notes = [format_notes(c.difference), *(f"{side}: {format_notes(stat)}" for side, stat
                                                in (("A", c.a), ("B", c.b)) if format_notes(stat))]
        rows.append({"label": label, "better": "higher" if higher else "lower", "a": format_stat(c.a, full),
                     "b": format_stat(c.b, full), "support": sup_a if sup_a == sup_b else f"A {sup_a}, B {sup_b}",
                     "diff": format_stat(c.difference, full), "p": _p_better(c),
                     "notes": "; ".join(n for n in notes if n)})
    back = "/?" + urlencode({"track": track, "scope": scope})
    return render("compare.html.j2", title=f"compare {int(a['id'])} and {int(b['id'])} ({scope})", a=a, b=b,
                  scope=scope, rows=rows, n=n, back=back, legend=LEGEND)


def stability_page(board: Board) -> str:
    """The bootstrap distribution of each ranked entry's rank (challengeR's rank stability)."""
    by_id = {int(r["id"]): r for r in board.rows}
    rows = []
    for sid, dist in zip(board.stability_ids, board.distribution, strict=True):
        r = by_id[sid]
        stability = r["stability"]
        lo, hi = stability["rank_95"]
        rows.append({"rank": r["rank"] if r["rank"] is not None else "-", "team": r["team"], "method": r["method"],
                     "median": f"{stability['median']:g}", "rank_95": str(lo) if lo == hi else f"{lo}-{hi}",
                     "shares": [f"{p:.2f}" if p else "" for p in dist]})
    back = "/?" + urlencode({"track": board.track, "scope": board.scope, "sort": board.sort})
    tau = "-" if board.kendall_tau is None else f"{board.kendall_tau:.3f}"
    return render("stability.html.j2", title=f"rank stability ({board.track}: {board.scope})", rows=rows,
                  ranks=list(range(1, len(rows) + 1)), n=board.n_replicates, ranked_by=COLUMNS[board.ranked_by][0],
                  ranking_test=RANKING_TEST, kendall_tau=tau, back=back)


__all__ = ["board_page", "compare_page", "detail_page", "stability_page", "team_href", "team_page"]
