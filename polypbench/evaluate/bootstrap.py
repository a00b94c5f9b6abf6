"""The patient bootstrap, vectorised: one count matrix, sufficient statistics per patient, matrix products.

Row 0 of every count matrix is all ones (the observed data, i.e. the point estimate); rows 1..R are replicates in
which each patient appears ``counts[r, p]`` times; the last P rows leave one patient out each (the jackknife that
gives the BCa acceleration, :mod:`polypbench.evaluate.intervals`). Patients are resampled with replacement within
their dataset (stratified), so every replicate keeps each dataset's number of patients and per-dataset and pooled
numbers come from the same resamples. :func:`summarize` builds a metric's :class:`~polypbench.evaluate.stat.Stat`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from polypbench.evaluate.intervals import (
    bca_interval,
    expanded_z,
    expansion,
    jackknife_counts,
    studentized_interval,
    widen_at_bounds,
)
from polypbench.evaluate.metrics import CLASS_METRICS, COMPONENTS
from polypbench.evaluate.policy import ClassSupport, Note, NoteKind, Verdict, judge
from polypbench.evaluate.stat import Stat

_BUCKETS = 2048


def resample_counts(strata: np.ndarray, n_replicates: int, seed: int) -> np.ndarray:
    """(1 + R, P) float64 patient multiplicities: row 0 ones, then R seeded stratified resamples."""
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    counts = np.ones((1 + n_replicates, len(strata)))
    for stratum in np.unique(strata):
        idx = np.flatnonzero(strata == stratum)
        counts[1:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_replicates)
    return counts


def count_matrix(strata: np.ndarray, n_replicates: int, seed: int) -> np.ndarray:
    """(1 + R + P, P): :func:`resample_counts`, then the leave-one-patient-out rows (none without replicates)."""
    counts = resample_counts(strata, n_replicates, seed)
    if n_replicates == 0:
        return counts
    return np.vstack([counts, jackknife_counts(len(strata))])


def per_patient_sums(patient: np.ndarray, values: np.ndarray, n_patients: int) -> np.ndarray:
    """Sum of ``values`` (n,) per patient, (P,)."""
    return np.bincount(patient, weights=values, minlength=n_patients)


def _scan(
    w: np.ndarray, g: np.ndarray, counts: np.ndarray, edges: np.ndarray, bucket_cum: np.ndarray, target: np.ndarray,
    strict: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``counts``: the first sorted position whose cumulative weight reaches ``target`` (> if strict,
    else >=), and, for the non-strict search, the first position exceeding it within the same bucket (-1: not there).
    Comparisons allow a relative 1e-12 so that fractional weights summing to exactly half (up to rounding) tie
    as they would in exact arithmetic.
    """
    tol = 1e-12 * np.maximum(np.abs(target), 1.0)
    above, at_least = target + tol, target - tol
    reached = (bucket_cum > above[:, None]) if strict else (bucket_cum >= at_least[:, None])
    last = len(edges) - 2
    bucket = np.where(reached.any(axis=1), np.argmax(reached, axis=1), last)
    base = np.where(bucket > 0, np.take_along_axis(bucket_cum, np.maximum(bucket - 1, 0)[:, None], 1)[:, 0], 0.0)
    start, stop = edges[bucket], edges[bucket + 1]
    width = int((stop - start).max())
    pos = np.minimum(start[:, None] + np.arange(width)[None, :], len(g) - 1)
    inside = np.arange(width)[None, :] < (stop - start)[:, None]
    unit = np.take_along_axis(counts, g[pos], axis=1) * w[pos]
    unit[~inside] = 0.0
    cum = np.cumsum(unit, axis=1)
    cum += base[:, None]
    hit = ((cum > above[:, None]) if strict else (cum >= at_least[:, None])) & inside
    first = start + np.where(hit.any(axis=1), np.argmax(hit, axis=1), stop - start - 1)
    if strict:
        return first, first
    over = (cum > above[:, None]) & inside
    after = np.where(over.any(axis=1), start + np.argmax(over, axis=1), -1)
    return first, after


