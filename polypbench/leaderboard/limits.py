"""Every size limit of the leaderboard in one place: form fields, database columns and uploads agree by construction.

``db.py`` sizes its columns with these numbers and the server validates with the same ones, so a value that passes
validation always fits its column (on PostgreSQL a longer value would be an error, on SQLite it would silently fit).
"""

from __future__ import annotations

from polypbench.evaluate.validate import (
    BYTES_PER_ROW,
    CSV_BYTES_PER_ROW,
    CSV_HEADER,
    MAX_COLUMNS,
    PARQUET_FOOTER,
    ROW_FACTOR,
    ROW_SLACK,
)

__all__ = ["BYTES_PER_ROW", "CSV_BYTES_PER_ROW", "CSV_HEADER", "MAX_COLUMNS", "PARQUET_FOOTER", "ROW_FACTOR",
           "ROW_SLACK"]
"""The prediction-file bounds are the validator's (``polypbench evaluate`` applies them too); re-exported here."""

TEAM_NAME = 100
METHOD = 200
URL = 500
FILENAME = 200
SPLIT_HASHES = 500
"""``dataset:sha256`` pairs, comma separated (a few datasets)."""
SHA256 = 64
CONFIG = 20_000
"""Characters of a submitted training config (JSON or YAML text)."""
ARCHITECTURE = 64
IDEMPOTENCY_KEY = 64
ERROR = 500
"""Characters of a job's error message."""
RATE_KEY = 100
"""``team:<id>`` or ``ip:<address>``."""
SCOPE = 100
"""A dataset name, ``pooled``, or a part of the private test set."""
METRIC_KEY = 100
RESAMPLES = 16
"""A resample fingerprint (:func:`polypbench.evaluate.ranking.resamples_fingerprint`: 16 hex digits)."""

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""Default prediction-file limit."""
MAX_MODEL_BYTES = 200 * 1024 * 1024
"""Default model-weights (safetensors) limit."""
FORM_OVERHEAD = 256 * 1024
"""Bytes a multipart body may carry beyond its files (field values, part headers, boundaries)."""
SMALL_BODY = 64 * 1024
"""Limit on the body of every request that uploads no file."""
SCORING_SLOTS = 2
"""Uploads one server process validates and scores at once (CPU-bound; more would only add memory); others wait."""
