"""The training loop: ``fit(cfg, run_dir)`` trains with the gradient-routing step, validates every epoch
(validation loss plus :func:`polypbench.score` on the validation predictions), keeps the best checkpoint and
checkpoints the whole training state after every epoch, so that a run can be resumed.

Everything that depends on the task (loss, decoding, prediction columns, metrics) comes from its entry in
:data:`~polypbench.train.tasks.TASKS`. Outputs in ``run_dir`` (:mod:`polypbench.train.rundir`):

- ``config.yaml``: the resolved config plus a ``provenance`` block (:mod:`polypbench.train.provenance`);
- ``metrics.jsonl`` and ``metrics.csv``: one row per epoch; TensorBoard event files in ``tensorboard/`` when the
  ``tensorboard`` package is installed;
- ``best.pt``: ``state_dict``, ``config``, ``model``, ``task``, the task's
  :class:`~polypbench.train.tasks.TargetStats` fields ``size_offset_mm`` and ``class_counts``, ``epoch``,
  ``val_loss`` (best by validation loss);
- ``last.pt``: the same keys for the last epoch plus everything to resume (:mod:`polypbench.train.checkpoint`);
- ``summary.json``, written last: the run finished.

Progress: a bar per epoch on a terminal, a line every ``POLYPBENCH_PROGRESS_SECONDS`` otherwise, and one line per
epoch (:mod:`polypbench.progress`). On CPU a run is deterministic for a given seed, and a resumed run continues
bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import polypbench.train.checkpoint as checkpoint
import polypbench.train.distributed as distributed
import polypbench.train.rundir as rundir
from polypbench.errors import ConfigError, PolypbenchError
from polypbench.fileio import atomic_write_json, read_json
from polypbench.inference.build import build_model as build_inference_model
from polypbench.inference.loop import run_inference
from polypbench.load.spec import PixelSpec
from polypbench.models import gate_parameters, imagenet_weights
from polypbench.models.weights import resolve_weights
from polypbench.progress import Progress, duration, note
from polypbench.train.checkpoint import BEST, LAST, TrainState
from polypbench.train.config import TrainConfig, read_provenance, save_config
from polypbench.train.data import FramesPerPolyp, Loader, TrainData, build_data, model_input
from polypbench.train.device_augment import DeviceAugment
from polypbench.train.provenance import provenance, resumed
from polypbench.train.routing import build_optimizers, train_step
from polypbench.train.schedule import build_schedule
from polypbench.train.tasks import TASKS, Evaluation, Objective, TargetStats

log = logging.getLogger(__name__)


class TrainingError(PolypbenchError):
    """Training cannot go on (e.g. a non-finite loss)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training: a KeyboardInterrupt that says how far the run got. ``last_epoch``: the last epoch
    whose ``last.pt`` is written (-1: none yet); ``epochs``: the configured number."""

    def __init__(self, run_dir: Path, last_epoch: int, epochs: int) -> None:
        super().__init__(f"{run_dir}: interrupted after epoch {last_epoch} of {epochs}")
        self.run_dir, self.last_epoch, self.epochs = run_dir, last_epoch, epochs


@contextlib.contextmanager
def _resuming(run_dir: Path) -> Iterator[None]:
    """A ``last.pt`` that loads but does not fit this run (a tampered or foreign file: wrong shapes, missing or
    mistyped entries) fails in one line, as an unreadable one does."""
    try:
        yield
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ConfigError(f"{run_dir / LAST}: not a readable checkpoint for this run ({checkpoint.reason(exc)}); "
                          f"expected {checkpoint.RESUME_EXPECTED}") from None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class RunSummary:
    """What :func:`fit` returns: where the outputs are and how the best epoch did."""

    run_dir: Path
    checkpoint: Path
    best_epoch: int
    best_val_loss: float
    seconds: float
    epochs: list[dict[str, Any]] = field(default_factory=list)
    test: dict[str, float | None] = field(default_factory=dict)
    """Test-split metrics of the best checkpoint, where fit scores the test split itself (CIFAR-100)."""
    model: nn.Module | None = field(default=None, repr=False)
    """The model as it ended training (last epoch, not the best checkpoint)."""
    start_epoch: int = 0
    """The first epoch this call trained (> 0: a resumed run; ``len(epochs)``: it was finished already)."""

    def describe(self) -> str:
        last = self.epochs[-1] if self.epochs else {}
        keys = [k for k in last if k.startswith("val_")]
        metrics = ", ".join(f"{k} {last[k]:.3f}" for k in keys if isinstance(last[k], float))
        n = len(self.epochs)
        if self.start_epoch >= n and n:
            how = f"the run was finished ({_plural(n, 'epoch')}); nothing to train"
        elif self.start_epoch:
            how = (f"trained {_plural(n, 'epoch')} ({n - self.start_epoch} after resuming at epoch "
                   f"{self.start_epoch}) in {self.seconds:.1f} s")
        else:
            how = f"trained {_plural(n, 'epoch')} in {self.seconds:.1f} s"
        text = (f"{how}; best epoch {self.best_epoch} (val loss {self.best_val_loss:.4f}) -> {self.checkpoint}\n"
                f"last epoch: {metrics}")
        if self.test:
            text += "\ntest (best checkpoint): " + ", ".join(f"{k} {v:.4f}" for k, v in self.test.items()
                                                             if isinstance(v, float))
        return text

    def to_json(self) -> dict[str, Any]:
        """``summary.json``: the run's outcome (written last; its presence marks the run finished)."""
        return {"epochs": len(self.epochs), "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "checkpoint": self.checkpoint.name, "last": self.epochs[-1] if self.epochs else {},
                "test": self.test, "start_epoch": self.start_epoch, "seconds": self.seconds}