@dataclass(frozen=True)
class MedianSearch:
    """Values sorted once, with per-(patient, bucket) weight sums: weighted medians for any count matrix.

    With total weight W the weighted median is the mean of the first sorted value whose cumulative weight is
    >= W/2 and the first whose cumulative weight is > W/2: with unit weights this is :func:`numpy.median`. Per count
    matrix, a (replicates x patients) @ (patients x buckets) product finds each replicate's bucket, then one bucket
    per replicate is scanned; NaN where the total weight is 0.
    """

    values: np.ndarray
    patient: np.ndarray
    weight: np.ndarray
    edges: np.ndarray
    per_bucket: np.ndarray

    @classmethod
    def build(cls, values: np.ndarray, patient: np.ndarray, weight: np.ndarray, n_patients: int, *,
              presorted: bool = False) -> MedianSearch:
        if not presorted:
            order = np.argsort(values, kind="stable")
            values, patient, weight = values[order], patient[order], weight[order]
        n_buckets = max(1, min(len(values), _BUCKETS))
        edges = np.linspace(0, len(values), n_buckets + 1).astype(np.int64)
        bucket_of = np.repeat(np.arange(n_buckets), np.diff(edges))
        per_bucket = np.bincount(patient * n_buckets + bucket_of, weights=weight, minlength=n_patients * n_buckets)
        return cls(values, patient, weight, edges, per_bucket.reshape(n_patients, n_buckets))

    def median(self, counts: np.ndarray) -> np.ndarray:
        """(rows of counts,) weighted medians; unit weight = counts[r, patient] * weight."""
        if len(self.values) == 0:
            return np.full(len(counts), np.nan)
        bucket_cum = np.cumsum(counts @ self.per_bucket, axis=1)
        total = bucket_cum[:, -1]
        half = total / 2.0
        w, g, edges = self.weight, self.patient, self.edges
        lo, hi = _scan(w, g, counts, edges, bucket_cum, half, strict=False)
        later = np.flatnonzero(hi < 0)
        if len(later):  # the first value past the half lies in a later bucket: search those replicates again
            hi[later] = _scan(w, g, counts[later], edges, bucket_cum[later], half[later], strict=True)[0]
        return np.where(total > 0, (self.values[lo] + self.values[hi]) / 2.0, np.nan)


