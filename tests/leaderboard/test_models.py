"""Model submissions end to end: a small model (safetensors, never a pickle) is queued through the API, run by the
worker in a limited child process, and scored by the server; the private track shows only its public part until
the phase is closed; a public submission's checkpoint is re-run for the verified badge (docs/leaderboard.md's
commands, as written); a fault of the submission fails its job once; the limits hold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from polypbench.inference.sandbox import Limits, run_job
from polypbench.inference.spec import INFERENCE_KEYS, InferenceConfig, ModelError, ModelRun
from polypbench.leaderboard import client
from polypbench.leaderboard.app import create_app
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.db import Database
from polypbench.leaderboard.jobs import close_phase
from polypbench.leaderboard.store import Store
from polypbench.leaderboard.tracks import PrivateTrack, PublicTrack
from polypbench.leaderboard.uploads import read_config
from polypbench.leaderboard.worker import Worker, WorkerSettings, compare_predictions
from tests.forkserver import LEADERBOARD_PRELOAD, ForkServer
from tests.helpers import serving

from .helpers import ARCHITECTURES, TASKS, free_port, live_server

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytestmark = pytest.mark.process  # models run in the sandbox's child processes


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training run folder as `polypbench train` leaves it (config.yaml + best.pt), for a small triclass model."""
    from polypbench.models import create_model
    from polypbench.train.config import from_dict, save_config

    run = tmp_path_factory.mktemp("run")
    cfg = from_dict({"model": "resnet18", "task": "triclass", "img_size": 32, "gr_mode": "off"})
    save_config(cfg, run)
    torch.manual_seed(0)
    model = create_model(cfg.model, cfg.num_outputs)
    torch.save({"state_dict": model.state_dict(), "config": cfg.to_dict(), "model": cfg.model, "task": cfg.task,
                "size_offset_mm": 0.0}, run / "best.pt")
    return run


