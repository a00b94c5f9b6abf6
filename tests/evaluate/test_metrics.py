"""Metrics from confusion matrices agree with scikit-learn on random inputs, and with hand-computed values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from polypbench.evaluate import metrics

from .helpers import HAND_CM


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


labels = st.integers(min_value=2, max_value=3).flatmap(
    lambda k: st.tuples(
        st.just(k),
        st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=60),
    )
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(labels)
def test_agrees_with_sklearn(case: tuple[int, list[tuple[int, int]]]) -> None:
    k, pairs = case
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    got = metrics.classification(confusion(y_true, y_pred, k))
    lab = list(range(k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on zero divisions; we compare those cases as NaN
        recall = skm.recall_score(y_true, y_pred, labels=lab, average=None, zero_division=np.nan)
        precision = skm.precision_score(y_true, y_pred, labels=lab, average=None, zero_division=np.nan)
        mcm = skm.multilabel_confusion_matrix(y_true, y_pred, labels=lab)
        kappa_l = skm.cohen_kappa_score(y_true, y_pred, labels=lab, weights="linear")
        kappa_q = skm.cohen_kappa_score(y_true, y_pred, labels=lab, weights="quadratic")
    tn, fp = mcm[:, 0, 0], mcm[:, 0, 1]
    specificity = np.where(tn + fp > 0, tn / np.maximum(tn + fp, 1), np.nan)
    np.testing.assert_allclose(got["sensitivity"], recall, equal_nan=True, atol=1e-12)
    np.testing.assert_allclose(got["precision"], precision, equal_nan=True, atol=1e-12)
    np.testing.assert_allclose(got["specificity"], specificity, equal_nan=True, atol=1e-12)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert got["weighted_f1"] == pytest.approx(
        skm.f1_score(y_true, y_pred, labels=lab, average="weighted", zero_division=0.0))
    present = set(y_true) | set(y_pred)
    if present == set(lab):  # every class's F1 defined
        f1 = skm.f1_score(y_true, y_pred, labels=lab, average=None)
        np.testing.assert_allclose(got["f1"], f1)
        assert got["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, labels=lab, average="macro"))
    else:
        assert np.isnan(got["macro_f1"])
    if set(y_true) == set(lab):
        assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    else:
        assert np.isnan(got["balanced_accuracy"])
    if k == 3:
        kap = metrics.kappas(confusion(y_true, y_pred, k))
        np.testing.assert_allclose(kap["kappa_linear"], kappa_l, equal_nan=True, atol=1e-12)
        np.testing.assert_allclose(kap["kappa_quadratic"], kappa_q, equal_nan=True, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=40), st.integers(1, 4))
def test_vectorised_over_replicates_matches_one_at_a_time(pairs: list[tuple[int, int]], reps: int) -> None:
    rng = np.random.default_rng(len(pairs))
    y = np.array(pairs)
    stack = np.stack([confusion(y[rng.integers(0, len(y), len(y))][:, 0], y[:, 1], 3) for _ in range(reps)])
    together = metrics.classification(stack)
    for r in range(reps):
        alone = metrics.classification(stack[r])
        for name, value in alone.items():
            np.testing.assert_allclose(together[name][r], value, equal_nan=True, atol=1e-12)


def test_hand_computed_values() -> None:
    got = metrics.classification(HAND_CM)
    assert got["accuracy"] == pytest.approx(4 / 6)
    np.testing.assert_allclose(got["sensitivity"], [1 / 2, 1 / 2, 2 / 2])
    np.testing.assert_allclose(got["precision"], [1 / 1, 1 / 2, 2 / 3])
    np.testing.assert_allclose(got["f1"], [2 / 3, 1 / 2, 4 / 5])
    assert got["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 4 / 5) / 3)
    assert got["weighted_f1"] == pytest.approx((2 * 2 / 3 + 2 * 1 / 2 + 2 * 4 / 5) / 6)
    assert got["balanced_accuracy"] == pytest.approx(2 / 3)


def test_specificity_is_tn_over_tn_plus_fp_not_precision() -> None:
    # large: 4 polyps are not large (TN + FP = 4), one of them predicted large (FP = 1): 3/4. Precision is 2/3.
    got = metrics.classification(HAND_CM)
    np.testing.assert_allclose(got["specificity"], [4 / 4, 3 / 4, 3 / 4])
    assert got["specificity"][2] != pytest.approx(got["precision"][2])
    assert got["specificity"][1] != pytest.approx(got["precision"][1])


def test_hand_computed_kappa() -> None:
    # quadratic weights (|i-j|/2)^2: observed disagreement sum(w*O) = 0.25*1 + 0.25*1 = 0.5;
    # expected = rows (2,2,2) x columns (1,2,3) / 6 weighted: (0.25*(2*2+2*1+2*3+2*2) + 1*(2*3+2*1)) / 6 = 2
    assert metrics.weighted_kappa(HAND_CM, 2) == pytest.approx(1 - 0.5 / 2.0)


def test_undefined_is_nan_never_zero_or_one() -> None:
    cm = np.array([[3, 0, 0], [1, 2, 0], [0, 0, 0]])  # no large polyps, none predicted large
    got = metrics.classification(cm)
    assert np.isnan(got["sensitivity"][2]) and np.isnan(got["precision"][2]) and np.isnan(got["f1"][2])
    assert np.isnan(got["macro_f1"]) and np.isnan(got["balanced_accuracy"])
    assert got["specificity"][2] == 1.0  # defined: five true negatives, no false positive
    assert not np.isnan(got["accuracy"]) and not np.isnan(got["weighted_f1"])
    one_class = np.array([[4, 0], [0, 0]])
    assert np.isnan(metrics.weighted_kappa(np.pad(one_class, ((0, 1), (0, 1))), 1))


def test_kappa_is_undefined_only_when_truth_and_predictions_are_one_and_the_same_class() -> None:
    same = np.zeros((3, 3))
    same[1, 1] = 4
    assert np.isnan(metrics.weighted_kappa(same, 2))
    assert "one and the same class" in metrics.UNDEFINED["kappa_quadratic"]
    one_class_each = np.zeros((3, 3))
    one_class_each[0, 2] = 4  # truth all diminutive, predictions all large: defined (and 0)
    assert metrics.weighted_kappa(one_class_each, 2) == 0.0
    truth_one_class = np.zeros((3, 3))
    truth_one_class[0] = [2, 1, 1]  # truth a single class, predictions several: defined
    assert not np.isnan(metrics.weighted_kappa(truth_one_class, 1))


def test_support_counts_the_items_behind_each_denominator() -> None:
    per_patient = np.array([confusion(np.array([0, 0, 2]), np.array([0, 1, 2]), 3),
                            confusion(np.array([1]), np.array([1]), 3), np.zeros((3, 3))])
    sup = metrics.support(per_patient)
    assert list(sup["sensitivity"]) == [1, 1, 1] and list(sup["precision"]) == [1, 2, 1]
    assert list(sup["specificity"]) == [2, 1, 2] and list(sup["f1"]) == [1, 2, 1] and sup["all"] == 2
