"""Rank groups, rank stability and two-entry comparisons from paired bootstrap replicates: the board's interface.

The server scores every submission of a scope (a dataset, ``pooled``, or a part of the private test set) with the
same truth, seed and replicate count, so replicate ``r`` of every entry comes from the same patient resample: the
replicates are *paired* across entries. Each function takes, per entry, the replicate vector ``(R,)`` of one
metric (rows 1..R of the scorer's sample array; row 0, the point estimate, is passed separately) and whether
higher is better. NaN marks a replicate where the metric is undefined; a pair is used only where both are defined.

These functions are the whole contract between the board and the statistics; ``polypbench.evaluate`` is to provide
the same functions (see the module's ``__all__``), and this module will then delegate to it.

- **Rank groups** (challengeR's "test, then rank", with a one-sided paired bootstrap test at ``alpha`` = 5%):
  entries in order of their point estimates; an entry joins the group of the entries above it unless it is
  significantly worse than the group's first entry, i.e. unless the share of paired replicates in which it is at
  least as good as that entry is below ``alpha`` (p = (1 + #{d <= 0}) / (1 + n), d = leader minus entry, oriented
  so that larger is better). A group shares the rank of its first entry (competition ranking: 1, 1, 3).
- **Rank stability**: each replicate ranks the entries (ties share the lower rank, undefined values rank last);
  ``rank_distribution`` is the share of replicates giving each entry each rank (Maier-Hein et al. 2018).
- **Comparison** of A and B: the paired difference A - B (point estimate and 95% percentile interval over the
  paired replicates) and P(A better than B), the share of paired replicates in which A is strictly better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
"""Level of the one-sided paired bootstrap test behind rank groups."""


def _oriented(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr if higher_is_better else -arr


def paired_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` per replicate, over the replicates where both are defined."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"replicate vectors of {a.shape} and {b.shape}: expected paired vectors of one length")
    both = np.isfinite(a) & np.isfinite(b)
    return a[both] - b[both]


def p_not_better(a: np.ndarray, b: np.ndarray, higher_is_better: bool = True) -> float:
    """One-sided paired bootstrap p-value of "A is better than B": the share of paired replicates where A is not
    better, ``(1 + #{d <= 0}) / (1 + n)``; 1.0 without any paired replicate."""
    d = paired_difference(_oriented(a, higher_is_better), _oriented(b, higher_is_better))
    return float((1 + np.count_nonzero(d <= 0)) / (1 + len(d)))


def _order(points: np.ndarray) -> np.ndarray:
    """Indices best first (points oriented: larger is better); undefined last; ties by input order."""
    key = np.where(np.isfinite(points), -points, np.inf)
    return np.argsort(key, kind="stable")


def rank_groups(points: Sequence[float | None], replicates: np.ndarray, higher_is_better: bool = True,
                alpha: float = ALPHA) -> list[int]:
    """The rank of each entry (input order) after grouping entries that are not significantly worse than their
    group's first entry. ``points`` (N,): point estimates (None: undefined, ranked last in a group of its own);
    ``replicates`` (N, R)."""
    pts = _oriented(np.array([np.nan if p is None else p for p in points], dtype=np.float64), higher_is_better)
    if len(pts) == 0:
        return []
    reps = _oriented(np.asarray(replicates, dtype=np.float64).reshape(len(pts), -1), higher_is_better)
    ranks = [0] * len(pts)
    leader = -1
    for position, i in enumerate(_order(pts)):
        undefined = not np.isfinite(pts[i])
        if leader < 0 or undefined or p_not_better(reps[leader], reps[i]) < alpha:
            leader, rank = i, position + 1
        ranks[i] = rank
    return ranks


def rank_distribution(replicates: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """(N, N): row i, column k = share of replicates in which entry i has rank k + 1 (ties share the lower rank;
    undefined values rank after every defined one)."""
    reps = _oriented(np.asarray(replicates, dtype=np.float64), higher_is_better)
    n, r = reps.shape if reps.ndim == 2 else (len(reps), 0)
    out = np.zeros((n, n))
    if n == 0 or r == 0:
        return out
    key = np.where(np.isfinite(reps), -reps, np.inf)  # (N, R): smaller is better
    ordered = np.sort(key, axis=0)
    for j in range(r):  # competition rank: 1 + the number of entries strictly better in this replicate
        ranks = np.searchsorted(ordered[:, j], key[:, j], side="left")
        out[np.arange(n), ranks] += 1.0
    return out / r


@dataclass(frozen=True)
class Comparison:
    """A minus B on one metric: ``difference`` (point estimates), its 95% percentile ``ci95`` over ``n`` paired
    replicates (None when n < 2), and ``p_a_better`` (None when n == 0)."""

    difference: float | None
    ci95: tuple[float, float] | None
    p_a_better: float | None
    n: int


def compare_pair(a_point: float | None, a_replicates: np.ndarray, b_point: float | None, b_replicates: np.ndarray,
                 higher_is_better: bool = True) -> Comparison:
    """The paired comparison of entries A and B on one metric (see the module docstring)."""
    d = paired_difference(a_replicates, b_replicates)
    diff = None if a_point is None or b_point is None else float(a_point - b_point)
    ci = (float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))) if len(d) >= 2 else None
    better = d > 0 if higher_is_better else d < 0
    return Comparison(diff, ci, float(better.mean()) if len(d) else None, len(d))


__all__ = ["ALPHA", "Comparison", "compare_pair", "p_not_better", "paired_difference", "rank_distribution",
           "rank_groups"]
