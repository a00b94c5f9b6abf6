"""Helpers of the prepare tests: the small dumps' record and clean results (filled by the ``small`` fixture of
tests/prepare/conftest.py), and the problem counts of a prepare report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REAL_VIDEOS = ("001-001", "001-012", "003-013")
"""A train video with three lesions, the validation video whose names carry ``.0``, a test video."""
SUN_CASES = (1, 2, 3)
KEY = ["polyp_id", "frame_index", "xmin", "ymin", "xmax", "ymax"]
BASE: dict[str, Small] = {}
"""The clean results, once the ``small`` fixture ran (fault makers read them)."""


@dataclass
class Small:
    dataset: str
    raw: Path
    frames: pd.DataFrame
    problems: dict[str, int]


def counts(report: dict) -> dict[str, int]:
    """Problem counts per kind of a prepare_report.json."""
    return {kind: int(info["count"]) for kind, info in report["problems"].items()}
