"""Scoring for the board: the one scorer per scope, the public part of each result, and the board metrics'
bootstrap replicates.

``polypbench.evaluate`` has no public accessor for the replicates yet, so :func:`score_with_replicates` runs the
same four steps as :func:`polypbench.evaluate.score` through ``polypbench.evaluate.scoring``'s internals and keeps
the replicate rows of the board metrics (``_prepare``, ``resample_counts``, ``_run``, ``_result``). It is the only
place that touches those internals; once evaluate returns replicates it becomes one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from polypbench.evaluate import Result, lookup, parse_key
from polypbench.evaluate import scoring as _scoring
from polypbench.evaluate.bootstrap import resample_counts
from polypbench.evaluate.keys import SIZE_TASK, class_slugs, with_dataset
from polypbench.evaluate.truth import Truth
from polypbench.evaluate.validate import POLYP_KEY, validate_predictions
from polypbench.leaderboard.columns import COLUMNS, PRIMARY, PUBLIC_KEYS
from polypbench.leaderboard.tracks import POOLED, PrivateTrack, PublicTrack


@dataclass(frozen=True)
class Scored:
    """One scope's sanitized result and, per board metric key of that scope, its replicates (R,) as float32."""

    result: dict[str, Any]
    replicates: dict[str, np.ndarray]

    def primary(self, scope: str) -> float | None:
        stat = lookup(self.result, with_dataset(PRIMARY, scope))
        return None if stat is None else stat.value


def board_keys(scope: str) -> list[str]:
    """The board's metric keys in a scope (a dataset or ``pooled``)."""
    return [with_dataset(key, scope) for _, key, _ in COLUMNS.values()]


def _replicates(samples: dict[str, Any], key: str) -> np.ndarray | None:
    view, task, dataset, metric, cls = parse_key(key)
    per_view = samples.get(view)
    if per_view is None:
        return None
    groups = per_view["size"] if task == SIZE_TASK else per_view["tasks"].get(task)
    values = (groups or {}).get(dataset, {}).get(metric)
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if cls is not None:
        arr = arr[:, list(class_slugs(task)).index(cls)]
    return arr[1:].astype(np.float32)  # row 0 is the point estimate


def score_with_replicates(predictions: pd.DataFrame, truth: Truth, keys: Sequence[str], *, n_bootstrap: int,
                          seed: int, name: str) -> tuple[Result, dict[str, np.ndarray]]:
    """:func:`polypbench.evaluate.score` plus the replicate rows of ``keys`` (see the module docstring)."""
    pred = _scoring._prepare(predictions, truth, name)
    counts = resample_counts(truth.patients["stratum"].to_numpy(), n_bootstrap, seed)
    samples = _scoring._run(pred, truth, counts)
    result = _scoring._result(pred, truth, samples, n_bootstrap, seed)
    found = {key: _replicates(samples, key) for key in keys}
    return result, {k: v for k, v in found.items() if v is not None}


def sanitize(result: Result) -> dict[str, Any]:
    """The public result: aggregate metrics only; no per-polyp rows, confusion matrices or server label paths."""
    doc = result.to_dict()
    public = {k: doc[k] for k in PUBLIC_KEYS if k in doc}
    public["manifests"] = [{k: v for k, v in m.items() if k != "path"} for m in public.get("manifests", [])]
    return public


def private_view(result: Result) -> dict[str, Any]:
    """A private-track result: pooled summary metrics and pooled counts only; no per-class or per-dataset number
    (they would let repeated submissions solve the hidden set's class counts and sizes)."""
    doc = sanitize(result)
    doc["metrics"] = {k: v for k, v in doc["metrics"].items()
                      if parse_key(k).dataset == POOLED and parse_key(k).cls is None}
    doc["counts"] = {POOLED: doc["counts"][POOLED]}
    doc["manifests"] = []
    return doc


def _rows(predictions: pd.DataFrame, polyps: set[str]) -> pd.DataFrame:
    ids = predictions[POLYP_KEY].astype(str)
    return predictions.loc[ids.isin(polyps).to_numpy()].reset_index(drop=True)


def score_public(predictions: pd.DataFrame, track: PublicTrack, *, name: str, n_bootstrap: int,
                 seed: int) -> dict[str, Scored]:
    """Validate ``predictions`` against the test split of the datasets it covers (every problem at once, with the
    file's own row numbers), then score each covered dataset on its own, and ``pooled`` when it covers the pool."""
    covered = track.covered(predictions)
    validate_predictions(predictions, track.truth(covered or track.names), name=name)
    out: dict[str, Scored] = {}
    for ds in covered:
        truth = track.truth([ds])
        rows = predictions if covered == [ds] else _rows(predictions, set(truth.polyps["polyp_id"].astype(str)))
        result, reps = score_with_replicates(rows, truth, board_keys(ds), n_bootstrap=n_bootstrap, seed=seed,
                                             name=name)
        out[ds] = Scored(sanitize(result), reps)
    if set(track.pool) <= set(covered):
        if len(track.pool) == 1:
            only = out[track.pool[0]]
            pooled_reps = {with_dataset(k, POOLED): v for k, v in only.replicates.items()}
            out[POOLED] = Scored(only.result, pooled_reps)
        else:
            truth = track.truth(track.pool)
            rows = _rows(predictions, set(truth.polyps["polyp_id"].astype(str)))
            result, reps = score_with_replicates(rows, truth, board_keys(POOLED), n_bootstrap=n_bootstrap,
                                                 seed=seed, name=name)
            out[POOLED] = Scored(sanitize(result), reps)
    return out


def score_private(predictions: pd.DataFrame, track: PrivateTrack, *, name: str, n_bootstrap: int,
                  seed: int) -> dict[str, Scored]:
    """Score the server's own predictions of the private test set on each part (``public``, ``private``); the
    replicates are the pooled board metrics', stored under the part's name."""
    out = {}
    for part, truth in track.truths.items():
        result, reps = score_with_replicates(_rows(predictions, track.polyps[part]), truth, board_keys(POOLED),
                                             n_bootstrap=n_bootstrap, seed=seed, name=name)
        out[part] = Scored(private_view(result), reps)
    return out
