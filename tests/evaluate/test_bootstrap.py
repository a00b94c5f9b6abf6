"""The vectorised patient bootstrap: weighted medians, replicate metrics and determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polypbench.evaluate import Note, NoteKind, bootstrap, metrics


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 30, allow_nan=False), st.integers(0, 5)), min_size=1, max_size=80),
    st.integers(0, 2**16),
)
def test_weighted_median_equals_numpy_median_of_the_resampled_units(units: list[tuple[float, int]], seed: int) -> None:
    values = np.array([v for v, _ in units])
    patient = np.array([p for _, p in units])
    counts = bootstrap.resample_counts(np.zeros(6, dtype=int), 20, seed)
    got = bootstrap.MedianSearch.build(values, patient, np.ones(len(values)), 6).median(counts)
    for r, row in enumerate(counts):
        expanded = np.repeat(values, row[patient].astype(int))
        if len(expanded):
            assert got[r] == pytest.approx(np.median(expanded))
        else:
            assert np.isnan(got[r])


def test_weighted_median_with_many_units_uses_buckets_exactly() -> None:
    rng = np.random.default_rng(1)
    values = rng.gamma(2.0, 2.0, 50_000)
    patient = rng.integers(0, 40, len(values))
    counts = bootstrap.resample_counts(np.zeros(40, dtype=int), 25, 3)
    got = bootstrap.MedianSearch.build(values, patient, np.ones(len(values)), 40).median(counts)
    for r in (0, 1, 7, 24):
        assert got[r] == pytest.approx(np.median(np.repeat(values, counts[r][patient].astype(int))))


def test_counts_are_seeded_stratified_and_start_with_the_observed_data() -> None:
    strata = np.array([0, 0, 0, 1, 1])
    a = bootstrap.resample_counts(strata, 50, 7)
    assert np.array_equal(a, bootstrap.resample_counts(strata, 50, 7))
    assert not np.array_equal(a, bootstrap.resample_counts(strata, 50, 8))
    assert np.all(a[0] == 1)
    assert np.all(a[1:, :3].sum(axis=1) == 3) and np.all(a[1:, 3:].sum(axis=1) == 2)


def test_replicate_metrics_equal_a_naive_recomputation_on_the_resampled_patients() -> None:
    rng = np.random.default_rng(0)
    n, n_patients = 300, 12
    patient = rng.integers(0, n_patients, n)
    y_true, y_pred = rng.integers(0, 3, n), rng.integers(0, 3, n)
    counts = bootstrap.resample_counts(np.zeros(n_patients, dtype=int), 10, 0)
    per_patient = np.bincount(patient * 9 + y_true * 3 + y_pred, minlength=n_patients * 9).reshape(n_patients, 9)
    fast = metrics.classification((counts @ per_patient).reshape(-1, 3, 3))
    for r in range(1, 11):
        drawn = [p for p in range(n_patients) for _ in range(int(counts[r, p]))]
        idx = np.concatenate([np.flatnonzero(patient == p) for p in drawn])
        cm = np.bincount(y_true[idx] * 3 + y_pred[idx], minlength=9).reshape(3, 3)
        naive = metrics.classification(cm)
        for name in ("macro_f1", "balanced_accuracy", "accuracy", "specificity"):
            np.testing.assert_allclose(fast[name][r], naive[name], equal_nan=True)


def test_summary_reports_undefined_replicates_and_null_point() -> None:
    # rows: point, 4 replicates, then the leave-one-out values of the group's 6 patients
    samples = np.array([np.nan, 0.5, np.nan, 0.7, 0.6, *[0.6] * 6])
    design = bootstrap.Design(4, np.arange(6), np.zeros(6, dtype=int))
    stat = bootstrap.summarize(samples, "no true units of this class", design)
    assert stat.value is None and stat.reason == "no true units of this class"
    assert stat.undefined_replicates == 1
    assert stat.ci95 is None  # no interval for an undefined value
    assert stat.to_dict()["value"] is None
    defined = np.array([0.55, 0.5, np.nan, 0.7, 0.6, *[0.6] * 6])
    stat = bootstrap.summarize(defined, "x", design)
    assert stat.value == 0.55 and stat.undefined_replicates == 1 and stat.replicates == 3
    assert stat.ci95 is not None and stat.ci95[0] <= 0.55 <= stat.ci95[1]
    assert Note(NoteKind.PARTLY_UNDEFINED, undefined=1, replicates=4) in stat.flags  # a quarter left out: flagged
    assert bootstrap.summarize(np.array([0.3]), "x", bootstrap.Design(0, np.arange(6), np.zeros(6))).ci95 is None


def brute_weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(weights[order])
    half = cum[-1] / 2
    return (v[np.argmax(cum >= half - 1e-12)] + v[np.argmax(cum > half + 1e-12)]) / 2


def test_patient_weighted_median_with_fractional_weights() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(5, 2, 6000).round(2)  # ties on purpose
    patient = rng.integers(0, 9, len(values))
    per_patient = np.bincount(patient, minlength=9)
    counts = bootstrap.resample_counts(np.zeros(9, dtype=int), 15, 2) / per_patient[None, :]
    got = bootstrap.MedianSearch.build(values, patient, np.ones(len(values)), 9).median(counts)
    for r in range(len(counts)):
        assert got[r] == pytest.approx(brute_weighted_median(values, counts[r][patient]))
