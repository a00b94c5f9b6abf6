"""The one formatter: every metric shown anywhere (terminal, reports, board pages, README) goes through here, and
every note of the interval rule is put into words here (:func:`note_text`), the JSON's words included.

``0.712 [0.650, 0.770]`` (value and 95% CI), ``0.980 [0.949, 1.000]†`` (an interval with flags: it rests on little
support, :data:`LEGEND`), ``0.489 (no CI: 1 patient)`` (the interval withheld, with the reason), ``0.712`` (no
replicates drawn), ``undefined`` (value None), ``-`` (absent). Size errors (metrics in millimetres, ``*_mm``) get 2
decimals, everything else 3. Always one line.

The functions take a :class:`~polypbench.evaluate.stat.Stat` (read a JSON document with
:func:`~polypbench.evaluate.lookup` or :meth:`Stat.from_dict <polypbench.evaluate.stat.Stat.from_dict>` first);
this module reads its fields through :class:`Shown` and imports no Stat, because the Stat's JSON form uses
:func:`note_text`.
"""

from __future__ import annotations

from typing import Protocol

from polypbench.evaluate.keys import SEP, parse_key
from polypbench.evaluate.policy import (
    FEW_PATIENTS,
    FEW_POLYPS,
    MAX_UNDEFINED_SHARE,
    MIN_CLASS_PATIENTS,
    Note,
    NoteKind,
)
from polypbench.evaluate.surveillance import GUIDELINES, OUTCOMES


class Shown(Protocol):
    """What the formatter reads of a :class:`~polypbench.evaluate.stat.Stat`."""

    @property
    def value(self) -> float | None: ...
    @property
    def ci95(self) -> tuple[float, float] | None: ...
    @property
    def ci_reason(self) -> Note | None: ...
    @property
    def flags(self) -> tuple[Note, ...]: ...
    @property
    def n_polyps(self) -> int | None: ...
    @property
    def n_patients(self) -> int | None: ...
    @property
    def p_greater(self) -> float | None: ...


DIGITS = 3
"""Decimals of unit-free metrics (F1, accuracies, kappa)."""
MM_DIGITS = 2
"""Decimals of size errors in mm."""
FLAG = "\u2020"
"""Marks an interval with flags (a dagger)."""
LEGEND = (f"{FLAG} the interval rests on little support: fewer than {FEW_POLYPS} polyps of a class, at most "
          f"{FEW_PATIENTS} patients, or only part of the resamples (the metric undefined in the rest); "
          "no CI (with the reason) = no honest interval exists")
"""The legend of :data:`FLAG` and of 'no CI', printed under every table that may show them."""

LABELS = {
    "macro_f1": "macro F1", "weighted_f1": "weighted F1", "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy", "kappa_quadratic": "kappa (quadratic)", "kappa_linear": "kappa (linear)",
    "sensitivity": "sensitivity", "specificity": "specificity", "precision": "precision", "f1": "F1",
    "mae_mm": "MAE (mm)", "median_ae_mm": "median AE (mm)", "bias_mm": "bias (mm)",
    "loa_lower_mm": "LoA lower (mm)", "loa_upper_mm": "LoA upper (mm)", "within_1mm": "within +-1 mm",
    "within_20pct": "within 20%", "cross_up_5mm": "<=5 -> >5 mm", "cross_down_5mm": ">5 -> <=5 mm",
    "cross_up_10mm": "<10 -> >=10 mm", "cross_down_10mm": ">=10 -> <10 mm",
    **{f"{g.key}_{o}": f"{g.title} {o}" for g in GUIDELINES for o in OUTCOMES},
}
"""Column heading of each metric in tables."""


def digits(metric: str) -> int:
    """Decimals for ``metric`` (a metric name or a full metric key)."""
    name = parse_key(metric).metric if SEP in metric else metric
    return MM_DIGITS if name.endswith("_mm") else DIGITS


def _plural(n: int | None, word: str) -> str:
    """``1 polyp``, ``3 polyps``, ``1,271 polyps`` (``? polyps`` for a count a note lacks)."""
    return f"{'?' if n is None else format(n, ',')} {word}{'' if n == 1 else 's'}"


