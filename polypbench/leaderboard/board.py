"""The board: each team's best entry in a scope, sorted, with rank groups and rank stability; the exported entries
and the README table.

A *scope* is what one board ranks: on the public track a dataset or ``pooled``, on the private track a part of
the hidden test set (``public`` while the phase runs; ``private``, the final ranking, once it is closed). The
server, ``export`` and ``render`` all build rows with :func:`row` from the stored public entries; the statistics
come from :mod:`polypbench.leaderboard.ranking` on the stored replicates.
"""

from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from polypbench.errors import PolypbenchError, choice_error
from polypbench.evaluate import format_stat, lookup
from polypbench.evaluate.keys import with_dataset
from polypbench.leaderboard import ranking
from polypbench.leaderboard.columns import COLUMNS, PRIMARY, TEXT_SORTS
from polypbench.leaderboard.db import Database, Submission
from polypbench.leaderboard.records import entry, replicates, verifications
from polypbench.leaderboard.tracks import PARTS, POOLED

log = logging.getLogger(__name__)


def metric_key(track: str, scope: str, key: str) -> str:
    """The key of a board metric in a scope (the private track stores pooled keys per part)."""
    return key if track == "private" else with_dataset(key, scope)


def check_sort(sort: str) -> str:
    if sort not in COLUMNS and sort not in TEXT_SORTS:
        raise choice_error("sort", sort, [*COLUMNS, *TEXT_SORTS])
    return sort


def row(e: dict[str, Any], scope: str = POOLED) -> dict[str, Any]:
    """One board row: the entry's descriptive fields and each column's stat (JSON form) in ``scope``."""
    result = e["results"][scope]
    fields = ("id", "team", "method", "paper_url", "code_url", "submitted", "declaration", "verified",
              "checkpoint_sha256", "split_hashes")
    out: dict[str, Any] = {k: e.get(k) for k in fields}
    out["config"] = bool(e.get("config"))
    out["metrics"] = {}
    for name, (_, key, _) in COLUMNS.items():
        stat = lookup(result, metric_key(e.get("track", "public"), scope, key))
        out["metrics"][name] = None if stat is None else stat.to_dict()
    out["support"] = result.get("counts", {}).get(scope if e.get("track", "public") == "public" else POOLED, {})
    return out


def _value(r: dict[str, Any], column: str) -> float | None:
    stat = r["metrics"].get(column)
    return None if stat is None else stat.get("value")


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


def best_per_team(entries: list[dict[str, Any]], scope: str = POOLED) -> list[dict[str, Any]]:
    """Each team's best entry in ``scope`` by the primary metric (earliest wins ties; undefined counts lowest)."""
    best: dict[str, tuple[tuple[float, int], dict[str, Any]]] = {}
    for e in entries:
        if scope not in e["results"]:
            continue
        primary = lookup(e["results"][scope], metric_key(e.get("track", "public"), scope, PRIMARY))
        value = primary.value if primary else None
        rank = (-value if value is not None else float("inf"), e["id"])
        if e["team"] not in best or rank < best[e["team"]][0]:
            best[e["team"]] = (rank, e)
    return [e for _, e in sorted(best.values(), key=lambda t: t[0])]


@dataclass
class Board:
    """One board: ``rows`` in display order, each with ``rank`` (its rank group on ``ranked_by``) and ``stability``
    (the 95% range of its bootstrap rank and P(first)); ``scopes`` the scopes one can switch to."""

    track: str
    scope: str
    sort: str
    ranked_by: str
    rows: list[dict[str, Any]]
    scopes: list[str]
    distribution: list[list[float]] = field(default_factory=list)
    n_replicates: int = 0
    closed: bool = False


def _rank_range(dist: np.ndarray) -> tuple[int, int]:
    cum = np.cumsum(dist)
    lo = int(np.searchsorted(cum, 0.025, side="right")) + 1
    hi = int(np.searchsorted(cum, 0.975, side="left")) + 1
    return lo, min(hi, len(dist))


def rank(session: Session, track: str, scope: str, rows: list[dict[str, Any]], column: str) -> tuple[np.ndarray, int]:
    """Set each row's ``rank`` and ``stability`` on ``column``; return the rank distribution (rows x ranks) and the
    number of replicates it rests on."""
    _, key, higher = COLUMNS[column]
    reps = replicates(session, [int(r["id"]) for r in rows], scope, metric_key(track, scope, key))
    width = max((len(v) for v in reps.values()), default=0)
    matrix = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        values = reps.get(int(r["id"]))
        if values is not None and len(values) == width:
            matrix[i] = values
    points = [_value(r, column) for r in rows]
    groups = ranking.rank_groups(points, matrix, higher)
    dist = ranking.rank_distribution(matrix, higher) if width else np.zeros((len(rows), len(rows)))
    for r, g, d in zip(rows, groups, dist, strict=True):
        r["rank"] = g
        lo, hi = _rank_range(d) if width else (g, g)
        r["stability"] = {"rank_95": [lo, hi], "p_first": float(d[0]) if width else None}
    return dist, width


def build(db: Database, track: str, scope: str, sort: str, *, closed: bool, scopes: list[str]) -> Board:
    """The board of ``scope`` sorted by ``sort``; rank groups on the sort column (the primary for text sorts)."""
    check_sort(sort)
    if scope not in scopes:
        raise choice_error("scope", scope, scopes)
    with db.sessions() as session:
        subs = session.scalars(select(Submission).where(Submission.track == track).order_by(Submission.id)).all()
        found = verifications(session, [s.id for s in subs])
        entries = [entry(s, found.get(s.id), reveal=closed) for s in subs]
        rows = sort_rows([row(e, scope) for e in best_per_team(entries, scope)], sort)
        ranked_by = sort if sort in COLUMNS else "macro_f1"
        dist, width = rank(session, track, scope, rows, ranked_by)
    return Board(track, scope, sort, ranked_by, rows, scopes, dist.round(4).tolist(), width, closed)


