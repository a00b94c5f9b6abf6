"""DistributedDataParallel on CPU: two gloo processes train a few steps and must end with identical weights."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from polypbench.models import gate_parameters
from polypbench.train import fit, load_config
from polypbench.train.loop import build_model, seed_everything
from tests.helpers import MATERIALIZED_SIZE

pytestmark = [pytest.mark.slow, pytest.mark.process]  # gloo process groups, torchrun

TINY = [f"img_size={MATERIALIZED_SIZE}", "epochs=2", "batch_size=4", "frames_per_polyp_per_epoch=1", "n_bootstrap=0",
        "augment=true"]  # the session's materialized crops fit


def _free_ports(n: int) -> list[int]:
    """``n`` different free ports (all held at once while they are chosen)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


MODES = {"paper": None, "gr": 1}
"""gr_mode -> resume_after. paper: ``fit`` joins the process group torchrun's variables describe, and leaves it;
gr: 1 epoch, then resumed under DDP for the second, in one process group that the rank sets up itself."""


def _overrides(gr_mode: str, prepared: str) -> list[str]:
    return [*TINY, f"gr_mode={gr_mode}", f"prepared=[{prepared}]"]


def _rank(rank: int, world: int, ports: list[int], prepared: str, out_dir: str) -> None:
    """One rank: each mode of :data:`MODES` in turn, each on its own port (one process start for both)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1")
    torch.set_num_threads(1)
    for (gr_mode, resume_after), port in zip(MODES.items(), ports, strict=True):
        os.environ["MASTER_PORT"] = str(port)
        overrides, run_dir = _overrides(gr_mode, prepared), str(Path(out_dir) / gr_mode)
        if resume_after is not None:
            dist.init_process_group("gloo", rank=rank, world_size=world)
            fit(load_config("demo", [*overrides, f"epochs={resume_after}"]), run_dir)
        summary = fit(load_config("demo", overrides), run_dir, resume=resume_after is not None)
        if resume_after is not None:
            assert summary.start_epoch == resume_after
            dist.destroy_process_group()
        assert summary.model is not None and not dist.is_initialized()
        torch.save({"params": {k: p.detach() for k, p in summary.model.named_parameters()},
                    "files": sorted(p.name for p in Path(run_dir).glob("*"))},
                   Path(out_dir) / f"{gr_mode}-rank{rank}.pt")


def test_two_ranks_end_with_identical_weights(materialized: dict, tmp_path: Path) -> None:
    # forked: the ranks start with torch and polypbench already imported (spawned, each imported them again: ~5 s
    # of CPU per rank); test_torchrun_module_entry_point starts ranks as `torchrun` does
    mp.start_processes(_rank, args=(2, _free_ports(len(MODES)), str(materialized["sun"]), str(tmp_path)),
                       nprocs=2, start_method="fork")
    for gr_mode in MODES:
        r0, r1 = (torch.load(tmp_path / f"{gr_mode}-rank{r}.pt", weights_only=True) for r in (0, 1))
        assert r0["params"].keys() == r1["params"].keys()
        assert all(torch.equal(r0["params"][k], r1["params"][k]) for k in r0["params"]), gr_mode
        # training moved both the main weights and the gates away from the (seeded) initialisation
        init = load_config("demo", _overrides(gr_mode, str(materialized["sun"])))
        seed_everything(init.seed)

        model = build_model(init)
        gates = {id(p) for p in gate_parameters(model)}
        moved = {n: not torch.equal(p.detach(), r0["params"][n]) for n, p in model.named_parameters()}
        assert gates and moved["encoders.rgb.backbone.0.0.weight"], gr_mode  # the first conv of the demo's tiny-hag
        assert any(moved[n] for n, p in model.named_parameters() if id(p) in gates), gr_mode
        assert {"best.pt", "last.pt", "config.yaml", "metrics.jsonl", "summary.json"} <= set(r0["files"])  # rank 0's
        run = tmp_path / gr_mode
        assert len((run / "metrics.jsonl").read_text().splitlines()) == 2, gr_mode
        assert len(torch.load(run / "last.pt", weights_only=True)["rng"]) == 2  # one state per rank


def test_torchrun_module_entry_point(materialized: dict, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "polypbench", "train", "--config", "demo", "--manifest", str(materialized["sun"]),
           "--out", str(tmp_path / "run"), *[a for o in [*TINY, "epochs=1"] for a in ("--set", o)]]
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(tmp_path))  # torchrun's torchelastic_* folder too
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("trained 1 epoch in") == 1  # printed by rank 0 only
    assert (tmp_path / "run" / "best.pt").is_file()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1
