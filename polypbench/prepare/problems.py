"""Bad input found while converting: one-line problems, counted per kind and reported at the end.

Without ``--strict`` a bad row is skipped and recorded here; with ``--strict`` the first one fails the run.
Nothing is skipped silently: every skip is a :class:`Problem`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

KINDS = {
    "malformed_xml": "malformed or unsafe annotation XML",
    "bad_annotation": "annotation line/record not in the expected format",
    "box_outside_image": "box outside the image",
    "empty_box": "box with xmin >= xmax or ymin >= ymax",
    "unknown_lesion": "annotation names a lesion/case absent from the metadata",
    "lesion_without_frames": "metadata lesion with no valid box in the dump",
    "missing_frame": "annotated frame file missing",
    "duplicate_box": "the same polyp annotated twice on one frame",
    "unknown_patient": "patient absent from the published split",
}
"""Problem kind -> what it means (the report's legend)."""


@dataclass(frozen=True)
class Problem:
    """One skipped input: ``kind`` (a key of :data:`KINDS`) and a one-line message naming the file."""

    kind: str
    message: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"problem kind {self.kind!r}: expected one of {', '.join(KINDS)}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def summarize(problems: Iterable[Problem], examples: int = 3) -> dict[str, dict[str, object]]:
    """Counts per kind, with the first few messages of each (JSON-ready)."""
    problems = list(problems)
    counts = Counter(p.kind for p in problems)
    return {
        kind: {"count": n, "meaning": KINDS[kind], "examples": [p.message for p in problems if p.kind == kind][:examples]}
        for kind, n in sorted(counts.items())
    }
