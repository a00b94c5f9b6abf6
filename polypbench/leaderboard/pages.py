"""Server-rendered HTML (no JavaScript): the board, a submission, a comparison of two entries, rank stability.

The pages are autoescaped templates (``polypbench/templates``): every value is escaped there; this module only
picks the numbers (with :func:`~polypbench.evaluate.lookup`) and formats them (with
:func:`~polypbench.evaluate.format_stat`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from polypbench.evaluate import format_stat, lookup, parse_key
from polypbench.evaluate.keys import SIZE_TASK, candidate_keys, class_slugs
from polypbench.leaderboard.board import Board, metric_key
from polypbench.leaderboard.columns import COLUMNS, TEXT_SORTS
from polypbench.leaderboard.ranking import Comparison
from polypbench.sizes import TASKS
from polypbench.templating import render

NOTES = {
    "public": "Public track: the test labels of these datasets are public, so this board is an honour-system "
              "registry (as WILDS's): each entry declares that the test labels were not used for training or model "
              "selection and may give its code, config, checkpoint hash and split hash. An entry is 'verified' when "
              "the server re-ran its uploaded checkpoint on the test frames it holds and got the same predictions.",
    "private": "Private track: models are run by the server on test frames and labels no participant sees. The live "
               "board shows the public part of the hidden test set; the final ranking uses the private part and is "
               "revealed when the organiser closes the phase. Only pooled summary metrics are shown.",
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


def _cell(text: str) -> tuple[str, str]:
    """``0.712 [0.650, 0.770]`` as (value, interval): the page may wrap between them, never inside the interval."""
    value, sep, ci = text.partition(" [")
    return value, f"[{ci}" if sep else ""


def board_page(board: Board, tracks: list[str]) -> str:
    """The board: a table sortable by ``?sort=`` links, with track and scope links."""
    def href(**q: str) -> str:
        return "/?" + urlencode({"track": board.track, "scope": board.scope, "sort": board.sort, **q})

    track_links = [(t, None if t == board.track else "/?" + urlencode({"track": t})) for t in tracks]
    scope_links = [(s, None if s == board.scope else href(scope=s)) for s in board.scopes]
    heads = [("#", None, False), ("team", href(sort="team"), board.sort == "team"),
             ("method", href(sort="method"), board.sort == "method"), ("links", None, False),
             *[(label, href(sort=k), board.sort == k) for k, (label, _, _) in COLUMNS.items()],
             ("rank 95%", None, False), ("P(1st)", None, False), ("n polyps / patients", None, False),
             ("submitted", href(sort="submitted"), board.sort == "submitted")]
    shown = []
    for r in board.rows:
        lo, hi = r["stability"]["rank_95"]
        p_first = r["stability"]["p_first"]
        support = r.get("support") or {}
        shown.append({"id": int(r["id"]), "rank": r["rank"], "team": r["team"], "method": r["method"],
                      "badges": _badges(r), "submitted": r["submitted"], "links": _links(r),
                      "metrics": [_cell(format_stat(r["metrics"][k], key)) for k, (_, key, _) in COLUMNS.items()],
                      "rank_95": str(lo) if lo == hi else f"{lo}-{hi}",
                      "p_first": "-" if p_first is None else f"{p_first:.2f}",
                      "support": f"{support.get('n_polyps', '-')} / {support.get('n_patients', '-')}"})
    query = urlencode({"track": board.track, "scope": board.scope, "sort": board.sort})
    scope_label = "Part" if board.track == "private" else "Dataset"
    title = f"polypbench leaderboard ({board.track}: {board.scope})"
    return render("board.html.j2", title=title, tracks=track_links, scopes=scope_links, scope_label=scope_label,
                  note=NOTES[board.track], heads=heads, rows=shown, sort_keys=[*COLUMNS, *TEXT_SORTS],
                  ranked_by=COLUMNS[board.ranked_by][0], track=board.track, scope=board.scope,
                  stability_href=f"/stability?{query}", api_href=f"/api/leaderboard?{query}")


def _label(key: str) -> str:
    """``macro_f1``, or ``sensitivity (>=10 mm)`` for a per-class key."""
    _, task, _, metric, cls = parse_key(key)
    return metric if cls is None else f"{metric} ({class_slugs(task).get(cls, cls)})"


def _views(result: dict[str, Any]) -> list[tuple[str, list[tuple[str, list[tuple[str, str, str]]]]]]:
    views = []
    for view in result.get("views", {}):
        groups = []
        for task in [*TASKS, SIZE_TASK]:
            for ds in result.get("counts", {}):
                found = [(key, lookup(result, key)) for key in candidate_keys(view, task, ds)]
                rows = [(_label(key), format_stat(stat, key), key) for key, stat in found if stat is not None]
                if rows:
                    groups.append((f"{task}: {ds}", rows))
        views.append((view, groups))
    return views


def detail_page(entry: dict[str, Any]) -> str:
    """Every aggregate metric of one submission, per scope: view x task x dataset tables."""
    results = entry["results"]
    first: dict[str, Any] = next(iter(results.values()), {})
    verification = entry.get("verification") or "no checkpoint uploaded"
    meta = [("team", entry["team"]), ("track", entry["track"]), ("method", entry["method"]),
            ("submitted", entry["submitted"]),
            ("declaration", "test labels not used for training or model selection" if entry.get("declaration")
             else "not needed: the server ran the model on data it keeps hidden" if entry["track"] == "private"
             else "-"),
            ("verification", verification if entry["track"] == "public" else "run by the server"),
            ("checkpoint sha256", entry.get("checkpoint_sha256") or "-"),
            ("file sha256", entry.get("file_sha256") or "-"), ("split hashes", entry.get("split_hashes") or "-"),
            ("scopes", ", ".join(results)), ("level", first.get("predictions", {}).get("level", "")),
            ("bootstrap replicates", first.get("bootstrap", {}).get("replicates", ""))]
    scopes = [(scope, _views(result)) for scope, result in results.items()]
    return render("submission.html.j2", title=f"submission {int(entry['id'])}", meta=meta, links=_links(entry),
                  config=entry.get("config") or "", scopes=scopes)


def compare_page(a: dict[str, Any], b: dict[str, Any], track: str, scope: str,
                 comparisons: dict[str, Comparison]) -> str:
    """A and B on each board metric of ``scope`` with the paired difference and P(A better)."""
    rows, n = [], 0
    for name, (label, key, _) in COLUMNS.items():
        full = metric_key(track, scope, key)
        c = comparisons[name]
        n = max(n, c.n)
        diff = "-" if c.difference is None else format_stat({"value": c.difference, "ci95": c.ci95}, full)
        rows.append((label, format_stat(lookup(a["results"][scope], full), full),
                     format_stat(lookup(b["results"][scope], full), full), diff,
                     "-" if c.p_a_better is None else f"{c.p_a_better:.3f}"))
    back = "/?" + urlencode({"track": track, "scope": scope})
    return render("compare.html.j2", title=f"compare {int(a['id'])} and {int(b['id'])} ({scope})", a=a, b=b,
                  scope=scope, rows=rows, n=n, back=back)


def stability_page(board: Board) -> str:
    n_ranks = len(board.rows)
    rows = [{"rank": r["rank"], "team": r["team"], "method": r["method"],
             "shares": [f"{p:.2f}" if p else "" for p in dist]}
            for r, dist in zip(board.rows, board.distribution, strict=True)]
    back = "/?" + urlencode({"track": board.track, "scope": board.scope, "sort": board.sort})
    return render("stability.html.j2", title=f"rank stability ({board.track}: {board.scope})", rows=rows,
                  ranks=list(range(1, n_ranks + 1)), n=board.n_replicates, ranked_by=COLUMNS[board.ranked_by][0],
                  back=back)


__all__ = ["board_page", "compare_page", "detail_page", "stability_page"]
