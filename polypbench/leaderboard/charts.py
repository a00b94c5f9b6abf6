"""The board's charts: one per metric, each entry's value as a dot and its 95% interval as a whisker (matplotlib,
server-rendered to SVG, embedded in the page as a ``data:`` image; no JavaScript).

A chart costs about 70 ms of CPU and a board page draws one per metric, so charts are kept (:data:`CACHED_CHARTS`,
least recently used first out) by what they show: a page whose entries did not change since the last view draws
nothing.

The chart draws what the scorer decided (:class:`~polypbench.evaluate.Stat`), never an interval of its own: a
flagged interval (the dagger of :mod:`polypbench.evaluate.format`) is dashed with a hollow dot, a withheld one is
a dot without a whisker marked "no CI", an undefined value is written "undefined". matplotlib is imported when the
first chart is drawn (the web process stays torch-free; matplotlib is a base dependency).
"""

from __future__ import annotations

import base64
import io
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from polypbench.evaluate import Stat

ACCENT = "#2563eb"
"""The colour of the primary metric's chart (and of the page's accent)."""
MUTED = "#475569"
"""The colour of the other metrics' charts."""
LABEL_CHARS = 34
"""Entry labels are cut to this many characters (with an ellipsis): a long method name never squeezes the plot."""
_LOCK = threading.Lock()
"""``rc_context`` changes matplotlib's global settings while a chart is written: one chart at a time."""
CACHED_CHARTS = 128
"""How many drawn charts a process keeps (a board page has one per metric, the primary's twice)."""


@dataclass(frozen=True)
class Point:
    """One entry of a chart: its label (rank group, team and method) and the metric's stat (None: absent)."""

    label: str
    stat: Stat | None


Drawn = tuple[str, tuple[float | None, tuple[float, float] | None, bool] | None]
"""What a chart shows of one :class:`Point`: its label and (value, interval, flagged), None for no stat."""


def _drawn(point: Point) -> Drawn:
    stat = point.stat
    if stat is None:
        return point.label, None
    return point.label, (stat.value, None if stat.ci95 is None else (stat.ci95[0], stat.ci95[1]), bool(stat.flags))


def _label(text: str) -> str:
    """One line, at most :data:`LABEL_CHARS` characters, ``$`` escaped (matplotlib would read mathtext)."""
    text = " ".join(text.split())
    if len(text) > LABEL_CHARS:
        text = text[: LABEL_CHARS - 1] + "\u2026"
    return text.replace("$", r"\$")


def _limits(points: Sequence[Drawn], unit_interval: bool) -> tuple[float, float]:
    """The x range: [0, 1] for a score (wider when a value or interval leaves it, e.g. kappa below 0); from 0 to
    the largest value or interval end, with room, for an error in mm."""
    ends = [x for _, shown in points if shown is not None and shown[0] is not None
            for x in (shown[0], *(shown[1] or ())) if math.isfinite(x)]
    if unit_interval:
        return min(0.0, *ends, 0.0) - 0.02, max(1.0, *ends, 1.0) + 0.02
    top = max([*ends, 0.0]) or 1.0
    return -0.03 * top, top * 1.12


WIDE_IN, NARROW_IN = 10.0, 4.6
"""Chart widths in inches (96 px each): the primary chart across the page; the others, and the primary on a phone."""


def whisker_chart(points: Sequence[Point], metric: str, *, higher_is_better: bool, unit_interval: bool,
                  primary: bool = False, width_in: float = NARROW_IN) -> str:
    """The chart of one metric as a ``data:image/svg+xml`` URI, ``width_in`` inches wide: entries top to bottom in
    ``points``' order (the board's), the value as a dot and its 95% interval as a whisker. Drawn once per
    distinct content (:data:`CACHED_CHARTS`)."""
    return _chart(tuple(_drawn(p) for p in points), metric, higher_is_better, unit_interval, primary, width_in)


@lru_cache(maxsize=CACHED_CHARTS)
def _chart(points: tuple[Drawn, ...], metric: str, higher_is_better: bool, unit_interval: bool, primary: bool,
           width_in: float) -> str:
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    color = ACCENT if primary else MUTED
    n = max(len(points), 1)
    with _LOCK, matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "polypbench"}):  # text as text
        fig = Figure(figsize=(width_in, 0.7 + 0.3 * n), dpi=96, layout="constrained")
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        lo, hi = _limits(points, unit_interval)
        for y, (_, shown) in enumerate(points):
            value = None if shown is None else shown[0]
            if shown is None or value is None:
                ax.text(lo + 0.01 * (hi - lo), y, "undefined" if shown is not None else "-", va="center",
                        fontsize=8, color=MUTED, style="italic")
                continue
            _, ci95, flagged = shown
            if ci95 is not None:
                ax.errorbar(value, y, xerr=[[value - ci95[0]], [ci95[1] - value]],
                            fmt="none", ecolor=color, elinewidth=1.6, capsize=3.5,
                            linestyle="--" if flagged else "-", alpha=0.85)
            else:
                ax.annotate("no CI", (value, y), xytext=(6, 0), textcoords="offset points", va="center",
                            fontsize=7.5, color=MUTED)
            ax.plot(value, y, "o", ms=6.5, color=color, mfc="white" if flagged else color, mew=1.6, zorder=3)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlim(lo, hi)
        ax.set_yticks(range(len(points)), [_label(label) for label, _ in points], fontsize=8.5)
        ax.tick_params(axis="y", length=0)
        ax.tick_params(axis="x", labelsize=8, colors="#334155")
        ax.grid(axis="x", color="#e2e8f0", lw=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.spines["bottom"].set_color("#94a3b8")
        ax.set_xlabel(f"{metric} ({'higher' if higher_is_better else 'lower'} is better)", fontsize=8.5,
                      color="#334155")
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


__all__ = ["Point", "whisker_chart"]
