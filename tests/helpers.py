"""Helpers shared by the test packages: the datasets under test, the prepared-dump record of the session
fixtures (tests/conftest.py), and cheap copies of a dump that tests may change file by file."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from polypbench import datasets as registry

if TYPE_CHECKING:
    import torch

DATASETS = registry.synth_names()
"""Every dataset with a synthetic generator (the registry's, so a new entry is tested without editing tests)."""
SYNTH = {"frames_per_polyp": 2, "negatives_per_video": 1, "seed": 0}
"""The options of the session's synthetic dumps (the ``dumps`` fixture); tests of the dumps' layout read them."""
MATERIALIZED_SIZE = 32
"""Crop size of the session's ``materialized`` fixture: the training-loop tests' ``img_size`` (their margin is the
demo config's, read from it)."""


@dataclass
class Prepared:
    dataset: str
    raw: Path
    out: Path
    synth: object  # polypbench.synth summary
    report: object  # polypbench.prepare.PrepareReport


def link_copy(src: Path, dst: Path) -> Path:
    """A cheap copy of a dump (hard links): tests then replace single files (unlink first, never edit in place)."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def replace_file(path: Path, data: bytes | str) -> None:
    """Replace a (possibly hard-linked) file without touching the shared original."""
    path.unlink()
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def run_browse(*args: str | Path) -> str:
    """``polypbench browse *args`` in this process; asserts it succeeded and returns what it printed."""
    from click.testing import CliRunner

    from polypbench.cli import main

    result = CliRunner().invoke(main, ["browse", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def serving(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Poll ``url`` until it answers 200: True then; False once ``process`` (the server) has exited or
    ``timeout_s`` has passed. One HTTP client for every poll (each new client builds a TLS context: 60 ms of CPU)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2) as client:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if client.get(url).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    return False


def seed_pass(model: torch.nn.Module, loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
              clip: float) -> None:
    """One pass of the seed's gradient-routed update (runners/trainer.py ``Trainer.fit``), written out
    independently of polypbench: scaled backward into every parameter, unscale ONE optimizer, clip the joint norm
    of all ``model.parameters()``, NaN to zero, scaler step of that optimizer, scaler update."""
    import torch

    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    for param in model.parameters():
        if param.grad is not None:
            param.grad = torch.nan_to_num(param.grad, nan=0.0, posinf=0.0, neginf=0.0)
    scaler.step(opt)
    scaler.update()
