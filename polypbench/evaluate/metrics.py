"""Metrics computed from confusion matrices and error sums, vectorised over any leading (replicate) axes.

A confusion matrix ``cm[..., i, j]`` counts (or weighs) units of true class ``i`` predicted as ``j``. A metric whose
denominator is zero is NaN ("undefined"), never 0 or 1; :data:`UNDEFINED` says why.
"""

from __future__ import annotations

import numpy as np

CLASS_METRICS = ("sensitivity", "specificity", "precision", "f1")
"""Per-class metrics, arrays (..., K)."""
SUMMARY_METRICS = ("macro_f1", "weighted_f1", "balanced_accuracy", "accuracy")
"""Metrics over all classes, arrays (...)."""
KAPPA_METRICS = ("kappa_linear", "kappa_quadratic")
"""Cohen's weighted kappa (ordinal tasks only): disagreement weights |i-j|/(K-1), or its square."""
SIZE_METRICS = ("mae_mm", "median_ae_mm", "bias_mm")
"""Size errors in mm; bias is mean(predicted - true)."""

_KAPPA_UNDEFINED = "expected disagreement is zero: truth and predictions are all one and the same class (or no units)"

UNDEFINED = {
    "sensitivity": "no true units of this class",
    "specificity": "no true units outside this class",
    "precision": "no units predicted as this class",
    "f1": "class absent from both truth and predictions",
    "macro_f1": "some class is absent from both truth and predictions",
    "weighted_f1": "no units",
    "balanced_accuracy": "some class has no true units",
    "accuracy": "no units",
    "kappa_linear": _KAPPA_UNDEFINED,
    "kappa_quadratic": _KAPPA_UNDEFINED,
    "mae_mm": "no units",
    "median_ae_mm": "no units",
    "bias_mm": "no units",
}
"""Why each metric can be undefined."""


COMPONENTS = {"balanced_accuracy": "sensitivity", "macro_f1": "f1", "weighted_f1": "f1"}
"""Summary metrics that are (weighted) means of a per-class metric: the per-class metric averaged."""


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den == 0."""
    num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def classification(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class and summary metrics from confusion matrices (..., K, K); rows true, columns predicted.

    specificity_k = TN / (TN + FP): of the units whose true class is not k, the share not predicted as k.
    precision_k = TP / (TP + FP). Macro F1 and balanced accuracy are means over all K classes and undefined when any
    class's term is; weighted F1 weighs each class's F1 by its true support.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    true = cm.sum(axis=-1)
    pred = cm.sum(axis=-2)
    n = true.sum(axis=-1)
    fn, fp = true - tp, pred - tp
    tn = n[..., None] - tp - fn - fp
    f1 = _div(2 * tp, 2 * tp + fp + fn)
    sens = _div(tp, true)
    return {
        "sensitivity": sens,
        "specificity": _div(tn, tn + fp),
        "precision": _div(tp, pred),
        "f1": f1,
        "macro_f1": f1.mean(axis=-1),
        "weighted_f1": _div(np.where(true > 0, f1 * true, 0.0).sum(axis=-1), n),
        "balanced_accuracy": sens.mean(axis=-1),
        "accuracy": _div(tp.sum(axis=-1), n),
    }


def weighted_kappa(cm: np.ndarray, power: int) -> np.ndarray:
    """Cohen's kappa with disagreement weights (|i-j| / (K-1)) ** power (1 linear, 2 quadratic), from (..., K, K)."""
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[-1]
    idx = np.arange(k)
    w = (np.abs(idx[:, None] - idx[None, :]) / (k - 1)) ** power
    true = cm.sum(axis=-1)
    pred = cm.sum(axis=-2)
    n = true.sum(axis=-1)
    observed = (cm * w).sum(axis=(-2, -1))
    expected = _div(np.einsum("...i,ij,...j->...", true, w, pred), n)
    return 1.0 - _div(observed, expected)


def kappas(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Linear and quadratic weighted kappa."""
    return {"kappa_linear": weighted_kappa(cm, 1), "kappa_quadratic": weighted_kappa(cm, 2)}


def size_errors(
    weight_sum: np.ndarray, abs_sum: np.ndarray, err_sum: np.ndarray, median: np.ndarray
) -> dict[str, np.ndarray]:
    """MAE, median absolute error and bias (mean predicted - true) from weighted sums and a precomputed median."""
    return {"mae_mm": _div(abs_sum, weight_sum), "median_ae_mm": median, "bias_mm": _div(err_sum, weight_sum)}


def support(cm: np.ndarray) -> dict[str, np.ndarray]:
    """How many items (polyps or patients) each metric's denominator rests on, from per-item confusion matrices
    (..., I, K, K): an item counts when it has at least one unit in the denominator.

    Per-class metrics (..., K): ``sensitivity`` true units of the class, ``specificity`` true units of other
    classes, ``precision`` units predicted as the class, ``f1`` units true or predicted as the class. ``all`` (...):
    items with any unit, the support of accuracy, weighted F1, kappa and the size errors.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    true = cm.sum(axis=-1)
    pred = cm.sum(axis=-2)
    n = true.sum(axis=-1, keepdims=True)
    return {
        "sensitivity": (true > 0).sum(axis=-2),
        "specificity": (n - true > 0).sum(axis=-2),
        "precision": (pred > 0).sum(axis=-2),
        "f1": (true + pred - tp > 0).sum(axis=-2),
        "all": (n[..., 0] > 0).sum(axis=-1),
    }
