"""Uploaded files kept for jobs (model weights, prediction files to verify): content-addressed, written atomically.

A blob is ``<root>/<sha256><suffix>``; it is written under ``<root>/incoming/``, flushed to disk, then renamed into
place, so a blob a committed job names is always complete. Several server processes and the worker share one root.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from polypbench.errors import PolypbenchError


class Store:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()  # blob paths go to model runs that work in their own folders
        (self.root / "incoming").mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str, suffix: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise PolypbenchError(f"blob name {sha256!r}: expected a sha256 hex digest")
        return self.root / f"{sha256}{suffix}"

    def incoming(self, suffix: str = "") -> Path:
        """A fresh path to write an upload to (then :meth:`keep` it or delete it)."""
        fd, name = tempfile.mkstemp(dir=self.root / "incoming", suffix=suffix)
        os.close(fd)
        return Path(name)

    def keep(self, written: Path, sha256: str, suffix: str) -> Path:
        """Move a fully written upload to its content address (idempotent: equal content, equal name)."""
        with written.open("rb+") as fh:
            os.fsync(fh.fileno())
        final = self.path(sha256, suffix)
        os.replace(written, final)
        return final
