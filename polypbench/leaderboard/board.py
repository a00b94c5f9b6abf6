"""The board: each team's best entry in a scope, sorted, with rank groups and rank stability; two entries compared;
the exported entries and the README table.

A *scope* is what one board ranks: on the public track a dataset or ``pooled``, on the private track a part of
the hidden test set (``public`` while the phase runs; ``private``, the final ranking, once it is closed). The
server, ``export`` and ``render`` all build rows with :func:`row` from the stored public entries; the statistics
are :mod:`polypbench.evaluate.ranking`'s, on the stored :class:`~polypbench.evaluate.Replicates`.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from polypbench.errors import PolypbenchError, choice_error
from polypbench.evaluate import Replicates, Stat, format_stat, lookup
from polypbench.evaluate.format import LEGEND, format_support
from polypbench.evaluate.keys import with_dataset
from polypbench.evaluate.ranking import compare_replicates, rank_distribution, rank_groups, stack
from polypbench.fileio import atomic_write
from polypbench.leaderboard.columns import COLUMNS, PRIMARY, TEXT_SORTS, Part, Track, parse_track
from polypbench.leaderboard.db import Database, Submission
from polypbench.leaderboard.records import entry, replicates, verifications
from polypbench.leaderboard.scoring import private_stat
from polypbench.leaderboard.tracks import POOLED

log = logging.getLogger(__name__)

PRIMARY_COLUMN = next(name for name, (_, key, _) in COLUMNS.items() if key == PRIMARY)
"""The board column of the primary metric: what the board is ranked on when it is sorted by a text column."""
RANKING_TEST = ("every pair of entries compared by the paired difference's two-sided test (its 95% Student-t "
                "interval on the same patient resamples excludes 0: the test of Compare), Holm-corrected over all "
                "pairs; an entry's rank is 1 + the number of entries significantly better; no interval, no "
                "separation; two equal entries are split at most 5% of the time")
"""How rank groups are formed (:func:`polypbench.evaluate.ranking.rank_groups`), as every page and export says it."""


def metric_key(track: Track, scope: str, key: str) -> str:
    """The key of a board metric in a scope (the private track stores pooled keys per part)."""
    return key if track is Track.PRIVATE else with_dataset(key, scope)


def entry_track(e: dict[str, Any]) -> Track:
    """The track of an entry: held as a :class:`Track` by the server, a string in an exported file."""
    return parse_track(e.get("track", Track.PUBLIC), f"entry {e.get('id')}: track")


def check_sort(sort: str) -> str:
    if sort not in COLUMNS and sort not in TEXT_SORTS:
        raise choice_error("sort", sort, [*COLUMNS, *TEXT_SORTS])
    return sort


def row(e: dict[str, Any], scope: str = POOLED) -> dict[str, Any]:
    """One board row: the entry's descriptive fields and each column's :class:`Stat` (None where the entry has
    none; it carries the polyps and patients it rests on) in ``scope``. :func:`row_json` is its JSON form."""
    result = e["results"][scope]
    fields = ("id", "team", "method", "paper_url", "code_url", "submitted", "declaration", "verified",
              "checkpoint_sha256", "split_hashes")
    out: dict[str, Any] = {k: e.get(k) for k in fields}
    out["config"] = bool(e.get("config"))
    track = entry_track(e)
    out["metrics"] = {name: lookup(result, metric_key(track, scope, key)) for name, (_, key, _) in COLUMNS.items()}
    return out


def row_json(r: dict[str, Any]) -> dict[str, Any]:
    """A board row as the API answers it: each column's stat in its JSON form."""
    metrics: dict[str, Stat | None] = r["metrics"]
    return {**r, "metrics": {name: None if stat is None else stat.to_dict() for name, stat in metrics.items()}}


def _value(r: dict[str, Any], column: str) -> float | None:
    stat: Stat | None = r["metrics"].get(column)
    return None if stat is None else stat.value


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
        primary = lookup(e["results"][scope], metric_key(entry_track(e), scope, PRIMARY))
        value = primary.value if primary else None
        rank = (-value if value is not None else float("inf"), e["id"])
        if e["team"] not in best or rank < best[e["team"]][0]:
            best[e["team"]] = (rank, e)
    return [e for _, e in sorted(best.values(), key=lambda t: t[0])]


@dataclass
class Board:
    """One board: ``rows`` in display order, each with ``rank`` (its rank group on ``ranked_by``; None when not
    ranked), ``p_vs_above`` (the test's p-value against the entry ranked just above) and ``stability`` (median rank,
    95% rank range, P(first)); ``scopes`` the scopes one can switch to. ``distribution`` (ranked entries x ranks):
    the share of the ``n_replicates`` replicates giving entry ``stability_ids[i]`` each rank; ``kendall_tau`` the
    mean Kendall's tau between the observed ranking and the replicates'."""

    track: Track
    scope: str
    sort: str
    ranked_by: str
    rows: list[dict[str, Any]]
    scopes: list[str]
    distribution: list[list[float]] = field(default_factory=list)
    stability_ids: list[int] = field(default_factory=list)
    kendall_tau: float | None = None
    n_replicates: int = 0
    closed: bool = False