def compare_entries(db: Database, track: str, scope: str, a: dict[str, Any],
                    b: dict[str, Any]) -> dict[str, ranking.Comparison]:
    """Per board column, entry ``a`` versus ``b`` in ``scope`` on their paired replicates."""
    ra, rb = a["results"][scope], b["results"][scope]
    same = {k: ra.get("bootstrap", {}).get(k) for k in ("replicates", "seed")} == \
        {k: rb.get("bootstrap", {}).get(k) for k in ("replicates", "seed")}
    if not same:
        raise PolypbenchError(f"submissions {a['id']} and {b['id']} were scored with different bootstrap settings; "
                              "expected entries scored on the same resamples")
    out = {}
    with db.sessions() as session:
        for name, (_, key, higher) in COLUMNS.items():
            full = metric_key(track, scope, key)
            reps = replicates(session, [int(a["id"]), int(b["id"])], scope, full)
            sa, sb = lookup(ra, full), lookup(rb, full)
            va, vb = reps.get(int(a["id"]), np.array([])), reps.get(int(b["id"]), np.array([]))
            if len(va) != len(vb):
                va, vb = np.array([]), np.array([])
            out[name] = ranking.compare_pair(sa.value if sa else None, va, sb.value if sb else None, vb, higher)
    return out


def scopes_of(track: str, names: list[str], closed: bool) -> list[str]:
    if track == "private":
        return list(PARTS) if closed else ["public"]
    return names


# -- export -------------------------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"""([!"$%'()*+,\-./:=?@\[\\\]^_`{|}~])""")
"""ASCII punctuation that CommonMark lets a backslash escape, except ``&``, ``;`` and ``#`` (entities use them)."""


def md_text(value: object) -> str:
    """Text for a Markdown table cell, shown literally: one line; ``& < >`` as entities, then every other ASCII
    punctuation character backslash-escaped (no emphasis, links, images, HTML, table breaks or autolinks)."""
    text = html.escape(" ".join(str(value).split()), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_link(url: object, text: str) -> str:
    """``[text](url)`` for an http(s) URL with every character that could end or break the link percent-encoded;
    empty for any other scheme."""
    url = str(url or "")
    if not url.startswith(("http://", "https://")):
        return ""
    return f"[{md_text(text)}]({quote(url, safe=':/?=&%#.,;@+$!~*')})"


def markdown(rows: list[dict[str, Any]], scope: str = POOLED) -> str:
    """The README table (rank group, team, method, links, metrics with 95% CIs)."""
    head = ["#", "team", "method", "links", *[label for label, _, _ in COLUMNS.values()], "submitted"]
    lines = [f"# polypbench leaderboard ({md_text(scope)})", "",
             "Best entry per team by per-polyp triclass macro F1; 95% patient-bootstrap CIs in brackets. Entries not "
             "significantly worse than the first of their group share its rank (one-sided paired bootstrap test, "
             "5%). Public-track entries are an honour-system registry: the test labels are public.",
             "Generated by `polypbench leaderboard render`; do not edit by hand.", "",
             "| " + " | ".join(md_text(h) for h in head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(rows, 1):
        links = " ".join(filter(None, (md_link(r.get("paper_url"), "paper"), md_link(r.get("code_url"), "code"))))
        metrics = [md_text(format_stat(r["metrics"][k], key)) for k, (_, key, _) in COLUMNS.items()]
        cells = [str(int(r.get("rank", i))), md_text(r["team"]), md_text(r["method"]), links, *metrics,
                 md_text(r["submitted"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render(out: str | Path) -> Path:
    """Rebuild ``out/README.md`` from ``out/entries/*.json`` (ranks as exported)."""
    out = Path(out)
    files = sorted((out / "entries").glob("*.json"))
    entries = [json.loads(p.read_text()) for p in files]
    rows = []
    for e in best_per_team(entries):
        r = row(e)
        r["rank"] = e.get("rank")
        rows.append(r)
    path = out / "README.md"
    path.write_text(markdown(sort_rows(rows)))
    log.info("rendered %s from %d entries", path, len(entries))
    return path


def export(db: Database, out: str | Path) -> list[Path]:
    """Write ``out/entries/<id>.json`` for each team's best public-track entry (pooled; stale entries removed),
    with its rank group, then ``out/README.md``."""
    out = Path(out)
    folder = out / "entries"
    folder.mkdir(parents=True, exist_ok=True)
    with db.sessions() as session:
        subs = session.scalars(select(Submission).where(Submission.track == "public").order_by(Submission.id)).all()
        found = verifications(session, [s.id for s in subs])
        entries = [entry(s, found.get(s.id)) for s in subs]
        keep = best_per_team(entries)
        rows = sort_rows([row(e) for e in keep])
        rank(session, "public", POOLED, rows, "macro_f1")
    ranks = {r["id"]: r["rank"] for r in rows}
    for stale in folder.glob("*.json"):
        stale.unlink()
    written = []
    for e in keep:
        path = folder / f"{int(e['id'])}.json"
        path.write_text(json.dumps({**e, "rank": ranks[e["id"]]}, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return [*written, render(out)]


__all__ = ["Board", "best_per_team", "build", "compare_entries", "export", "markdown", "md_link", "md_text", "render",
           "row", "sort_rows"]