@dataclass(frozen=True)
class Design:
    """How one dataset group was resampled, which is what its intervals need.

    Sample arrays have rows ``[observed, R replicates, P leave-one-patient-out values]`` (P: every patient of the
    split); ``jack_rows`` are the rows of this group's patients within the last block and ``strata`` their
    datasets. The interval's quantile is :func:`~polypbench.evaluate.intervals.expanded_z` of the group's patients
    and strata.
    """

    n_replicates: int
    jack_rows: np.ndarray
    strata: np.ndarray

    @property
    def n_patients(self) -> int:
        return len(self.jack_rows)

    @property
    def n_strata(self) -> int:
        return len(np.unique(self.strata))

    @property
    def z(self) -> float:
        return expanded_z(self.n_patients, self.n_strata)

    def split(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point, replicates, the group's jackknife values) of a sample array."""
        r = self.n_replicates
        return samples[0], samples[1:1 + r], samples[1 + r:][self.jack_rows]


def bca(samples: np.ndarray, design: Design) -> np.ndarray:
    """(2, ...) expanded BCa interval of a sample array (NaN without replicates or where undefined)."""
    if design.n_replicates == 0:
        return np.full((2, *samples.shape[1:]), np.nan)
    point, reps, jack = design.split(samples)
    return bca_interval(point, reps, jack, design.strata, design.z)


STUDENTIZED = ("mae_mm", "bias_mm")
"""Metrics whose interval is the bootstrap-t (means of size errors: skewed, with a linearization standard error)."""


def metric_interval(name: str, samples: np.ndarray, design: Design, *, values: Mapping[str, np.ndarray] | None = None,
                    confusion: np.ndarray | None = None, patients: Mapping[str, np.ndarray] | None = None,
                    se: np.ndarray | None = None) -> np.ndarray:
    """(2, ...) the interval of metric ``name`` from its samples (rows: point, replicates, jackknife; any trailing
    shape): the bootstrap-t for :data:`STUDENTIZED` metrics given their per-row standard errors ``se``, its distances
    from the value stretched by the small-sample :func:`~polypbench.evaluate.intervals.expansion` (Student's t
    with the patients' kurtosis in its degrees of freedom; clipped at 0 for MAE), else the expanded BCa interval,
    widened by Wilson's bound (:func:`~polypbench.evaluate.intervals.widen_at_bounds`) for class rates and class
    means at 0 or 1.

    ``values``: the task's other metrics' samples (the per-class rates a class mean averages, classes on the last
    axis); ``confusion`` the observed confusion matrix (..., K, K) (weighted F1's weights); ``patients`` the patient
    support (:func:`polypbench.evaluate.metrics.support`, classes on the last axis). Without them: no widening.
    """
    if design.n_replicates == 0:
        return np.full((2, *samples.shape[1:]), np.nan)
    if name in STUDENTIZED and se is not None:
        point, reps, jack = design.split(samples)
        se_point, se_reps, _ = design.split(se)
        ci = studentized_interval(point, reps, se_point, se_reps, expand=expansion(jack, design.strata))
        return np.maximum(ci, 0.0) if name == "mae_mm" else ci
    ci = bca(samples, design)
    if values is None or patients is None:
        return ci
    point, z = samples[0], design.z

    def first(a: np.ndarray) -> np.ndarray:  # classes first, as widen_at_bounds wants components
        return np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)

    if name in CLASS_METRICS:
        return widen_at_bounds(point, ci, point[None], np.ones((1, *point.shape)), patients[name][None], z)
    if name in COMPONENTS:
        comp = COMPONENTS[name]
        k = values[comp].shape[-1]
        if name == "weighted_f1" and confusion is not None:
            true = confusion.sum(axis=-1)
            weights = first(true / np.maximum(true.sum(axis=-1, keepdims=True), 1e-300))
        else:
            weights = np.full(k, 1.0 / k).reshape(k, *([1] * np.ndim(point)))
        return widen_at_bounds(point, ci, first(values[comp][0]), weights, first(patients[comp]), z)
    if name == "accuracy":
        return widen_at_bounds(point, ci, point[None], np.ones((1, *np.shape(point))),
                                         np.asarray(patients["all"])[None], z)
    return ci


def undefined_count(samples: np.ndarray, design: Design) -> np.ndarray:
    """Replicates in which the metric is undefined, per trailing position."""
    return np.isnan(samples[1:1 + design.n_replicates]).sum(axis=0)


def summarize(samples: np.ndarray, reason: str, design: Design, *, ci: np.ndarray | None = None,
              classes: tuple[ClassSupport, ...] = (), n_polyps: int | None = None, n_patients: int | None = None,
              class_polyps: tuple[int, ...] | None = None, metric: str | None = None) -> Stat:
    """The Stat of one metric from its (1 + R + P,) samples (row 0 the point value; NaN = undefined).

    ``ci`` (2,): its interval when computed elsewhere (default: :func:`bca`); ``classes``: the classes it rests on,
    for the rule of :mod:`polypbench.evaluate.policy`, with ``metric`` (its name: the rule's per-metric minimum of
    patients); the rest is copied into the Stat.
    """
    point = float(samples[0])
    r = design.n_replicates
    undefined = int(undefined_count(samples, design))
    ci = bca(samples, design) if ci is None else ci

    def stat(value: float | None, interval: tuple[float, float] | None, **kw: Any) -> Stat:
        return Stat(value, interval, n_polyps=n_polyps, n_patients=n_patients, class_polyps=class_polyps, **kw)

    if np.isnan(point):
        return stat(None, None, undefined_replicates=undefined, reason=reason)
    if r == 0:
        return stat(point, None)
    verdict = judge(design.n_patients, classes, undefined, r, metric=metric)
    if verdict.ci_reason is None and np.isnan(ci).any():
        verdict = Verdict(Note(NoteKind.NO_REPLICATE if undefined == r else NoteKind.NOT_COMPUTABLE), ())
    if verdict.ci_reason is not None:
        return stat(point, None, undefined_replicates=undefined, ci_reason=verdict.ci_reason)
    lo, hi = float(ci[0]), float(ci[1])
    return stat(point, (lo, hi), undefined_replicates=undefined, flags=verdict.flags,
                replicates=r - undefined if undefined else None)
