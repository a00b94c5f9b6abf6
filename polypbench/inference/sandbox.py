"""Running a :class:`~polypbench.inference.spec.ModelRun` in a limited child process, without torch in the parent.

:func:`run_job` writes the run's ``spec.json`` into a work folder and starts ``python -m polypbench.inference
SPEC`` there (:mod:`polypbench.inference.child`) in its own session, with a memory limit (``RLIMIT_DATA``: heap and
anonymous mappings), a CPU-time limit, a file-size and open-file limit, a minimal environment, no GPU unless
configured, and a wall-clock timeout after which it is killed (also when its parent dies: ``PR_SET_PDEATHSIG``).
A fault of the submitted model ends the child with :data:`USER_FAULT` and its message in ``error.txt``.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from polypbench.errors import PolypbenchError
from polypbench.inference.spec import ModelError, ModelRun

USER_FAULT = 3
"""Exit status of the child for a fault of the submission (the message is in ``error.txt``)."""
ERROR_FILE = "error.txt"
SPEC_FILE = "spec.json"
CATALOG_FLAG = "--catalog"
"""``python -m polypbench.inference --catalog``: the child prints the model names and tasks (JSON) and exits."""
MAX_ERROR = 2000
"""Characters of the child's error message passed on."""


@dataclass(frozen=True)
class Limits:
    """What a model run may use: wall-clock seconds, memory (MB of heap and anonymous mappings), device, CPU
    threads, and the size of any file it writes (its prediction file)."""

    timeout_s: float = 600.0
    memory_mb: int = 4096
    device: str = "cpu"
    threads: int = 1
    max_file_bytes: int = 512 * 1024 * 1024


def _child_limits(lim: Limits) -> Callable[[], None]:
    def apply() -> None:
        if lim.device == "cpu":  # CUDA maps huge address ranges; GPU runs rely on the device's own memory
            memory = lim.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
        cpu = int(lim.timeout_s * max(1, lim.threads)) + 5
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim.max_file_bytes, lim.max_file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:  # die with the worker (Linux); elsewhere the wall-clock timeout still applies
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    return apply


def run_job(run: ModelRun, lim: Limits, work: Path, heartbeat: Callable[[], bool] | None = None,
            beat_s: float = 5.0) -> Path:
    """Run the child on ``run`` in folder ``work``; the path of its prediction file. Raises :class:`ModelError`
    for a fault of the submission (its message is for the team), :class:`PolypbenchError` otherwise.
    ``heartbeat`` is called every ``beat_s`` seconds while it runs; returning False stops the child."""
    work = work.absolute()
    out = work / "predictions.parquet"
    run = replace(run, out=str(out), device=lim.device, threads=lim.threads,  # the child runs in ``work``
                  weights=os.path.abspath(run.weights), prepared=tuple(os.path.abspath(p) for p in run.prepared))
    fd = os.open(work / SPEC_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it names the private data
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(run.to_dict()))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "OMP_NUM_THREADS": str(lim.threads),
           "MKL_NUM_THREADS": str(lim.threads), "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    if lim.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    with (work / "log.txt").open("wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "polypbench.inference", str(work / SPEC_FILE)],
                                cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                start_new_session=True, preexec_fn=_child_limits(lim))  # noqa: PLW1509
        deadline = time.monotonic() + lim.timeout_s
        next_beat = time.monotonic() + beat_s
        timed_out = stopped = False
        while proc.poll() is None:
            now = time.monotonic()
            if now > deadline:
                timed_out = True
            elif heartbeat is not None and now > next_beat:
                next_beat = now + beat_s
                stopped = not heartbeat()
            if timed_out or stopped:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.1)
    if stopped:
        raise PolypbenchError("the worker lost the job's lease; another worker runs it")
    if timed_out:
        raise ModelError(f"the model run passed its time limit of {lim.timeout_s:g} s; expected a faster model")
    if proc.returncode == USER_FAULT:
        raise ModelError((work / ERROR_FILE).read_text().strip()[:MAX_ERROR])
    if proc.returncode == -signal.SIGXCPU or proc.returncode == -signal.SIGKILL:
        raise ModelError(f"the model run was stopped (signal {-proc.returncode}): CPU-time or memory limit "
                         f"({lim.memory_mb} MB) exceeded")
    if proc.returncode != 0 or not out.is_file():
        tail = (work / "log.txt").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ModelError(f"the model run failed (exit status {proc.returncode}): {tail[0][:300]}")
    return out
