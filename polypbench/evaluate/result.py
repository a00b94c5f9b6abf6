"""The scoring result: flat metrics keyed ``view/task/dataset/metric[/class]``, its versioned JSON, one lookup.

:func:`lookup` is the one way to read a number, from a :class:`Result` or from its JSON document (the leaderboard
stores the JSON); :mod:`polypbench.evaluate.keys` defines the keys and :mod:`polypbench.evaluate.format` the text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from polypbench.evaluate.agreement import AGREEMENT_METRICS
from polypbench.evaluate.format import FLAG, LABELS, LEGEND, format_notes, format_p, format_stat
from polypbench.evaluate.keys import SIZE_TASK, SURVEILLANCE_TASK, class_slugs, metric_key, parse_key
from polypbench.evaluate.metrics import SIZE_METRICS
from polypbench.evaluate.stat import Stat
from polypbench.evaluate.surveillance import GUIDELINES, OUTCOMES
from polypbench.fileio import atomic_write
from polypbench.sizes import CLASS_SCHEMES

if TYPE_CHECKING:
    from polypbench.evaluate.ranking import Replicates

RESULT_SCHEMA_VERSION = "3"
"""Version of the JSON layout below; bump it (and docs/scoring.md) on any incompatible change."""

VIEW_TITLES = {
    "polyp": "Per polyp (HEADLINE: frame predictions aggregated per polyp)",
    "frame": "Per frame (every frame row counts once: the paper's view)",
    "frame_patient": "Per frame, patient-weighted (each patient's frames averaged: every patient counts once)",
    "patient": "Per patient: surveillance interval from the predicted vs the true sizes (same polyps, same histology)",
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


def _notes(shown: list[tuple[str, Stat]], details: bool) -> str:
    """Lines under a table: with ``details``, why each shown interval is flagged; the legend when any is flagged or
    withheld."""
    lines = [f"  {key}: {format_notes(s)}" for key, s in shown if details and s.flags and s.ci95 is not None]
    if any((s.flags and s.ci95 is not None) or s.ci_reason for _, s in shown):
        lines.append(f"  {LEGEND}")
    return "".join("\n" + line for line in lines)


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
    ``polyp_table`` (not in the JSON) has one row per polyp with truth and aggregated prediction, for reports;
    ``frame_table`` (not in the JSON; frame-level files only) one row per frame with its predicted size and class.
    ``kept_replicates`` (not in the JSON) holds the replicate vectors asked for with ``score(...,
    keep_replicates=...)``; read them with :meth:`replicates`.
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
    frame_table: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    kept_replicates: dict[str, Replicates] = field(default_factory=dict, repr=False, compare=False)
    clinical: dict[str, Any] | None = None

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

    def replicates(self, key: str) -> Replicates:
        """The replicate vector of metric ``key`` (point value, every bootstrap replicate, the leave-one-patient-out
        values and the resamples' fingerprint), kept when scored with ``keep_replicates`` naming it (or True)."""
        parse_key(key)
        if key not in self.kept_replicates:
            kept = ", ".join(sorted(self.kept_replicates)) or "none"
            raise KeyError(f"metric key {key!r}: replicates not kept; score with keep_replicates=[{key!r}] "
                           f"(kept: {kept})")
        return self.kept_replicates[key]

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
            "classes": {task: class_slugs(task) for task in CLASS_SCHEMES},
            "metrics": self.metrics,
            "confusion_matrices": self.confusion_matrices,
            "comparison": self.comparison,
            "clinical": self.clinical,
        })

    def to_json(self, path: str | Path | None = None) -> str:
        """The JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, text)
        return text

    def view_table(self, view: str, source: Result | Mapping[str, Any] | None = None, notes: bool = True) -> str:
        """One view's table: task x dataset rows with the main metrics, then the size errors; below it, with
        ``notes``, why each flagged interval is flagged (the cells say why an interval is withheld), and the legend
        whenever a flag or a withheld interval is shown.

        ``source``: where to look the numbers up (default this result; ``self.comparison`` for the differences).
        """
        src = self if source is None else source
        unit = "polyps" if view == "polyp" else "frames"  # the units this view counts
        rows, flagged = [], []
        for task in CLASS_SCHEMES:
            for ds in self.datasets:
                keys = [metric_key(view, task, ds, m) for m in TABLE_METRICS]
                stats = [lookup(src, k) for k in keys]
                if any(s is not None for s in stats):
                    rows.append([task, ds, str(self.counts[ds][f"n_{unit}"]), str(self.counts[ds]["n_patients"]),
                                 *[format_stat(s, m) for s, m in zip(stats, TABLE_METRICS, strict=True)]])
                    flagged += [(k, s) for k, s in zip(keys, stats, strict=True) if s is not None]
        text = _table(["task", "dataset", f"n {unit}", "patients", *[LABELS[m] for m in TABLE_METRICS]], rows)
        size_rows = []
        for ds in self.datasets:
            keys = [metric_key(view, SIZE_TASK, ds, m) for m in SIZE_METRICS]
            stats = [lookup(src, k) for k in keys]
            if stats[0] is not None:
                size_rows.append([ds, *[format_stat(s, m) for s, m in zip(stats, SIZE_METRICS, strict=True)]])
                flagged += [(k, s) for k, s in zip(keys, stats, strict=True) if s is not None]
        if size_rows:
            text += "\n\n" + _table(["size", *[LABELS[m] for m in SIZE_METRICS]], size_rows)
        return text + _notes(flagged, notes)

    def agreement_table(self, view: str = "polyp") -> str:
        """Measurement agreement per dataset (Bland-Altman bias and limits, within +-1 mm and 20%), then the
        threshold crossings; empty without size predictions."""
        groups = (("agreement", ("bias_mm", *AGREEMENT_METRICS[:4])), ("crossing", AGREEMENT_METRICS[4:]))
        parts = []
        for title, names in groups:
            rows = []
            for ds in self.datasets:
                stats = [lookup(self, metric_key(view, SIZE_TASK, ds, m)) for m in names]
                if any(s is not None for s in stats):
                    rows.append([ds, *[format_stat(s, m) for s, m in zip(stats, names, strict=True)]])
            if rows:
                parts.append(_table([title, *[LABELS[m] for m in names]], rows))
        return "\n\n".join(parts)

    def surveillance_table(self) -> str:
        """Per guideline and dataset: the patients scored, the agreement, later and earlier shares; then what was
        assumed or left out (``clinical``); empty when the result has no surveillance numbers."""
        rows = []
        for g in GUIDELINES:
            for ds in self.datasets:
                stats = [lookup(self, metric_key("patient", SURVEILLANCE_TASK, ds, f"{g.key}_{o}")) for o in OUTCOMES]
                if stats[0] is not None:
                    rows.append([g.title, ds, str(stats[0].n_patients), *[format_stat(s) for s in stats]])
        if not rows:
            return ""
        text = _table(["guideline", "dataset", "patients", *OUTCOMES[:1], "later (unsafe)", *OUTCOMES[2:]], rows)
        info = (self.clinical or {}).get("surveillance", {})
        pooled = info.get("patients", {}).get("pooled", {})
        if pooled:
            left = ", ".join(f"{g.title} {pooled[g.key]['not_scored']}" for g in GUIDELINES if g.key in pooled)
            text += (f"\n  histology assumed for {pooled['assumed_histology']} of {pooled['patients']} patients "
                     f"({info.get('histology_assumption', '')}); not scored: {left}")
        return text

    COMPARISON_HEADER = ("task", "dataset", "metric", "this", "other", "this - other", "P(this > other)")

    def comparison_rows(self, view: str, metrics: Sequence[str]) -> list[tuple[str, list[str], list[Stat]]]:
        """Per (task, dataset, metric of ``metrics``, size errors) with a paired difference: its key, the row of
        :data:`COMPARISON_HEADER` (this, the other file, the difference with its interval, P(this > other)) and
        the stats it shows (for their notes)."""
        if not self.comparison:
            return []
        out = []
        for task in [*CLASS_SCHEMES, SIZE_TASK]:
            names = SIZE_METRICS if task == SIZE_TASK else metrics
            for ds in self.datasets:
                for m in names:
                    key = metric_key(view, task, ds, m)
                    diff = lookup(self.comparison, key)
                    if diff is None:
                        continue
                    this = lookup(self, key)
                    row = [task, ds, LABELS[m], format_stat(this, m),
                           format_stat(lookup(self.comparison["other_metrics"], key), m), format_stat(diff, m),
                           format_p(diff)]
                    out.append((key, row, [s for s in (this, diff) if s is not None]))
        return out

    def comparison_table(self, view: str = "polyp") -> str:
        """This file and the other side by side, the paired difference with its interval and P(this > other)."""
        if not self.comparison:
            return ""
        found = self.comparison_rows(view, TABLE_METRICS)
        shown = [(key, s) for key, _, stats in found for s in stats]
        return _table(list(self.COMPARISON_HEADER), [row for _, row, _ in found]) + _notes(shown, False)

    COMPACT_HEADER = ("metric", "dataset", "this", "other", "this - other", "P(this > other)")

    def compact_comparison(self, keys: Sequence[str]) -> str:
        """The comparison as one compact table: per metric key of ``keys`` (pooled keys; each dataset's too when
        there are several), this file, the other, the paired difference with its interval and P(this > other),
        then the legend when a shown interval is flagged or withheld."""
        if not self.comparison:
            return ""
        rows, shown = [], []
        datasets = ["pooled", *[d for d in self.datasets if d != "pooled"]] if len(self.datasets) > 2 else ["pooled"]
        for key in keys:
            view, task, _, metric, cls = parse_key(key)
            for ds in datasets:
                k = metric_key(view, task, ds, metric, cls)
                diff = lookup(self.comparison, k)
                if diff is None:
                    continue
                this, other = lookup(self, k), lookup(self.comparison["other_metrics"], k)
                label = LABELS[metric] + ("" if task in (SIZE_TASK, "triclass") else f" ({task})")
                rows.append([label, ds, format_stat(this, k), format_stat(other, k), format_stat(diff, k),
                             format_p(diff)])
                shown += [(k, s) for s in (this, diff) if s is not None]
        head = (f"{self.predictions['name']} (this) vs {self.comparison['other']['name']} (other), per polyp, on "
                f"the same {self.bootstrap['replicates']} patient resamples (every view and metric: --json, --report)")
        return head + "\n" + _table(list(self.COMPACT_HEADER), rows) + _notes(shown, False)

    def summary_table(self) -> str:
        """Human-readable summary for the terminal: every view, headline first, and the comparison if any."""
        b = self.bootstrap
        n = self.counts["pooled"]
        lines = [
            f"{self.predictions['name']} on the {self.split} split: {n['n_polyps']} polyps, "
            f"{n['n_patients']} patients, {n['n_frames']} frames; class source {self.predictions['class_source']}",
            f"95% CIs: expanded BCa (MAE, bias: bootstrap-t), {b['replicates']} patient-bootstrap replicates (seed "
            f"{b['seed']}); kappa quadratic; {FLAG} and no CI explained under the tables",
        ]
        for view in self.views:
            if view == "patient":
                table = self.surveillance_table()
                lines += ["", VIEW_TITLES[view], table] if table else []
                continue
            lines += ["", VIEW_TITLES[view], self.view_table(view, notes=view == "polyp")]
            if view == "polyp" and self.agreement_table():
                lines += ["", "Measurement agreement (per polyp: predicted - true)", self.agreement_table()]
        if self.comparison:
            lines += ["", f"Comparison: this = {self.predictions['name']}, other = {self.comparison['other']['name']}"
                      f"; this minus other on the same patient resamples (every view in the JSON): "
                      f"{VIEW_TITLES['polyp']}", self.comparison_table("polyp")]
        return "\n".join(lines)
