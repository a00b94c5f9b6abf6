"""The board: sanitizing a scored result, best entry per team, sorting, and the exported entries + README table.

The server, ``export`` and ``render`` all build rows with :func:`row`, from the same sanitized result dict.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from polypbench.errors import choice_error
from polypbench.evaluate import Result, format_stat, lookup
from polypbench.evaluate.keys import with_dataset
from polypbench.leaderboard import PRIMARY
from polypbench.leaderboard.db import Submission

log = logging.getLogger(__name__)

COLUMNS = {
    # sort name: (label, metric key (pooled; the board swaps in the dataset shown), higher is better)
    "macro_f1": ("macro F1 (per polyp, triclass)", "polyp/triclass/pooled/macro_f1", True),
    "balanced_accuracy": ("bal. acc.", "polyp/triclass/pooled/balanced_accuracy", True),
    "kappa_quadratic": ("kappa (quadr.)", "polyp/triclass/pooled/kappa_quadratic", True),
    "binary10_f1": ("<10 mm vs >=10 mm macro F1", "polyp/binary10/pooled/macro_f1", True),
    "mae_mm": ("MAE mm", "polyp/size/pooled/mae_mm", False),
}
"""Metric columns of the board (keys of :mod:`polypbench.evaluate.keys`); the first is the primary (ranking) metric."""
TEXT_SORTS = ("team", "method", "submitted")
PUBLIC_KEYS = ("schema_version", "polypbench_version", "split", "manifests", "predictions", "aggregation", "bootstrap",
               "counts", "views", "classes", "metrics")
"""What a stored or returned result keeps of :meth:`Result.to_dict`: aggregate metrics only. Left out: confusion
matrices (exact test class counts), comparisons, and anything added later until it is judged public here."""

assert COLUMNS["macro_f1"][1] == PRIMARY


def sanitize(result: Result) -> dict[str, Any]:
    """The public result: aggregate metrics only; no per-polyp rows, confusion matrices or server label paths."""
    doc = result.to_dict()
    public = {k: doc[k] for k in PUBLIC_KEYS if k in doc}
    public["manifests"] = [{k: v for k, v in m.items() if k != "path"} for m in public.get("manifests", [])]
    return public


def row(entry: dict[str, Any], dataset: str = "pooled") -> dict[str, Any]:
    """One board row from an entry (``id, team, method, paper_url, code_url, submitted, result``); ``metrics`` holds
    each column's Stat in its JSON form (None when absent)."""
    out = {k: entry.get(k) for k in ("id", "team", "method", "paper_url", "code_url", "submitted")}
    found = {k: lookup(entry["result"], with_dataset(key, dataset)) for k, (_, key, _) in COLUMNS.items()}
    out["metrics"] = {k: s.to_dict() if s is not None else None for k, s in found.items()}
    return out


def _value(r: dict[str, Any], key: str) -> float | None:
    stat = r["metrics"].get(key)
    return None if stat is None else stat.get("value")


def check_sort(sort: str) -> str:
    if sort not in COLUMNS and sort not in TEXT_SORTS:
        raise choice_error("sort", sort, [*COLUMNS, *TEXT_SORTS])
    return sort


def sort_rows(rows: list[dict[str, Any]], sort: str = "macro_f1") -> list[dict[str, Any]]:
    """Rows ordered by ``sort``: metrics best first (undefined last), text columns ascending, ties by id."""
    check_sort(sort)
    if sort in TEXT_SORTS:
        return sorted(rows, key=lambda r: (str(r[sort]).lower(), r["id"]))
    higher = COLUMNS[sort][2]

    def key(r: dict[str, Any]) -> tuple[int, float, int]:
        v = _value(r, sort)
        return (1, 0.0, r["id"]) if v is None else (0, -v if higher else v, r["id"])

    return sorted(rows, key=key)


def entry(sub: Submission) -> dict[str, Any]:
    return {"id": sub.id, "team": sub.team.name, "method": sub.method, "paper_url": sub.paper_url,
            "code_url": sub.code_url, "submitted": sub.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            "result": json.loads(sub.result_json)}


def datasets(entries: list[dict[str, Any]]) -> list[str]:
    """Dataset names present in the entries' results (``pooled`` last)."""
    names = {d for e in entries for d in e["result"].get("counts", {})}
    return sorted(names - {"pooled"}) + (["pooled"] if "pooled" in names else [])


def best_per_team(entries: list[dict[str, Any]], dataset: str = "pooled") -> list[dict[str, Any]]:
    """Each team's best entry by the primary metric on ``dataset`` (earliest wins ties; undefined counts lowest)."""
    best: dict[str, tuple[tuple[float, int], dict[str, Any]]] = {}
    for e in entries:
        primary = lookup(e["result"], with_dataset(PRIMARY, dataset))
        value = primary.value if primary else None
        rank = (-value if value is not None else float("inf"), e["id"])
        if e["team"] not in best or rank < best[e["team"]][0]:
            best[e["team"]] = (rank, e)
    return [e for _, e in sorted(best.values(), key=lambda t: t[0])]


def board(session: Session, dataset: str = "pooled", sort: str = "macro_f1") -> list[dict[str, Any]]:
    """The board rows: best submission per team on ``dataset``, sorted."""
    subs = session.scalars(select(Submission).order_by(Submission.id)).all()
    entries = [entry(s) for s in subs]
    known = datasets(entries)
    if entries and dataset not in known:
        raise choice_error("dataset", dataset, known)
    return sort_rows([row(e, dataset) for e in best_per_team(entries, dataset)], sort)


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[dict[str, Any]], dataset: str = "pooled") -> str:
    """The README table (rank, team, method, links, metrics with 95% CIs)."""
    head = ["#", "team", "method", "links", *[label for label, _, _ in COLUMNS.values()], "submitted"]
    lines = [f"# polypbench leaderboard ({dataset})", "",
             "Best entry per team by per-polyp triclass macro F1 (pooled); 95% patient-bootstrap CIs in brackets.",
             "Generated by `polypbench leaderboard render`; do not edit by hand.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(rows, 1):
        links = " ".join(f"[{n}]({_md(r[k])})" for n, k in (("paper", "paper_url"), ("code", "code_url")) if r[k])
        metrics = [format_stat(r["metrics"][k], key) for k, (_, key, _) in COLUMNS.items()]
        cells = [str(i), _md(r["team"]), _md(r["method"]), links, *metrics, _md(r["submitted"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render(out: str | Path) -> Path:
    """Rebuild ``out/README.md`` from ``out/entries/*.json``."""
    out = Path(out)
    files = sorted((out / "entries").glob("*.json"))
    entries = [json.loads(p.read_text()) for p in files]
    rows = sort_rows([row(e) for e in best_per_team(entries)])
    path = out / "README.md"
    path.write_text(markdown(rows))
    log.info("rendered %s from %d entries", path, len(entries))
    return path


def export(sessions: sessionmaker[Session], out: str | Path) -> list[Path]:
    """Write ``out/entries/<id>.json`` for each team's best entry (stale entries removed), then ``out/README.md``."""
    out = Path(out)
    folder = out / "entries"
    folder.mkdir(parents=True, exist_ok=True)
    with sessions() as session:
        entries = [entry(s) for s in session.scalars(select(Submission).order_by(Submission.id)).all()]
    keep = best_per_team(entries)
    for stale in folder.glob("*.json"):
        stale.unlink()
    written = []
    for e in keep:
        path = folder / f"{e['id']}.json"
        path.write_text(json.dumps(e, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return [*written, render(out)]


__all__ = ["COLUMNS", "board", "best_per_team", "export", "markdown", "render", "row", "sanitize"]
