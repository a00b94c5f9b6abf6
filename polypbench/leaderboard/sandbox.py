"""The model runner: the one module of the leaderboard that knows the training code.

A submitted model is a registered architecture name, a config (JSON) and safetensors weights: data, never a
pickle or code. :func:`check_config` (server side, no torch) keeps the config keys inference needs and refuses
anything that could name a server file (``model_kwargs.weights``). :func:`run_job` starts this module in a child
process (``python -m polypbench.leaderboard.sandbox SPEC``) in its own session, with a memory limit
(``RLIMIT_DATA``: heap and anonymous mappings), a CPU-time limit, a file-size and open-file limit, a minimal
environment, no GPU unless configured, and a wall-clock timeout after which it is killed (also when its worker
dies: ``PR_SET_PDEATHSIG``). In the child, :func:`predict_frames` builds the model with
:func:`polypbench.models.create_model` from the config dataclass, loads the weights strictly, and runs
:func:`polypbench.predict.predict` over the prepared folders' test frames; the parent scores its output.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polypbench.errors import PolypbenchError
from polypbench.leaderboard import limits

INFERENCE_KEYS = ("model", "task", "img_size", "margin", "model_kwargs", "channels_last")
"""The config keys (of :class:`polypbench.train.config.TrainConfig`) that inference reads; others are ignored."""
FORBIDDEN_KWARGS = ("weights",)
"""``model_kwargs`` that name files on the machine that builds the model: never taken from a submission."""
META_OFFSET = "polypbench.size_offset_mm"
"""safetensors metadata key: the regression output's offset (the train mean size; ``best.pt``'s size_offset_mm)."""
DEFAULT_TASK = "regression"
"""The task of a config that names none (``TrainConfig.task``'s default)."""
USER_FAULT = 3
"""Exit status of the child for a fault of the submission (the message is in ``error.txt``)."""


class ModelError(PolypbenchError):
    """A submitted model that cannot run (shown to its team; not retried)."""


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= 100
    if isinstance(value, list):
        return len(value) <= 16 and all(isinstance(v, str) and len(v) <= 100 for v in value)
    return isinstance(value, (bool, int, float)) or value is None


def check_config(text: str, architecture: str, tasks: Mapping[str, bool] | None = None) -> dict[str, Any]:
    """The inference part of a submitted config (JSON text of a training config), validated without torch;
    ``tasks``: the tasks the board takes (:func:`catalog`), else any task name passes (the model run checks it)."""
    if len(text) > limits.CONFIG:
        raise ModelError(f"config: {len(text)} characters; expected at most {limits.CONFIG}")
    from polypbench.leaderboard.uploads import load_json  # the server's module: the model's child never loads it

    config = load_json(text, "config", "the run's config.yaml as a JSON object", ModelError)
    if not isinstance(config, dict):
        raise ModelError("config: not a JSON object; expected the run's config as a mapping")
    values = {k: config[k] for k in INFERENCE_KEYS if k in config}
    model = values.setdefault("model", architecture)
    if model != architecture:
        raise ModelError(f"config key 'model': {model!r} differs from the architecture {architecture!r}")
    task = values.setdefault("task", DEFAULT_TASK)
    if not isinstance(task, str) or not task or len(task) > 40:
        raise ModelError(f"config key 'task': {task!r}; expected a task name (the model run checks it is one)")
    if tasks is not None and task not in tasks:
        raise ModelError(f"config key 'task': {task!r}; expected a task the board scores: {', '.join(tasks)}")
    size = values.get("img_size", 384)
    if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 1024:
        raise ModelError(f"config key 'img_size': {size!r}; expected an integer in 16..1024")
    margin = values.get("margin", 0.5)
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 <= margin <= 4:
        raise ModelError(f"config key 'margin': {margin!r}; expected a number in 0..4")
    kwargs = values.get("model_kwargs", {})
    if not isinstance(kwargs, dict) or len(kwargs) > limits.CONFIG_KEYS:
        raise ModelError("config key 'model_kwargs': expected a small mapping")
    for key, value in kwargs.items():
        if key in FORBIDDEN_KWARGS:
            raise ModelError(f"config key 'model_kwargs.{key}': names a file; expected it absent (the weights are "
                             "the uploaded file)")
        if not _scalar(value):
            raise ModelError(f"config key 'model_kwargs.{key}': expected a number, a flag or short text")
    if not isinstance(values.get("channels_last", False), bool):
        raise ModelError("config key 'channels_last': expected true or false")
    return values


def size_offset(metadata: Mapping[str, str], task: str, needed: bool) -> float | None:
    """The regression offset in the weights' metadata (:data:`META_OFFSET`), checked as the model run reads it, at
    upload and in the run alike: a finite number of mm, present when the ``task`` decodes with it (``needed``)."""
    text = metadata.get(META_OFFSET)
    if text is None:
        if needed:
            raise ModelError(f"weights: a {task} model without {META_OFFSET!r} in the safetensors metadata; expected "
                             "the mean training size (as `polypbench submit --model` writes it)")
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ModelError(f"weights: metadata {META_OFFSET!r}: {text[:40]!r}; expected a finite number of mm")
    return value


def catalog() -> tuple[list[str], dict[str, bool]]:
    """(registered model names, {task: whether its weights carry the size offset}) for the tasks a submitted model
    may have: those that train on a config's default dataset (polyps; a submitted config never names another).
    Imports torch: the server asks a child process (:func:`polypbench.leaderboard.config.model_catalog`)."""
    from polypbench.models import list_models
    from polypbench.train.config import TrainConfig
    from polypbench.train.tasks import TASKS, tasks_for

    return list_models(), {name: TASKS[name].uses_size_offset for name in tasks_for(TrainConfig.dataset)}


@dataclass(frozen=True)
class Limits:
    """What a model run may use: wall-clock seconds, memory (MB of heap and anonymous mappings), device."""

    timeout_s: float = 600.0
    memory_mb: int = 4096
    device: str = "cpu"
    threads: int = 1


def _child_limits(lim: Limits, max_file: int) -> Callable[[], None]:
    def apply() -> None:
        if lim.device == "cpu":  # CUDA maps huge address ranges; GPU runs rely on the device's own memory
            memory = lim.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
        cpu = int(lim.timeout_s * max(1, lim.threads)) + 5
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file, max_file))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:  # die with the worker (Linux); elsewhere the wall-clock timeout still applies
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    return apply


