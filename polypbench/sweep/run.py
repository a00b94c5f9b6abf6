"""One run of a grid (train, then predict its test split), and the launchers that run many.

A run is a normal ``polypbench train --resume`` + ``polypbench predict`` into its own folder. ``done.json`` is
written last, so a folder holding it is a finished run and is skipped by the next sweep; a run interrupted during
training continues from its ``last.pt``; ``failed.json`` records a run that failed (one line), and the other runs
go on. Launchers:

- ``local``: in this machine's processes, one run at a time, or ``parallel`` at once (on a multi-GPU machine one
  per visible GPU: each worker process sees only its GPU, through ``CUDA_VISIBLE_DEVICES``);
- ``slurm``: one SLURM job per run through submitit (partition, time limit, GPUs and CPUs per run as options);
- ``submitit-local``: the same submitit code path with submitit's local executor (CI tests it on the CPU).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from polypbench.errors import PolypbenchError, choice_error
from polypbench.fileio import atomic_write_json, quick_exit, read_json, run_pool
from polypbench.progress import Progress
from polypbench.sweep.grid import RunSpec

log = logging.getLogger(__name__)

DONE = "done.json"
FAILED = "failed.json"
PREDICTIONS = "test_predictions.parquet"
LAUNCHERS = ("local", "slurm", "submitit-local")


@dataclass(frozen=True)
class Outcome:
    """What became of one run: ``done`` (trained now), ``skipped`` (finished before) or ``failed`` (``error``)."""

    label: str
    run_dir: str
    status: str
    seconds: float = 0.0
    error: str | None = None


def is_done(spec: RunSpec) -> bool:
    return read_json(spec.run_dir / DONE) is not None and (spec.run_dir / PREDICTIONS).is_file()


def run_one(spec: RunSpec) -> Outcome:
    """Train and predict one run (skipped if already done); never raises: a failure is an outcome. A submitit job
    process that runs it ends as quickly as a pool worker (:func:`~polypbench.fileio.quick_exit`)."""
    quick_exit()
    if is_done(spec):
        return Outcome(spec.label, str(spec.run_dir), "skipped")
    start = time.perf_counter()
    try:
        from polypbench.inference.predict import predict
        from polypbench.train.loop import fit

        cfg = spec.train_config()
        (spec.run_dir / FAILED).unlink(missing_ok=True)
        summary = fit(cfg, spec.run_dir, resume=True)  # new: starts; interrupted: continues from last.pt
        preds = predict(summary.checkpoint, list(spec.manifests), "test", fold=spec.fold, protocol=spec.protocol,
                        device=cfg.device)
        preds.to_parquet(spec.run_dir / PREDICTIONS, index=False)
        seconds = time.perf_counter() - start
        atomic_write_json(spec.run_dir / DONE, {"run": asdict(spec), "seconds": seconds,
                                                "best_epoch": summary.best_epoch})
        return Outcome(spec.label, str(spec.run_dir), "done", seconds)
    except Exception as exc:  # noqa: BLE001 - one failed run must not stop the grid; it is recorded
        message = str(exc) if isinstance(exc, PolypbenchError) else f"{type(exc).__name__}: {exc}"
        message = " ".join(message.split())
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(spec.run_dir / FAILED, {"run": asdict(spec), "error": message,
                                                  "traceback": traceback.format_exc()})
        return Outcome(spec.label, str(spec.run_dir), "failed", time.perf_counter() - start, message)


def _bind_device(devices: Any) -> None:
    """Pool initializer: this worker takes one GPU id off the shared queue and sees only that GPU (None: no GPU
    here, nothing to bind)."""
    gpu = devices.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


def visible_gpus() -> list[str]:
    """The GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else every device torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _local(specs: Sequence[RunSpec], parallel: int) -> Iterator[Outcome]:
    if parallel <= 1 or len(specs) <= 1:
        yield from map(run_one, specs)
        return
    gpus = visible_gpus()
    with get_context("spawn").Manager() as manager:
        devices = manager.Queue()
        for i in range(min(parallel, len(specs))):
            devices.put(gpus[i % len(gpus)] if gpus else None)
        yield from run_pool(run_one, specs, parallel, initializer=_bind_device, initargs=(devices,))


def _submitit(specs: Sequence[RunSpec], folder: Path, cluster: str | None, slurm: dict[str, Any]) -> Iterator[Outcome]:
    import submitit  # the [slurm] extra

    executor = submitit.AutoExecutor(folder=folder / "%j" if cluster == "slurm" else folder, cluster=cluster)
    executor.update_parameters(**slurm)
    jobs = [executor.submit(run_one, spec) for spec in specs]
    log.info("submitted %d jobs (%s): %s", len(jobs), cluster or executor.cluster, ", ".join(j.job_id for j in jobs))
    for job, spec in zip(jobs, specs, strict=True):
        try:
            yield job.result()
        except Exception as exc:  # noqa: BLE001 - a job killed by the scheduler: recorded like any failure
            error = " ".join(f"{type(exc).__name__}: {exc}".split())
            yield Outcome(spec.label, str(spec.run_dir), "failed", error=error)


def launch(specs: Sequence[RunSpec], launcher: str, *, folder: Path, parallel: int = 1,
           slurm: dict[str, Any] | None = None,
           on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every spec with ``launcher`` (see the module docstring); finished runs are skipped without launching."""
    if launcher not in LAUNCHERS:
        raise choice_error("launcher", launcher, LAUNCHERS)
    outcomes = [Outcome(s.label, str(s.run_dir), "skipped") for s in specs if is_done(s)]
    todo = [s for s in specs if not is_done(s)]
    if launcher == "local":
        stream = _local(todo, parallel)
    else:
        stream = _submitit(todo, folder, "local" if launcher == "submitit-local" else "slurm", slurm or {})
    with Progress(len(specs), "sweep", unit="run", initial=len(outcomes)) as bar:
        for outcome in stream:
            outcomes.append(outcome)
            bar.update()
            if outcome.status == "failed":
                bar.write(f"failed: {outcome.label}: {outcome.error}")
            if on_outcome is not None:
                on_outcome(outcome)
    order = {str(s.run_dir): i for i, s in enumerate(specs)}
    return sorted(outcomes, key=lambda o: order[o.run_dir])
