"""The spread of `polypbench demo`: its test-split balanced accuracy and cost over seeds and torch thread counts.

Each run is the command a user types, ``python -m polypbench demo --out DIR --seed S --threads T``, from scratch
in a new folder (synth, prepare, verify, materialize, train, predict, score), with ``OMP_NUM_THREADS=T``. The
seed changes both the synthetic dumps and training; the thread count changes the order of float sums, so the
same seed differs in the last digits from one thread count to another. For every run the script records the
per-polyp triclass balanced accuracy of the model and of the majority baseline that the demo prints, the wall
time and the CPU time of the whole command (its worker processes included), then the median and range, and
writes the table (markdown) to ``--table``. It exits 1 when a run falls below ``--floor``. Not a test.

    PYTHONPATH=. .venv/bin/python benchmarks/demo_spread.py                       # seeds 0-4 x threads 1, 2
    PYTHONPATH=. .venv/bin/python benchmarks/demo_spread.py --seeds 0 --threads 1 --table /tmp/one.md
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
MODEL = re.compile(r"^\s*model\s+([0-9.]+)\s*$", re.M)
BASELINE = re.compile(r"^\s*majority baseline\s+([0-9.]+)\s*$", re.M)
TRAINED = re.compile(r"trained the demo config in ([0-9.]+) s")


@dataclass
class Run:
    seed: int
    threads: int
    model: float
    baseline: float
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
    found = [pattern.search(done.stdout) for pattern in (MODEL, BASELINE, TRAINED)]
    if not all(found):
        raise SystemExit(f"{' '.join(cmd)}: its output lacks the result lines:\n{done.stdout[-2000:]}")
    model, baseline, trained = (float(m.group(1)) for m in found if m is not None)
    return Run(seed, threads, model, baseline, trained, wall, cpu)


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
    """The markdown report: one row per run, then the median and range."""
    acc = [r.model for r in runs]
    cpu = [r.cpu_s for r in runs]
    lines = [
        "# `polypbench demo` spread (benchmarks/demo_spread.py)",
        "",
        f"{_version()}; {platform.machine()}, {os.cpu_count()} CPUs (`{platform.platform()}`); "
        f"{datetime.date.today().isoformat()}.",
        "Each run: `python -m polypbench demo --seed S --threads T` from scratch with `OMP_NUM_THREADS=T` "
        "(synth, prepare, verify, materialize, train, predict, score). Balanced accuracy: per-polyp triclass, "
        "test split, pooled sun + real-colon (41 polyps), as the demo prints it. CPU: the whole command, its worker "
        "processes included.",
        "",
        "| seed | threads | model | majority baseline | train + materialize (s, as printed) | wall (s) | CPU (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {r.seed} | {r.threads} | {r.model:.3f} | {r.baseline:.3f} | {r.train_s:.0f} | {r.wall_s:.0f} | "
          f"{r.cpu_s:.0f} |" for r in runs),
        "",
        f"Balanced accuracy over {len(runs)} runs: median {statistics.median(acc):.3f}, range {min(acc):.3f} to "
        f"{max(acc):.3f}; {sum(a >= floor for a in acc)} of {len(acc)} runs at {floor:.2f} or more.",
        f"CPU seconds per run: median {statistics.median(cpu):.0f}, range {min(cpu):.0f} to {max(cpu):.0f}.",
    ]
    for threads in sorted({r.threads for r in runs}):
        mine = [r for r in runs if r.threads == threads]
        lines.append(f"With {threads} thread{'s' * (threads != 1)}: balanced accuracy median "
                     f"{statistics.median(r.model for r in mine):.3f}, CPU median "
                     f"{statistics.median(r.cpu_s for r in mine):.0f} s, wall median "
                     f"{statistics.median(r.wall_s for r in mine):.0f} s.")
    return "\n".join(lines) + "\n"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2, 3, 4], help="comma-separated (default 0,1,2,3,4)")
    parser.add_argument("--threads", type=_ints, default=[1, 2], help="comma-separated (default 1,2)")
    parser.add_argument("--floor", type=float, default=0.85, help="lowest acceptable balanced accuracy")
    parser.add_argument("--table", type=Path, default=ROOT / "benchmarks" / "demo_spread.md",
                        help="where to write the markdown table")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        for seed in args.seeds:
            for threads in args.threads:
                run = run_demo(seed, threads, Path(tmp))
                print(f"seed {seed}, {threads} threads: model {run.model:.3f}, baseline {run.baseline:.3f}, "
                      f"wall {run.wall_s:.0f} s, CPU {run.cpu_s:.0f} s", flush=True)
                runs.append(run)
    report = table(runs, args.floor)
    args.table.write_text(report)
    print(report)
    return 0 if all(r.model >= args.floor for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
