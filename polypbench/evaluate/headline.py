"""The answer a report leads with: one metric (the caller's primary, the board's), its interval and support, the
majority baseline's value on the same polyps and, for a comparison, the paired difference and P(A > B).

Every number is a :class:`~polypbench.evaluate.stat.Stat` of the scorer, shown by the one formatter; nothing is
computed here but which polyps are wrong (the per-polyp table) and the baseline's own score (the scorer again, on
the same split, seed and replicate count, so on the same patient resamples).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from polypbench.errors import InputError
from polypbench.evaluate.format import LABELS, format_interval, format_p, format_stat, format_value
from polypbench.evaluate.keys import parse_key
from polypbench.evaluate.result import Result, lookup
from polypbench.evaluate.scoring import score
from polypbench.sizes import CLASS_SCHEMES

log = logging.getLogger(__name__)

BASELINE_NAME = "majority baseline"
WORST_SHOWN = 3
"""Polyps with the largest errors named in the card (the gallery shows more)."""


def baseline_result(manifests: Sequence[str | Path], *, split: str, fold: int | None, protocol: str,
                    n_bootstrap: int, seed: int) -> Result | None:
    """The majority baseline (:func:`polypbench.baselines.majority_baseline`: the training split's majority class
    and median size for every frame) scored on the same selection, replicates and seed as the file it is shown
    beside; None (logged) when the manifests have no training polyps to take the majority from."""
    from polypbench.baselines import majority_baseline

    try:
        frames = majority_baseline(manifests, split, fold, protocol)
    except InputError as exc:
        log.warning("no majority baseline in the report: %s", exc)
        return None
    return score(frames, list(manifests), split=split, fold=fold, protocol=protocol, n_bootstrap=n_bootstrap,
                 seed=seed, name=BASELINE_NAME)


@dataclass(frozen=True)
class Headline:
    """The card's content, every number already text: ``metric`` (its label and where it is read), ``value`` and
    ``interval`` (:func:`~polypbench.evaluate.format.format_value` / ``format_interval``), ``support`` (polyps
    and patients), ``baseline`` (the majority baseline's number, or None when not scored), the comparison
    (``other`` the other file's name, ``other_value`` its number, ``difference`` this minus other, ``p_greater``
    P(this > other); None without one), and ``worst``: the polyps with the largest
    errors, in words."""

    key: str
    metric: str
    value: str
    interval: str
    support: str
    baseline: str | None
    other: str | None
    other_value: str | None
    difference: str | None
    p_greater: str | None
    worst: list[str]


def metric_label(key: str) -> str:
    """``macro F1 · per polyp · triclass · pooled`` for ``polyp/triclass/pooled/macro_f1``."""
    view, task, dataset, metric, cls = parse_key(key)
    parts = [LABELS.get(metric, metric) + (f" ({cls})" if cls else ""), f"per {view.replace('_', ' ')}", task,
             dataset]
    return " · ".join(parts)


def _worst(result: Result) -> list[str]:
    from polypbench.evaluate.gallery import ranked

    table = result.polyp_table
    if table is None or not len(table):
        return []
    names = CLASS_SCHEMES["triclass"]
    out = []
    for r in ranked(table).head(WORST_SHOWN).itertuples():
        if r.error <= 0:
            break
        predicted = names[int(r.pred_class3)] if r.pred_size_mm != r.pred_size_mm else (
            f"{r.pred_size_mm:.1f} mm ({names[int(r.pred_class3)]})")
        out.append(f"{r.polyp_id}: true {r.size_mm:g} mm ({names[int(r.size_class3)]}), predicted {predicted}")
    return out


def headline(result: Result, primary: str, baseline: Result | None = None) -> Headline:
    """The card of ``result`` on metric key ``primary``, with ``baseline`` (the majority baseline scored on the
    same polyps, :func:`baseline_result`) when given and the paired comparison when ``result`` holds one."""
    stat = lookup(result, primary)
    support = "-"
    if stat is not None and stat.n_polyps is not None and stat.n_patients is not None:
        support = f"{stat.n_polyps:,} polyps, {stat.n_patients:,} patients"
    base = format_stat(lookup(baseline, primary), primary) if baseline is not None else None
    other = other_value = difference = p = None
    if result.comparison:
        other = str(result.comparison["other"]["name"])
        other_value = format_stat(lookup(result.comparison["other_metrics"], primary), primary)
        diff = lookup(result.comparison, primary)
        difference, p = format_stat(diff, primary), format_p(diff)
    return Headline(primary, metric_label(primary), format_value(stat, primary), format_interval(stat, primary),
                    support, base, other, other_value, difference, p, _worst(result))
