"""The report's pictures, drawn with matplotlib's Agg canvas (no display, no pyplot state) as small PNGs.

Each function takes what a :class:`~polypbench.evaluate.Result` already holds (the per-polyp table, a confusion
matrix) or a run's per-epoch history and returns PNG bytes, or None when its input is absent (no size predictions,
no probabilities, no run). The size thresholds come from :mod:`polypbench.sizes` only.

The Bland-Altman numbers (bias, 95% limits of agreement) are :func:`polypbench.evaluate.agreement.bland_altman`'s,
the scorer's own.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from polypbench.evaluate.agreement import BlandAltman, bland_altman
from polypbench.sizes import CLASS_SCHEMES, DIMINUTIVE_MAX_MM, LARGE_MIN_MM

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 90
"""Resolution of every picture: small files (a plot is 15-40 kB), sharp enough at the page's width."""
JITTER_MM = 0.3
"""Half-width of the horizontal jitter of the size plot: true sizes are whole millimetres, so polyps of one size
would sit on one line; each point moves by a fixed pseudo-random amount of at most this much."""
RELIABILITY_BINS = 10
"""Equal-width confidence bins of the reliability diagram and its expected calibration error."""
BAND_COLORS = ("#dbeafe", "#fef3c7", "#fee2e2")
"""Fill of the diminutive, small and large class bands (blue, amber, red; light, so points stay visible)."""


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def jittered(sizes: Sequence[float] | Any) -> np.ndarray:
    """The size plot's x positions: each size moved by at most :data:`JITTER_MM`, the same moves for the same
    number of polyps (a seeded generator), so a report is reproducible."""
    values = np.asarray(sizes, dtype=float)
    return values + np.random.default_rng(0).uniform(-JITTER_MM, JITTER_MM, len(values))


def _has_sizes(table: pd.DataFrame | None) -> bool:
    return table is not None and len(table) > 0 and not table["pred_size_mm"].isna().all()


def size_plot_png(table: pd.DataFrame | None) -> bytes | None:
    """Predicted vs true size per polyp over the three class bands (a point inside the band square of its true
    class is classed right by its size), or None without size predictions."""
    if table is None or not _has_sizes(table):
        return None
    fig = _figure(5.2, 4.8)
    ax = fig.add_subplot()
    top = float(max(table["size_mm"].max(), table["pred_size_mm"].max(), LARGE_MIN_MM)) * 1.08
    edges = (0.0, DIMINUTIVE_MAX_MM, LARGE_MIN_MM, top)
    for k, name in enumerate(CLASS_SCHEMES["triclass"]):
        ax.fill_between([edges[k], edges[k + 1]], edges[k], edges[k + 1], color=BAND_COLORS[k], lw=0,
                        label=f"{name}: class right")
    for t in (DIMINUTIVE_MAX_MM, LARGE_MIN_MM):
        ax.axvline(t, color="grey", lw=0.6, ls=":")
        ax.axhline(t, color="grey", lw=0.6, ls=":")
    ax.plot([0, top], [0, top], color="grey", lw=1)
    for name, part in table.assign(_x=jittered(table["size_mm"])).groupby("dataset", sort=True):
        ax.scatter(part["_x"], part["pred_size_mm"], s=16, alpha=0.7, label=f"{name} ({len(part)})")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel=f"true size (mm, jittered ±{JITTER_MM:g})",
           ylabel="predicted size (mm, polyp median)")
    ax.legend(loc="upper left", fontsize=7, framealpha=0.8)
    return _png(fig)


def bland_altman_png(table: pd.DataFrame | None) -> tuple[bytes, BlandAltman] | None:
    """The Bland-Altman plot per polyp (difference predicted - true against their mean) with the bias and the 95%
    limits of agreement drawn and labelled, and those numbers; None without size predictions."""
    if table is None or not _has_sizes(table):
        return None
    pred, true = table["pred_size_mm"].to_numpy(np.float64), table["size_mm"].to_numpy(np.float64)
    loa = bland_altman(pred, true)
    fig = _figure(5.2, 3.6)
    ax = fig.add_subplot()
    ax.scatter((pred + true) / 2, pred - true, s=14, alpha=0.7, color="#2563eb")
    ax.axhline(0, color="grey", lw=0.6)
    for y, text, style in ((loa.bias, f"bias {loa.bias:+.2f}", "-"), (loa.upper, f"+1.96 SD {loa.upper:+.2f}", "--"),
                           (loa.lower, f"-1.96 SD {loa.lower:+.2f}", "--")):
        ax.axhline(y, color="#b91c1c", lw=1, ls=style)
        ax.annotate(text, (1, y), xycoords=("axes fraction", "data"), xytext=(-4, 2), textcoords="offset points",
                    ha="right", fontsize=7, color="#b91c1c")
    ax.set(xlabel="mean of predicted and true size (mm)", ylabel="predicted - true (mm)")
    return _png(fig), loa