def note_text(note: Note) -> str:
    """A note of the interval rule in words, one line: ``1 patient``, ``large: 1 polyp``, ``large: 3 polyps,
    1 patient``, ``undefined in 60% of resamples`` (why no interval); ``small: 3 polyps``, ``8 patients``,
    ``1,271 of 2,000 resamples`` (why an interval is flagged). A note without its class or counts (the
    leaderboard's private track) says what the rule tests: ``a class: fewer than 5 polyps``, ``part of the
    resamples``."""
    kind = note.kind
    if kind is NoteKind.PATIENTS:
        return _plural(note.patients, "patient")
    if kind is NoteKind.CLASS_PATIENTS:
        if note.cls is None:
            return f"a class: polyps of fewer than {MIN_CLASS_PATIENTS} patients"
        polyps = _plural(note.polyps, "polyp")
        if note.polyps is not None and note.polyps <= 1:
            return f"{note.cls}: {polyps}"
        return f"{note.cls}: {polyps}, {_plural(note.patients, 'patient')}"
    if kind is NoteKind.CLASS_POLYPS:
        if note.cls is None:
            return f"a class: fewer than {FEW_POLYPS} polyps"
        return f"{note.cls}: {_plural(note.polyps, 'polyp')}"
    if kind is NoteKind.MOSTLY_UNDEFINED:
        if note.undefined is None or not note.replicates:
            return f"undefined in more than {MAX_UNDEFINED_SHARE:.0%} of the resamples"
        return f"undefined in {note.undefined / note.replicates:.0%} of resamples"
    if kind is NoteKind.PARTLY_UNDEFINED:
        if note.undefined is None or note.replicates is None:
            return "part of the resamples"
        return f"{note.replicates - note.undefined:,} of {note.replicates:,} resamples"
    if kind is NoteKind.NO_REPLICATE:
        return "no replicate defines it"
    if kind is NoteKind.NOT_COMPUTABLE:
        return "not computable"
    return " ".join((note.text or "").split())


def format_value(stat: Shown | None, metric: str = "") -> str:
    """The value of ``stat`` alone: ``0.712``, ``undefined``, ``-`` (absent); decimals as :func:`format_stat`."""
    if stat is None:
        return "-"
    if stat.value is None:
        return "undefined"
    return f"{stat.value:.{digits(metric) if metric else DIGITS}f}"


def format_interval(stat: Shown | None, metric: str = "") -> str:
    """What :func:`format_stat` shows after the value: ``[0.650, 0.770]``, ``[0.949, 1.000]†``, ``(no CI: 1
    patient)``, or nothing."""
    if stat is None or stat.value is None:
        return ""
    n = digits(metric) if metric else DIGITS
    if stat.ci95 is not None:
        return f"[{stat.ci95[0]:.{n}f}, {stat.ci95[1]:.{n}f}]" + (FLAG if stat.flags else "")
    if stat.ci_reason is not None:
        return f"(no CI: {note_text(stat.ci_reason)})"
    return ""


def format_stat(stat: Shown | None, metric: str = "") -> str:
    """``stat`` as text, with the decimals of ``metric`` (a metric name or key; empty: 3 decimals): its value
    (:func:`format_value`), then its interval or why there is none (:func:`format_interval`)."""
    interval = format_interval(stat, metric)
    return f"{format_value(stat, metric)} {interval}" if interval else format_value(stat, metric)


def format_support(stat: Shown | None) -> str:
    """What a number rests on: ``21 / 8`` (polyps / patients), ``-`` when unknown."""
    if stat is None or stat.n_polyps is None or stat.n_patients is None:
        return "-"
    return f"{stat.n_polyps} / {stat.n_patients}"


def format_notes(stat: Shown | None) -> str:
    """Why an interval is flagged or withheld, in words (empty when neither)."""
    if stat is None:
        return ""
    if stat.ci_reason is not None:
        return f"no CI: {note_text(stat.ci_reason)}"
    return "; ".join(note_text(n) for n in stat.flags)


def format_p(stat: Shown | None) -> str:
    """P(A > B) of a paired difference: ``0.973``, ``-`` when absent."""
    p = None if stat is None else stat.p_greater
    return "-" if p is None else f"{p:.3f}"


def format_count(value: float) -> str:
    """A confusion-matrix cell: an integer count, or a fractional weight (patient-weighted view) in short form."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