@pytest.fixture
def site(prepared, sqlite_db: str, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Public track: SUN; private track: REAL-Colon (frames and labels the participants never see)."""
    public, hidden = prepared["sun"].out, prepared["real-colon"].out
    app = create_app(sqlite_db, [public], private_labels=[hidden], **options)
    server = app.state.server
    worker = Worker(Database(sqlite_db), Store(server.store.root), public=PublicTrack([public]),
                    private=PrivateTrack([hidden], server.store.root),
                    settings=WorkerSettings(n_bootstrap=20, limits=Limits(timeout_s=300, memory_mb=6144)))
    with Database(sqlite_db) as database:
        token = add_team(database, "modellers")
    with live_server(app) as url:
        yield {"url": url, "token": token, "worker": worker, "db": sqlite_db, "public": public}
    worker.db.dispose()
    server.db.dispose()


def test_the_registry_names_are_the_ones_the_tests_give_the_server() -> None:
    from polypbench.inference.child import catalog
    from polypbench.models import list_models

    assert list_models() == ARCHITECTURES
    assert catalog() == (ARCHITECTURES, TASKS)  # what `serve` asks a child process (no torch in the server)


def test_a_private_track_model_is_run_and_scored_by_the_server(site, run_dir: Path) -> None:
    url, token, worker = site["url"], site["token"], site["worker"]
    queued = client.submit_model(run_dir, url, token, "tiny resnet", key="model-key-1")
    assert queued["status"] == "queued" and queued["kind"] == "model" and not queued["replayed"]
    assert client.submit_model(run_dir, url, token, "tiny resnet", key="model-key-1")["id"] == queued["id"]
    assert worker.run_once() and not worker.run_once()  # one job, run once
    state = client.job(url, token, queued["id"])
    assert state["status"] == "done" and state["error"] is None and state["attempts"] == 1, state

    import httpx

    board = httpx.get(f"{url}/api/leaderboard", params={"track": "private"}).json()
    assert board["scope"] == "public" and [e["method"] for e in board["entries"]] == ["tiny resnet"]
    detail = httpx.get(f"{url}/api/submissions/{state['submission_id']}").json()
    assert list(detail["results"]) == ["public"] and detail["checkpoint_sha256"] == queued["weights_sha256"]
    metrics = detail["results"]["public"]["metrics"]
    assert metrics and all(k.split("/")[2] == "pooled" and len(k.split("/")) == 4 for k in metrics)
    hidden = httpx.get(f"{url}/api/leaderboard", params={"track": "private", "scope": "private"})
    assert hidden.status_code == 400 and "unknown scope 'private'" in hidden.json()["error"]

    with Database(site["db"]) as database:
        close_phase(database)
    final = httpx.get(f"{url}/api/leaderboard", params={"track": "private", "scope": "private"}).json()
    assert [e["method"] for e in final["entries"]] == ["tiny resnet"] and final["closed"]
    assert set(httpx.get(f"{url}/api/submissions/{state['submission_id']}").json()["results"]) == {"public", "private"}
    page = httpx.get(f"{url}/", params={"track": "private", "scope": "private"}).text
    assert "Private track" in page and "tiny resnet" in page
    late = httpx.post(f"{url}/api/models", headers={"Authorization": f"Bearer {token}"},
                      data={"method": "m", "architecture": "resnet18", "config": "{}"},
                      files={"weights": ("w.safetensors", b"x")})
    assert late.status_code == 409 and "phase is closed" in late.json()["error"]


def test_configs_that_name_files_or_mismatch_are_refused_and_runs_are_limited(run_dir: Path, tmp_path: Path,
                                                                              prepared) -> None:
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    with pytest.raises(ModelError, match="model_kwargs.weights"):
        read_config(json.dumps({**config, "model_kwargs": {"weights": "/etc/passwd"}}), "resnet18")
    with pytest.raises(ModelError, match="differs from the architecture"):
        read_config(json.dumps(config), "vit-tiny")
    with pytest.raises(ModelError, match="not JSON"):
        read_config("model: resnet18", "resnet18")
    values = read_config(json.dumps(config), "resnet18")
    assert values == InferenceConfig.of_training(config) and set(values.to_dict()) == set(INFERENCE_KEYS)
    assert read_config(json.dumps({**config, "task": "regression-paper"}), "resnet18").task == "regression-paper"
    with pytest.raises(ModelError, match="config key 'task'"):
        read_config(json.dumps({**config, "task": ["regression"]}), "resnet18")

    work = tmp_path / "work"
    _, _, weights = client.model_files(run_dir, tmp_path)
    spec = ModelRun(values, str(weights), (str(prepared["sun"].out),))
    work.mkdir()
    with pytest.raises(ModelError, match="time limit of 0.5 s"):
        run_job(spec, Limits(timeout_s=0.5), work)
    with pytest.raises(ModelError, match="failed|memory"):
        run_job(spec, Limits(timeout_s=120, memory_mb=256), work)  # too little memory even to import torch


def test_a_model_with_non_finite_outputs_fails_once_as_its_own_fault(site, run_dir: Path, tmp_path: Path) -> None:
    """A fault of the submission is reported as such, once: no retry, no "server error"."""
    from safetensors.torch import save_file

    nan_run = tmp_path / "nan-run"
    nan_run.mkdir()
    (nan_run / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    state = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)["state_dict"]
    state = {k: (torch.full_like(v, float("nan")) if k.startswith("head.out.") else v)
             .contiguous() for k, v in state.items()}
    save_file(state, str(nan_run / "model.safetensors"))
    url, token, worker = site["url"], site["token"], site["worker"]
    queued = client.submit_model(nan_run, url, token, "nan model")
    assert worker.run_once()
    state = client.job(url, token, queued["id"])
    assert state["status"] == "failed" and state["attempts"] == 1, state
    assert "non-finite" in state["error"] and "server error" not in state["error"], state
    assert not worker.run_once()  # not queued again


def test_a_failed_verification_is_shown_with_its_reason(site) -> None:
    import httpx

    from .helpers import parquet_bytes, predictions

    url, token, worker = site["url"], site["token"], site["worker"]
    headers = {"Authorization": f"Bearer {token}"}
    sub = httpx.post(f"{url}/api/submissions", headers=headers, data={"method": "m", "declaration": "true"},
                     files={"file": ("p.parquet", parquet_bytes(predictions(site["public"])))}).json()
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    weights = len(header).to_bytes(8, "little") + header + b"\0" * 8  # valid safetensors, not a resnet18
    config = json.dumps({"model": "resnet18", "task": "triclass", "img_size": 32})
    queued = httpx.post(f"{url}/api/submissions/{sub['id']}/checkpoint", headers=headers,
                        data={"architecture": "resnet18", "config": config},
                        files={"weights": ("w.safetensors", weights)})
    assert queued.status_code == 202, queued.text
    assert worker.run_once()
    job = client.job(url, token, queued.json()["id"])
    assert job["status"] == "failed" and job["attempts"] == 1 and "do not fit" in job["error"], job
    detail = httpx.get(f"{url}/api/submissions/{sub['id']}").json()
    assert detail["verified"] is False
    assert detail["verification"].startswith("not verified: the re-run failed: weights do not fit architecture")
    page = httpx.get(f"{url}/submissions/{sub['id']}").text
    assert "not verified: the re-run failed: weights do not fit" in page and "no checkpoint uploaded" not in page


def _documented(block_with: str) -> list[str]:
    """The ``polypbench`` command lines of the docs/leaderboard.md bash block that contains ``block_with``."""
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "leaderboard.md").read_text()
    block = next(b for b in re.findall(r"^```bash\n(.*?)^```$", text, re.S | re.M) if block_with in b)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("polypbench ")]


@pytest.mark.e2e  # serve, worker and submit processes, as docs/leaderboard.md runs them
def test_the_documented_commands_run_a_model_and_verify_a_checkpoint(prepared, run_dir: Path, tmp_path: Path,
                                                                     request: pytest.FixtureRequest) -> None:
    """docs/leaderboard.md's commands as written (relative paths, from the folder they name; only the port differs):
    the worker runs a private-track model and verifies a public checkpoint, whatever its working folder."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from polypbench.inference.predict import predict

    site_dir = tmp_path / "site"
    for link, target in {"prepared/sun": prepared["sun"].out, "hidden/prepared": prepared["real-colon"].out}.items():
        (site_dir / link).parent.mkdir(parents=True, exist_ok=True)
        (site_dir / link).symlink_to(target)
    run = site_dir / "runs" / "r18-hag"  # config.yaml + model.safetensors: `submit` needs no torch to convert
    run.mkdir(parents=True)
    (run / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    client.model_files(run_dir, run)
    frames = predict(run_dir / "best.pt", [prepared["sun"].out], "test", batch_size=16)
    frames.to_parquet(site_dir / "preds.parquet")
    bin_dir = tmp_path / "bin"  # its `polypbench` is this checkout's, forked from a server that imported it once
    bin_dir.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    forks = ForkServer.start(env, preload=LEADERBOARD_PRELOAD)
    request.addfinalizer(forks.stop)
    forks.shim(bin_dir)

    def command(line: str) -> str:
        return line.replace("http://127.0.0.1:8000", url)

    def run(line: str) -> str:
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", command(line)], cwd=site_dir, env=env, text=True,
                              capture_output=True, timeout=300, check=False)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done.stdout

    def start(line: str, log: str) -> subprocess.Popen[bytes]:
        with (site_dir / log).open("wb") as out:
            return subprocess.Popen(["bash", "-c", f"exec {command(line)}"], cwd=site_dir, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    add_team = next(line for line in _documented("leaderboard add-team") if "add-team" in line)
    lines = _documented("leaderboard worker")
    serve, worker_line, model, public, close, export = (
        next(line for line in lines if marker in line)
        for marker in ("leaderboard serve", "leaderboard worker", "--model", "--checkpoint", "close-phase", "export"))
    env["TOKEN"] = run(add_team).strip().splitlines()[-1]
    server = start(f"{serve} --port {port}", "serve.log")
    worker = start(worker_line, "worker.log")
    try:
        assert serving(f"{url}/api/info", server, 120), (site_dir / "serve.log").read_text()
        deadline = time.monotonic() + 300
        assert " done; submission " in run(model)  # submit --model ... --wait
        answer = run(public)
        assert "checkpoint queued for verification" in answer, answer
        sub_id = int(answer.split("submission ")[1].split()[0])
        headers, delays = {"Authorization": f"Bearer {env['TOKEN']}"}, client.backoff()
        while any(j["status"] in ("queued", "running") for j in httpx.get(f"{url}/api/jobs", headers=headers)
                  .json()["jobs"]):
            assert worker.poll() is None and time.monotonic() < deadline, (site_dir / "worker.log").read_text()
            time.sleep(next(delays))  # as `submit --wait` polls: 0.5 s doubling to 5 s, far below the team rate
            # limit (60 requests a minute, on the real clock)
        page = httpx.get(f"{url}/submissions/{sub_id}").text
        assert "verified: the server re-ran the checkpoint" in page, (site_dir / "worker.log").read_text()
        entry = httpx.get(f"{url}/api/leaderboard").json()["entries"][0]
        assert entry["verified"] is True and entry["checkpoint_sha256"] and entry["config"]
        assert entry["split_hashes"].startswith("sun:")
        assert '<span class="badge verified" title="the server re-ran' in httpx.get(f"{url}/").text
        run(close)
        run(export)
    finally:
        for proc in (worker, server):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    assert (site_dir / "leaderboard" / "README.md").is_file()
    shifted = frames.assign(p0=frames["p1"], p1=frames["p0"])
    ok, detail_line = compare_predictions(shifted, frames)
    assert not ok and "differ in p0..p2" in detail_line