def confusion_png(cm: np.ndarray, classes: Sequence[str]) -> bytes:
    """Two heatmaps of one confusion matrix (rows true, columns predicted): counts, and each row divided by its
    total (the share of a true class predicted as each class; the diagonal is the class's sensitivity)."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    rates = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    fig = _figure(7.2, 3.2)
    for i, (values, title, fmt) in enumerate(((cm, "counts", "{:g}"), (rates, "row-normalised", "{:.2f}"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.imshow(values / values.max() if values.max() > 0 else values, cmap="Blues", vmin=0, vmax=1)
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=9,
                    color="white" if values.max() > 0 and v / values.max() > 0.6 else "black")
        ticks = range(len(classes))
        ax.set_xticks(ticks, classes, fontsize=8)
        ax.set_yticks(ticks, classes, fontsize=8)
        ax.set(title=title, xlabel="predicted", ylabel="true" if i == 0 else "")
    return _png(fig)


@dataclass(frozen=True)
class Calibration:
    """Top-label calibration of per-polyp probabilities: per bin its count, mean confidence and accuracy, and the
    expected calibration error (the count-weighted mean |accuracy - confidence|)."""

    ece: float
    n: int
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray


def calibration(probs: np.ndarray, true_class: np.ndarray, bins: int = RELIABILITY_BINS) -> Calibration:
    """:class:`Calibration` of ``probs`` (n, K) against ``true_class`` (n,): confidence = the highest
    probability, correct = its class is the true one; ``bins`` equal-width bins over [0, 1]."""
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=1)
    correct = (np.argmax(probs, axis=1) == np.asarray(true_class)).astype(np.float64)
    which = np.clip((conf * bins).astype(int), 0, bins - 1)
    counts = np.bincount(which, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=bins) / counts
        accuracy = np.bincount(which, weights=correct, minlength=bins) / counts
    filled = counts > 0
    ece = float(np.sum(counts[filled] * np.abs(accuracy[filled] - mean_conf[filled])) / max(len(conf), 1))
    return Calibration(ece, len(conf), counts, mean_conf, accuracy)


PROB_COLUMNS = ("pred_p0", "pred_p1", "pred_p2")


def reliability_png(table: pd.DataFrame | None) -> tuple[bytes, Calibration] | None:
    """The reliability diagram of the per-polyp mean probabilities (accuracy per confidence bin against the
    diagonal, bar widths the bins, the polyps per bin beneath) with its ECE; None without probabilities."""
    if table is None or not all(c in table for c in PROB_COLUMNS) or not len(table):
        return None
    cal = calibration(table[list(PROB_COLUMNS)].to_numpy(np.float64), table["size_class3"].to_numpy())
    fig = _figure(4.6, 4.4)
    ax, below = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    width = 1 / len(cal.counts)
    left = np.arange(len(cal.counts)) * width
    filled = cal.counts > 0
    ax.bar(left[filled], cal.accuracy[filled], width=width, align="edge", color="#93c5fd", edgecolor="#1d4ed8",
           label="accuracy")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="calibrated")
    ax.scatter(cal.confidence[filled], cal.accuracy[filled], s=12, color="#1d4ed8", zorder=3)
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy (polyps)", title=f"ECE {cal.ece:.3f} ({cal.n} polyps)")
    ax.legend(loc="upper left", fontsize=7)
    below.bar(left, cal.counts, width=width, align="edge", color="#cbd5e1", edgecolor="#64748b")
    below.set(xlabel="confidence (highest mean class probability)", ylabel="polyps")
    return _png(fig), cal


SKIPPED_CURVES = ("epoch", "lr", "seconds", "best")
"""History columns that are not curves."""


def training_png(history: Sequence[Mapping[str, Any]]) -> bytes | None:
    """A run's per-epoch history (``metrics.jsonl`` rows): the losses in one panel, every other numeric
    validation metric in a second; None for an empty history."""
    df = pd.DataFrame(list(history))
    if df.empty or "epoch" not in df:
        return None
    numeric = [c for c in df.columns if c not in SKIPPED_CURVES and pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c]) and df[c].notna().any()]
    losses = [c for c in numeric if c.endswith("loss")]
    others = [c for c in numeric if c not in losses and not c.startswith("train_")]
    panels = [p for p in (losses, others) if p]
    if not panels:
        return None
    fig = _figure(7.2, 3.0)
    for i, cols in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for c in cols:
            ax.plot(df["epoch"], df[c], marker="o", ms=3, lw=1.2, label=c)
        if "best" in df and df["best"].astype(bool).any() and "val_loss" in cols:
            best = df.loc[df["best"].astype(bool), "epoch"].iloc[-1]
            ax.axvline(best, color="grey", lw=0.6, ls=":", label=f"best epoch {best}")
        ax.set(xlabel="epoch", title="losses" if cols is losses else "validation metrics")
        ax.legend(fontsize=7)
    return _png(fig)
