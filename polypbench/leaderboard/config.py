"""The server's configuration: one typed dataclass, set by ``polypbench leaderboard serve`` and handed to each worker
process as JSON (``POLYPBENCH_LEADERBOARD``) when ``--workers`` > 1."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from polypbench.leaderboard import limits

log = logging.getLogger(__name__)

ENV = "POLYPBENCH_LEADERBOARD"


@dataclass
class Settings:
    """``db``: SQLite path or SQLAlchemy URL. ``labels``: public-track prepared folders (their test splits are
    scored); ``private_labels``: the private track's. ``store``: folder for uploaded weights and files kept for
    jobs (default: ``<db file>.store`` for SQLite, ``./leaderboard-store`` otherwise). Caps are per team per UTC day;
    ``rate_limit`` is requests per minute per team, ``ip_rate_limit`` per client address (0: off).
    ``architectures``: the registered model names the private track accepts; ``tasks``: the tasks a submitted model
    may have, each with whether its weights must carry the size offset (None: looked up at start when there is a
    private track, the one that takes models).
    ``frozen_time``: seconds since the epoch that the server takes as now for the rate-limit windows and the daily
    caps (tests: no run crosses a minute or a UTC midnight); None, in service: the real time (:meth:`clock`).

    Every path is made absolute when the settings are made (at start-up, against the working folder the command was
    given in): server processes, the worker and the model runs it starts in their own folders read the same files."""

    db: str
    labels: list[str] = field(default_factory=list)
    private_labels: list[str] = field(default_factory=list)
    store: str | None = None
    daily_cap: int = 5
    model_daily_cap: int = 2
    max_upload_bytes: int = limits.MAX_UPLOAD_BYTES
    max_model_bytes: int = limits.MAX_MODEL_BYTES
    rate_limit: int = 60
    ip_rate_limit: int = 300
    n_bootstrap: int = 1000
    seed: int = 0
    private_public_fraction: float = 0.5
    private_seed: int = 0
    architectures: list[str] | None = None
    tasks: dict[str, bool] | None = None
    frozen_time: float | None = None

    def __post_init__(self) -> None:
        if "://" not in self.db:
            self.db = os.path.abspath(self.db)
        self.labels = [os.path.abspath(p) for p in self.labels]
        self.private_labels = [os.path.abspath(p) for p in self.private_labels]
        default = f"{self.db}.store" if "://" not in self.db else "leaderboard-store"
        self.store = os.path.abspath(self.store or default)

    def clock(self) -> float:
        """Now, in seconds since the epoch: the rate limiters' and the daily caps' one clock."""
        return time.time() if self.frozen_time is None else self.frozen_time

    def store_dir(self) -> Path:
        assert self.store is not None  # set in __post_init__
        return Path(self.store)

    def to_env(self) -> dict[str, str]:
        return {ENV: json.dumps(asdict(self))}

    @classmethod
    def from_env(cls) -> Settings:
        return cls(**json.loads(os.environ[ENV]))


def model_catalog() -> tuple[list[str], dict[str, bool]]:
    """The registered model names and the tasks a submitted model may have (with whether its weights must carry the
    size offset), asked of a short-lived child process: the server never imports torch."""
    import subprocess
    import sys

    from polypbench.inference.sandbox import CATALOG_FLAG

    out = subprocess.run([sys.executable, "-m", "polypbench.inference", CATALOG_FLAG], capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        log.warning("no model architectures (model uploads need `pip install 'polypbench[train]'`): %s",
                    (out.stderr.strip().splitlines() or ["?"])[-1])
        return [], {}
    names, tasks = json.loads(out.stdout.strip().splitlines()[-1])
    return list(names), dict(tasks)
