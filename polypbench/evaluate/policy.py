"""When an interval is honest: the one place the thresholds live (docs/scoring.md, "When there is no honest interval").

A metric's 95% interval is **withheld** (``ci95`` null, ``ci_reason`` says why; shown as ``0.489 (no CI: 1 patient)``)
when resampling cannot describe its uncertainty:

- its dataset group has fewer than :data:`MIN_PATIENTS` patients (the bootstrap of 1-4 patients is the handful of
  their own values), or, for a mean size error (:data:`MIN_PATIENTS_BY_METRIC`: MAE, bias and their paired
  differences), fewer than 15 (their coverage falls below 0.93 at 10 patients);
- a class it rests on has all its polyps from fewer than :data:`MIN_CLASS_PATIENTS` patients (one large polyp:
  every replicate either repeats that polyp's outcome or loses the class; the jackknife acceleration is undefined);
- it is undefined in more than :data:`MAX_UNDEFINED_SHARE` of the replicates (the rest describe another question:
  the metric given that the class was drawn).

It is **shown with a flag** (``0.980 [0.949, 1.000]†``; ``flags`` says why) when it rests on little support, where
the coverage simulation (``benchmarks/ci_coverage.py``) shows intervals falling short of 95%:

- a class it rests on has fewer than :data:`FEW_POLYPS` polyps;
- its dataset group has :data:`FEW_PATIENTS` patients or fewer;
- more than :data:`FLAG_UNDEFINED_SHARE` of the replicates were left out because the metric was undefined there
  (``replicates`` says how many remain, whenever any were left out).

:func:`judge` returns the verdict as data (:class:`Verdict`: a :class:`Note` per reason, with its kind and counts);
only the formatter (:mod:`polypbench.evaluate.format`) puts it into words, so no reader ever parses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

MIN_PATIENTS = 5
"""Fewer patients in the dataset group: no interval."""
MIN_CLASS_PATIENTS = 2
"""A class whose polyps come from fewer patients: no interval for the metrics resting on it."""
MAX_UNDEFINED_SHARE = 0.5
"""Undefined in a larger share of the replicates: no interval."""
FLAG_UNDEFINED_SHARE = 0.05
"""Undefined in a larger share of the replicates (but not most): the interval is flagged. Any left-out replicate is
counted in the Stat (``replicates``), flagged or not."""
FEW_POLYPS = 5
"""A class with fewer polyps: the interval is flagged."""
FEW_PATIENTS = 20
"""This many patients in the dataset group or fewer: the interval is flagged (the coverage simulation's smallest sizes,
10 and 20 patients, are where intervals come closest to falling short of 95%; docs/scoring.md)."""
MIN_PATIENTS_BY_METRIC = {"mae_mm": 15, "bias_mm": 15}
"""Metrics (by name; their paired differences too) needing more patients than :data:`MIN_PATIENTS` for an interval:
the mean size errors: their interval covers 0.82-0.90 at 10 patients as the old one did, and stretched as now about
0.92-0.97 (short for a poor model's MAE); 0.928-0.964 at 15, 0.937 or more from 20 patients on
(``benchmarks/ci_coverage.py``, docs/scoring.md)."""


def min_patients(metric: str | None) -> int:
    """The fewest patients of a dataset group that give ``metric`` (a metric name, or None) an interval."""
    return MIN_PATIENTS_BY_METRIC.get(metric or "", MIN_PATIENTS)


@dataclass(frozen=True)
class ClassSupport:
    """The polyps and patients behind one class's term of a metric (e.g. the true large polyps of sensitivity)."""

    name: str
    polyps: int
    patients: int


class NoteKind(str, Enum):
    """What a note of the rule says; its words are the formatter's (:func:`polypbench.evaluate.format.note_text`)."""

    PATIENTS = "patients"
    """The dataset group's patients: fewer than :data:`MIN_PATIENTS` withhold the interval, fewer than
    :data:`FEW_PATIENTS` flag it."""
    CLASS_PATIENTS = "class_patients"
    """Withheld: a class's polyps come from fewer than :data:`MIN_CLASS_PATIENTS` patients."""
    CLASS_POLYPS = "class_polyps"
    """Flagged: a class has fewer than :data:`FEW_POLYPS` polyps."""
    MOSTLY_UNDEFINED = "mostly_undefined"
    """Withheld: undefined in more than :data:`MAX_UNDEFINED_SHARE` of the replicates."""
    PARTLY_UNDEFINED = "partly_undefined"
    """Flagged: undefined in more than :data:`FLAG_UNDEFINED_SHARE` of the replicates (the interval rests on the
    rest)."""
    NO_REPLICATE = "no_replicate"
    """Withheld: no replicate defines the metric."""
    NOT_COMPUTABLE = "not_computable"
    """Withheld: the interval could not be computed."""
    TEXT = "text"
    """A note read from a document written before notes were structured: its words, shown as they are."""

    def __str__(self) -> str:
        return self.value


CLASS_KINDS = (NoteKind.CLASS_PATIENTS, NoteKind.CLASS_POLYPS)
"""The kinds of note that name a class and its counts (hidden on the leaderboard's private track)."""
UNDEFINED_KINDS = (NoteKind.MOSTLY_UNDEFINED, NoteKind.PARTLY_UNDEFINED)
"""The kinds of note that count the replicates leaving a metric undefined."""


@dataclass(frozen=True)
class Note:
    """One reason of the rule, as data: its ``kind`` and the counts it rests on (None where it does not apply, or
    where it is hidden: the private track keeps the kind of a class note but not its class or counts).

    ``cls``: the class term it names (``large``, ``not large``, ``predicted large``); ``polyps`` and ``patients``:
    that class's polyps and patients, or the group's patients (:attr:`NoteKind.PATIENTS`); ``undefined`` and
    ``replicates``: the replicates that left the metric undefined, of those drawn; ``text``: a
    :attr:`NoteKind.TEXT` note's words.
    """

    kind: NoteKind
    cls: str | None = None
    polyps: int | None = None
    patients: int | None = None
    undefined: int | None = None
    replicates: int | None = None
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``kind`` and the fields that are set (``cls`` as ``class``)."""
        out: dict[str, Any] = {"kind": self.kind.value}
        for f in fields(self)[1:]:
            value = getattr(self, f.name)
            if value is not None:
                out["class" if f.name == "cls" else f.name] = value
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Note:
        """Inverse of :meth:`to_dict`."""
        return cls(NoteKind(doc["kind"]), **{f.name: doc.get("class" if f.name == "cls" else f.name)
                                             for f in fields(cls)[1:]})


@dataclass(frozen=True)
class Verdict:
    """``ci_reason``: why no interval (None: an interval is given); ``flags``: why a given interval needs care."""

    ci_reason: Note | None
    flags: tuple[Note, ...]


def judge(group_patients: int, classes: tuple[ClassSupport, ...], undefined: int, replicates: int, *,
          metric: str | None = None) -> Verdict:
    """The rule above for one metric: its dataset group's patients, the classes it rests on (none for accuracy,
    kappa and size errors), how many of the ``replicates`` left it undefined, and its name (``metric``: the
    per-metric minimum of patients, :func:`min_patients`)."""
    if group_patients < min_patients(metric):
        return Verdict(Note(NoteKind.PATIENTS, patients=group_patients), ())
    for c in classes:
        if c.patients < MIN_CLASS_PATIENTS:
            return Verdict(Note(NoteKind.CLASS_PATIENTS, c.name, polyps=c.polyps, patients=c.patients), ())
    if replicates and undefined > MAX_UNDEFINED_SHARE * replicates:
        return Verdict(Note(NoteKind.MOSTLY_UNDEFINED, undefined=undefined, replicates=replicates), ())
    flags = [Note(NoteKind.CLASS_POLYPS, c.name, polyps=c.polyps) for c in classes if c.polyps < FEW_POLYPS]
    if group_patients <= FEW_PATIENTS:
        flags.append(Note(NoteKind.PATIENTS, patients=group_patients))
    if replicates and undefined > FLAG_UNDEFINED_SHARE * replicates:
        flags.append(Note(NoteKind.PARTLY_UNDEFINED, undefined=undefined, replicates=replicates))
    return Verdict(None, tuple(flags))
