"""Server-rendered HTML (no JavaScript): the board, a submission, a comparison of two entries, rank stability.

The pages are autoescaped templates (``polypbench/templates``): every value is escaped there; this module only
picks the numbers (:class:`~polypbench.evaluate.Stat` values, read with :func:`~polypbench.evaluate.lookup`) and
formats them (with :mod:`polypbench.evaluate.format`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from polypbench.evaluate import Stat, format_stat, lookup, parse_key
from polypbench.evaluate.format import LEGEND, format_interval, format_notes, format_p, format_support, format_value
from polypbench.evaluate.keys import TASKS, candidate_keys, class_slugs
from polypbench.leaderboard.board import RANKING_TEST, Board, Comparison, cells, entry_track, metric_key, support
from polypbench.leaderboard.columns import COLUMNS, TEXT_SORTS, Track
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


def _cell(stat: Stat | None, key: str, own_support: str = "") -> dict[str, str]:
    """A number of the board as its value and its interval (:func:`~polypbench.evaluate.format.format_value`,
    :func:`~polypbench.evaluate.format.format_interval`: together :func:`~polypbench.evaluate.format_stat`), so that
    the page may wrap between them, never inside the interval; ``own_support`` when the cell rests on other polyps
    and patients than its row; ``notes`` why its interval is flagged or withheld (shown on hover)."""
    return {"value": format_value(stat, key), "ci": format_interval(stat, key), "support": own_support,
            "notes": format_notes(stat)}


def _p_first(p: float | None) -> str:
    return "-" if p is None else f"{p:.2f}"


def board_page(board: Board, tracks: list[Track]) -> str:
    """The board: a table sortable by ``?sort=`` links, with track and scope links, the ranking test and the
    legend of the number format."""
    def href(**q: str) -> str:
        return "/?" + urlencode({"track": board.track, "scope": board.scope, "sort": board.sort, **q})

    track_links = [(t, None if t == board.track else "/?" + urlencode({"track": t})) for t in tracks]
    scope_links = [(s, None if s == board.scope else href(scope=s)) for s in board.scopes]
    heads = [("#", None, False), ("team", href(sort="team"), board.sort == "team"),
             ("method", href(sort="method"), board.sort == "method"), ("links", None, False),
             *[(label, href(sort=k), board.sort == k) for k, (label, _, _) in COLUMNS.items()],
             ("n polyps / patients", None, False), ("rank 95%", None, False), ("P(1st)", None, False),
             ("submitted", href(sort="submitted"), board.sort == "submitted")]
    shown = []
    for r in board.rows:
        stability = r.get("stability") or {}
        lo, hi = stability.get("rank_95") or (None, None)
        shown.append({"id": int(r["id"]), "rank": "-" if r.get("rank") is None else r["rank"], "team": r["team"],
                      "method": r["method"], "badges": _badges(r), "submitted": r["submitted"], "links": _links(r),
                      "metrics": [_cell(stat, key, own) for stat, key, own in cells(r)],
                      "support": support(r),
                      "rank_95": "-" if lo is None else str(lo) if lo == hi else f"{lo}-{hi}",
                      "p_first": _p_first(stability.get("p_first"))})
    query = urlencode({"track": board.track, "scope": board.scope, "sort": board.sort})
    scope_label = "Part" if board.track is Track.PRIVATE else "Dataset"
    title = f"polypbench leaderboard ({board.track}: {board.scope})"
    return render("board.html.j2", title=title, tracks=track_links, scopes=scope_links, scope_label=scope_label,
                  note=NOTES[board.track], heads=heads, rows=shown, sort_keys=[*COLUMNS, *TEXT_SORTS],
                  ranked_by=COLUMNS[board.ranked_by][0], ranking_test=RANKING_TEST, legend=LEGEND,
                  track=board.track, scope=board.scope, stability_href=f"/stability?{query}",
                  api_href=f"/api/leaderboard?{query}")


def _label(key: str) -> str:
    """``macro_f1``, or ``sensitivity (>=10 mm)`` for a per-class key."""
    _, task, _, metric, cls = parse_key(key)
    return metric if cls is None else f"{metric} ({class_slugs(task).get(cls, cls)})"


def _views(result: dict[str, Any]) -> list[tuple[str, list[tuple[str, list[tuple[str, str, str, str, str]]]]]]:
    """Per view, per task and dataset: (label, number, its polyps / patients, why its interval is flagged or
    withheld, key) of every metric the result has."""
    views = []
    for view in result.get("views", {}):
        groups = []
        for task in TASKS:
            for ds in result.get("counts", {}):
                found = [(key, lookup(result, key)) for key in candidate_keys(view, task, ds)]
                rows = [(_label(key), format_stat(stat, key), format_support(stat), format_notes(stat), key)
                        for key, stat in found if stat is not None]
                if rows:
                    groups.append((f"{task}: {ds}", rows))
        views.append((view, groups))
    return views


def detail_page(entry: dict[str, Any]) -> str:
    """Every aggregate metric of one submission, per scope: view x task x dataset tables."""
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
    scopes = [(scope, _views(result)) for scope, result in results.items()]
    return render("submission.html.j2", title=f"submission {int(entry['id'])}", meta=meta, links=_links(entry),
                  config=entry.get("config") or "", scopes=scopes, legend=LEGEND)


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


__all__ = ["board_page", "compare_page", "detail_page", "stability_page"]
