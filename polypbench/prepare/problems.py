"""Bad input found while converting: one-line problems, counted per kind and reported at the end.

The one policy, applied to every dataset: each problem is a :class:`Problem` of a kind listed in :data:`KINDS`
with one line naming the file (and the field or row). Without ``--strict`` the bad input is skipped, counted and
the run goes on; with ``--strict`` the first one fails the run. A kind that only *fixes* its input (``clamped``)
is counted and reported but neither skips anything nor stops a strict run. Nothing is skipped silently, and no
exception escapes as a traceback: an unexpected one becomes an ``internal`` problem naming the file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

KINDS = {
    "malformed_xml": "malformed or unsafe annotation XML, or one lacking a required element",
    "bad_annotation": "annotation line/record not in the expected format",
    "bad_value": "a number that is not finite, not an integer within int32, or negative where it cannot be",
    "empty_box": "box with xmin >= xmax or ymin >= ymax",
    "box_outside_image": "box wholly outside the image",
    "clamped": "box partly outside the image, clamped to it (row kept)",
    "unknown_lesion": "annotation names a lesion/case absent from the metadata",
    "wrong_video": "annotation names a lesion of another video (a split leak if kept)",
    "bad_metadata": "metadata row refused (duplicate id or bad value): its lesion gets no rows",
    "refused_lesion": "box of a lesion whose metadata row was refused",
    "lesion_without_frames": "metadata lesion with no valid box in the dump",
    "missing_frame": "annotated frame file missing (or not a regular file inside the raw root)",
    "bad_frame": "frame that is not a complete JPEG (empty, truncated, not a JPEG)",
    "size_mismatch": "frame whose JPEG size differs from the manifest's width and height",
    "duplicate_box": "the same polyp annotated twice on one frame",
    "unknown_patient": "patient absent from the published split",
    "not_a_file": "a directory, FIFO, socket or device where a file is expected (or a file where a folder is)",
    "unreadable": "an input that cannot be read (permission denied, I/O error)",
    "bad_symlink": "a symlink that dangles, loops, or leads outside the raw root (not followed)",
    "outside_root": "a path that is absolute or leads up out of the raw root (never read)",
    "duplicate_input": "a second path (a symlink) to an input already read (read once)",
    "internal": "an unexpected error while reading a file (a polypbench bug: please report it)",
}
"""Problem kind -> what it means (the report's legend)."""

FIXES = frozenset({"clamped"})
"""Kinds that repair the input and keep the row: counted and reported, never a skip, never stop ``--strict``."""

IO_KINDS = frozenset({"not_a_file", "unreadable", "bad_symlink", "duplicate_input", "internal"})
"""Kinds that depend on the file system's state rather than the files' content: a unit that had one is always
converted again on resume (its part is not reused)."""


@dataclass(frozen=True)
class Problem:
    """One bad input: ``kind`` (a key of :data:`KINDS`) and a one-line message naming the file."""

    kind: str
    message: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"problem kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        object.__setattr__(self, "message", " ".join(self.message.split()))  # always one line

    @property
    def skips(self) -> bool:
        """Whether the input was left out (every kind but the fixes)."""
        return self.kind not in FIXES

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class ProblemError(Exception):
    """Raised inside a converter to record ``problem`` and skip the input it names."""

    def __init__(self, kind: str, message: str) -> None:
        self.problem = Problem(kind, message)
        super().__init__(self.problem.message)


def first_skip(problems: Iterable[Problem]) -> Problem | None:
    """The first problem that left an input out (what ``--strict`` stops on), or None."""
    return next((p for p in problems if p.skips), None)


def summarize(problems: Iterable[Problem], examples: int = 3) -> dict[str, dict[str, Any]]:
    """Counts per kind, with the first few messages of each (JSON-ready)."""
    problems = list(problems)
    counts = Counter(p.kind for p in problems)
    return {
        kind: {"count": n, "meaning": KINDS[kind], "skips": kind not in FIXES,
               "examples": [p.message for p in problems if p.kind == kind][:examples]}
        for kind, n in sorted(counts.items())
    }
