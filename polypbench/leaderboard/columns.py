"""What the board shows: its tracks and the private track's parts, its metric columns (keys of
:mod:`polypbench.evaluate.keys`) and the public result keys.

Pure data, no server stack: ``polypbench submit`` (base install) reads it too. A track or a part is held as a
:class:`Track` or :class:`Part` inside; their values are what the database, the API and the pages write
(``str(track)`` is its value), read back with ``Track(value)`` where a request or a stored row comes in.
"""

from __future__ import annotations

from enum import Enum

from polypbench.errors import choice_error


class Track(str, Enum):
    """A leaderboard track."""

    PUBLIC = "public"
    """Prediction files scored against public test labels (an honour-system registry)."""
    PRIVATE = "private"
    """Models run by the server on hidden test data."""

    def __str__(self) -> str:
        return self.value


def parse_track(value: object, where: str = "track") -> Track:
    """The :class:`Track` a document or a reply names; a one-line error naming ``where`` for any other value."""
    try:
        return Track(value)
    except ValueError:
        raise choice_error(where, value, list(Track)) from None


class Part(str, Enum):
    """A part of the private track's hidden test set (split by patient): the private track's scopes."""

    PUBLIC = "public"
    """The live board's part, shown while the phase runs."""
    PRIVATE = "private"
    """The final ranking's part, revealed when the organiser closes the phase."""

    def __str__(self) -> str:
        return self.value

PRIMARY = "polyp/triclass/pooled/macro_f1"
"""The ranking metric: per-polyp triclass macro F1 (pooled; the board swaps in the dataset it shows)."""

COLUMNS = {
    # sort name: (label, metric key (pooled; the board swaps in the dataset shown), higher is better)
    "macro_f1": ("macro F1 (per polyp, triclass)", "polyp/triclass/pooled/macro_f1", True),
    "balanced_accuracy": ("bal. acc.", "polyp/triclass/pooled/balanced_accuracy", True),
    "kappa_quadratic": ("kappa (quadr.)", "polyp/triclass/pooled/kappa_quadratic", True),
    "binary10_f1": ("<10 mm vs >=10 mm macro F1", "polyp/binary10/pooled/macro_f1", True),
    "mae_mm": ("MAE mm", "polyp/size/pooled/mae_mm", False),
    # secondary, clinical terms (docs/scoring.md): the surveillance interval per patient, sizes within 20%
    "interval_agreement": ("interval agreement (USMSTF 2020)", "patient/surveillance/pooled/usmstf2020_agreement",
                           True),
    "interval_later": ("interval later (USMSTF 2020)", "patient/surveillance/pooled/usmstf2020_later", False),
    "within_20pct": ("size within 20%", "polyp/size/pooled/within_20pct", True),
}
"""Metric columns of the board; the first is the primary (ranking) metric. Every submission stores the bootstrap
replicates of these keys (per scope) for rank groups, rank stability and comparisons."""
TEXT_SORTS = ("team", "method", "submitted")
PUBLIC_KEYS = ("schema_version", "polypbench_version", "split", "manifests", "predictions", "aggregation", "bootstrap",
               "counts", "views", "classes", "metrics")
"""What a stored or returned result keeps of :meth:`~polypbench.evaluate.Result.to_dict`: aggregate metrics only.
Left out: confusion matrices (exact test class counts), comparisons, and anything added later until it is judged
public here."""

assert COLUMNS["macro_f1"][1] == PRIMARY
