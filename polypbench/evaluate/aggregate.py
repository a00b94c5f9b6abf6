"""From validated predictions to scoring units: per polyp (the headline) and per frame (two weightings).

Aggregation of a polyp's frame predictions: median of ``size_mm``, mean of ``p0, p1, p2``, majority of ``class3``
with ties going to the smaller class. The class a unit is scored with comes from one source, in this order:
``class3`` (the submitter's own decision), else the argmax of ``p0, p1, p2`` (ties, within 1e-9, to the smaller
class), else
``size_mm`` through :func:`polypbench.sizes.size_class`. Binary tasks coarsen that triclass decision with
:func:`polypbench.sizes.triclass_to_task`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from polypbench.evaluate.truth import Truth
from polypbench.evaluate.validate import CLASS3, SIZE, ValidPredictions
from polypbench.sizes import size_class

AGGREGATION = {
    "size_mm": "median of the polyp's frame predictions",
    "p0,p1,p2": "mean of the polyp's frame probabilities",
    "class3": "majority of the polyp's frame labels; ties go to the smaller class",
    "class_source": "class3 if given, else argmax of p0,p1,p2 (values within 1e-9 of the maximum tie; ties to "
                    "the smaller class), else size_class(size_mm); "
                    "binary tasks coarsen the triclass decision (binary10: class 2; binary5: class 1 or 2)",
}

VIEWS = {
    "polyp": "HEADLINE. One unit per polyp; frame predictions aggregated per polyp first (see aggregation).",
    "frame": "One unit per frame row (box), every frame weight 1: the paper's view; polyps with many frames dominate.",
    "frame_patient": "One unit per frame row, weighted 1 / (the patient's number of frame rows): every patient counts "
                     "once, a patient's frames are averaged; confusion-matrix entries are patient-equivalents.",
    "patient": "One unit per patient: the surveillance interval a guideline assigns from the patient's polyps in "
               "this split (only those the dataset annotated), from the true and from the predicted sizes.",
}
"""Each view's name and what its numbers mean (written into the JSON)."""


@dataclass(frozen=True)
class Units:
    """One view's scoring units: truth, prediction, polyp and patient code and weight per unit."""

    view: str
    polyp: np.ndarray
    patient: np.ndarray
    weight: np.ndarray
    true_size: np.ndarray
    true_class3: np.ndarray
    pred_class3: np.ndarray
    pred_size: np.ndarray | None


def class_source(pred: ValidPredictions) -> str:
    """The column the class metrics come from (see the module docstring)."""
    if pred.class3 is not None:
        return CLASS3
    return "p0,p1,p2" if pred.probs is not None else SIZE


def decide_class3(size_mm: np.ndarray | None, probs: np.ndarray | None, class3: np.ndarray | None) -> np.ndarray:
    """The triclass decision per unit from the highest-priority source present."""
    if class3 is not None:
        return np.asarray(class3, dtype=np.int8)
    if probs is not None:
        return argmax_ties_low(probs)
    if size_mm is None:
        raise ValueError("no prediction column")
    return size_class(size_mm, "triclass")


PROB_TIE_TOL = 1e-9
"""Probabilities (or probability means) within this of the largest count as tied: the tie then goes to the smaller
class, whatever order the frames' probabilities were added in (sums of the same values in another order, or of
other values with the same mathematical mean, differ in the last bits)."""


def argmax_ties_low(probs: np.ndarray) -> np.ndarray:
    """Per row the smallest class whose probability is within :data:`PROB_TIE_TOL` of the row's maximum."""
    probs = np.asarray(probs, dtype=np.float64)
    top = probs.max(axis=1, keepdims=True)
    return np.argmax(probs >= top - PROB_TIE_TOL, axis=1).astype(np.int8)


def majority(group: np.ndarray, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """Most frequent label (0-2) per group; ties go to the smaller label."""
    votes = np.bincount(group * 3 + labels, minlength=n_groups * 3).reshape(n_groups, 3)
    return np.argmax(votes, axis=1).astype(np.int8)


def group_median(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` per group (every group non-empty)."""
    return pd.Series(values).groupby(group, sort=True).median().reindex(range(n_groups)).to_numpy(np.float64)


def group_mean(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Column means of ``values`` (n, k) per group."""
    counts = np.bincount(group, minlength=n_groups).astype(np.float64)
    sums = [np.bincount(group, weights=values[:, j], minlength=n_groups) for j in range(values.shape[1])]
    return np.column_stack(sums) / counts[:, None]


def per_polyp(pred: ValidPredictions, truth: Truth) -> tuple[np.ndarray | None, np.ndarray]:
    """Per-polyp predicted size (or None) and triclass decision, aggregating frame predictions if needed."""
    if pred.level == "polyp":
        return pred.size_mm, decide_class3(pred.size_mm, pred.probs, pred.class3)
    n, g = len(truth.polyps), truth.frame_polyp
    size = group_median(g, pred.size_mm, n) if pred.size_mm is not None else None
    probs = group_mean(g, pred.probs, n) if pred.probs is not None else None
    class3 = majority(g, pred.class3, n) if pred.class3 is not None else None
    return size, decide_class3(size, probs, class3)


def polyp_units(pred: ValidPredictions, truth: Truth) -> Units:
    """The headline view: one unit per polyp of the split."""
    size, class3 = per_polyp(pred, truth)
    polyps = truth.polyps
    return Units(
        view="polyp",
        polyp=np.arange(len(polyps), dtype=np.int64),
        patient=polyps["patient"].to_numpy(np.int64),
        weight=np.ones(len(polyps)),
        true_size=polyps["size_mm"].to_numpy(np.float64),
        true_class3=size_class(polyps["size_mm"].to_numpy(np.float64), "triclass"),
        pred_class3=class3,
        pred_size=size,
    )


def frame_units(pred: ValidPredictions, truth: Truth) -> Units:
    """One unit per frame row, weight 1 (the patient-weighted view rescales patients in the bootstrap counts)."""
    if pred.level != "frame":
        raise ValueError("frame views need frame-level predictions")
    polyp_size = truth.polyps["size_mm"].to_numpy(np.float64)
    patient = truth.polyps["patient"].to_numpy(np.int64)[truth.frame_polyp]
    return Units(
        view="frame",
        polyp=np.asarray(truth.frame_polyp, dtype=np.int64),
        patient=patient,
        weight=np.ones(len(patient)),
        true_size=polyp_size[truth.frame_polyp],
        true_class3=size_class(polyp_size, "triclass")[truth.frame_polyp],
        pred_class3=decide_class3(pred.size_mm, pred.probs, pred.class3),
        pred_size=pred.size_mm,
    )
