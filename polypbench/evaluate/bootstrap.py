"""The patient bootstrap, vectorised: one count matrix, sufficient statistics per patient, matrix products.

Row 0 of every count matrix is all ones (the observed data, i.e. the point estimate); rows 1..R are replicates in
which each patient appears ``counts[r, p]`` times. Patients are resampled with replacement within their dataset
(stratified), so every replicate keeps each dataset's number of patients and per-dataset and pooled numbers come
from the same resamples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as np

CI_LEVEL = 95.0
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


def weighted_median(values: np.ndarray, patient: np.ndarray, weight: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Exact weighted median of ``values`` per row of ``counts`` (see :class:`MedianSearch`)."""
    return MedianSearch.build(values, patient, weight, counts.shape[1]).median(counts)


@dataclass(frozen=True)
class Stat:
    """A metric's point value and 95% percentile CI over the replicates where it is defined.

    ``value`` None means undefined on the observed data (``reason`` says why); ``ci95`` None means no replicate
    (or none with the metric defined); ``undefined_replicates`` counts replicates where it was undefined.

    Adding a field means adding it here, with a default: the JSON form (:meth:`to_dict`, :meth:`from_dict`) follows
    the dataclass fields, and the formatter (:mod:`polypbench.evaluate.format`) reads only what it shows.
    """

    value: float | None
    ci95: tuple[float, float] | None
    undefined_replicates: int = 0
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: fields without a default always, the others only when they differ from their default."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.default is MISSING or value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Stat:
        """Inverse of :meth:`to_dict` (absent fields take their default; keys that are not fields are ignored)."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            value = doc.get(f.name, None if f.default is MISSING else f.default)
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value  # JSON arrays back to tuples
        return cls(**kwargs)


def summarize(samples: np.ndarray, reason: str) -> Stat:
    """Stat from (1 + R,) samples: row 0 the point value, rows 1.. the replicates (NaN = undefined)."""
    point = float(samples[0])
    reps = samples[1:]
    defined = reps[~np.isnan(reps)]
    tail = (100.0 - CI_LEVEL) / 2.0
    ci = None
    if len(defined):
        lo, hi = np.percentile(defined, [tail, 100.0 - tail])
        ci = (float(lo), float(hi))
    undefined = int(len(reps) - len(defined))
    if np.isnan(point):
        return Stat(None, ci, undefined, reason)
    return Stat(point, ci, undefined)