@dataclass(frozen=True)
class Ranking:
    """What :func:`rank` found: the ranked entries' ids (board order) and their rank distribution."""

    ids: list[int]
    distribution: list[list[float]]
    kendall_tau: float | None
    n_replicates: int


def _comparable(rows: list[dict[str, Any]], stored: dict[int, Replicates]) -> list[dict[str, Any]]:
    """The rows whose stored replicates share the resamples most rows have (the first row's among equals): entries
    scored with other bootstrap settings cannot be paired with them and stay unranked."""
    found = [r for r in rows if int(r["id"]) in stored]
    prints = Counter(stored[int(r["id"])].resamples for r in found)
    if not prints:
        return []
    common = prints.most_common(1)[0][0]  # among equal counts, the first encountered
    return [r for r in found if stored[int(r["id"])].resamples == common]


def rank(session: Session, track: Track, scope: str, rows: list[dict[str, Any]], column: str) -> Ranking:
    """Set each row's ``rank``, ``p_vs_above`` and ``stability`` on ``column`` (:func:`rank_groups` and
    :func:`rank_distribution` of :mod:`polypbench.evaluate.ranking` on the stored replicates)."""
    _, key, higher = COLUMNS[column]
    stored = replicates(session, [int(r["id"]) for r in rows], scope, metric_key(track, scope, key))
    for r in rows:
        r.update(rank=None, p_vs_above=None, stability=None)
    ranked = _comparable(rows, stored)
    if not ranked:
        return Ranking([], [], None, 0)
    entries = [stored[int(r["id"])] for r in ranked]
    points, matrix = stack(entries)
    groups = rank_groups(entries, stats=[r["metrics"].get(column) for r in ranked], higher_is_better=higher)
    stability = rank_distribution(points, matrix, higher_is_better=higher)
    for i, r in enumerate(ranked):
        r["rank"], r["p_vs_above"] = groups.rank[i], groups.p_vs_above[i]
        r["stability"] = {"median": float(stability.median[i]),
                          "rank_95": [int(stability.ci95[i, 0]), int(stability.ci95[i, 1])],
                          "p_first": float(stability.probability[i, 0])}
    return Ranking([int(r["id"]) for r in ranked], stability.probability.round(4).tolist(),
                   round(stability.kendall_tau, 4), matrix.shape[1])


def build(db: Database, track: Track, scope: str, sort: str, *, closed: bool, scopes: list[str]) -> Board:
    """The board of ``scope`` sorted by ``sort``; rank groups on the sort column (the primary for text sorts)."""
    check_sort(sort)
    if scope not in scopes:
        raise choice_error("scope", scope, scopes)
    with db.sessions() as session:
        subs = session.scalars(select(Submission).where(Submission.track == track.value)
                               .order_by(Submission.id)).all()
        found = verifications(session, [s.id for s in subs])
        entries = [entry(s, found.get(s.id), reveal=closed) for s in subs]
        rows = sort_rows([row(e, scope) for e in best_per_team(entries, scope)], sort)
        ranked_by = sort if sort in COLUMNS else PRIMARY_COLUMN
        ranking = rank(session, track, scope, rows, ranked_by)
    return Board(track, scope, sort, ranked_by, rows, scopes, ranking.distribution, ranking.ids,
                 ranking.kendall_tau, ranking.n_replicates, closed)


@dataclass(frozen=True)
class Comparison:
    """Entries A and B on one board column: their stats, and the paired difference A - B from
    :func:`polypbench.evaluate.ranking.compare_replicates` (None when either has no stored replicates for it)."""

    a: Stat | None
    b: Stat | None
    difference: Stat | None
    higher_is_better: bool

    @property
    def p_a_better(self) -> float | None:
        """P(A better than B) over the paired replicates (ties counted half): P(A > B), or P(A < B) for errors."""
        p = None if self.difference is None else self.difference.p_greater
        return None if p is None else p if self.higher_is_better else 1.0 - p

    def to_dict(self) -> dict[str, Any]:
        def one(stat: Stat | None) -> dict[str, Any] | None:
            return None if stat is None else stat.to_dict()

        return {"a": one(self.a), "b": one(self.b), "difference": one(self.difference),
                "higher_is_better": self.higher_is_better, "p_a_better": self.p_a_better}


