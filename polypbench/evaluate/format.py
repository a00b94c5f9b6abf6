"""The one number formatter: every metric shown anywhere (terminal, reports, board pages, README) goes through here.

``0.712 [0.650, 0.770]`` (value and 95% CI), ``0.712`` (no CI), ``undefined`` (value None), ``-`` (absent). Size
errors (metrics in millimetres, ``*_mm``) get 2 decimals, everything else 3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polypbench.evaluate.bootstrap import Stat
from polypbench.evaluate.keys import SEP, parse_key

DIGITS = 3
"""Decimals of unit-free metrics (F1, accuracies, kappa)."""
MM_DIGITS = 2
"""Decimals of size errors in mm."""

LABELS = {
    "macro_f1": "macro F1", "weighted_f1": "weighted F1", "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy", "kappa_quadratic": "kappa (quadratic)", "kappa_linear": "kappa (linear)",
    "sensitivity": "sensitivity", "specificity": "specificity", "precision": "precision", "f1": "F1",
    "mae_mm": "MAE (mm)", "median_ae_mm": "median AE (mm)", "bias_mm": "bias (mm)",
}
"""Column heading of each metric in tables."""


def digits(metric: str) -> int:
    """Decimals for ``metric`` (a metric name or a full metric key)."""
    name = parse_key(metric).metric if SEP in metric else metric
    return MM_DIGITS if name.endswith("_mm") else DIGITS


def format_stat(stat: Stat | Mapping[str, Any] | None, metric: str = "") -> str:
    """``stat`` as text, with the decimals of ``metric`` (a metric name or key; empty: 3 decimals).

    ``stat`` may be a :class:`Stat` or its JSON form (read with :meth:`Stat.from_dict`).
    """
    if stat is None:
        return "-"
    if not isinstance(stat, Stat):
        stat = Stat.from_dict(stat)
    if stat.value is None:
        return "undefined"
    n = digits(metric) if metric else DIGITS
    text = f"{stat.value:.{n}f}"
    if stat.ci95 is not None:
        text += f" [{stat.ci95[0]:.{n}f}, {stat.ci95[1]:.{n}f}]"
    return text


def format_count(value: float) -> str:
    """A confusion-matrix cell: an integer count, or a fractional weight (patient-weighted view) in short form."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
