"""The public leaderboard: a FastAPI server over SQLAlchemy, team tokens, a submit client, and export/render.

Every submission is validated and scored by :func:`polypbench.evaluate.score`, the same function the CLI uses; only
aggregate metrics are stored or shown, never the hidden test labels or anything per polyp.
"""

from __future__ import annotations

PRIMARY = "polyp/triclass/pooled/macro_f1"
"""The board's ranking metric, a key of :mod:`polypbench.evaluate.keys`: per-polyp triclass macro F1 (pooled; the
board swaps in the dataset it shows)."""
