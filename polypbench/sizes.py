"""Size classes: the only place the clinical size thresholds live.

Polyp size decides surveillance intervals. The convention (and the HAG/GR paper's) is
diminutive ``size_mm <= 5``, small ``5 < size_mm < 10``, large ``size_mm >= 10``. Every other module
(converters, loaders, scoring, leaderboard) calls the functions here instead of comparing numbers itself.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

DIMINUTIVE_MAX_MM = 5.0
"""Largest size (inclusive) that is still diminutive; also the ``binary5`` threshold."""
LARGE_MIN_MM = 10.0
"""Smallest size (inclusive) that is large; also the ``binary10`` threshold (the paper's binary task)."""

CLASS_SCHEMES: dict[str, tuple[str, ...]] = {
    "triclass": ("diminutive", "small", "large"),
    "binary10": ("<10 mm", ">=10 mm"),
    "binary5": ("<=5 mm", ">5 mm"),
}
"""Size-class scheme (the classification task scored) -> class names, in label order (label i is
``CLASS_SCHEMES[task][i]``). Not the training tasks (:data:`polypbench.train.tasks.TASKS`), which include regression."""


def _as_sizes(size_mm: npt.ArrayLike) -> np.ndarray:
    sizes = np.asarray(size_mm, dtype=np.float64)
    if np.any(~np.isfinite(sizes)) or np.any(sizes < 0):
        raise ValueError("size_mm: expected finite, non-negative sizes in millimetres")
    return sizes


def size_class3(size_mm: npt.ArrayLike) -> np.ndarray:
    """Triclass label per size: 0 diminutive (<=5), 1 small (5-10), 2 large (>=10)."""
    sizes = _as_sizes(size_mm)
    return ((sizes > DIMINUTIVE_MAX_MM).astype(np.int8) + (sizes >= LARGE_MIN_MM).astype(np.int8)).astype(np.int8)


def size_class2(size_mm: npt.ArrayLike) -> np.ndarray:
    """Binary label per size, the paper's task: 0 (<10 mm) vs 1 (>=10 mm)."""
    return (_as_sizes(size_mm) >= LARGE_MIN_MM).astype(np.int8)


def size_class_binary5(size_mm: npt.ArrayLike) -> np.ndarray:
    """Binary label per size at the diminutive threshold: 0 (<=5 mm) vs 1 (>5 mm)."""
    return (_as_sizes(size_mm) > DIMINUTIVE_MAX_MM).astype(np.int8)


_BY_TASK = {"triclass": size_class3, "binary10": size_class2, "binary5": size_class_binary5}


def size_class(size_mm: npt.ArrayLike, task: str) -> np.ndarray:
    """Label per size for ``task`` (one of :data:`CLASS_SCHEMES`)."""
    try:
        fn = _BY_TASK[task]
    except KeyError:
        raise ValueError(f"task {task!r}: expected one of {', '.join(CLASS_SCHEMES)}") from None
    return fn(size_mm)


def triclass_to_task(class3: npt.ArrayLike, task: str) -> np.ndarray:
    """Map triclass labels to ``task`` labels (``binary5`` and ``binary10`` are coarsenings of triclass)."""
    labels = np.asarray(class3, dtype=np.int8)
    if task == "triclass":
        return labels
    if task == "binary10":
        return (labels == 2).astype(np.int8)
    if task == "binary5":
        return (labels >= 1).astype(np.int8)
    raise ValueError(f"task {task!r}: expected one of {', '.join(CLASS_SCHEMES)}")
