"""Scoring for the board: the one scorer per scope, the public part of each result, and the board metrics'
replicates.

Every scope is scored with :func:`polypbench.evaluate.score` asking it to keep the board metrics' replicates
(``keep_replicates``); :meth:`~polypbench.evaluate.Result.replicates` hands them over as
:class:`~polypbench.evaluate.Replicates`, which the server stores and :mod:`polypbench.evaluate.ranking` ranks and
compares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from polypbench.evaluate import Replicates, Result, Stat, lookup, parse_key, score
from polypbench.evaluate.keys import with_dataset
from polypbench.evaluate.policy import CLASS_KINDS, UNDEFINED_KINDS, Note
from polypbench.evaluate.truth import Truth
from polypbench.evaluate.validate import POLYP_KEY, validate_predictions
from polypbench.leaderboard.columns import COLUMNS, PRIMARY, PUBLIC_KEYS, Part
from polypbench.leaderboard.tracks import POOLED, PrivateTrack, PublicTrack


@dataclass(frozen=True)
class Scored:
    """One scope's sanitized result and, per board metric key of that scope, its replicates."""

    result: dict[str, Any]
    replicates: dict[str, Replicates]

    def primary(self, scope: str) -> float | None:
        stat = lookup(self.result, with_dataset(PRIMARY, scope))
        return None if stat is None else stat.value


def board_keys(scope: str) -> list[str]:
    """The board's metric keys in a scope (a dataset or ``pooled``)."""
    return [with_dataset(key, scope) for _, key, _ in COLUMNS.values()]


def score_scope(predictions: pd.DataFrame, truth: Truth, keys: Sequence[str], *, n_bootstrap: int, seed: int,
                name: str) -> tuple[Result, dict[str, Replicates]]:
    """:func:`polypbench.evaluate.score` of ``predictions`` against ``truth``, and the replicates of ``keys`` (those
    the result has: none without bootstrap replicates, no size errors for a file without sizes)."""
    result = score(predictions, truth, n_bootstrap=n_bootstrap, seed=seed, name=name, keep_replicates=list(keys))
    return result, {key: result.replicates(key) for key in keys if key in result.kept_replicates}


def sanitize(result: Result) -> dict[str, Any]:
    """The public result: aggregate metrics only; no per-polyp rows, confusion matrices or server label paths."""
    doc = result.to_dict()
    public = {k: doc[k] for k in PUBLIC_KEYS if k in doc}
    public["manifests"] = [{k: v for k, v in m.items() if k != "path"} for m in public.get("manifests", [])]
    return public


def _private_note(note: Note) -> Note:
    """``note`` without its class or counts where it names a class or counts undefined replicates: its kind stays
    (the formatter words it as what the rule tests: ``a class: fewer than 5 polyps``, ``part of the resamples``)."""
    return Note(note.kind) if note.kind in (*CLASS_KINDS, *UNDEFINED_KINDS) else note


def private_stat(stat: Stat) -> Stat:
    """``stat`` without per-class detail or a count of undefined replicates: no per-class polyp counts, no
    ``undefined_replicates`` or ``replicates`` (how many resamples missed the rarest class tells how many patients
    have it), and no class or count in a note that names a class or counts undefined replicates
    (:func:`_private_note`; equal notes shown once, class notes first). Whether the interval is given, flagged or
    withheld stays as the scorer decided."""
    flags = tuple(dict.fromkeys(_private_note(f) for f in stat.flags))
    flags = tuple(sorted(flags, key=lambda f: f.kind not in CLASS_KINDS))
    reason = None if stat.ci_reason is None else _private_note(stat.ci_reason)
    return replace(stat, class_polyps=None, flags=flags, ci_reason=reason, undefined_replicates=0, replicates=None)


def private_view(result: Result) -> dict[str, Any]:
    """A private-track result: pooled summary metrics (:func:`private_stat`) and pooled counts only; no per-class
    or per-dataset number (they would let repeated submissions solve the hidden set's class counts and sizes)."""
    metrics = {k: private_stat(stat) for k, stat in result.metrics.items()
               if parse_key(k).dataset == POOLED and parse_key(k).cls is None}
    return sanitize(replace(result, metrics=metrics, counts={POOLED: result.counts[POOLED]}, manifests=[]))


def _rows(predictions: pd.DataFrame, polyps: set[str]) -> pd.DataFrame:
    ids = predictions[POLYP_KEY].astype(str)
    return predictions.loc[ids.isin(polyps).to_numpy()].reset_index(drop=True)


def score_public(predictions: pd.DataFrame, track: PublicTrack, *, name: str, n_bootstrap: int,
                 seed: int) -> dict[str, Scored]:
    """Validate ``predictions`` against the test split of the datasets it covers (every problem at once, with the
    file's own row numbers), then score each covered dataset on its own, and ``pooled`` when it covers the pool
    (a one-dataset pool is that dataset's own result, whose ``pooled`` numbers are the dataset's)."""
    covered = track.covered(predictions)
    validate_predictions(predictions, track.truth(covered or track.names), name=name)
    single = len(track.pool) == 1 and track.pool[0] in covered
    out: dict[str, Scored] = {}
    for ds in covered:
        truth = track.truth([ds])
        rows = predictions if covered == [ds] else _rows(predictions, set(truth.polyps["polyp_id"].astype(str)))
        keys = [*board_keys(ds), *board_keys(POOLED)] if single and ds == track.pool[0] else board_keys(ds)
        result, reps = score_scope(rows, truth, keys, n_bootstrap=n_bootstrap, seed=seed, name=name)
        doc = sanitize(result)
        out[ds] = Scored(doc, {k: v for k, v in reps.items() if parse_key(k).dataset == ds})
        if single and ds == track.pool[0]:
            out[POOLED] = Scored(doc, {k: v for k, v in reps.items() if parse_key(k).dataset == POOLED})
    if set(track.pool) <= set(covered) and not single:
        truth = track.truth(track.pool)
        rows = _rows(predictions, set(truth.polyps["polyp_id"].astype(str)))
        result, reps = score_scope(rows, truth, board_keys(POOLED), n_bootstrap=n_bootstrap, seed=seed, name=name)
        out[POOLED] = Scored(sanitize(result), reps)
    return out


def score_private(predictions: pd.DataFrame, track: PrivateTrack, *, name: str, n_bootstrap: int,
                  seed: int) -> dict[Part, Scored]:
    """Score the server's own predictions of the private test set on each :class:`Part`; the replicates are the
    pooled board metrics', stored under the part's name (its scope)."""
    out = {}
    for part, truth in track.truths.items():
        result, reps = score_scope(_rows(predictions, track.polyps[part]), truth, board_keys(POOLED),
                                   n_bootstrap=n_bootstrap, seed=seed, name=name)
        out[part] = Scored(private_view(result), reps)
    return out
