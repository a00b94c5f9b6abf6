"""Shared fixtures: small synthetic raw dumps in each real layout, and their prepared manifests.

Built once per test session with the real code (synth + prepare), never mocked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One intra-op thread for torch (read when torch is first imported; child processes inherit it). The suite's
# tensors are small: on 2 shared cores, tests/train took 222 s with torch's default 2 threads and 114 s with one
# (half the CPU time too: threads spinning for each other). Set OMP_NUM_THREADS yourself to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Test modules import helpers from tests/helpers.py; the names stay here too for branches written before the move.
from tests.helpers import DATASETS, Prepared, link_copy, replace_file  # noqa: F401


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """The CLI run in-process (``configure_logging``, e.g. with -q) resets the root logger; each test starts from
    the same logging state, so ``caplog`` sees warnings whatever ran before."""
    import logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.fixture(scope="session", autouse=True)
def _hf_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["HF_HOME"] = str(tmp_path_factory.mktemp("hf_home"))


@pytest.fixture(scope="session")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Synthetic raw dumps (2 frames per polyp, 1 negative per video) of every dataset."""
    from polypbench.synth import synthesize

    root = tmp_path_factory.mktemp("raw")
    return {name: synthesize(name, root / name, frames_per_polyp=2, negatives_per_video=1, seed=0) for name in DATASETS}


@pytest.fixture(scope="session")
def prepared(dumps: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Prepared]:
    """Each synthetic dump prepared with the real converter (one worker: deterministic and cheap)."""
    from polypbench.prepare import prepare

    root = tmp_path_factory.mktemp("prepared")
    out = {}
    for name, summary in dumps.items():
        raw = Path(summary.root)  # type: ignore[attr-defined]
        out[name] = Prepared(name, raw, root / name, summary, prepare(name, raw, root / name, workers=1))
    return out