def build_model(cfg: TrainConfig, *, init: bool = False) -> nn.Module:
    """The configured model, built as inference builds it (:func:`polypbench.inference.build.build_model`): random
    init unless ``model_kwargs`` names local weights, or, with ``init`` (the model a run starts from), the
    backbone file the config key ``weights`` names (:func:`~polypbench.models.weights.resolve_weights`)."""
    spec = cfg.inference()
    path = resolve_weights(cfg.weights, cfg.model, imagenet_weights(cfg.model)) if init else None
    if path is not None:
        spec = dataclasses.replace(spec, model_kwargs={**spec.model_kwargs, "weights": str(path)})
    return build_inference_model(spec)


def build_state(cfg: TrainConfig, model: nn.Module, steps_per_epoch: int = 1) -> TrainState:
    """The training state of ``model``: its main and gate optimizers (:func:`build_optimizers`), the LR schedule
    (``lr_schedule``: none for ``constant``, over ``epochs * steps_per_epoch`` iterations otherwise) and the AMP
    GradScaler where the config asks for one (:func:`uses_scaler`: the reference's, initial scale 2^16).
    Whatever is set here is saved in ``last.pt`` and restored on resume; the loop steps the ``scheduler`` after
    every iteration."""
    main_opt, gate_opt = build_optimizers(model, cfg.lr, cfg.gate_lr, gr_mode=cfg.gr_mode,
                                          weight_decay=cfg.weight_decay)
    scheduled = [main_opt, gate_opt] if cfg.lr_schedule_gates else [main_opt]
    scheduler = build_schedule(cfg.lr_schedule, scheduled, cfg.epochs * steps_per_epoch,
                               steps_per_epoch=steps_per_epoch, t0=cfg.lr_t0 or cfg.epochs, min_lr=cfg.min_lr)
    scaler = torch.amp.GradScaler(cfg.device, init_scale=2.0**16) if uses_scaler(cfg) else None
    return TrainState(model, main_opt, gate_opt, scheduler=scheduler, scaler=scaler)


