"""One metric's result as a typed value, :class:`Stat`, and its JSON form: the one place it is written and read.

The verdict of the interval rule (:mod:`polypbench.evaluate.policy`) is data on the Stat: ``ci_reason`` and
``flags`` are :class:`~polypbench.evaluate.policy.Note` values. The JSON form writes them twice: in words under
``ci_reason`` and ``flags`` (the formatter's, :func:`~polypbench.evaluate.format.note_text`, for people and for
clients that show them), and as data under ``verdict`` (what :meth:`Stat.from_dict` reads back: words are never
parsed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

from polypbench.evaluate.format import note_text
from polypbench.evaluate.policy import Note, NoteKind

_NOTES = ("ci_reason", "flags")
"""The fields that hold the rule's notes (written in words and as data, read from the data)."""


@dataclass(frozen=True)
class Stat:
    """A metric's point value, its 95% interval and what they rest on (docs/scoring.md, "The JSON").

    ``value`` None means undefined on the observed data (``reason`` says why). ``ci95`` None means no interval:
    no replicates were drawn, or the rule of :mod:`polypbench.evaluate.policy` withholds it (``ci_reason`` says
    why). ``flags`` (shown as a dagger) say why a given interval needs care; ``replicates`` is how many replicates
    it rests on when ``undefined_replicates`` of them left the metric undefined. ``n_polyps`` and ``n_patients``
    are the support (the polyps and patients in the metric's denominator); ``class_polyps`` the polyps behind each
    class's term of a class average (balanced accuracy, macro F1), in label order. ``p_greater`` (paired
    differences only) is the share of replicates in which this file's metric is greater than the other's, ties
    counted half; ``p_value`` (differences only) the two-sided p-value of no difference that the interval inverts,
    the test rank groups use (:mod:`polypbench.evaluate.ranking`; None where the interval is withheld).

    Adding a field means adding it here, with a default: the JSON form (:meth:`to_dict`, :meth:`from_dict`) follows
    the dataclass fields, and the formatter (:mod:`polypbench.evaluate.format`) reads only what it shows.
    """

    value: float | None
    ci95: tuple[float, float] | None
    undefined_replicates: int = 0
    reason: str | None = None
    ci_reason: Note | None = None
    flags: tuple[Note, ...] = ()
    replicates: int | None = None
    n_polyps: int | None = None
    n_patients: int | None = None
    class_polyps: tuple[int, ...] | None = None
    p_greater: float | None = None
    p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: fields without a default always, the others only when they differ from their default; the
        notes in words (``ci_reason``, ``flags``) and, when there are any, as data (``verdict``)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.default is not MISSING and value == f.default:
                continue
            if f.name == "ci_reason":
                out[f.name] = note_text(value)
            elif f.name == "flags":
                out[f.name] = [note_text(n) for n in value]
            else:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        verdict: dict[str, Any] = {}
        if self.ci_reason is not None:
            verdict["ci_reason"] = self.ci_reason.to_dict()
        if self.flags:
            verdict["flags"] = [n.to_dict() for n in self.flags]
        if verdict:
            out["verdict"] = verdict
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Stat:
        """Inverse of :meth:`to_dict` (absent fields take their default; keys that are not fields are ignored).

        The notes are read from ``verdict``; a document written before it existed (schema 3 of polypbench 0.2)
        has them in words only, which are kept as they are (:attr:`~polypbench.evaluate.policy.NoteKind.TEXT`)."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in _NOTES:
                continue
            value = doc.get(f.name, None if f.default is MISSING else f.default)
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value  # JSON arrays back to tuples
        verdict = doc.get("verdict")
        if verdict is not None:
            reason = verdict.get("ci_reason")
            kwargs["ci_reason"] = None if reason is None else Note.from_dict(reason)
            kwargs["flags"] = tuple(Note.from_dict(n) for n in verdict.get("flags", ()))
        else:
            reason = doc.get("ci_reason")
            kwargs["ci_reason"] = None if reason is None else Note(NoteKind.TEXT, text=str(reason))
            kwargs["flags"] = tuple(Note(NoteKind.TEXT, text=str(t)) for t in doc.get("flags", ()))
        return cls(**kwargs)
