"""One real training run per reference-model family, through the real harness on the synthetic data.

The harness tests (tests/train) run the tiny model; these check that each reference family trains, validates,
checkpoints and predicts a valid submission end to end (one epoch at 32 px, each ``gr_mode`` once).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polypbench.evaluate import validate_predictions
from polypbench.inference.predict import predict
from polypbench.train import fit, load_config

SMALL = ["img_size=32", "epochs=1", "batch_size=16", "frames_per_polyp_per_epoch=1", "n_bootstrap=0"]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "gr_mode", "task", "kwargs"), [
    ("resnet18-hag", "gr", "regression", "{}"),
    ("multistream-hag", "paper", "triclass", "{}"),
    ("vit-tiny", "off", "triclass", "{img_size: 32}"),
])
def test_reference_family_trains_and_predicts(prepared: dict, tmp_path: Path, model: str, gr_mode: str, task: str,
                                              kwargs: str) -> None:
    out = prepared["sun"].out
    cfg = load_config("demo", [*SMALL, f"model={model}", f"gr_mode={gr_mode}", f"task={task}",
                               f"model_kwargs={kwargs}", f"prepared=[{out}]"])
    summary = fit(cfg, tmp_path)
    assert len(summary.epochs) == 1 and summary.checkpoint.is_file()
    assert summary.model is not None and type(summary.model).__name__ != "TinyModel"
    df = predict(summary.checkpoint, out, "validation")
    validate_predictions(df, out, split="validation")
