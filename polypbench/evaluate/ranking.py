"""Honest rankings from replicate vectors: rank groups, rank stability and paired comparisons.

Input: for each leaderboard entry, one metric's :class:`Replicates` (``score(..., keep_replicates=[key])`` then
``result.replicates(key)``), all computed on the SAME patient resamples: the server scores every submission with the
same seed and replicate count against the same split, and :func:`stack` refuses vectors whose resamples differ.
Because every entry is scored on the same resampled patients, differences are paired: a patient who is hard for
everyone moves every entry together and does not blur the comparison.

- :func:`rank_groups`: every pair of entries is compared by the paired difference's two-sided test
  (:func:`compare_pair`, the same statistic ``evaluate --compare`` and the leaderboard's ``/compare`` show), the
  family of all pairs is corrected by Holm's method, and an entry's rank is 1 + the number of entries significantly
  better than it: challengeR's significance ranking (Wiesenfarth et al., Sci Rep 2021) with Metrics Reloaded's
  advice (Maier-Hein et al., Nat Methods 2024) to report ranks together with their uncertainty rather than bare
  ranks. The chance of separating two equal entries is at most 5% (``benchmarks/ranking_error.py``).
- :func:`rank_distribution`: the bootstrap distribution of each entry's rank (challengeR's rank stability, its
  "blob plot" data), with Kendall's tau between the observed ranking and each replicate's.
- :func:`compare_pair` / :func:`compare_replicates`: the difference A - B with its interval
  (:func:`polypbench.evaluate.intervals.paired_t`), P(A > B) and the test's p-value, under the scorer's rule for
  withholding an interval (applied to both entries' own Stats); :func:`significance_map` for every pair.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polypbench.evaluate.intervals import TIE_TOL, paired_t
from polypbench.evaluate.keys import parse_key
from polypbench.evaluate.policy import CLASS_KINDS, Note, NoteKind, judge
from polypbench.evaluate.stat import Stat

ALPHA = 0.05
"""Familywise error rate of rank groups: the chance that any two entries of equal value are separated."""


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


@dataclass(frozen=True)
class RankGroups:
    """Entries best first (``order``: indices into the input); per input entry its ``rank`` (1 + the number of
    entries significantly better than it, competition style 1, 2, 2, 4; None when its value is undefined),
    ``group`` (0, 1, ... over the distinct ranks in order; None when undefined) and ``p_vs_above`` (the
    Holm-adjusted p-value of the test against the entry just above in ``order``; None for the first and for
    undefined entries). ``significant`` (E, E): entry i is significantly better than entry j."""

    order: list[int]
    rank: list[int | None]
    group: list[int | None]
    p_vs_above: list[float | None]
    significant: np.ndarray


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values of a family (1-D; NaN counts as 1): adjusted p < alpha is rejected at
    familywise error rate alpha, whatever the family's true nulls."""
    p = np.where(np.isnan(p), 1.0, np.asarray(p, dtype=np.float64))
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def pairwise(entries: Sequence[Replicates], stats: Sequence[Stat | None] | None = None) -> list[list[Stat | None]]:
    """(E, E) :func:`compare_replicates` of every pair i < j (None on and below the diagonal): entry i minus entry
    j, under the scorer's rule for paired results given each entry's own Stat in ``stats``."""
    stats = list(stats) if stats is not None else [None] * len(entries)
    n = len(entries)
    out: list[list[Stat | None]] = [[None] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            out[i][j] = compare_replicates(entries[i], entries[j], sides=(stats[i], stats[j]))
    return out


def rank_groups(entries: Sequence[Replicates], *, stats: Sequence[Stat | None] | None = None,
                higher_is_better: bool = True, alpha: float = ALPHA) -> RankGroups:
    """Rank groups: every pair of defined entries is compared by :func:`compare_pair` (the paired difference's
    two-sided test, ``p_value``, which is 1 where the paired result is withheld: too few patients, a side without an
    honest interval, e.g. a class from one patient); the family of all pairs is corrected by Holm's method, and
    an entry's rank is 1 + the number of entries significantly better than it. No entry is tested because of its
    observed position, so two equal entries are separated at most ``alpha`` of the time (up to the test's own
    calibration, ``benchmarks/ranking_error.py``); identical entries always share a rank.

    ``entries``: one metric's :class:`Replicates` of each entry, on the same resamples (:func:`stack`); ``stats``:
    each entry's own Stat of that metric (its verdict withholds the paired result). Entries with an undefined value
    come last, unranked.
    """
    points, _ = stack(entries)
    pts = points if higher_is_better else -points
    n = len(pts)
    defined = [i for i in range(n) if not np.isnan(pts[i])]
    order = sorted(defined, key=lambda i: (-pts[i], i)) + [i for i in range(n) if np.isnan(pts[i])]
    pairs = pairwise([entries[i] for i in defined], None if stats is None else [stats[i] for i in defined])
    iu = [(a, b) for a in range(len(defined)) for b in range(a + 1, len(defined))]
    raw = np.array([_p(pairs[a][b]) for a, b in iu], dtype=np.float64)
    adjusted = np.ones((n, n))
    significant = np.zeros((n, n), dtype=bool)
    if iu:
        adj = holm(raw)
        for (a, b), p in zip(iu, adj, strict=True):
            i, j = defined[a], defined[b]
            adjusted[i, j] = adjusted[j, i] = p
            if p < alpha:
                better, worse = (i, j) if pts[i] > pts[j] else (j, i)
                significant[better, worse] = True
    rank: list[int | None] = [None] * n
    p_above: list[float | None] = [None] * n
    for pos, i in enumerate(order[:len(defined)]):
        rank[i] = 1 + int(significant[:, i].sum())
        if pos:
            p_above[i] = float(adjusted[order[pos - 1], i])
    distinct = sorted({r for r in rank if r is not None})
    group = [None if r is None else distinct.index(r) for r in rank]
    return RankGroups(order, rank, group, p_above, significant)


def _p(stat: Stat | None) -> float:
    return 1.0 if stat is None or stat.p_value is None else stat.p_value


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
                 jackknife_a: np.ndarray, jackknife_b: np.ndarray, strata: np.ndarray, *,
                 sides: Sequence[Stat | None] = (), metric: str | None = None) -> Stat:
    """The paired difference A - B: the one statistic of ``evaluate --compare``, the leaderboard's ``/compare`` and
    its rank groups (:func:`rank_groups`).

    Its value, its interval and ``p_value``, the two-sided test of no difference that the interval inverts (p < 0.05
    exactly when the 95% interval excludes 0; :func:`~polypbench.evaluate.intervals.paired_t`: Student's t with the
    larger of the jackknife and bootstrap standard errors, its longer side stretched as the replicates' skew),
    and ``p_greater`` = P(A > B) over the replicates where both are defined (ties counted half). Under the scorer's
    rule (:mod:`polypbench.evaluate.policy`): too few patients for ``metric``, mostly undefined; and ``sides``, the
    two entries' own Stats of the metric: when either has no honest interval (a class from one patient), neither has
    the difference (the same reason), and their class flags are the difference's too. A withheld difference has no
    ``p_value``: rank groups never separate on it.
    """
    d = np.asarray(replicates_a, dtype=np.float64) - np.asarray(replicates_b, dtype=np.float64)
    jack = np.asarray(jackknife_a, dtype=np.float64) - np.asarray(jackknife_b, dtype=np.float64)
    strata = np.asarray(strata)
    point = value_a - value_b
    defined = d[~np.isnan(d)]
    p = None
    if len(defined):
        p = float(((defined > TIE_TOL).sum() + 0.5 * (np.abs(defined) <= TIE_TOL).sum())
                  / len(defined))
    undefined = int(len(d) - len(defined))
    known = [s for s in sides if s is not None]
    n_polyps = min((s.n_polyps or 0 for s in known), default=None)
    n_patients = min((s.n_patients or 0 for s in known), default=None)
    if np.isnan(point):
        return Stat(None, None, undefined, "undefined for either entry", p_greater=p, n_polyps=n_polyps,
                    n_patients=n_patients)
    verdict = judge(len(strata), (), undefined, len(d), metric=metric)
    reason = verdict.ci_reason or next((s.ci_reason for s in known if s.ci_reason is not None), None)
    ci = np.full(2, np.nan)
    p_value = np.nan
    if len(d) and reason is None:
        ci, p_arr = paired_t(np.asarray(point), d, jack, strata)
        p_value = float(p_arr)
    if reason is not None or np.isnan(ci).any():
        return Stat(float(point), None, undefined, ci_reason=reason or Note(NoteKind.NOT_COMPUTABLE), p_greater=p,
                    n_polyps=n_polyps, n_patients=n_patients)
    side_flags = [f for s in known for f in s.flags if f.kind in CLASS_KINDS]
    flags = tuple(dict.fromkeys([*side_flags, *verdict.flags]))
    return Stat(float(point), (float(ci[0]), float(ci[1])), undefined, flags=flags,
                replicates=len(d) - undefined if undefined else None, p_greater=p,
                p_value=None if np.isnan(p_value) else p_value, n_polyps=n_polyps, n_patients=n_patients)


def compare_replicates(a: Replicates, b: Replicates, *, sides: Sequence[Stat | None] = ()) -> Stat:
    """:func:`compare_pair` of two stored entries (same metric, same resamples), with their own Stats ``sides``."""
    stack([a, b])
    return compare_pair(a.value, b.value, a.replicates, b.replicates, a.jackknife, b.jackknife, a.strata,
                        sides=sides, metric=parse_key(a.key).metric)


def significance_map(entries: Sequence[Replicates], *, stats: Sequence[Stat | None] | None = None,
                     higher_is_better: bool = True, alpha: float = ALPHA) -> np.ndarray:
    """(E, E) bool: entry i is significantly better than entry j in :func:`rank_groups`' corrected test:
    challengeR's significance map."""
    return rank_groups(entries, stats=stats, higher_is_better=higher_is_better, alpha=alpha).significant
