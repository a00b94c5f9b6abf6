"""The spread of `polypbench demo`: its test-split scores and cost over seeds and torch thread counts.

Each run is the command a user types, ``python -m polypbench demo --out DIR --seed S --threads T``, from scratch
in a new folder (synth, prepare, verify, materialize, train, predict, score), with ``OMP_NUM_THREADS=T``. The
seed changes both the synthetic dumps and training; the thread count changes the order of float sums, so the
same seed differs in the last digits from one thread count to another. For every run the script records what the
demo prints for the model and the majority baseline (``polypbench.demo.DEMO_METRICS``: per-polyp triclass macro
F1, the board's primary metric, then balanced accuracy), the wall time and the CPU time of the whole command (its
worker processes included), then the median and range. It writes the table (markdown) to ``--table`` and the
README's demo sentences (between the ``<!-- demo_spread.py -->`` markers) to ``--readme``; tests/test_demo.py
checks the README against the table. It exits 1 when a run's primary metric falls below ``--floor``. Not a test.

    PYTHONPATH=. .venv/bin/python benchmarks/demo_spread.py                       # seeds 0-4 x threads 1, 2
    PYTHONPATH=. .venv/bin/python benchmarks/demo_spread.py --seeds 0 --threads 1 --table /tmp/one.md --readme ''
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = re.compile(r"^\s*model((?:\s+[0-9.]+)+)\s*$", re.M)
BASELINE = re.compile(r"^\s*majority baseline((?:\s+[0-9.]+)+)\s*$", re.M)
TRAINED = re.compile(r"trained the demo config in ([0-9.]+) s")
README = ROOT / "README.md"
MARKS = ("<!-- demo_spread.py: from here to its end mark, written by benchmarks/demo_spread.py -->",
         "<!-- demo_spread.py: end -->")
"""The README's demo sentences sit between these two lines; :func:`write_readme` replaces what is between."""
TEST_POLYPS = 41
"""Test polyps of the demo's pooled SUN + REAL-Colon selection (the published split: the same for every seed)."""


def metric_labels() -> list[str]:
    """The demo's metrics in the order it prints them (the board's primary metric first), as words."""
    from polypbench.demo import DEMO_METRICS
    from polypbench.evaluate.format import LABELS
    from polypbench.evaluate.keys import parse_key

    return [LABELS[parse_key(key).metric] for key in DEMO_METRICS]


@dataclass
class Run:
    """One demo: ``model`` and ``baseline`` map a metric's label to its value, in the order printed."""

    seed: int
    threads: int
    model: dict[str, float]
    baseline: dict[str, float]
    train_s: float
    wall_s: float
    cpu_s: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_demo(seed: int, threads: int, scratch: Path) -> Run:
    """One ``polypbench demo`` from scratch; its printed numbers, wall and CPU seconds."""
    out = scratch / f"seed{seed}-threads{threads}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "polypbench", "demo", "--out", str(out), "--seed", str(seed),
           "--threads", str(threads), "-q"]
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - wall0, _children_cpu() - cpu0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    model, baseline, trained = (pattern.search(done.stdout) for pattern in (MODEL, BASELINE, TRAINED))
    labels = metric_labels()
    if model is None or baseline is None or trained is None or \
            not len(model.group(1).split()) == len(baseline.group(1).split()) == len(labels):
        raise SystemExit(f"{' '.join(cmd)}: its output lacks the result lines:\n{done.stdout[-2000:]}")
    values = [dict(zip(labels, map(float, m.group(1).split()), strict=True)) for m in (model, baseline)]
    return Run(seed, threads, values[0], values[1], float(trained.group(1)), wall, cpu)


def _version() -> str:
    import torch

    import polypbench

    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        git = f"git {commit}{' (modified)' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        git = "no git checkout"
    return f"polypbench {polypbench.__version__} ({git}), torch {torch.__version__}, python {platform.python_version()}"


def table(runs: list[Run], floor: float) -> str:
    """The markdown report: one row per run (each metric of the model and the baseline), then medians and ranges."""
    labels = list(runs[0].model)
    head = labels[0]
    first = [r.model[head] for r in runs]
    cpu = [r.cpu_s for r in runs]
    lines = [
        "# `polypbench demo` spread (benchmarks/demo_spread.py)",
        "",
        f"{_version()}; {platform.machine()}, {os.cpu_count()} CPUs (`{platform.platform()}`); "
        f"{datetime.date.today().isoformat()}.",
        "Each run: `python -m polypbench demo --seed S --threads T` from scratch with `OMP_NUM_THREADS=T` "
        f"(synth, prepare, verify, materialize, train, predict, score). Scores: per-polyp triclass, test split, "
        f"pooled sun + real-colon ({TEST_POLYPS} polyps), as the demo prints them ({head} is the board's primary "
        "metric). CPU: the whole command, its worker processes included.",
        "",
        "| seed | threads | " + " | ".join(f"model {m} | baseline {m}" for m in labels)
        + " | train + materialize (s, as printed) | wall (s) | CPU (s) |",
        "|" + "---:|" * (2 * len(labels) + 5),
        *(f"| {r.seed} | {r.threads} | " + " | ".join(f"{r.model[m]:.3f} | {r.baseline[m]:.3f}" for m in labels)
          + f" | {r.train_s:.0f} | {r.wall_s:.0f} | {r.cpu_s:.0f} |" for r in runs),
        "",
    ]
    for m in labels:
        values = [r.model[m] for r in runs]
        lines.append(f"{m[0].upper() + m[1:]} over {len(runs)} runs: median {statistics.median(values):.3f}, range "
                     f"{min(values):.3f} to {max(values):.3f}" + (
                         f"; {sum(a >= floor for a in first)} of {len(first)} runs at {floor:.2f} or more." if m == head
                         else "."))
    lines.append(f"CPU seconds per run: median {statistics.median(cpu):.0f}, range {min(cpu):.0f} to {max(cpu):.0f}.")
    for threads in sorted({r.threads for r in runs}):
        mine = [r for r in runs if r.threads == threads]
        lines.append(f"With {threads} thread{'s' * (threads != 1)}: {head} median "
                     f"{statistics.median(r.model[head] for r in mine):.3f}, CPU median "
                     f"{statistics.median(r.cpu_s for r in mine):.0f} s, wall median "
                     f"{statistics.median(r.wall_s for r in mine):.0f} s.")
    return "\n".join(lines) + "\n"


