"""Scoring: validate a prediction file, aggregate frames per polyp, compute metrics with patient-bootstrap CIs.

``score`` is the one function that the trainer, ``polypbench evaluate`` and the leaderboard all call; docs/scoring.md
explains every number.
"""

from __future__ import annotations

from polypbench.evaluate.bootstrap import Stat
from polypbench.evaluate.result import RESULT_SCHEMA_VERSION, Result
from polypbench.evaluate.scoring import compare, score
from polypbench.evaluate.truth import Truth
from polypbench.evaluate.validate import SubmissionError, ValidPredictions, read_predictions, validate_predictions

__all__ = [
    "RESULT_SCHEMA_VERSION",
    "Result",
    "Stat",
    "SubmissionError",
    "Truth",
    "ValidPredictions",
    "compare",
    "read_predictions",
    "score",
    "validate_predictions",
]
