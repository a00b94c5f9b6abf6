"""Shared fixtures: small synthetic raw dumps in each real layout, and their prepared manifests.

Built once per test run with the real code (synth + prepare), never mocked; pytest-xdist workers share them.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One intra-op thread for torch (read when torch is first imported; child processes inherit it). The suite's
# tensors are small: on 2 shared cores, tests/train took 222 s with torch's default 2 threads and 114 s with one
# (half the CPU time too: threads spinning for each other). Set OMP_NUM_THREADS yourself to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Test modules import helpers from tests/helpers.py; the names stay here too for branches written before the move.
from polypbench.fileio import quick_exit
from tests.helpers import DATASETS, MATERIALIZED_SIZE, SYNTH, Prepared, link_copy, replace_file, run_browse  # noqa: F401

# Hugging Face's caches in a folder of this process, removed at its exit, never the user's ~/.cache/huggingface: set
# here, before any test module imports `datasets` (which reads HF_HOME once, at import); child processes inherit it.
_HF_HOME = tempfile.TemporaryDirectory(prefix="polypbench-test-hf-")
os.environ["HF_HOME"] = _HF_HOME.name
quick_exit()  # each pytest-xdist worker ends its run 5 s sooner (the collections at exit skip the live objects)

T = TypeVar("T")


LONGEST_FILES = ("tests/leaderboard/test_models.py", "tests/test_demo.py", "tests/test_readme.py",
                 "tests/leaderboard/test_browser.py", "tests/test_pages_in_browser.py", "tests/train/test_resume.py",
                 "tests/leaderboard/test_app.py", "tests/train/test_fsg_paper.py", "tests/load/test_materialize.py",
                 "tests/test_sweep.py", "tests/leaderboard/test_processes.py", "tests/train/test_distributed.py",
                 "tests/models/test_smoke.py", "tests/models/test_models.py", "tests/train/test_paper_protocol.py",
                 "tests/test_export.py", "tests/train/test_harness.py", "tests/test_browse.py",
                 "tests/prepare/test_engine.py", "tests/leaderboard/test_hardening.py",
                 "tests/evaluate/test_report_answer.py", "tests/synth/test_synth.py", "tests/leaderboard/test_board.py",
                 "tests/train/test_routing.py", "tests/prepare/test_bad_input.py", "tests/prepare/test_faults.py",
                 "tests/prepare/test_fuzz.py", "tests/models/test_weights.py", "tests/test_verify.py",
                 "tests/train/test_device_augment.py")
"""The test files that take 3.5 s or more (``--durations``, summed per file), longest first: a worker takes the next
file when it runs out, so the longest go first and the short ones fill in at the end (a long file handed out last
left one worker running it alone for 30 s; a 10 s one, 10 s)."""


@pytest.hookimpl(trylast=True)  # after -m has deselected
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the order in which ``make test`` hands whole files to the two workers (``--dist loadfile
    --no-loadscope-reorder``): the longest files first, so that the many short ones fill in behind them and both
    workers finish together; then one file that needs the session's dumps (its worker makes them) and the files that
    need none (the other worker runs them meanwhile, instead of waiting for the dumps); then the rest. A serial run
    keeps the collection order."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return

    def file(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    longest = {name: i for i, name in enumerate(LONGEST_FILES)}
    needs_dumps = {file(item) for item in items if "dumps" in getattr(item, "fixturenames", ())}
    first = next((file(item) for item in items if file(item) in needs_dumps and file(item) not in longest), None)

    def order(item: pytest.Item) -> tuple[int, int]:
        name = file(item)
        if name in longest:
            return 0, longest[name]
        return 1, 0 if name == first else 1 if name not in needs_dumps else 2

    items.sort(key=order)


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


def _made_each(tmp_path_factory: pytest.TempPathFactory, kind: str, names: tuple[str, ...],
               make: Callable[[str, Path], T]) -> dict[str, T]:
    """``make(name, folder)`` once per test run for each of ``names``. Under pytest-xdist the first worker that
    takes a name's file lock makes it in the run's common temp folder and the other workers load its pickle (the
    files are shared: tests never change them; they change a :func:`link_copy`). A worker first makes the names no
    other worker is making, then waits for the rest, so two workers that need them at once make them in parallel.
    Without xdist: in this session's temp folder."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        root = tmp_path_factory.mktemp(kind)
        return {name: make(name, root / name) for name in names}
    from filelock import FileLock, Timeout

    common = tmp_path_factory.getbasetemp().parent / kind
    common.mkdir(exist_ok=True)
    made: dict[str, T] = {}

    def take(name: str, timeout: float) -> None:
        with FileLock(str(common / f"{name}.lock"), timeout=timeout):
            done = common / f"{name}.pickle"
            if done.is_file():
                made[name] = pickle.loads(done.read_bytes())
                return
            shutil.rmtree(common / name, ignore_errors=True)  # a worker that failed making it left a part
            made[name] = make(name, common / name)
            done.write_bytes(pickle.dumps(made[name]))

    for name in names:  # first the ones no other worker holds
        with contextlib.suppress(Timeout):
            take(name, timeout=0)
    for name in names:
        if name not in made:
            take(name, timeout=-1)
    return {name: made[name] for name in names}


