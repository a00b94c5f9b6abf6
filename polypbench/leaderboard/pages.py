"""Server-rendered HTML (no JavaScript): the board and a submission's detail page. Every value is escaped."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from polypbench.leaderboard.board import COLUMNS, TEXT_SORTS, fmt_stat

_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;white-space:nowrap}th a{color:inherit}")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n<h1>{escape(title)}</h1>\n{body}\n</body></html>\n")


def _link(url: str | None, text: str) -> str:
    if not url or not url.startswith(("http://", "https://")):
        return ""
    return f'<a href="{escape(url)}" rel="nofollow">{escape(text)}</a>'


def board_page(rows: list[dict[str, Any]], datasets: list[str], dataset: str, sort: str) -> str:
    """The board: a table sortable by ``?sort=`` links, filtered by ``?dataset=`` links."""
    def href(**q: str) -> str:
        return "/?" + urlencode({"dataset": dataset, "sort": sort, **q})

    filters = " | ".join(escape(d) if d == dataset else f'<a href="{escape(href(dataset=d))}">{escape(d)}</a>'
                         for d in datasets)
    heads = [("#", None), ("team", "team"), ("method", "method"), ("links", None),
             *[(label, key) for key, (label, _, _) in COLUMNS.items()], ("submitted", "submitted")]
    cells = []
    for label, key in heads:
        mark = " &#9660;" if key == sort else ""
        cells.append(f"<th>{escape(label)}</th>" if key is None else
                     f'<th><a href="{escape(href(sort=key))}">{escape(label)}</a>{mark}</th>')
    lines = ["<tr>" + "".join(cells) + "</tr>"]
    for i, r in enumerate(rows, 1):
        links = " ".join(x for x in (_link(r["paper_url"], "paper"), _link(r["code_url"], "code")) if x)
        metrics = "".join(f"<td>{escape(fmt_stat(r['metrics'][k]))}</td>" for k in COLUMNS)
        lines.append(f'<tr><td>{i}</td><td>{escape(str(r["team"]))}</td>'
                     f'<td><a href="/submissions/{int(r["id"])}">{escape(str(r["method"]))}</a></td>'
                     f"<td>{links}</td>{metrics}<td>{escape(str(r['submitted']))}</td></tr>")
    empty = "" if rows else "<p>No submissions yet.</p>"
    body = (f"<p>Best entry per team by per-polyp triclass macro F1; 95% patient-bootstrap CIs in brackets. "
            f"Dataset: {filters or escape(dataset)}</p>\n<table>\n" + "\n".join(lines) + f"\n</table>\n{empty}"
            f"<p>Sort keys: {escape(', '.join([*COLUMNS, *TEXT_SORTS]))}. JSON: <a href=\"/api/leaderboard\">"
            f"/api/leaderboard</a></p>")
    return _page(f"polypbench leaderboard ({dataset})", body)


def _metric_rows(stats: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for name, stat in stats.items():
        if isinstance(stat, dict) and "value" in stat:
            out.append((name, fmt_stat(stat)))
        elif isinstance(stat, dict):
            out += [(f"{name} ({cls})", fmt_stat(s)) for cls, s in stat.items() if isinstance(s, dict)]
    return out


def detail_page(entry: dict[str, Any]) -> str:
    """Every aggregate metric of one submission: view x task x dataset tables (never anything per polyp)."""
    result = entry["result"]
    meta = [("team", entry["team"]), ("method", entry["method"]), ("submitted", entry["submitted"]),
            ("split", result.get("split", "")), ("level", result.get("predictions", {}).get("level", "")),
            ("bootstrap replicates", result.get("bootstrap", {}).get("replicates", ""))]
    parts = ["<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in meta)
             + "</table>"]
    links = " ".join(x for x in (_link(entry.get("paper_url"), "paper"), _link(entry.get("code_url"), "code")) if x)
    if links:
        parts.append(f"<p>{links}</p>")
    for view, body in result.get("views", {}).items():
        parts.append(f"<h2>{escape(view)}</h2>")
        sections = [(task, e.get("datasets", {})) for task, e in (body.get("tasks") or {}).items()]
        if body.get("size"):
            sections.append(("size", body["size"].get("datasets", {})))
        for task, by_dataset in sections:
            for ds, stats in by_dataset.items():
                rows = "".join(f"<tr><td>{escape(m)}</td><td>{escape(v)}</td></tr>" for m, v in _metric_rows(stats))
                parts.append(f"<h3>{escape(task)}: {escape(ds)}</h3><table><tr><th>metric</th><th>value [95% CI]"
                             f"</th></tr>{rows}</table>")
    parts.append('<p><a href="/">back to the board</a></p>')
    return _page(f"submission {int(entry['id'])}", "\n".join(parts))
