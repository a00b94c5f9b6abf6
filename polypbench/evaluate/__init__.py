"""Scoring: validate a prediction file, aggregate frames per polyp, compute metrics with patient-bootstrap CIs.

``score`` is the one function that the trainer, ``polypbench evaluate`` and the leaderboard all call; docs/scoring.md
explains every number. Every number of a result is read with ``lookup(result_or_json, "view/task/dataset/metric")``
(keys: :mod:`polypbench.evaluate.keys`) and shown with ``format_stat``; a :class:`Stat`'s verdict on its interval
is data (:class:`Note`), put into words by the formatter only. Intervals:
:mod:`~polypbench.evaluate.intervals` and the rule of :mod:`~polypbench.evaluate.policy`; rankings of leaderboard
entries: :mod:`~polypbench.evaluate.ranking`.
"""

from __future__ import annotations

from polypbench.evaluate.format import format_stat
from polypbench.evaluate.keys import metric_key, parse_key
from polypbench.evaluate.policy import Note, NoteKind
from polypbench.evaluate.ranking import Replicates
from polypbench.evaluate.result import RESULT_SCHEMA_VERSION, Result, lookup
from polypbench.evaluate.scoring import compare, score
from polypbench.evaluate.stat import Stat
from polypbench.evaluate.truth import Truth
from polypbench.evaluate.validate import SubmissionError, ValidPredictions, read_predictions, validate_predictions

__all__ = [
    "RESULT_SCHEMA_VERSION",
    "Note",
    "NoteKind",
    "Replicates",
    "Result",
    "Stat",
    "SubmissionError",
    "Truth",
    "ValidPredictions",
    "compare",
    "format_stat",
    "lookup",
    "metric_key",
    "parse_key",
    "read_predictions",
    "score",
    "validate_predictions",
]
