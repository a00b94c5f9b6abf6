"""How long a process that imported torch takes to end, with and without :func:`polypbench.fileio.quick_exit`.

Each run starts ``python -c`` that imports what a training or model-run process imports (torch, torchvision,
polypbench's models and training loop) and exits; the time from its last statement to the parent seeing it end is
the exit. Medians of ``--runs`` runs each, interleaved, side by side (docs/performance.md quotes them).

    PYTHONPATH=. .venv/bin/python benchmarks/exit_time.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CHILD = """
import sys, time
import torch, torchvision
import polypbench.models, polypbench.train.loop
from polypbench.fileio import quick_exit
if sys.argv[1] == "quick":
    quick_exit()
sys.stdout.write(repr(time.time()) + "\\n")
sys.stdout.flush()
"""


def exit_seconds(mode: str) -> float:
    """Seconds from the child's last statement to its end, as its parent sees it."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    last = float(proc.stdout.readline())
    proc.wait()
    return time.time() - last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    times: dict[str, list[float]] = {"plain": [], "quick": []}
    for _ in range(runs):
        for mode in times:
            times[mode].append(exit_seconds(mode))
    plain, quick = (statistics.median(times[m]) for m in ("plain", "quick"))
    print(f"exit after importing torch, torchvision and polypbench's models ({runs} runs each, median):")
    print(f"  without quick_exit {plain:.2f} s   with quick_exit {quick:.2f} s   ratio {plain / quick:.1f}x")


if __name__ == "__main__":
    main()
