"""The sandboxed child (``python -m polypbench.inference SPEC``): one :class:`~polypbench.inference.spec.ModelRun`,
started by :func:`polypbench.inference.sandbox.run_job` under its limits. It builds the submitted model from its
:class:`~polypbench.inference.spec.InferenceConfig`, loads the safetensors weights strictly and predicts every
frame of the run's split; the parent scores the prediction file. A fault of the submission ends it with
:data:`~polypbench.inference.sandbox.USER_FAULT` and the message in ``error.txt``.

``python -m polypbench.inference --catalog`` prints :func:`catalog` as JSON: the leaderboard's web process asks
it of a short-lived child, so that it never imports torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from polypbench.errors import ConfigError
from polypbench.inference.sandbox import CATALOG_FLAG, ERROR_FILE, USER_FAULT
from polypbench.inference.spec import ModelError, ModelRun


def run(spec: ModelRun) -> None:
    """Build the model, load the weights strictly, predict every frame of ``spec.split`` of ``spec.prepared``."""
    import torch

    from polypbench.inference.build import load_weights
    from polypbench.inference.predict import predict_model, require_polyps

    torch.set_num_threads(spec.threads)
    model = load_weights(spec.config, spec.weights)
    try:
        require_polyps(model)
    except ConfigError:
        raise ModelError(f"config key 'task': {spec.config.task!r} does not predict polyps; expected a task the "
                         "board scores") from None
    frames = predict_model(model, list(spec.prepared), spec.split, batch_size=spec.batch_size, device=spec.device)
    frames.to_parquet(spec.out, index=False)


def catalog() -> tuple[list[str], dict[str, bool]]:
    """(registered model names, {task: whether its weights carry the size offset}) for the tasks a submitted model
    may have: those that train on a config's default dataset (polyps; a submitted config never names another)."""
    from polypbench.models import list_models
    from polypbench.train.config import TrainConfig
    from polypbench.train.tasks import TASKS, tasks_for

    return list_models(), {name: TASKS[name].uses_size_offset for name in tasks_for(TrainConfig.dataset)}


def main(argv: list[str]) -> int:
    """The child's entry: ``SPEC`` (a :class:`ModelRun` as JSON) or ``--catalog``."""
    if argv == [CATALOG_FLAG]:
        sys.stdout.write(json.dumps(catalog()) + "\n")
        return 0
    if len(argv) != 1:
        sys.stderr.write(f"usage: python -m polypbench.inference SPEC.json | {CATALOG_FLAG}\n")
        return 2
    try:
        run(ModelRun.from_dict(json.loads(Path(argv[0]).read_text())))
    except ModelError as exc:
        Path(ERROR_FILE).write_text(str(exc))
        return USER_FAULT
    except MemoryError:
        Path(ERROR_FILE).write_text("the model run passed its memory limit; expected a smaller model or input")
        return USER_FAULT
    return 0