def run_job(spec: dict[str, Any], lim: Limits, work: Path, heartbeat: Callable[[], bool] | None = None,
            beat_s: float = 5.0) -> Path:
    """Run the child on ``spec`` in folder ``work``; the path of its prediction file. Raises :class:`ModelError`
    for a fault of the submission (its message is for the team), :class:`PolypbenchError` otherwise.
    ``heartbeat`` is called every ``beat_s`` seconds while it runs; returning False stops the child."""
    work = work.absolute()
    out = work / "predictions.parquet"
    spec = {**spec, "out": str(out), "device": lim.device, "threads": lim.threads,  # the child runs in ``work``
            "weights": os.path.abspath(spec["weights"]), "prepared": [os.path.abspath(p) for p in spec["prepared"]]}
    fd = os.open(work / "spec.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it names the private data
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(spec))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "OMP_NUM_THREADS": str(lim.threads),
           "MKL_NUM_THREADS": str(lim.threads), "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    if lim.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    max_file = 2 * limits.MAX_MODEL_BYTES + 64 * 1024 * 1024
    with (work / "log.txt").open("wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "polypbench.leaderboard.sandbox", str(work / "spec.json")],
                                cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                start_new_session=True, preexec_fn=_child_limits(lim, max_file))  # noqa: PLW1509
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
        raise ModelError((work / "error.txt").read_text().strip()[: limits.ERROR])
    if proc.returncode == -signal.SIGXCPU or proc.returncode == -signal.SIGKILL:
        raise ModelError(f"the model run was stopped (signal {-proc.returncode}): CPU-time or memory limit "
                         f"({lim.memory_mb} MB) exceeded")
    if proc.returncode != 0 or not out.is_file():
        tail = (work / "log.txt").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ModelError(f"the model run failed (exit status {proc.returncode}): {tail[0][:300]}")
    return out


# -- the child ------------------------------------------------------------------------------------------------
def predict_frames(spec: dict[str, Any]) -> None:
    """Build the model, load the weights strictly, predict every test frame of ``spec['prepared']``."""
    import torch
    from safetensors import safe_open

    from polypbench.models import create_model
    from polypbench.predict import predict_model
    from polypbench.train.config import from_dict
    from polypbench.train.tasks import TASKS, TargetStats

    torch.set_num_threads(int(spec.get("threads", 1)))
    values = dict(spec["config"])
    try:
        cfg = from_dict(dict(values, prepared=list(spec["prepared"]), device=str(spec["device"])), "config")
        model = create_model(cfg.model, cfg.num_outputs, **cfg.model_kwargs)
    except (PolypbenchError, TypeError, ValueError) as exc:
        raise ModelError(f"config: {' '.join(str(exc).split())}") from None
    with safe_open(spec["weights"], framework="pt") as fh:  # the parser the server checked the upload with
        metadata = fh.metadata() or {}
        state = {key: fh.get_tensor(key) for key in fh.keys()}
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        parts = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if keys]
        raise ModelError(f"weights do not fit architecture {cfg.model!r}: {'; '.join(parts)}")
    offset = size_offset(metadata, cfg.task, TASKS[cfg.task].uses_size_offset)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    del state
    stats = TargetStats(size_offset_mm=offset or 0.0)
    frames = predict_model(model, cfg, stats, "test", batch_size=int(spec.get("batch_size", 16)))
    frames.to_parquet(spec["out"], index=False)


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    try:
        predict_frames(spec)
    except ModelError as exc:
        Path("error.txt").write_text(str(exc))
        return USER_FAULT
    except MemoryError:
        Path("error.txt").write_text("the model run passed its memory limit; expected a smaller model or input")
        return USER_FAULT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
