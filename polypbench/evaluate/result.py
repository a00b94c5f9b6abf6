"""The scoring result: flat metrics keyed ``view/task/dataset/metric[/class]``, its versioned JSON, one lookup.

:func:`lookup` is the one way to read a number, from a :class:`Result` or from its JSON document (the leaderboard
stores the JSON); :mod:`polypbench.evaluate.keys` defines the keys and :mod:`polypbench.evaluate.format` the text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polypbench.evaluate.bootstrap import Stat
from polypbench.evaluate.format import LABELS, format_stat
from polypbench.evaluate.keys import SIZE_TASK, class_slugs, metric_key, parse_key
from polypbench.evaluate.metrics import SIZE_METRICS
from polypbench.sizes import TASKS

RESULT_SCHEMA_VERSION = "2"
"""Version of the JSON layout below; bump it (and docs/scoring.md) on any incompatible change."""

VIEW_TITLES = {
    "polyp": "Per polyp (HEADLINE: frame predictions aggregated per polyp)",
    "frame": "Per frame (every frame row counts once: the paper's view)",
    "frame_patient": "Per frame, patient-weighted (each patient's frames averaged: every patient counts once)",
}
TABLE_METRICS = ("macro_f1", "balanced_accuracy", "accuracy", "kappa_quadratic")
"""The metrics of the terminal table (the report shows all of them)."""


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Stat):
        return obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return obj


def lookup(source: Result | Mapping[str, Any], key: str) -> Stat | None:
    """The :class:`Stat` at metric ``key`` (see :mod:`polypbench.evaluate.keys`), or None when absent.

    ``source``: a :class:`Result`, its JSON document (``Result.to_dict()`` or the parsed ``to_json()``, sanitized or
    not), a comparison (``result.comparison``, in either form), or a bare ``{key: Stat or its dict}`` map.
    """
    parse_key(key)  # a malformed key is an error, not an absent metric
    if isinstance(source, Result):
        return source.metrics.get(key)
    version = source.get("schema_version")
    if version is not None and version != RESULT_SCHEMA_VERSION:
        raise ValueError(f"result document schema_version {version!r}: expected {RESULT_SCHEMA_VERSION!r} "
                         "(re-score the predictions with this polypbench)")
    metrics = source["metrics"] if "metrics" in source else source
    entry = metrics.get(key)
    if entry is None or isinstance(entry, Stat):
        return entry
    return Stat.from_dict(entry)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


@dataclass
class Result:
    """What :func:`polypbench.score` returns: every metric of every view, task and dataset (plus ``pooled``).

    ``metrics`` maps each metric key (``polyp/triclass/pooled/macro_f1``, ``polyp/triclass/sun/sensitivity/large``,
    ``frame/size/pooled/mae_mm``; :mod:`polypbench.evaluate.keys`) to its :class:`Stat`, in view, task, dataset,
    metric, class order; read it with :meth:`stat` or :func:`lookup`. ``confusion_matrices`` maps
    ``view/task/dataset`` to the (K, K) matrix, true class by predicted class (point estimate only). ``views`` maps
    each view, headline first, to what its numbers mean; ``counts`` gives per dataset (and ``pooled``) the numbers of
    polyps, patients and frames. ``comparison`` (from :func:`~polypbench.evaluate.compare`) holds ``other`` (the other
    file's description), ``definition``, ``metrics`` (the paired differences, same keys) and ``other_metrics``.
    ``polyp_table`` (not in the JSON) has one row per polyp with truth and aggregated prediction, for reports.
    """

    predictions: dict[str, Any]
    split: str
    manifests: list[dict[str, str]]
    aggregation: dict[str, str]
    bootstrap: dict[str, Any]
    counts: dict[str, dict[str, int]]
    views: dict[str, str]
    metrics: dict[str, Stat]
    confusion_matrices: dict[str, np.ndarray]
    comparison: dict[str, Any] | None = None
    polyp_table: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def datasets(self) -> list[str]:
        """Dataset names, then ``pooled``."""
        return list(self.counts)

    def stat(self, key: str) -> Stat:
        """One metric: ``result.stat("polyp/triclass/pooled/balanced_accuracy")``; KeyError when absent."""
        found = lookup(self, key)
        if found is None:
            raise KeyError(f"metric key {key!r}: not in this result; expected one of its {len(self.metrics)} keys, "
                           f"e.g. {next(iter(self.metrics), '-')!r}")
        return found

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON document (docs/scoring.md describes every key)."""
        from polypbench import __version__

        return _jsonable({
            "schema_version": RESULT_SCHEMA_VERSION,
            "polypbench_version": __version__,
            "split": self.split,
            "manifests": self.manifests,
            "predictions": self.predictions,
            "aggregation": self.aggregation,
            "bootstrap": self.bootstrap,
            "counts": self.counts,
            "views": self.views,
            "classes": {task: class_slugs(task) for task in TASKS},
            "metrics": self.metrics,
            "confusion_matrices": self.confusion_matrices,
            "comparison": self.comparison,
        })

    def to_json(self, path: str | Path | None = None) -> str:
        """The JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    def view_table(self, view: str, source: Result | Mapping[str, Any] | None = None) -> str:
        """One view's table: task x dataset rows with the main metrics, then the size errors.

        ``source``: where to look the numbers up (default this result; ``self.comparison`` for the differences).
        """
        src = self if source is None else source
        unit = "polyps" if view == "polyp" else "frames"  # the units this view counts
        rows = []
        for task in TASKS:
            for ds in self.datasets:
                stats = [lookup(src, metric_key(view, task, ds, m)) for m in TABLE_METRICS]
                if any(s is not None for s in stats):
                    rows.append([task, ds, str(self.counts[ds][f"n_{unit}"]),
                                 *[format_stat(s, m) for s, m in zip(stats, TABLE_METRICS, strict=True)]])
        text = _table(["task", "dataset", f"n {unit}", *[LABELS[m] for m in TABLE_METRICS]], rows)
        size_rows = [[ds, *[format_stat(lookup(src, metric_key(view, SIZE_TASK, ds, m)), m) for m in SIZE_METRICS]]
                     for ds in self.datasets if lookup(src, metric_key(view, SIZE_TASK, ds, SIZE_METRICS[0]))]
        if size_rows:
            text += "\n\n" + _table(["size", *[LABELS[m] for m in SIZE_METRICS]], size_rows)
        return text

    def summary_table(self) -> str:
        """Human-readable summary for the terminal: every view, headline first, and the comparison if any."""
        b = self.bootstrap
        n = self.counts["pooled"]
        lines = [
            f"{self.predictions['name']} on the {self.split} split: {n['n_polyps']} polyps, "
            f"{n['n_patients']} patients, {n['n_frames']} frames; class source {self.predictions['class_source']}",
            f"95% CIs: percentile, {b['replicates']} patient-bootstrap replicates (seed {b['seed']}); kappa quadratic",
        ]
        for view in self.views:
            lines += ["", VIEW_TITLES[view], self.view_table(view)]
        if self.comparison:
            lines += ["", f"Paired difference, {self.predictions['name']} minus {self.comparison['other']['name']} "
                      f"(same resamples; every view in the JSON): {VIEW_TITLES['polyp']}",
                      self.view_table("polyp", self.comparison)]
        return "\n".join(lines)
