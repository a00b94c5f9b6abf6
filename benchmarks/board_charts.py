"""CPU time of the board page's charts (one whisker chart per board column, the primary's twice): a first view,
a second view of the same board (charts kept by content, :data:`polypbench.leaderboard.charts.CACHED_CHARTS`) and
a view after a new entry (every chart changes). Medians of ``--runs`` boards of ``--entries`` entries, side by side
(docs/performance.md quotes them).

    PYTHONPATH=. .venv/bin/python benchmarks/board_charts.py --runs 5 --entries 12
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polypbench.evaluate import Stat
from polypbench.leaderboard.charts import _chart
from polypbench.leaderboard.columns import COLUMNS
from polypbench.leaderboard.pages import _charts


@dataclass
class FakeBoard:
    """What :func:`polypbench.leaderboard.pages._charts` reads of a board: its rows."""

    rows: list[dict[str, Any]] = field(default_factory=list)


def board(rng: np.random.Generator, entries: int) -> FakeBoard:
    """``entries`` rows with a value and an interval for every column."""
    rows = []
    for i in range(entries):
        metrics = {}
        for name in COLUMNS:
            value = float(rng.uniform(0.3, 0.9))
            metrics[name] = Stat(value, (value - 0.08, value + 0.08), n_polyps=80, n_patients=40)
        rows.append({"rank": i + 1, "team": f"team {i}", "method": f"method {i}", "metrics": metrics})
    return FakeBoard(rows)


def cpu_seconds(b: FakeBoard) -> float:
    start = time.process_time()
    _charts(b)  # type: ignore[arg-type]
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU time of the board page's charts, first view vs again")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--entries", type=int, default=12)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cpu_seconds(board(rng, 2))  # imports matplotlib and loads its fonts outside the timings
    first, again, changed = [], [], []
    for _ in range(args.runs):
        _chart.cache_clear()
        b = board(rng, args.entries)
        first.append(cpu_seconds(b))
        again.append(cpu_seconds(b))
        b.rows.append(board(rng, 1).rows[0] | {"rank": args.entries + 1, "team": "new team"})
        changed.append(cpu_seconds(b))
    med = {k: statistics.median(v) for k, v in (("first", first), ("again", again), ("changed", changed))}
    print(f"| board page charts ({len(COLUMNS) + 1} per page, {args.entries} entries; CPU s, median of {args.runs}) "
          "| first view | same board again | after a new entry | first / again |")
    print("|---|---:|---:|---:|---:|")
    print(f"| {args.entries} entries | {med['first']:.3f} | {med['again']:.4f} | {med['changed']:.3f} "
          f"| **{med['first'] / max(med['again'], 1e-9):.0f}x** |")


if __name__ == "__main__":
    main()
