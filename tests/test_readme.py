"""The README's code blocks (and docs/loading.md's), run as written on synthetic data, so they cannot drift.

Every fenced ``bash`` and ``python`` block runs, in order, in one scratch folder: the bash blocks with ``bash -eo
pipefail`` and a ``polypbench`` command that is this checkout's, the python blocks in a fresh process. Each command
is its own process, forked from a server that has imported torch once (:mod:`tests.forkserver`). The few
changes from the text are the table :data:`SUBSTITUTIONS` (the synthetic dumps for ``/data/...``, a 1-epoch tiny
training run, fewer workers on a shared CI machine), each applied to the lines that contain it. A block preceded by
``<!-- skip-test: reason -->`` is skipped with that reason (pytest -rs lists it). The submit block runs against
the server docs/leaderboard.md starts (its ``add-team`` and ``serve`` lines, on a free port).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.forkserver import ForkServer
from tests.helpers import serving

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/loading.md")
SKIP = re.compile(r"<!--\s*skip-test:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(bash|python)\n(.*?)^```$", re.S | re.M)
TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    lang: str
    code: str
    skip: str | None

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(doc: str) -> list[Block]:
    """The fenced bash and python blocks of ``doc``, each with the skip reason of a comment right above it."""
    text = (ROOT / doc).read_text()
    out = []
    for found in FENCE.finditer(text):
        before = text[:found.start()].rstrip().splitlines()
        skip = SKIP.fullmatch(before[-1].strip()) if before else None
        out.append(Block(doc, text.count("\n", 0, found.start()) + 1, found.group(1), found.group(2),
                         skip.group(1) if skip else None))
    return out


ALL = [b for doc in DOCS for b in blocks(doc)]

# (text in the docs, what the test runs instead): the only differences from the documented commands.
SUBSTITUTIONS: tuple[tuple[str, str], ...] = (
    # the tiny model, one epoch, one frame of each polyp
    ("--config resnet18-hag", "--config demo --set epochs=1 --set img_size=32 --set frames_per_polyp_per_epoch=1"),
    ("--workers 8", "--workers 2"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:{port}"),
)
RAW = {"/data/real-colon": "real-colon", "/data/SUN-SEG": "sun-seg", "/data/SUN": "sun"}
"""Raw roots of the docs -> the synthetic dump (longest first: /data/SUN-SEG before /data/SUN)."""


def substitute(code: str, dumps: dict[str, Path], port: int) -> str:
    for old, new in SUBSTITUTIONS:
        code = code.replace(old, new.format(port=port))
    for path in sorted(RAW, key=len, reverse=True):
        code = re.sub(re.escape(path) + r"(?![\w-])", str(dumps[RAW[path]]), code)
    return code


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Workspace:
    """One scratch folder for every block, the environment the blocks run in, the synthetic dumps."""

    cwd: Path
    env: dict[str, str]
    dumps: dict[str, Path]
    port: int
    forks: ForkServer
    failed: list[str] = field(default_factory=list)

    def run(self, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=self.cwd, env=env or self.env, capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def workspace(dumps: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """The scratch folder, and a bin/ first on PATH whose ``polypbench`` is this checkout's."""
    bin_dir = tmp_path_factory.mktemp("bin")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    forks = ForkServer.start(env)
    forks.shim(bin_dir)
    try:
        yield Workspace(tmp_path_factory.mktemp("readme"), env, {name: Path(d.root) for name, d in dumps.items()},
                        _free_port(), forks)
    finally:
        forks.stop()


def _server(ws: Workspace) -> tuple[subprocess.Popen[bytes], str]:
    """The leaderboard docs/leaderboard.md starts: its add-team line (for the token) and its serve line."""
    run_it = next(b for b in blocks("docs/leaderboard.md") if "leaderboard serve" in b.code)
    lines = run_it.code.splitlines()
    add_team = next(line for line in lines if "leaderboard add-team" in line)
    serve = next(line for line in lines if "leaderboard serve" in line).split("#")[0]
    made = ws.run(["bash", "-eo", "pipefail", "-c", add_team])
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    log_path = ws.cwd / "server.log"
    with open(log_path, "w") as log:  # the server keeps its own copy of the descriptor
        server = subprocess.Popen(["bash", "-c", f"exec {serve} --port {ws.port}"], cwd=ws.cwd, env=ws.env,
                                  stdout=log, stderr=subprocess.STDOUT)
    if serving(f"http://127.0.0.1:{ws.port}/api/info", server, 60):
        return server, token
    server.terminate()
    server.wait(timeout=30)
    pytest.fail(f"the docs/leaderboard.md server did not start: {log_path.read_text()[-2000:]}")


@pytest.mark.e2e
@pytest.mark.process  # the blocks run in order, in one folder: `make test` gives xdist workers whole files
@pytest.mark.parametrize("block", ALL, ids=lambda b: b.name)
def test_documented_block_runs(block: Block, workspace: Workspace) -> None:
    if block.skip:
        pytest.skip(f"{block.name}: {block.skip}")
    if workspace.failed:
        pytest.skip(f"an earlier block failed ({workspace.failed[0]}); this one depends on its outputs")
    if "polypbench submit" in block.code:  # a port free now, not when the module began (xdist workers bind ports)
        workspace.port = _free_port()
    code = substitute(block.code, workspace.dumps, workspace.port)
    env = dict(workspace.env)
    server = None
    if "polypbench submit" in code:
        server, env["TOKEN"] = _server(workspace)
    try:
        cmd = ["bash", "-eo", "pipefail", "-c", code] if block.lang == "bash" else workspace.forks.command("-c", code)
        result = workspace.run(cmd, env)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    if result.returncode != 0:
        if server is None:  # later blocks read what this one writes; a submission writes nothing they read
            workspace.failed.append(block.name)
        log = workspace.cwd / "server.log"
        extra = f"\nserver log:\n{log.read_text()[-3000:]}" if server is not None and log.exists() else ""
        pytest.fail(f"{block.name} ({block.lang}) exited {result.returncode}\n--- ran:\n{code}\n--- stdout:\n"
                    f"{result.stdout[-3000:]}\n--- stderr:\n{result.stderr[-3000:]}{extra}")


def test_every_block_is_run_or_skipped_with_a_reason() -> None:
    assert ALL and all(b.skip is None or b.skip.strip() for b in ALL)
    readme = [b for b in ALL if b.doc == "README.md"]
    assert sum(b.skip is None for b in readme) >= 5, "the README's own commands are run"
    assert shutil.which("bash"), "the bash blocks need bash"
