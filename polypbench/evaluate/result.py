"""The scoring result: a dataclass with its versioned JSON form and a terminal summary table."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polypbench.evaluate.bootstrap import Stat

RESULT_SCHEMA_VERSION = "1"
"""Version of the JSON layout below; bump it (and docs/scoring.md) on any incompatible change."""

VIEW_TITLES = {
    "polyp": "Per polyp (HEADLINE: frame predictions aggregated per polyp)",
    "frame": "Per frame (every frame row counts once: the paper's view)",
    "frame_patient": "Per frame, patient-weighted (each patient's frames averaged: every patient counts once)",
}
_TABLE_METRICS = (("macro_f1", "macro F1"), ("balanced_accuracy", "bal. acc."), ("accuracy", "accuracy"),
                  ("kappa_quadratic", "kappa (quadr.)"))
_SIZE_METRICS = (("mae_mm", "MAE mm"), ("median_ae_mm", "median AE mm"), ("bias_mm", "bias mm"))


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


def fmt(stat: Stat | None, digits: int = 3) -> str:
    """'0.712 [0.650, 0.770]', 'undefined' or '-'."""
    if stat is None:
        return "-"
    if stat.value is None:
        return "undefined"
    text = f"{stat.value:.{digits}f}"
    if stat.ci95 is not None:
        text += f" [{stat.ci95[0]:.{digits}f}, {stat.ci95[1]:.{digits}f}]"
    return text


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


@dataclass
class Result:
    """What :func:`polypbench.score` returns: every metric of every view, task and dataset (plus ``pooled``).

    ``views[view]["tasks"][task]["datasets"][dataset][metric]`` is a :class:`Stat` (per-class metrics are dicts
    class name -> Stat; ``confusion_matrix`` is a list of rows, true class by predicted class);
    ``views[view]["size"]["datasets"][dataset][metric]`` holds the size errors when ``size_mm`` was predicted.
    ``polyp_table`` (not in the JSON) has one row per polyp with truth and aggregated prediction, for reports.
    """

    predictions: dict[str, Any]
    split: str
    manifests: list[dict[str, str]]
    aggregation: dict[str, str]
    bootstrap: dict[str, Any]
    counts: dict[str, dict[str, int]]
    views: dict[str, dict[str, Any]]
    comparison: dict[str, Any] | None = None
    polyp_table: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def datasets(self) -> list[str]:
        return list(self.counts)

    def stat(self, view: str, task: str, metric: str, dataset: str = "pooled", cls: str | None = None) -> Stat:
        """One metric: ``result.stat("polyp", "triclass", "sensitivity", cls="large")``."""
        if task == "size":
            return self.views[view]["size"]["datasets"][dataset][metric]
        entry = self.views[view]["tasks"][task]["datasets"][dataset][metric]
        return entry[cls] if cls is not None else entry

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
            "comparison": self.comparison,
        })

    def to_json(self, path: str | Path | None = None) -> str:
        """The JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    def view_table(self, view: str, source: dict[str, Any] | None = None) -> str:
        """One view's table: task x dataset rows with the main metrics, then the size errors."""
        views = source if source is not None else self.views
        body = views[view]
        unit = "polyps" if view == "polyp" else "frames"  # the units this view counts
        header = ["task", "dataset", f"n {unit}", *[label for _, label in _TABLE_METRICS]]
        rows = []
        for task, entry in body["tasks"].items():
            for ds, metrics in entry["datasets"].items():
                rows.append([task, ds, str(self.counts[ds][f"n_{unit}"]),
                             *[fmt(metrics.get(m)) for m, _ in _TABLE_METRICS]])
        text = _table(header, rows)
        if body.get("size"):
            size_rows = [[ds, *[fmt(m.get(k), 2) for k, _ in _SIZE_METRICS]]
                         for ds, m in body["size"]["datasets"].items()]
            text += "\n\n" + _table(["size", *[label for _, label in _SIZE_METRICS]], size_rows)
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
        if self.comparison and "polyp" in self.comparison["views"]:
            lines += ["", f"Paired difference, {self.predictions['name']} minus {self.comparison['other']['name']} "
                      f"(same resamples; every view in the JSON): {VIEW_TITLES['polyp']}",
                      self.view_table("polyp", self.comparison["views"])]
        return "\n".join(lines)
