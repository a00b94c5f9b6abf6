"""Honest rankings from replicate vectors: rank groups, rank stability and paired comparisons.

Input: for each leaderboard entry, one metric's :class:`Replicates` (``score(..., keep_replicates=[key])`` then
``result.replicates(key)``), all computed on the SAME patient resamples: the server scores every submission with the
same seed and replicate count against the same split, and :func:`stack` refuses vectors whose resamples differ.
Because every entry is scored on the same resampled patients, differences are paired: a patient who is hard for
everyone moves every entry together and does not blur the comparison.

- :func:`rank_groups`: entries in order of their value; an entry shares the rank of the entry above unless the
  entry above is significantly better in a **one-sided paired bootstrap test at 5%**: fewer than 5% of the replicates
  have the lower entry at least as good (the one-sided 95% percentile interval of the paired difference excludes
  0). This is challengeR's "test, then rank" idea (Wiesenfarth et al., Sci Rep 2021) with Metrics Reloaded's advice
  (Maier-Hein et al., Nat Methods 2024) to report ranks together with their uncertainty rather than bare ranks.
- :func:`rank_distribution`: the bootstrap distribution of each entry's rank (challengeR's rank stability, its
  "blob plot" data), with Kendall's tau between the observed ranking and each replicate's.
- :func:`compare_pair` / :func:`compare_replicates`: the difference A - B with its expanded BCa interval (the
  scorer's, :mod:`polypbench.evaluate.intervals`) and P(A > B); :func:`significance_map` for every pair.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polypbench.evaluate.intervals import TIE_TOL, bca_interval, expanded_z
from polypbench.evaluate.policy import Note, NoteKind, judge
from polypbench.evaluate.stat import Stat

ALPHA = 0.05
"""Level of the one-sided paired bootstrap test behind rank groups."""


def resamples_fingerprint(counts: np.ndarray) -> str:
    """A short sha256 of a bootstrap count matrix: equal fingerprints, same patient resamples."""
    return hashlib.sha256(np.ascontiguousarray(counts, dtype=np.float64).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class Replicates:
    """One metric of one scored file on every resample: what a leaderboard stores to rank and compare entries.

    ``value`` the point value (NaN when undefined), ``replicates`` (R,) the bootstrap values (NaN where undefined),
    ``jackknife`` (P,) the leave-one-patient-out values of the metric's dataset group and ``strata`` (P,) those
    patients' datasets (both for the BCa interval of a difference), ``resamples`` the fingerprint of the count
    matrix (:func:`resamples_fingerprint`).
    """

    key: str
    value: float
    replicates: np.ndarray
    jackknife: np.ndarray
    strata: np.ndarray
    resamples: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form (NaN as null)."""
        def clean(a: np.ndarray) -> list[float | None]:
            return [None if np.isnan(v) else float(v) for v in np.asarray(a, dtype=np.float64)]

        return {"key": self.key, "value": None if np.isnan(self.value) else self.value,
                "replicates": clean(self.replicates), "jackknife": clean(self.jackknife),
                "strata": [int(s) for s in self.strata], "resamples": self.resamples}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Replicates:
        def arr(values: Sequence[float | None]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        value = doc["value"]
        return cls(doc["key"], np.nan if value is None else float(value), arr(doc["replicates"]),
                   arr(doc["jackknife"]), np.asarray(doc["strata"], dtype=np.int64), doc["resamples"])


def stack(entries: Sequence[Replicates]) -> tuple[np.ndarray, np.ndarray]:
    """(points (E,), replicates (E, R)) of entries of one metric on the same resamples; ValueError otherwise."""
    if not entries:
        raise ValueError("no entries to rank")
    keys = {e.key for e in entries}
    prints = {e.resamples for e in entries}
    if len(keys) > 1 or len(prints) > 1:
        raise ValueError(f"entries: expected one metric on the same resamples; got metrics {sorted(keys)} and "
                         f"{len(prints)} different resample fingerprints (score every entry with the same seed, "
                         "replicate count and split)")
    return np.array([e.value for e in entries]), np.stack([e.replicates for e in entries])


def _oriented(points: np.ndarray, replicates: np.ndarray, higher_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    sign = 1.0 if higher_is_better else -1.0
    return sign * np.asarray(points, dtype=np.float64), sign * np.asarray(replicates, dtype=np.float64)


def p_not_better(above: np.ndarray, below: np.ndarray) -> float:
    """One-sided paired bootstrap p-value that ``above`` is better (larger): the share of replicates (where both are
    defined) in which ``below`` is at least as large; 1.0 when no replicate defines both."""
    d = np.asarray(above, dtype=np.float64) - np.asarray(below, dtype=np.float64)
    d = d[~np.isnan(d)]
    if not len(d):
        return 1.0
    return float((d <= TIE_TOL).mean())


@dataclass(frozen=True)
class RankGroups:
    """Entries best first (``order``: indices into the input); per input entry its ``rank`` (1 = best; entries of
    one group share the rank of their best member, competition style 1, 1, 3; None when its value is undefined),
    ``group`` (0, 1, ...; None when undefined) and ``p_vs_above`` (the test's p-value against the entry ranked just
    above; None for the first)."""

    order: list[int]
    rank: list[int | None]
    group: list[int | None]
    p_vs_above: list[float | None]


def rank_groups(points: np.ndarray, replicates: np.ndarray, *, higher_is_better: bool = True,
                alpha: float = ALPHA) -> RankGroups:
    """Rank groups: sorted by value (ties by input order); an entry starts a new group, and takes its position as
    rank, only when the entry just above is significantly better (:func:`p_not_better` < ``alpha``); otherwise it
    shares the rank of the group above. Entries with an undefined value come last, unranked.

    ``points`` (E,) the entries' values, ``replicates`` (E, R) their replicates on the same resamples.
    """
    pts, reps = _oriented(points, replicates, higher_is_better)
    defined = [i for i in range(len(pts)) if not np.isnan(pts[i])]
    order = sorted(defined, key=lambda i: (-pts[i], i)) + [i for i in range(len(pts)) if np.isnan(pts[i])]
    rank: list[int | None] = [None] * len(pts)
    group: list[int | None] = [None] * len(pts)
    p_above: list[float | None] = [None] * len(pts)
    current_rank, current_group = 1, 0
    for pos, i in enumerate(order[:len(defined)]):
        if pos:
            p = p_not_better(reps[order[pos - 1]], reps[i])
            p_above[i] = p
            if p < alpha:
                current_rank, current_group = pos + 1, current_group + 1
        rank[i], group[i] = current_rank, current_group
    return RankGroups(order, rank, group, p_above)


@dataclass(frozen=True)
class RankStability:
    """The bootstrap distribution of each entry's rank.

    ``probability`` (E, E): share of replicates in which entry e has rank k + 1; ``median`` (E,) and ``ci95`` (E, 2)
    its median rank and 2.5-97.5% rank range; ``kendall_tau`` the mean over replicates of Kendall's tau-a between
    the observed ranking and the replicate's (1: the order never changes).
    """

    probability: np.ndarray
    median: np.ndarray
    ci95: np.ndarray
    kendall_tau: float


def replicate_ranks(values: np.ndarray) -> np.ndarray:
    """Competition ranks (1 = largest) along axis 0 of ``values`` (E, ...); an undefined (NaN) value ranks below
    every defined one."""
    v = np.where(np.isnan(values), -np.inf, values)
    undefined = np.isnan(values)
    better = (v[None, :] > v[:, None]).sum(axis=1)  # [e] = how many entries beat e
    return np.where(undefined, (~undefined).sum(axis=0), better) + 1


def rank_distribution(points: np.ndarray, replicates: np.ndarray, *, higher_is_better: bool = True) -> RankStability:
    """Rank of every entry in every replicate (:func:`replicate_ranks`) and its distribution (challengeR's rank
    stability); ``points`` (E,) and ``replicates`` (E, R) as in :func:`rank_groups`."""
    pts, reps = _oriented(points, replicates, higher_is_better)
    n = len(pts)
    ranks = replicate_ranks(reps)  # (E, R)
    prob = np.stack([(ranks == k).mean(axis=1) for k in range(1, n + 1)], axis=1)
    median = np.median(ranks, axis=1)
    ci = np.stack([np.percentile(ranks, 2.5, axis=1, method="lower"),
                   np.percentile(ranks, 97.5, axis=1, method="higher")], axis=1)
    observed = replicate_ranks(pts[:, None])[:, 0]
    iu = np.triu_indices(n, 1)
    if len(iu[0]):
        obs_sign = np.sign(observed[iu[0]] - observed[iu[1]])
        rep_sign = np.sign(ranks[iu[0]] - ranks[iu[1]])
        tau = float((obs_sign[:, None] * rep_sign).mean())
    else:
        tau = 1.0
    return RankStability(prob, median, ci, tau)


def compare_pair(value_a: float, value_b: float, replicates_a: np.ndarray, replicates_b: np.ndarray,
                 jackknife_a: np.ndarray, jackknife_b: np.ndarray, strata: np.ndarray) -> Stat:
    """The paired difference A - B: value, expanded BCa interval, ``p_greater`` = P(A > B) over the replicates where
    both are defined (ties counted half), under the scorer's rule for withholding an interval
    (:mod:`polypbench.evaluate.policy`: too few patients, mostly undefined)."""
    d = np.asarray(replicates_a, dtype=np.float64) - np.asarray(replicates_b, dtype=np.float64)
    jack = np.asarray(jackknife_a, dtype=np.float64) - np.asarray(jackknife_b, dtype=np.float64)
    point = value_a - value_b
    defined = d[~np.isnan(d)]
    p = None
    if len(defined):
        p = float(((defined > TIE_TOL).sum() + 0.5 * (np.abs(defined) <= TIE_TOL).sum())
                  / len(defined))
    undefined = int(len(d) - len(defined))
    if np.isnan(point):
        return Stat(None, None, undefined, "undefined for either entry", p_greater=p)
    verdict = judge(len(strata), (), undefined, len(d))
    z = expanded_z(len(strata), len(np.unique(strata)))
    ci = bca_interval(np.asarray(point), d, jack, np.asarray(strata), z) if len(d) else np.full(2, np.nan)
    if verdict.ci_reason is not None or np.isnan(ci).any():
        reason = verdict.ci_reason or Note(NoteKind.NOT_COMPUTABLE)
        return Stat(float(point), None, undefined, ci_reason=reason, p_greater=p)
    return Stat(float(point), (float(ci[0]), float(ci[1])), undefined, flags=verdict.flags,
                replicates=len(d) - undefined if undefined else None, p_greater=p)


def compare_replicates(a: Replicates, b: Replicates) -> Stat:
    """:func:`compare_pair` of two stored entries (same metric, same resamples)."""
    stack([a, b])
    return compare_pair(a.value, b.value, a.replicates, b.replicates, a.jackknife, b.jackknife, a.strata)


def significance_map(points: np.ndarray, replicates: np.ndarray, *, higher_is_better: bool = True,
                     alpha: float = ALPHA) -> np.ndarray:
    """(E, E) bool: entry i is significantly better than entry j (one-sided paired bootstrap test at ``alpha``,
    as in :func:`rank_groups`): challengeR's significance map."""
    _, reps = _oriented(points, replicates, higher_is_better)
    n = len(reps)
    out = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            out[i, j] = i != j and p_not_better(reps[i], reps[j]) < alpha
    return out
