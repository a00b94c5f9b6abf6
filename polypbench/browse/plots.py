"""The overview plots of a dataset in the browser (matplotlib, Agg, SVG): class balance per split and fold, the
size histogram with the class thresholds, frames per polyp.

Each function takes the polyps table of one manifest (one row per polyp) and returns the SVG text; the caller
writes it beside the page. Colours follow the size classes, in :data:`~polypbench.sizes.CLASS_SCHEMES` order.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from polypbench.sizes import CLASS_SCHEMES, DIMINUTIVE_MAX_MM, LARGE_MIN_MM

if TYPE_CHECKING:
    from matplotlib.axes import Axes

CLASS_COLOURS = ("#3a87d6", "#d0821a", "#c9423e")
"""Diminutive, small, large: the same colour for a class in every plot (and the pages' class badges)."""
CLASSES = CLASS_SCHEMES["triclass"]


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # no date: reproducible
    return buf.getvalue()


def class_balance_svg(polyps: pd.DataFrame, groups: Sequence[tuple[str, pd.Series]]) -> str:
    """Polyps per size class in each group (``(label, boolean mask over polyps)``: the splits and folds), as
    horizontal stacked bars, the first group on top."""
    fig, ax = _figure(5.2, 0.32 * len(groups) + 1.4)
    labels = [label for label, _ in groups]
    counts = np.array([[int(((polyps["size_class3"] == c) & mask).sum()) for c in range(len(CLASSES))]
                       for _, mask in groups])
    y = np.arange(len(groups))[::-1]
    left = np.zeros(len(groups))
    for c, name in enumerate(CLASSES):
        ax.barh(y, counts[:, c], left=left, color=CLASS_COLOURS[c], label=name, height=0.7)
        left += counts[:, c]
    ax.set(yticks=y, yticklabels=labels, xlabel="polyps per size class")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.legend(loc="outside upper center", ncols=len(CLASSES), fontsize=8, frameon=False)
    return _svg(fig)


def size_histogram_svg(polyps: pd.DataFrame) -> str:
    """Polyps per whole millimetre of size, stacked by split, with the 5 and 10 mm class thresholds."""
    fig, ax = _figure(5.2, 3.0)
    sizes = polyps["size_mm"].astype(float)
    top = int(np.ceil(max(float(sizes.max()) if len(sizes) else 0.0, LARGE_MIN_MM + 1))) + 1
    bins = [i + 0.5 for i in range(top + 1)]  # one bar per whole millimetre (sizes are mostly whole)
    splits = [s for s in ("train", "validation", "test") if (polyps["split"] == s).any()]
    ax.hist([sizes[polyps["split"] == s] for s in splits], bins=bins, stacked=True, label=splits,
            color=["#7aa6c2", "#b7c97a", "#c28a7a"][:len(splits)])
    for threshold in (DIMINUTIVE_MAX_MM, LARGE_MIN_MM):
        ax.axvline(threshold + (0.5 if threshold == DIMINUTIVE_MAX_MM else -0.5), color="#444", lw=0.8, ls="--")
    ax.set(xlabel="size (mm); dashed: the class limits (<= 5, >= 10 mm)", ylabel="polyps", xlim=(0, top + 0.5))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return _svg(fig)


def frames_histogram_svg(polyps: pd.DataFrame) -> str:
    """How many annotated frames (boxes) each polyp has."""
    fig, ax = _figure(5.2, 2.6)
    n = polyps["n_frames"].astype(int)
    high = int(n.max()) if len(n) else 1
    edges = range(1, high + 2) if high <= 30 else np.unique(np.geomspace(1, high + 1, 30).round())
    bins = [float(e) - 0.5 for e in edges]
    ax.hist(n, bins=bins, color="#7aa6c2")
    if high > 30:
        ax.set_xscale("log")
    else:
        ax.set_xlim(0.5, max(high, 5) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="annotated frames per polyp", ylabel="polyps")
    return _svg(fig)