def uses_scaler(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` trains with the reference's GradScaler: ``paper_amp: fp16-scaler``, or ``auto`` on CUDA."""
    return cfg.paper_amp == "fp16-scaler" or (cfg.paper_amp == "auto" and cfg.device == "cuda")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def evaluate_split(cfg: TrainConfig, objective: Objective, ev: Evaluation) -> tuple[float, dict[str, float | None]]:
    """The training loss over one evaluated split, and that loss with the task's metrics keyed ``val_*`` (the
    validation split) or ``<split>_*``."""
    prefix = "val" if ev.split == "validation" else ev.split
    loss = float(objective.loss(ev.raw, ev.target)) if len(ev.target) else math.nan
    if ev.split == "validation" and cfg.dataset == "polyp" and cfg.val_frames_per_polyp is not None:
        ev = per_polyp(ev)  # a subset of each polyp's frames: scored per polyp (the mean of its frames)
    return loss, {f"{prefix}_loss": loss, **{f"{prefix}_{k}": v for k, v in objective.task.metrics(cfg, ev).items()}}


def per_polyp(ev: Evaluation) -> Evaluation:
    """``ev`` with polyp-level predictions: each polyp's task columns averaged over its evaluated frames (what the
    scorer takes when not every frame was predicted: ``val_frames_per_polyp``)."""
    frame = ev.predictions.drop(columns=["frame_index"], errors="ignore")
    keys = [c for c in ("dataset", "polyp_id") if c in frame]
    return dataclasses.replace(ev, predictions=frame.groupby(keys, sort=False).mean(numeric_only=True).reset_index())


def fit(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> RunSummary:
    """Train ``cfg`` into ``run_dir`` (outputs: see the module docstring) and return the :class:`RunSummary`.

    A ``run_dir`` that holds a run is refused unless ``resume`` (continue from its ``last.pt``, with the same
    config; more epochs are allowed; a finished run returns at once) or ``overwrite`` (its run files are removed
    first). ``resume`` on a folder without a run starts it, so a job script can always pass it. Config errors are
    raised before anything is written. :func:`~polypbench.train.rundir.run_status` tells a finished run
    (``summary.json``) from an unfinished one.

    Launched by torchrun (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel; rank 0 validates and writes
    the files, and every rank returns the same weights (checked at the end).
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("config key 'device' is 'cuda' but no CUDA device is available; expected device=cpu")
    todo = rundir.plan(run_dir, cfg, resume=resume, overwrite=overwrite)  # reads only
    ctx = distributed.setup(cfg.device)
    try:
        return _fit(cfg, run_dir, todo, ctx, start)
    finally:
        distributed.teardown(ctx)


@dataclass
class _Best:
    epoch: int = -1
    val_loss: float = math.inf

    def update(self, epoch: int, val_loss: float) -> bool:
        if val_loss < self.val_loss or self.epoch < 0:
            self.epoch, self.val_loss = epoch, val_loss
            return True
        return False


def _fit(cfg: TrainConfig, run_dir: Path, todo: rundir.Plan, ctx: distributed.DistContext,
         start: float) -> RunSummary:
    distributed.barrier(ctx)  # every rank has looked at the folder before rank 0 changes it
    if todo.finished:
        return _finished(cfg, run_dir, todo, start)
    seed_everything(cfg.seed)
    device = ctx.device
    data = build_data(cfg, ctx.rank, ctx.world_size)
    task = TASKS[cfg.task]
    target_stats = task.fit_stats(data.train_targets)
    objective = task.objective(cfg, target_stats)
    model = build_model(cfg, init=True).to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    state = build_state(cfg, model, len(data.train))
    pixels = cfg.pixel_spec(cfg.augment)
    augmenter = DeviceAugment.for_spec(pixels, cfg.seed)
    state.generators = {f"loader_{name}": loader.generator for name, loader in data.loaders().items()
                        if loader.generator is not None}
    if augmenter is not None:
        state.generators["device_augment"] = augmenter.generator
    best, history, saved_rng = _Best(), [], None
    if todo.last is not None:
        with _resuming(run_dir):
            state.load_state_dict(todo.last)
            best = _Best(int(todo.last["best"]["epoch"]), float(todo.last["best"]["val_loss"]))
            history, saved_rng = list(todo.last["history"]), list(todo.last["rng"])
        todo.last = None  # the weights and optimizer states are in place: free the checkpoint's copy
    net: nn.Module = torch.compile(model) if cfg.compile else model  # type: ignore[assignment]  # compiled: a Module
    step_model = distributed.wrap(net, ctx, frozen=gate_parameters(model) if cfg.gr_mode == "gr" else ())
    step = _Step(pixels, device, augmenter, objective)

    # Everything that can refuse the config has run: only now is the folder made or changed.
    if ctx.is_main:
        _open_run_dir(cfg, run_dir, todo, data, ctx.world_size, history)
    distributed.barrier(ctx)
    if ctx.is_main:
        note(_start_line(cfg, run_dir, todo, data, ctx))
    metrics = rundir.MetricsLog(run_dir, enabled=ctx.is_main, start_epoch=todo.start_epoch)
    if saved_rng is not None:  # the last thing before the first step: nothing draws in between
        with _resuming(run_dir):
            _restore_rng(saved_rng, ctx)
    saved = todo.start_epoch - 1  # the last epoch whose last.pt is written
    session: list[float] = []
    try:
        for epoch in range(todo.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            data.sampler.set_epoch(epoch)
            means = _train_epoch(cfg, epoch, state, step_model, data.train, step, show=ctx.is_main)
            val_loss = math.nan
            if ctx.is_main:
                validation: dict[str, float | None] = {}
                validated = epoch % cfg.val_every == 0  # val_every: epochs 0, k, 2k, ...
                if validated:
                    if isinstance(data.validation.sampler, FramesPerPolyp):  # val_frames_per_polyp: a new draw
                        data.validation.sampler.set_epoch(epoch)
                    val_loss, validation = evaluate_split(cfg, objective, run_inference(
                        net, data.validation, objective, device, pixels=cfg.pixel_spec(),
                        channels_last=cfg.channels_last, bf16=cfg.bf16, desc=f"validate epoch {epoch}",
                        summary=False))
                row: dict[str, Any] = {"epoch": epoch, **{f"train_{k}": v for k, v in means.items()}, **validation,
                                       "lr": float(state.main_opt.param_groups[0]["lr"])}
                row["seconds"] = time.perf_counter() - t0
                row["best"] = validated and best.update(epoch, val_loss)
                if row["best"]:
                    checkpoint.save(_weights(cfg, model, target_stats, epoch, val_loss), run_dir / BEST)
                history.append(row)
                metrics.write(history)
            rngs = distributed.gather_objects(checkpoint.rng_state(), ctx)
            if ctx.is_main:
                checkpoint.save({"format": checkpoint.FORMAT, **_weights(cfg, model, target_stats, epoch, val_loss),
                                 **state.state_dict(), "rng": rngs, "sampler": {"seed": data.sampler.seed,
                                                                               "epoch": epoch},
                                 "history": history, "best": {"epoch": best.epoch, "val_loss": best.val_loss}},
                                run_dir / LAST)
                saved = epoch
                session.append(time.perf_counter() - t0)
                note(_epoch_line(cfg, row, session))
                log.debug("epoch %d: %s", epoch, row)
            distributed.barrier(ctx)
    except KeyboardInterrupt:
        raise Interrupted(run_dir, saved, cfg.epochs) from None
    finally:
        metrics.close()
    digests = distributed.replica_digests(model, ctx)
    if len(set(digests)) > 1:
        raise TrainingError(f"DDP replicas diverged: rank weight digests differ ({', '.join(d[:8] for d in digests)})")
    test: dict[str, float | None] = {}
    if ctx.is_main and data.test is not None:
        test = _score_test(cfg, run_dir, data.test, objective, device)
    summary = RunSummary(run_dir, run_dir / BEST, best.epoch, best.val_loss, time.perf_counter() - start, history,
                         test, model, start_epoch=todo.start_epoch)
    if ctx.is_main:
        rundir.write_summary(run_dir, summary.to_json())
    return summary


@dataclass(frozen=True)
class _Step:
    """What turns a batch into a step's input and loss."""

    pixels: PixelSpec
    device: torch.device
    augmenter: DeviceAugment | None
    objective: Objective


def _train_epoch(cfg: TrainConfig, epoch: int, state: TrainState, step_model: nn.Module, loader: Loader,
                 step: _Step, *, show: bool) -> dict[str, float]:
    """One epoch of :func:`train_step` over ``loader`` (the scheduler, if any, stepped after each); returns the
    mean of each step statistic (loss, grad_norm, ...). ``show``: the progress bar with the running loss."""
    state.model.train()
    sums: dict[str, float] = {}
    steps = 0
    autocast_dtype = torch.bfloat16 if cfg.bf16 else None
    if state.scaler is not None and cfg.device == "cuda":
        autocast_dtype = torch.float16  # the reference's fp16 autocast; on the CPU the scaler runs in fp32
    target = step.objective.task.target
    with Progress(len(loader), f"epoch {epoch}/{cfg.epochs - 1}", unit="batch", enabled=show, summary=False) as bar:
        for batch in loader:
            x = model_input(batch, step.pixels, step.device, non_blocking=True, augment=step.augmenter)
            y = batch.target(target).to(step.device, non_blocking=True)
            stats = train_step(step_model, x, y, step.objective.loss, state.main_opt, state.gate_opt,
                               gr_mode=cfg.gr_mode, gate_loss_fn=step.objective.gate_loss, clip_main=cfg.clip_main,
                               clip_gate=cfg.clip_gate, autocast_dtype=autocast_dtype,
                               channels_last=cfg.channels_last, scaler=state.scaler)
            if state.scheduler is not None:
                state.scheduler.step()
            if not math.isfinite(stats["loss"]):
                raise TrainingError(f"non-finite training loss at epoch {epoch} step {steps}; expected a lower lr")
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
            bar.set_postfix(f"loss {sums['loss'] / steps:.4g}")
            bar.update()
    return {k: v / max(steps, 1) for k, v in sums.items()}


def _weights(cfg: TrainConfig, model: nn.Module, stats: TargetStats, epoch: int, val_loss: float) -> dict[str, Any]:
    """What ``predict`` reads from a checkpoint (``best.pt``; ``last.pt`` has it too)."""
    return {"state_dict": model.state_dict(), "config": cfg.to_dict(), "model": cfg.model, "task": cfg.task,
            **stats.to_checkpoint(), "epoch": epoch, "val_loss": val_loss}


def _open_run_dir(cfg: TrainConfig, run_dir: Path, todo: rundir.Plan, data: TrainData, world_size: int,
                  history: list[dict[str, Any]]) -> None:
    """Make or clear the folder and write ``config.yaml``; on resume, add a ``resumed`` entry to its provenance and
    bring the metric files back to ``last.pt``'s epoch."""
    if todo.mode == "replace":
        rundir.clear(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if todo.mode != "resume":
        save_config(cfg, run_dir, provenance(data.sources, world_size))
        return
    block = read_provenance(run_dir)
    after = todo.start_epoch - 1
    block = resumed(block, after, world_size)
    if block.get("data") is not None and block["data"] != data.sources:
        log.warning("%s: the data or pixel source differs from the run's start (see config.yaml); the resumed run "
                    "is not the one it would have been", run_dir)
        block["resumed"][-1]["data"] = data.sources
    save_config(cfg, run_dir, block)
    (run_dir / rundir.SUMMARY).unlink(missing_ok=True)  # more epochs for a finished run: unfinished again
    rundir.write_metrics(run_dir, history)  # drop any row written after last.pt (a kill in between)


def _restore_rng(saved: list[dict[str, Any]], ctx: distributed.DistContext) -> None:
    if len(saved) != ctx.world_size:
        log.warning("resuming with %d processes a run checkpointed with %d: random streams differ from an "
                    "uninterrupted run", ctx.world_size, len(saved))
    checkpoint.set_rng_state(saved[ctx.rank % len(saved)])


def _start_line(cfg: TrainConfig, run_dir: Path, todo: rundir.Plan, data: TrainData,
                ctx: distributed.DistContext) -> str:
    where = f"{ctx.device.type}" + (f" x {ctx.world_size}" if ctx.world_size > 1 else "")
    what = (f"{cfg.model} ({cfg.task}, gr_mode {cfg.gr_mode}) on {where}: {_plural(cfg.epochs, 'epoch')} of "
            f"{len(data.train)} batches of {cfg.batch_size}")
    pixels = [f"{s['dataset']} {_pixels(s['pixels']['train'])}" for s in data.sources if "pixels" in s]
    text = f"train {what} -> {run_dir}" + (f"; pixels: {', '.join(pixels)}" if pixels else "")
    text += "".join(f"; {n}" for n in data.notes)
    if todo.mode == "resume":
        text = f"resuming after epoch {todo.start_epoch - 1} (last.pt): {text}"
    return text


def _pixels(source: dict[str, Any]) -> str:
    if source["source"] == "shards":
        return f"from shards ({source['shard_spec'].get('size')} px)"
    return "from raw frames"


def _value(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _epoch_line(cfg: TrainConfig, row: dict[str, Any], session: list[float]) -> str:
    """``epoch 3/29: train_loss 0.8123, val_loss 0.7710 (best), val_polyp_balanced_accuracy 0.512; 41 s, ETA
    17 min 58 s``."""
    epoch = int(row["epoch"])
    shown = ["train_loss", "val_loss", *(f"val_{k}" for k in TASKS[cfg.task].headline)]
    parts = [f"{k} {_value(row.get(k))}" + (" (best)" if k == "val_loss" and row["best"] else "") for k in shown
             if k in row]
    left = cfg.epochs - epoch - 1
    timing = duration(session[-1]) + (f", ETA {duration(left * sum(session) / len(session))}" if left else "")
    return f"epoch {epoch}/{cfg.epochs - 1}: {', '.join(parts)}; {timing}"


def _finished(cfg: TrainConfig, run_dir: Path, todo: rundir.Plan, start: float) -> RunSummary:
    """The summary of a run that had already finished (``resume`` on it trains nothing)."""
    last = todo.last
    assert last is not None
    model = build_model(cfg)
    with _resuming(run_dir):
        model.load_state_dict(last["state_dict"])
        history = list(last["history"])
        best = int(last["best"]["epoch"]), float(last["best"]["val_loss"])
    done = read_json(run_dir / rundir.SUMMARY) or {}
    note(f"{run_dir}: the run was finished ({_plural(len(history), 'epoch')}); nothing to train")
    return RunSummary(run_dir, run_dir / BEST, *best, time.perf_counter() - start, history,
                      dict(done.get("test") or {}), model, start_epoch=len(history))


def _score_test(cfg: TrainConfig, run_dir: Path, loader: Loader, objective: Objective,
                device: torch.device) -> dict[str, float | None]:
    """Score the public test split once, with the best checkpoint; written to ``test_metrics.json``."""
    best = build_model(cfg).to(device)
    best.load_state_dict(torch.load(run_dir / "best.pt", map_location=device, weights_only=True)["state_dict"])
    if cfg.channels_last:
        best.to(memory_format=torch.channels_last)
    _, metrics = evaluate_split(cfg, objective, run_inference(best, loader, objective, device, "test",
                                                              pixels=cfg.pixel_spec(),
                                                              channels_last=cfg.channels_last, bf16=cfg.bf16))
    atomic_write_json(run_dir / rundir.TEST_METRICS, metrics)
    return metrics
