"""A run folder: what it holds, whether it holds a run (and a finished one), and the per-epoch metric files.

Files of a run (``RUN_FILES``): ``config.yaml`` (resolved config + provenance), ``metrics.jsonl`` and
``metrics.csv`` (one row per epoch), ``best.pt``, ``last.pt``, ``test_metrics.json`` (CIFAR-100) and
``summary.json``, written last: its presence is what marks a run finished (:func:`run_status`). TensorBoard
event files go to ``tensorboard/`` when the ``tensorboard`` package is installed.

:func:`plan` decides, before anything is written, what :func:`~polypbench.train.fit` does with a folder: start
a new run, continue one (``resume``) or replace one (``overwrite``); a folder holding a run is refused otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polypbench.errors import ConfigError
from polypbench.fileio import atomic_write, atomic_write_json, read_json
from polypbench.schema import RUN_METRICS_FILE
from polypbench.train.checkpoint import BEST, LAST, load_last
from polypbench.train.config import TrainConfig, config_key

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
METRICS_JSONL = RUN_METRICS_FILE
METRICS_CSV = "metrics.csv"
SUMMARY = "summary.json"
TEST_METRICS = "test_metrics.json"
TENSORBOARD = "tensorboard"
RUN_FILES = (CONFIG, METRICS_JSONL, METRICS_CSV, BEST, LAST, TEST_METRICS, SUMMARY)
RESUMABLE_KEYS = frozenset({"epochs", "num_workers", "device", "compile", "raw_roots"})
"""Config keys a resumed run may change: more (never fewer) epochs, and how and where it runs. Any other
difference is refused: the run would no longer be the one its files describe."""


def run_files(run_dir: str | Path) -> list[str]:
    """The run files present in ``run_dir`` (``tensorboard/`` included)."""
    root = Path(run_dir)
    return [name for name in (*RUN_FILES, TENSORBOARD) if (root / name).exists()]


def run_status(run_dir: str | Path) -> str:
    """``new`` (no run files), ``finished`` (``summary.json`` written: the run ended) or ``unfinished``."""
    files = run_files(run_dir)
    if not files:
        return "new"
    return "finished" if SUMMARY in files else "unfinished"


@dataclass
class Plan:
    """What :func:`~polypbench.train.fit` does with the run folder: ``mode`` ``new`` (nothing there), ``resume``
    (continue from ``last``, the loaded ``last.pt``) or ``replace`` (remove the run files first: ``overwrite``, or
    ``resume`` of a run that stopped before its first checkpoint)."""

    mode: str
    last: dict[str, Any] | None = None
    finished: bool = False
    start_epoch: int = 0
    """The first epoch to train (``last.pt``'s epoch + 1 on resume)."""


def plan(run_dir: str | Path, cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> Plan:
    """Decide what to do with ``run_dir`` (reads only; see :class:`Plan`). A folder holding a run is refused
    unless ``resume`` or ``overwrite``; ``resume`` checks that ``cfg`` is the run's config (:data:`RESUMABLE_KEYS`
    aside) and that it asks for at least the epochs already trained."""
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other; expected one of them")
    root = Path(run_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"run folder {root} is a file; expected a folder (new or holding a run)")
    files = run_files(root)
    if not files:
        if resume:
            log.info("%s holds no run yet: starting it", root)
        return Plan("new")
    if overwrite:
        return Plan("replace")
    if not resume:
        raise ConfigError(f"run folder {root} already holds a run ({describe(root, files)}); expected --resume to "
                          "continue it or --overwrite to replace it (fit(..., resume=True / overwrite=True))")
    if LAST not in files:
        if BEST in files or METRICS_JSONL in files:
            raise ConfigError(f"{root} holds a run without {LAST} (from an older polypbench?); nothing to resume "
                              "from, expected --overwrite to start it afresh")
        return Plan("replace")  # stopped before its first epoch ended: starting again is resuming it
    last = load_last(root / LAST)
    check_resumable(cfg, last, root)
    done = int(last["epoch"]) + 1
    return Plan("resume", last, finished=SUMMARY in files and done >= cfg.epochs, start_epoch=done)


def describe(root: Path, files: list[str]) -> str:
    """``run_status`` and how far ``last.pt`` got, for messages."""
    text = f"{run_status(root)}"
    done = read_json(root / SUMMARY) if SUMMARY in files else None
    if isinstance(done, dict) and "epochs" in done:
        text += f", {done['epochs']} epoch{'s' if done['epochs'] != 1 else ''}"
    elif METRICS_JSONL in files:
        rows = sum(1 for line in (root / METRICS_JSONL).read_text().splitlines() if line.strip())
        text += f", {rows} epoch{'s' if rows != 1 else ''} done"
    return text


def check_resumable(cfg: TrainConfig, last: dict[str, Any], root: Path) -> None:
    """A one-line error unless ``cfg`` may continue the run that wrote ``last``."""
    saved = last.get("config", {})
    now = cfg.to_dict()
    differ = [k for k in now if k not in RESUMABLE_KEYS and saved.get(k) != now[k]]
    if differ:
        shown = "; ".join(f"{config_key(k)}: {saved.get(k)!r} -> {now[k]!r}" for k in differ[:3])
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        raise ConfigError(f"{root}: the config differs from the run's ({shown}{more}); expected the run's own config "
                          "to resume (its config.yaml), or --overwrite to start afresh")
    done = int(last["epoch"]) + 1
    if cfg.epochs < done:
        raise ConfigError(f"{root}: the run has trained {done} epoch{'s' if done != 1 else ''}; expected epochs >= "
                          f"{done} to resume it")


def clear(run_dir: Path) -> None:
    """Remove the run files (and ``tensorboard/``) from ``run_dir``; other files stay."""
    for name in run_files(run_dir):
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _tensorboard(log_dir: Path, purge_step: int | None) -> Any:
    """A ``SummaryWriter`` when the ``tensorboard`` package is installed (the ``[tensorboard]`` extra), else None."""
    try:
        import tensorboard  # noqa: F401 - torch's writer needs it; absent: no event files
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard is not installed (pip install 'polypbench[tensorboard]'); no event files")
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def _tag(key: str) -> str | None:
    """TensorBoard tag of a metrics key: ``train_loss`` -> ``train/loss``, ``val_polyp_mae_mm`` ->
    ``val/polyp_mae_mm``, ``lr`` -> ``epoch/lr``; None for keys that are not curves."""
    if key in ("epoch", "best"):
        return None
    head, _, rest = key.partition("_")
    return f"{head}/{rest}" if head in ("train", "val", "test") and rest else f"epoch/{key}"


class MetricsLog:
    """The per-epoch files of a run: ``metrics.jsonl``, ``metrics.csv`` (both rewritten whole, atomically, from
    the history) and TensorBoard scalars (step = epoch). ``enabled`` False (DDP ranks other than 0) writes
    nothing."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, start_epoch: int = 0) -> None:
        self.run_dir, self.enabled = run_dir, enabled
        self.writer = _tensorboard(run_dir / TENSORBOARD, start_epoch or None) if enabled else None

    def write(self, history: list[dict[str, Any]]) -> None:
        """Write the files for ``history`` (every epoch so far); its last row goes to TensorBoard."""
        if not self.enabled:
            return
        write_metrics(self.run_dir, history)
        if self.writer is not None and history:
            row = history[-1]
            for key, value in row.items():
                tag = _tag(key)
                if tag is not None and isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and math.isfinite(value):
                    self.writer.add_scalar(tag, value, global_step=int(row["epoch"]))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """``metrics.jsonl`` and ``metrics.csv`` of ``history``, each rewritten whole and atomically."""
    atomic_write(run_dir / METRICS_JSONL, "".join(json.dumps(row) + "\n" for row in history))
    atomic_write(run_dir / METRICS_CSV, to_csv(history))


def to_csv(history: list[dict[str, Any]]) -> str:
    """The history as CSV: one row per epoch, the union of the keys as columns (first-seen order), empty where a
    row lacks one."""
    columns = list(dict.fromkeys(k for row in history for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """``summary.json``, the last file a run writes (its presence marks the run finished)."""
    atomic_write_json(run_dir / SUMMARY, summary)