@pytest.fixture(scope="session")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Synthetic raw dumps (:data:`SYNTH`: 2 frames per polyp, 1 negative per video) of every dataset, made once per
    test run. Two synth processes in a serial run (the same bytes as one, in half the time); one under
    xdist, where the workers make different datasets at once."""
    from polypbench.synth import synthesize

    workers = 1 if "PYTEST_XDIST_WORKER" in os.environ else 2
    return _made_each(tmp_path_factory, "raw", DATASETS,
                      lambda name, root: synthesize(name, root, **SYNTH, workers=workers))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def prepared(dumps: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Prepared]:
    """Each synthetic dump prepared with the real converter (one worker: deterministic and cheap), once per run."""
    from polypbench.prepare import prepare

    def make(name: str, root: Path) -> Prepared:
        summary = dumps[name]
        raw = Path(summary.root)  # type: ignore[attr-defined]
        return Prepared(name, raw, root, summary, prepare(name, raw, root, workers=1))

    return _made_each(tmp_path_factory, "prepared", DATASETS, make)


@pytest.fixture(scope="session")
def materialized(prepared: dict[str, Prepared], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SUN's prepared folder (a :func:`link_copy`) with its crops materialized at the demo config's margin and the
    tests' :data:`MATERIALIZED_SIZE`, once per run: a test whose point is the training loop (resume, DDP), not
    where pixels come from, reads small crops each epoch instead of decoding whole frames (the raw path has its
    own tests). ``source=auto`` picks them; a run folder's provenance says so."""
    from polypbench.shards import materialize
    from polypbench.train import load_config

    def make(name: str, root: Path) -> Path:
        link_copy(prepared[name].out, root)
        materialize(root, size=MATERIALIZED_SIZE, margin=load_config("demo").margin, workers=1)
        return root

    return _made_each(tmp_path_factory, "materialized", ("sun",), make)


@pytest.fixture(scope="session")
def browse_site(prepared: dict[str, Prepared], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``polypbench browse`` of every prepared dataset with its raw dump (one frame a polyp), once per run: the
    site's folder and what the command printed. tests/test_browse.py reads its files, tests/test_pages_in_browser.py
    opens its pages in Chromium; neither changes it."""
    def make(_name: str, root: Path) -> tuple[Path, str]:
        raws = [a for n in DATASETS for a in ("--raw", prepared[n].raw)]
        return root, run_browse(*(prepared[n].out for n in DATASETS), *raws, "--out", root, "--frames", "1")

    return _made_each(tmp_path_factory, "browse", ("site",), make)["site"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One headless Chromium per test module (tests/browser.py: skips without one, fails under ``CI=true``)."""
    from tests import browser

    with browser.chromium() as found:
        yield found


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder for screenshots of the browser tests: ``$POLYPBENCH_ARTIFACTS``, else pytest's tmp dir."""
    from tests.browser import artifacts_dir

    return artifacts_dir(tmp_path_factory.mktemp("artifacts"))
