"""The demo pipeline on synthetic data: synth -> prepare -> verify splits -> train -> predict -> score.

Later stages join here as they land, so `make demo` always shows the whole toolkit working end to end on the
embedded synthetic data. Training uses the packaged ``demo`` config (the tiny gated CNN, triclass, CPU) on the
prepared ``sun`` and ``real-colon`` manifests, whose crops it first pre-cuts with ``materialize``, and compares it
with the majority-class baseline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from polypbench import datasets
from polypbench.baselines import majority_baseline
from polypbench.evaluate.format import LABELS, format_value
from polypbench.evaluate.keys import parse_key
from polypbench.leaderboard.columns import PRIMARY
from polypbench.manifest import Manifest
from polypbench.prepare import prepare
from polypbench.splits import verify
from polypbench.synth import synthesize

log = logging.getLogger(__name__)

DEMO_DATASETS = datasets.synth_names()
"""Every dataset with a synthetic generator is built, prepared and verified."""
TRAIN_DATASETS = tuple(name for name in DEMO_DATASETS if name in datasets.independent_names())
"""The demo model trains on the datasets with polyps of their own (SUN-SEG re-annotates SUN's polyps)."""
DEMO_METRICS = (PRIMARY, "polyp/triclass/pooled/balanced_accuracy")
"""What the demo prints for the model and the majority baseline: the board's primary metric (per-polyp triclass
macro F1) first, then balanced accuracy (benchmarks/demo_spread.py reads both)."""


@dataclass
class Demo:
    """What :func:`run_demo` returns: the data summary and, when it trained, the test results."""

    summary: pd.DataFrame
    result: object | None = None  # polypbench.evaluate.Result of the model on the test split
    baseline: object | None = None  # the same for the majority-class baseline
    train_seconds: float | None = None
    run_dir: Path | None = None
    seed: int = 0
    threads: int | None = None

    def describe(self) -> str:
        """The data summary and, when trained, the per-polyp table and :data:`DEMO_METRICS` of the model and the
        majority baseline, one row each (``  model  1.000  1.000``)."""
        lines = [self.summary.to_string()]
        if self.result is not None and self.baseline is not None:
            labels = [LABELS[parse_key(key).metric] for key in DEMO_METRICS]
            table = self.result.polyp_table  # type: ignore[attr-defined]  # typed object: lazy import
            per_polyp = table.dropna(axis=1, how="all").to_string(index=False) if table is not None else "-"
            threads = "" if self.threads is None else f", {self.threads} torch thread{'s' * (self.threads != 1)}"
            lines += ["", f"trained the demo config in {self.train_seconds:.0f} s -> {self.run_dir}",
                      "", "Per polyp (test split):", per_polyp,
                      "", f"Per-polyp triclass on test (pooled sun + real-colon; seed {self.seed}{threads}):",
                      f"  {'':<20}" + "".join(f"{label:>20}" for label in labels)]
            for name, result in (("model", self.result), ("majority baseline", self.baseline)):
                values = [format_value(result.stat(key), key) for key in DEMO_METRICS]  # type: ignore[attr-defined]
                lines.append(f"  {name:<20}" + "".join(f"{value:>20}" for value in values))
        return "\n".join(lines)


def train_demo(out: Path, *, seed: int = 0, overrides: tuple[str, ...] = (), workers: int | None = None,
               threads: int | None = None) -> tuple[object, object, float, Path]:
    """Materialize the crops of the prepared synthetic manifests under ``out``, train the ``demo`` config on
    them, predict and score the test split; return (model result, majority-baseline result, training seconds
    (materialize included), run folder). ``threads``: torch's CPU threads for training and prediction (None:
    leave them as they are); a float sum's order, and so the last digits of every step, depend on it."""
    import torch

    if threads is None:
        return _train_demo(out, seed, overrides, workers)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train_demo(out, seed, overrides, workers)
    finally:
        torch.set_num_threads(before)


def _train_demo(out: Path, seed: int, overrides: tuple[str, ...],
                workers: int | None) -> tuple[object, object, float, Path]:
    from polypbench.evaluate import score
    from polypbench.inference.predict import predict
    from polypbench.shards import materialize
    from polypbench.train.config import load_config
    from polypbench.train.loop import fit

    prepared = [out / "prepared" / name for name in TRAIN_DATASETS]
    run_dir = out / "runs" / "demo"
    cfg = load_config("demo", overrides, {"prepared": [str(p) for p in prepared], "seed": seed})
    start = time.perf_counter()
    for folder in prepared:  # each epoch then decodes small crops instead of whole frames
        materialize(folder, size=cfg.img_size, margin=cfg.margin, workers=workers)
    summary = fit(cfg, run_dir, overwrite=True)  # the demo folder is its own: a rerun replaces its run
    seconds = time.perf_counter() - start
    preds = predict(summary.checkpoint, prepared, "test")
    preds.to_parquet(run_dir / "test_predictions.parquet", index=False)
    result = score(preds, prepared, split="test", n_bootstrap=200, seed=seed)
    baseline = score(majority_baseline(prepared), prepared, split="test", n_bootstrap=200, seed=seed)
    return result, baseline, seconds, run_dir


def run_demo(out: str | Path, *, frames_per_polyp: int = 4, seed: int = 0, workers: int | None = None,
             train: bool = True, threads: int | None = None) -> Demo:
    """Build, prepare and verify a synthetic dump of every dataset under ``out`` (one summary row each), then
    (``train``) train the demo model, predict the test split and score it next to the majority baseline.
    ``seed`` seeds both the synthetic dumps and training; ``threads``: as :func:`train_demo`."""
    out = Path(out)
    rows = []
    for name in DEMO_DATASETS:
        raw, prepared = out / "raw" / name, out / "prepared" / name
        if not raw.is_dir():
            synthesize(name, raw, frames_per_polyp=frames_per_polyp, seed=seed, workers=workers or 1)
        report = prepare(name, raw, prepared, workers=workers)
        log.info("%s", verify(prepared))
        frames = Manifest.open(prepared).frames
        polyps = frames.drop_duplicates("polyp_id")
        rows.append({
            "dataset": name,
            "boxes": len(frames),
            "polyps": len(polyps),
            "patients": frames["patient_id"].nunique(),
            **{f"{s} polyps": int((polyps["split"] == s).sum()) for s in ("train", "validation", "test")},
            "diminutive/small/large": "/".join(str(int((polyps["size_class3"] == c).sum())) for c in range(3)),
            "skipped": report.skipped,
            "split verified": True,
        })
    demo = Demo(pd.DataFrame(rows).set_index("dataset"), seed=seed, threads=threads)
    if train:
        trained = train_demo(out, seed=seed, workers=workers, threads=threads)
        demo.result, demo.baseline, demo.train_seconds, demo.run_dir = trained
    return demo
