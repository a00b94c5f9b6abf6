"""When an interval is honest: the one place the thresholds live (docs/scoring.md, "When there is no honest interval").

A metric's 95% interval is **withheld** (``ci95`` null, ``ci_reason`` says why; shown as ``0.489 (no CI: 1 patient)``)
when resampling cannot describe its uncertainty:

- its dataset group has fewer than :data:`MIN_PATIENTS` patients (the bootstrap of 1-4 patients is the handful of
  their own values);
- a class it rests on has all its polyps from fewer than :data:`MIN_CLASS_PATIENTS` patients (one large polyp:
  every replicate either repeats that polyp's outcome or loses the class; the jackknife acceleration is undefined);
- it is undefined in more than :data:`MAX_UNDEFINED_SHARE` of the replicates (the rest describe another question:
  the metric given that the class was drawn).

It is **shown with a flag** (``0.980 [0.949, 1.000]†``; ``flags`` says why) when it rests on little support, where
the coverage simulation (``benchmarks/ci_coverage.py``) shows intervals falling short of 95%:

- a class it rests on has fewer than :data:`FEW_POLYPS` polyps;
- its dataset group has fewer than :data:`FEW_PATIENTS` patients;
- more than :data:`FLAG_UNDEFINED_SHARE` of the replicates were left out because the metric was undefined there
  (``replicates`` says how many remain, whenever any were left out).
"""

from __future__ import annotations

from dataclasses import dataclass

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
"""Fewer patients in the dataset group: the interval is flagged (coverage at 10 patients is 0.86-0.97, see
docs/scoring.md)."""


@dataclass(frozen=True)
class ClassSupport:
    """The polyps and patients behind one class's term of a metric (e.g. the true large polyps of sensitivity)."""

    name: str
    polyps: int
    patients: int


@dataclass(frozen=True)
class Verdict:
    """``ci_reason``: why no interval (None: an interval is given); ``flags``: why a given interval needs care."""

    ci_reason: str | None
    flags: tuple[str, ...]


UNDEFINED_SUFFIX = " resamples"
"""How :func:`judge`'s notes about replicates that left a metric undefined end (``undefined in 63% of
resamples``, ``189 of 200 resamples``), and only those: :func:`about_undefined` recognizes them."""


def about_undefined(note: str) -> bool:
    """Whether a flag or no-CI reason of :func:`judge` counts the replicates that left the metric undefined."""
    return note.endswith(UNDEFINED_SUFFIX)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def judge(group_patients: int, classes: tuple[ClassSupport, ...], undefined: int, replicates: int) -> Verdict:
    """The rule above for one metric: its dataset group's patients, the classes it rests on (none for accuracy,
    kappa and size errors), and how many of the ``replicates`` left it undefined."""
    if group_patients < MIN_PATIENTS:
        return Verdict(f"{_plural(group_patients, 'patient')}", ())
    for c in classes:
        if c.patients < MIN_CLASS_PATIENTS:
            polyps = _plural(c.polyps, "polyp")
            return Verdict(f"{c.name}: {polyps}" if c.polyps <= 1 else f"{c.name}: {polyps}, 1 patient", ())
    if replicates and undefined > MAX_UNDEFINED_SHARE * replicates:
        return Verdict(f"undefined in {undefined / replicates:.0%} of{UNDEFINED_SUFFIX}", ())
    flags = [f"{c.name}: {_plural(c.polyps, 'polyp')}" for c in classes if c.polyps < FEW_POLYPS]
    if group_patients < FEW_PATIENTS:
        flags.append(_plural(group_patients, "patient"))
    if replicates and undefined > FLAG_UNDEFINED_SHARE * replicates:
        flags.append(f"{replicates - undefined:,} of {replicates:,}{UNDEFINED_SUFFIX}")
    return Verdict(None, tuple(flags))
