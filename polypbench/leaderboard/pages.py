"""Server-rendered HTML (no JavaScript): the board and a submission's detail page.

The pages are the autoescaped templates ``board.html.j2`` and ``submission.html.j2`` (``polypbench/templates``): every
value is escaped there; this module only picks the numbers (with :func:`~polypbench.evaluate.lookup`) and formats
them (with :func:`~polypbench.evaluate.format_stat`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from polypbench.evaluate import format_stat, lookup, parse_key
from polypbench.evaluate.keys import SIZE_TASK, candidate_keys, class_slugs
from polypbench.leaderboard.board import COLUMNS, TEXT_SORTS
from polypbench.sizes import TASKS
from polypbench.templating import render


def _links(item: dict[str, Any]) -> list[tuple[str, str]]:
    """(url, text) of the paper and code links; anything but http(s) is dropped (no ``javascript:`` links)."""
    pairs = ((item.get("paper_url"), "paper"), (item.get("code_url"), "code"))
    return [(url, text) for url, text in pairs if url and str(url).startswith(("http://", "https://"))]


def board_page(rows: list[dict[str, Any]], datasets: list[str], dataset: str, sort: str) -> str:
    """The board: a table sortable by ``?sort=`` links, filtered by ``?dataset=`` links."""
    def href(**q: str) -> str:
        return "/?" + urlencode({"dataset": dataset, "sort": sort, **q})

    filters = [(d, None if d == dataset else href(dataset=d)) for d in datasets] or [(dataset, None)]
    heads = [("#", None, False), ("team", href(sort="team"), sort == "team"),
             ("method", href(sort="method"), sort == "method"), ("links", None, False),
             *[(label, href(sort=k), sort == k) for k, (label, _, _) in COLUMNS.items()],
             ("submitted", href(sort="submitted"), sort == "submitted")]
    shown = [{"id": int(r["id"]), "team": r["team"], "method": r["method"], "submitted": r["submitted"],
              "links": _links(r), "metrics": [format_stat(r["metrics"][k], key) for k, (_, key, _) in COLUMNS.items()]}
             for r in rows]
    return render("board.html.j2", title=f"polypbench leaderboard ({dataset})", filters=filters, heads=heads,
                  rows=shown, sort_keys=[*COLUMNS, *TEXT_SORTS])


def _label(key: str) -> str:
    """``macro_f1``, or ``sensitivity (>=10 mm)`` for a per-class key."""
    _, task, _, metric, cls = parse_key(key)
    return metric if cls is None else f"{metric} ({class_slugs(task).get(cls, cls)})"


def detail_page(entry: dict[str, Any]) -> str:
    """Every aggregate metric of one submission: view x task x dataset tables (never anything per polyp)."""
    result = entry["result"]
    meta = [("team", entry["team"]), ("method", entry["method"]), ("submitted", entry["submitted"]),
            ("split", result.get("split", "")), ("level", result.get("predictions", {}).get("level", "")),
            ("bootstrap replicates", result.get("bootstrap", {}).get("replicates", ""))]
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
    return render("submission.html.j2", title=f"submission {int(entry['id'])}", meta=meta, links=_links(entry),
                  views=views)
