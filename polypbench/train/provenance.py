"""What a run's result depends on beyond its config: the code (polypbench version, git commit and whether the
tree had local changes, torch and Python versions) and the data (per prepared folder: split version and hash,
the ``frames.parquet`` hash, and the pixel source each split was read from). Written as the ``provenance`` block
of the run's ``config.yaml``.
"""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import polypbench

PACKAGE_ROOT = Path(polypbench.__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        res = subprocess.run(["git", "-C", str(PACKAGE_ROOT), *args], capture_output=True, text=True, timeout=10,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_info() -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` when polypbench runs from a git checkout (``dirty``: tracked files
    differ from the commit; untracked files do not count), else None (an installed wheel, no git)."""
    top = _git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != PACKAGE_ROOT:
        return None
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    if commit is None or status is None:
        return None
    return {"commit": commit, "dirty": bool(status)}


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def code() -> dict[str, Any]:
    """The code side: polypbench version, git commit (or None), torch and Python versions, the command line."""
    return {"polypbench": polypbench.__version__, "git": git_info(), "torch": str(torch.__version__),
            "python": platform.python_version(), "command": " ".join(sys.argv), "date": now()}


def provenance(sources: list[dict[str, Any]], world_size: int = 1) -> dict[str, Any]:
    """The ``provenance`` block of a new run: :func:`code`, the number of processes, and ``data`` (the
    :attr:`~polypbench.train.data.TrainData.sources`)."""
    return {**code(), "world_size": world_size, "data": sources}


def resumed(block: dict[str, Any], after_epoch: int, world_size: int = 1) -> dict[str, Any]:
    """``block`` with one more entry in its ``resumed`` list: when, after which epoch, and with which code."""
    entry = {"after_epoch": after_epoch, **code(), "world_size": world_size}
    return {**block, "resumed": [*block.get("resumed", []), entry]}
