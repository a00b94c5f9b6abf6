"""The leaderboard: a FastAPI server over SQLAlchemy (two tracks, a job queue, a worker), the submit client, and
export/render of the board.

Every submission is validated and scored by :func:`polypbench.evaluate.score`'s steps, the same the CLI uses; only
aggregate metrics are stored or shown, never anything per polyp. ``polypbench submit`` needs only the base install
(:mod:`.client` and :mod:`.columns` import no server package).
"""

from __future__ import annotations

from polypbench.leaderboard.columns import PRIMARY

__all__ = ["PRIMARY"]