def compare_entries(db: Database, track: Track, scope: str, a: dict[str, Any],
                    b: dict[str, Any]) -> tuple[dict[str, Comparison], int]:
    """Per board column, entry ``a`` versus ``b`` in ``scope`` on their paired replicates (on the private track
    without a count of undefined replicates: :func:`~.scoring.private_stat`); and the number of replicates.
    Raises :class:`PolypbenchError` for entries scored on other resamples."""
    ra, rb = a["results"][scope], b["results"][scope]
    out, n = {}, 0
    with db.sessions() as session:
        for name, (_, key, higher) in COLUMNS.items():
            full = metric_key(track, scope, key)
            reps = replicates(session, [int(a["id"]), int(b["id"])], scope, full)
            rep_a, rep_b = reps.get(int(a["id"])), reps.get(int(b["id"]))
            diff = None
            if rep_a is not None and rep_b is not None:
                try:
                    diff = compare_replicates(rep_a, rep_b, sides=(lookup(ra, full), lookup(rb, full)))
                except ValueError as exc:
                    raise PolypbenchError(f"submissions {a['id']} and {b['id']}: {exc}") from exc
                diff = private_stat(diff) if track is Track.PRIVATE else diff
                n = max(n, len(rep_a.replicates))
            out[name] = Comparison(lookup(ra, full), lookup(rb, full), diff, higher)
    return out, n


def scopes_of(track: Track, names: list[str], closed: bool) -> list[str]:
    """The scopes of ``track``'s boards: on the public track ``names`` (its datasets and ``pooled``), on the private
    track its parts (the live board's part only, until the phase is closed)."""
    if track is Track.PRIVATE:
        return [part.value for part in Part] if closed else [Part.PUBLIC.value]
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
    """The README table (rank group, team, method, links, metrics with 95% CIs, the polyps and patients they rest
    on), with the ranking test and the legend of the number format."""
    head = ["#", "team", "method", "links", *[label for label, _, _ in COLUMNS.values()], "n polyps / patients",
            "submitted"]
    lines = [f"# polypbench leaderboard ({md_text(scope)})", "",
             "Best entry per team by per-polyp triclass macro F1; 95% patient-bootstrap CIs in brackets. "
             f"The # column is the rank group on macro F1: {md_text(RANKING_TEST)}. Public-track entries are an "
             "honour-system registry: the test labels are public.", "", md_text(LEGEND), "",
             "Generated by `polypbench leaderboard render`; do not edit by hand.", "",
             "| " + " | ".join(md_text(h) for h in head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        links = " ".join(filter(None, (md_link(r.get("paper_url"), "paper"), md_link(r.get("code_url"), "code"))))
        metrics = [md_text(f"{format_stat(stat, key)} ({own})" if own else format_stat(stat, key))
                   for stat, key, own in cells(r)]
        cells_ = ["-" if r.get("rank") is None else str(int(r["rank"])), md_text(r["team"]), md_text(r["method"]),
                  links, *metrics, md_text(support(r)), md_text(r["submitted"])]
        lines.append("| " + " | ".join(cells_) + " |")
    return "\n".join(lines) + "\n"


def support(r: dict[str, Any]) -> str:
    """The polyps and patients a board row's numbers rest on (``21 / 8``, :func:`format_support`): the primary
    metric's, else the first column's that has them."""
    found = [s for s in (format_support(r["metrics"][k]) for k in COLUMNS) if s != "-"]
    return found[0] if found else "-"


def cells(r: dict[str, Any]) -> list[tuple[Stat | None, str, str]]:
    """Each column of a board row as (its stat, its metric key, its own support when that differs from the row's
    :func:`support`, else empty)."""
    shown = support(r)
    out = []
    for k, (_, key, _) in COLUMNS.items():
        own = format_support(r["metrics"][k])
        out.append((r["metrics"][k], key, "" if own in (shown, "-") else own))
    return out


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
    atomic_write(path, markdown(sort_rows(rows)))
    log.info("rendered %s from %d entries", path, len(entries))
    return path


def export(db: Database, out: str | Path) -> list[Path]:
    """Write ``out/entries/<id>.json`` for each team's best public-track entry (pooled; stale entries removed),
    with its rank group, then ``out/README.md``."""
    out = Path(out)
    folder = out / "entries"
    folder.mkdir(parents=True, exist_ok=True)
    with db.sessions() as session:
        subs = session.scalars(select(Submission).where(Submission.track == Track.PUBLIC.value)
                               .order_by(Submission.id)).all()
        found = verifications(session, [s.id for s in subs])
        entries = [entry(s, found.get(s.id)) for s in subs]
        keep = best_per_team(entries)
        rows = sort_rows([row(e) for e in keep])
        rank(session, Track.PUBLIC, POOLED, rows, PRIMARY_COLUMN)
    ranks = {r["id"]: r["rank"] for r in rows}
    for stale in folder.glob("*.json"):
        stale.unlink()
    written = []
    for e in keep:
        path = folder / f"{int(e['id'])}.json"
        atomic_write(path, json.dumps({**e, "rank": ranks[e["id"]]}, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return [*written, render(out)]


__all__ = ["RANKING_TEST", "Board", "Comparison", "best_per_team", "build", "cells", "compare_entries", "export",
           "markdown", "md_link", "md_text", "render", "row", "row_json", "sort_rows", "support"]
