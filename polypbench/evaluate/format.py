"""The one number formatter: every metric shown anywhere (terminal, reports, board pages, README) goes through here.

``0.712 [0.650, 0.770]`` (value and 95% CI), ``0.980 [0.949, 1.000]†`` (an interval with flags: it rests on little
support, :data:`LEGEND`), ``0.489 (no CI: 1 patient)`` (the interval withheld, with the reason), ``0.712`` (no
replicates drawn), ``undefined`` (value None), ``-`` (absent). Size errors (metrics in millimetres, ``*_mm``) get 2
decimals, everything else 3. Always one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polypbench.evaluate.bootstrap import Stat
from polypbench.evaluate.keys import SEP, parse_key
from polypbench.evaluate.policy import FEW_PATIENTS, FEW_POLYPS

DIGITS = 3
"""Decimals of unit-free metrics (F1, accuracies, kappa)."""
MM_DIGITS = 2
"""Decimals of size errors in mm."""
FLAG = "\u2020"
"""Marks an interval with flags (a dagger)."""
LEGEND = (f"{FLAG} the interval rests on little support: fewer than {FEW_POLYPS} polyps of a class, fewer than "
          f"{FEW_PATIENTS} patients, or only part of the resamples (the metric undefined in the rest); "
          "no CI (with the reason) = no honest interval exists")
"""The legend of :data:`FLAG` and of 'no CI', printed under every table that may show them."""

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


def _as_stat(stat: Stat | Mapping[str, Any]) -> Stat:
    return stat if isinstance(stat, Stat) else Stat.from_dict(stat)


def format_stat(stat: Stat | Mapping[str, Any] | None, metric: str = "") -> str:
    """``stat`` as text, with the decimals of ``metric`` (a metric name or key; empty: 3 decimals).

    ``stat`` may be a :class:`Stat` or its JSON form (read with :meth:`Stat.from_dict`).
    """
    if stat is None:
        return "-"
    stat = _as_stat(stat)
    if stat.value is None:
        return "undefined"
    n = digits(metric) if metric else DIGITS
    text = f"{stat.value:.{n}f}"
    if stat.ci95 is not None:
        text += f" [{stat.ci95[0]:.{n}f}, {stat.ci95[1]:.{n}f}]"
        if stat.flags:
            text += FLAG
    elif stat.ci_reason:
        text += f" (no CI: {' '.join(stat.ci_reason.split())})"
    return text


def format_support(stat: Stat | Mapping[str, Any] | None) -> str:
    """What a number rests on: ``21 / 8`` (polyps / patients), ``-`` when unknown."""
    if stat is None:
        return "-"
    stat = _as_stat(stat)
    if stat.n_polyps is None or stat.n_patients is None:
        return "-"
    return f"{stat.n_polyps} / {stat.n_patients}"


def format_notes(stat: Stat | Mapping[str, Any] | None) -> str:
    """Why an interval is flagged or withheld, in words (empty when neither)."""
    if stat is None:
        return ""
    stat = _as_stat(stat)
    if stat.ci_reason:
        return f"no CI: {stat.ci_reason}"
    return "; ".join(stat.flags)


def format_p(stat: Stat | Mapping[str, Any] | None) -> str:
    """P(A > B) of a paired difference: ``0.973``, ``-`` when absent."""
    if stat is None:
        return "-"
    p = _as_stat(stat).p_greater
    return "-" if p is None else f"{p:.3f}"


def format_count(value: float) -> str:
    """A confusion-matrix cell: an integer count, or a fractional weight (patient-weighted view) in short form."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