def parse_table(text: str) -> list[Run]:
    """The runs of a table :func:`table` wrote (columns found by their names)."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    runs = []
    for row in body:
        cells = dict(zip(header, row, strict=True))
        model: dict[str, float] = {}
        baseline: dict[str, float] = {}
        for name, value in cells.items():
            who, _, metric = name.partition(" ")
            if who in ("model", "baseline"):
                (model if who == "model" else baseline)[metric] = float(value)
        runs.append(Run(int(cells["seed"]), int(cells["threads"]), model, baseline,
                        float(cells["train + materialize (s, as printed)"]), float(cells["wall (s)"]),
                        float(cells["CPU (s)"])))
    return runs


def readme_text(runs: list[Run]) -> str:
    """The README's demo sentences: what ``make demo`` prints (seed 0, one thread: the CLI's defaults), the median
    and range of the first metric over every run, and the median cost per thread count."""
    labels = list(runs[0].model)
    head = labels[0]
    default = next(r for r in runs if (r.seed, r.threads) == (0, 1))
    values = [r.model[head] for r in runs]
    seeds, threads = sorted({r.seed for r in runs}), sorted({r.threads for r in runs})
    named = f"{head} (the board's primary metric)" if head == "macro F1" else head
    others = "".join(f"; {m} {default.model[m]:.3f} against {default.baseline[m]:.3f}" for m in labels[1:])
    cost = [f"with {n} thread{'s' * (n != 1)} a median of "
            f"{statistics.median(r.cpu_s for r in runs if r.threads == n):.0f} CPU seconds, "
            f"{statistics.median(r.wall_s for r in runs if r.threads == n):.0f} s wall" for n in threads]
    return (f"With seed 0 and one torch thread (its defaults) it prints a per-polyp triclass **{named} of "
            f"{default.model[head]:.3f} against {default.baseline[head]:.3f} for the majority-class baseline**"
            f"{' (' + others[2:] + ')' if others else ''} on the {TEST_POLYPS} test polyps of SUN + REAL-Colon. "
            f"Over seeds {seeds[0]}-{seeds[-1]} (a seed renders other synthetic frames and trains anew) with "
            f"{' and '.join(map(str, threads))} torch threads, `benchmarks/demo_spread.py` measured a median "
            f"{head} of {statistics.median(values):.3f} (range {min(values):.3f} to {max(values):.3f}) on "
            "2 CPU cores shared with other jobs ([its table](benchmarks/demo_spread.md)); the whole demo, synthesis "
            f"of the three dumps included, took {'; '.join(cost)}.")


def readme_block(readme: str) -> str:
    """The text between the README's :data:`MARKS` (an error when they are missing)."""
    start, end = readme.index(MARKS[0]) + len(MARKS[0]), readme.index(MARKS[1])
    return readme[start:end].strip()


def write_readme(path: Path, runs: list[Run]) -> None:
    """Replace the README's demo sentences (between :data:`MARKS`) with :func:`readme_text`, wrapped at 118."""
    import textwrap

    text = path.read_text()
    start, end = text.index(MARKS[0]) + len(MARKS[0]), text.index(MARKS[1])
    wrapped = textwrap.fill(readme_text(runs), 118, break_long_words=False, break_on_hyphens=False)
    path.write_text(text[:start] + "\n" + wrapped + "\n" + text[end:])


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2, 3, 4], help="comma-separated (default 0,1,2,3,4)")
    parser.add_argument("--threads", type=_ints, default=[1, 2], help="comma-separated (default 1,2)")
    parser.add_argument("--floor", type=float, default=0.85, help="lowest acceptable primary metric (macro F1)")
    parser.add_argument("--table", type=Path, default=ROOT / "benchmarks" / "demo_spread.md",
                        help="where to write the markdown table")
    parser.add_argument("--readme", default=str(README),
                        help="the README whose demo sentences to rewrite ('': leave every README alone)")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        for seed in args.seeds:
            for threads in args.threads:
                run = run_demo(seed, threads, Path(tmp))
                print(f"seed {seed}, {threads} threads: model {run.model}, baseline {run.baseline}, "
                      f"wall {run.wall_s:.0f} s, CPU {run.cpu_s:.0f} s", flush=True)
                runs.append(run)
    report = table(runs, args.floor)
    args.table.write_text(report)
    if args.readme and any((r.seed, r.threads) == (0, 1) for r in runs):
        write_readme(Path(args.readme), runs)
    print(report)
    head = list(runs[0].model)[0]
    return 0 if all(r.model[head] >= args.floor for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
