"""A run folder: last.pt, bit-exact resume, refusal / overwrite, the finished marker, the metric files,
TensorBoard (and its absence), config.yaml provenance, and what the CLI prints."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner

from polypbench import schema
from polypbench.cli import main
from polypbench.errors import ConfigError
from polypbench.manifest import Manifest
from polypbench.train import fit, load_config, loop
from polypbench.train.checkpoint import TrainState, rng_state, set_rng_state
from polypbench.train.data import build_data
from polypbench.train.rundir import run_status
from tests.helpers import MATERIALIZED_SIZE

TINY = [f"img_size={MATERIALIZED_SIZE}", "batch_size=8", "frames_per_polyp_per_epoch=1", "n_bootstrap=0",
        "augment=true"]  # the session's materialized crops fit


def _cfg(sun: Path, *extra: str):  # type: ignore[no-untyped-def]
    """The demo config at :data:`TINY` on prepared folder ``sun`` (the tests of the loop take the session's
    ``materialized`` SUN: its crops, not whole frames, are read each epoch)."""
    return load_config("demo", [*TINY, f"prepared=[{sun}]", *extra])


def _last(run: Path) -> dict[str, Any]:
    return torch.load(run / "last.pt", weights_only=True)


def _equal(a: Any, b: Any) -> bool:
    """Exact equality of nested checkpoint values (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_equal, a, b))
    return bool(a == b or (a != a and b != b))  # NaN equals NaN here


def _without_seconds(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# --- resume ------------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("extra", [("gr_mode=gr",), ("model=tiny", "gr_mode=off", "device_augment=true"),
                                   ("gr_mode=paper", "paper_amp=fp16-scaler", "task=regression-paper")],
                         ids=["gr-two-optimizers", "off-device-augment", "paper-fp16-scaler"])
def test_resume_continues_bit_exactly(materialized: dict, tmp_path: Path, extra: tuple[str, ...],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after epoch 0 and resumed, a run ends as the uninterrupted one does (the demo config's cosine LR
    schedule included: its total is the configured epochs, the same in both)."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    fit(_cfg(materialized["sun"], "epochs=2", *extra), straight)
    monkeypatch.setattr(loop, "note", _kill_after_epoch_0)
    with pytest.raises(Killed):
        fit(_cfg(materialized["sun"], "epochs=2", *extra), split)
    monkeypatch.undo()
    torch.manual_seed(1234)  # whatever this process drew since: resume restores the run's own streams
    summary = fit(_cfg(materialized["sun"], "epochs=2", *extra), split, resume=True)
    assert summary.start_epoch == 1 and len(summary.epochs) == 2
    a, b = _last(straight), _last(split)
    assert a["epoch"] == b["epoch"] == 1
    assert _equal(a["state_dict"], b["state_dict"])
    assert _equal(a["optimizers"], b["optimizers"])  # main and gate: step counts, moments, param groups
    assert (a["optimizers"]["gate"] is None) == ("gr_mode=off" in extra)
    assert (a["scaler"] is not None) == ("paper_amp=fp16-scaler" in extra) and _equal(a["scaler"], b["scaler"])
    assert _equal(a["generators"], b["generators"]) and _equal(a["rng"], b["rng"])
    assert _without_seconds(a["history"]) == _without_seconds(b["history"]) and a["best"] == b["best"]
    assert _equal(torch.load(straight / "best.pt", weights_only=True)["state_dict"],
                  torch.load(split / "best.pt", weights_only=True)["state_dict"])
    rows = [json.loads(line) for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert _without_seconds(rows) == _without_seconds(a["history"])
    assert len(yaml.safe_load((split / "config.yaml").read_text())["provenance"]["resumed"]) == 1


@pytest.mark.slow
def test_last_pt_holds_everything_to_resume(materialized: dict, tmp_path: Path) -> None:
    fit(_cfg(materialized["sun"], "epochs=1"), tmp_path)
    last = _last(tmp_path)
    for key in ("format", "epoch", "state_dict", "optimizers", "scheduler", "scaler", "rng", "generators", "sampler",
                "history", "best", "config", "model", "task", "size_offset_mm", "class_counts"):
        assert key in last, key
    assert set(last["optimizers"]) == {"main", "gate"} and last["optimizers"]["gate"] is not None
    assert set(last["rng"][0]) == {"python", "numpy", "torch", "cuda"}
    assert last["sampler"] == {"seed": 0, "epoch": 0} and "loader_train" in last["generators"]
    assert last["scaler"] is None  # the demo config has no GradScaler, and a cosine LR schedule per optimizer
    pixels = yaml.safe_load((tmp_path / "config.yaml").read_text())["provenance"]["data"][0]["pixels"]
    assert pixels["train"]["source"] == pixels["validation"]["source"] == "shards"  # the fixture's crops fit
    steps = len(build_data(_cfg(materialized["sun"], "epochs=1")).train)
    assert [part["last_epoch"] for part in last["scheduler"]["parts"]] == [steps, steps]  # main and gate


def test_train_state_round_trips_a_scheduler_and_a_grad_scaler() -> None:
    """What an LR scheduler or AMP GradScaler needs from last.pt: set them on the state and they travel."""

    def state() -> TrainState:
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.Adam(model.parameters(), lr=0.1)
        return TrainState(model, opt, scheduler=torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3),
                          scaler=torch.amp.GradScaler("cpu", init_scale=1024.0))

    a = state()
    assert a.scheduler is not None and a.scaler is not None
    for _ in range(4):
        a.main_opt.zero_grad()
        a.scaler.scale(a.model(torch.ones(2, 3)).sum()).backward()
        a.scaler.step(a.main_opt)
        a.scaler.update()
        a.scheduler.step()
    a.scaler.update(512.0)
    b = state()
    b.load_state_dict(a.state_dict())
    assert b.scheduler is not None and b.scaler is not None
    assert b.scheduler.state_dict() == a.scheduler.state_dict() and b.scaler.get_scale() == 512.0
    assert b.main_opt.param_groups[0]["lr"] == a.main_opt.param_groups[0]["lr"] != 0.1
    with pytest.raises(ConfigError, match="the checkpoint has LR scheduler state but this run has no LR scheduler"):
        TrainState(b.model, b.main_opt).load_state_dict(a.state_dict())


def test_rng_state_round_trips() -> None:
    saved = rng_state()
    first = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    set_rng_state(torch.load(_save(saved), weights_only=True))  # through a weights_only checkpoint
    again = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]


def _save(obj: Any) -> Any:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


class Killed(Exception):
    pass


def _kill_after_epoch_0(line: str) -> None:
    """Stands in for ``loop.note``: the process dies right after epoch 0's last.pt."""
    if line.startswith("epoch 0/"):
        raise Killed


@pytest.mark.slow
def test_an_interrupted_run_is_unfinished_and_resumes(materialized: dict, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_status(tmp_path) == "new"

    monkeypatch.setattr(loop, "note", _kill_after_epoch_0)
    with pytest.raises(Killed):
        fit(_cfg(materialized["sun"], "epochs=2"), tmp_path)
    monkeypatch.undo()
    assert run_status(tmp_path) == "unfinished" and _last(tmp_path)["epoch"] == 0
    summary = fit(_cfg(materialized["sun"], "epochs=2"), tmp_path, resume=True)
    assert run_status(tmp_path) == "finished" and summary.start_epoch == 1
    done = json.loads((tmp_path / "summary.json").read_text())
    assert done["epochs"] == 2 and done["best_epoch"] == summary.best_epoch
    again = fit(_cfg(materialized["sun"], "epochs=2"), tmp_path, resume=True)  # finished: nothing to train
    assert again.start_epoch == 2 and again.best_epoch == summary.best_epoch
    assert "nothing to train" in again.describe()


@pytest.mark.slow
def test_resume_refuses_another_config_and_fewer_epochs(materialized: dict, tmp_path: Path) -> None:
    fit(_cfg(materialized["sun"], "epochs=2"), tmp_path)
    with pytest.raises(ConfigError, match=r"differs from the run's \(config key 'lr': 0.003 -> 0.5\)"):
        fit(_cfg(materialized["sun"], "epochs=3", "lr=0.5"), tmp_path, resume=True)
    with pytest.raises(ConfigError, match="has trained 2 epochs; expected epochs >= 2"):
        fit(_cfg(materialized["sun"], "epochs=1"), tmp_path, resume=True)


# --- refusal, overwrite, config errors ---------------------------------------------------------------------------

@pytest.mark.slow
def test_a_folder_holding_a_run_is_refused_unless_overwrite(materialized: dict, tmp_path: Path) -> None:
    fit(_cfg(materialized["sun"], "epochs=1"), tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    before = (tmp_path / "best.pt").read_bytes()
    with pytest.raises(ConfigError, match="^run folder .* already holds a run .*expected --resume .* --overwrite"):
        fit(_cfg(materialized["sun"], "epochs=1", "seed=5"), tmp_path)
    assert (tmp_path / "best.pt").read_bytes() == before
    with pytest.raises(ConfigError, match="resume and overwrite exclude each other"):
        fit(_cfg(materialized["sun"], "epochs=1"), tmp_path, resume=True, overwrite=True)
    fit(_cfg(materialized["sun"], "epochs=1", "seed=5"), tmp_path, overwrite=True)
    assert (tmp_path / "best.pt").read_bytes() != before and (tmp_path / "notes.txt").read_text() == "mine"
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["seed"] == 5


@pytest.mark.parametrize(("extra", "match"), [(("model=tiny", "gr_mode=gr"), "needs a gated model"),
                                              (("prepared=[]",), "config key 'prepared': none given")])
def test_config_errors_come_before_any_folder(prepared: dict, tmp_path: Path, extra: tuple[str, ...],
                                              match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        fit(_cfg(prepared["sun"].out, "epochs=1", *extra), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- files: metrics, TensorBoard, provenance ---------------------------------------------------------------------

@pytest.mark.slow
def test_metrics_csv_tensorboard_and_provenance(prepared: dict, tmp_path: Path) -> None:
    fit(_cfg(prepared["sun"].out, "epochs=2"), tmp_path)
    csv = pd.read_csv(tmp_path / "metrics.csv")
    assert list(csv["epoch"]) == [0, 1] and {"train_loss", "val_loss", "val_polyp_balanced_accuracy", "lr"} <= set(csv)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    prov = yaml.safe_load((tmp_path / "config.yaml").read_text())["provenance"]
    assert load_config(tmp_path / "config.yaml") == _cfg(prepared["sun"].out, "epochs=2")  # skips the block on load
    import polypbench

    assert prov["polypbench"] == polypbench.__version__ and "torch" in prov and "python" in prov
    assert prov["git"] is None or (len(prov["git"]["commit"]) == 40 and isinstance(prov["git"]["dirty"], bool))
    (data,) = prov["data"]
    meta = Manifest.open(prepared["sun"].out).metadata
    assert data["dataset"] == "sun" and data["split_sha256"] == meta[schema.META_SPLIT_HASH]
    assert data["pixels"]["train"]["source"] == data["pixels"]["validation"]["source"] == "raw"
    assert data["pixels"]["train"]["raw_root"] == str(Path(prepared["sun"].raw).resolve())


@pytest.mark.slow
def test_no_tensorboard_package_no_event_files(materialized: dict, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now fails
    fit(_cfg(materialized["sun"], "epochs=1"), tmp_path)
    assert not (tmp_path / "tensorboard").exists() and (tmp_path / "metrics.csv").is_file()


# --- CLI ---------------------------------------------------------------------------------------------------------

def _train(*args: str) -> Any:
    return CliRunner().invoke(main, ["train", *args])


@pytest.mark.slow
def test_cli_prints_epochs_and_resumes(materialized: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    sets = [a for o in [*TINY, "epochs=1"] for a in ("--set", o)]
    res = _train("--config", "demo", "--manifest", str(materialized["sun"]), "--out", str(out), *sets)
    assert res.exit_code == 0, res.output
    assert "trained 1 epoch in" in res.stdout
    assert "train tiny-hag (triclass, gr_mode gr) on cpu: 1 epoch of " in res.stderr
    assert "epoch 0/0: train_loss " in res.stderr and "val_loss" in res.stderr and "(best)" in res.stderr
    refused = _train("--config", "demo", "--manifest", str(materialized["sun"]), "--out", str(out), *sets)
    assert refused.exit_code != 0 and refused.output.count("\n") == 1 and "already holds a run" in refused.output
    res = _train("--out", str(out), "--resume", "--set", "epochs=2")  # the run's own config.yaml
    assert res.exit_code == 0, res.output
    assert "trained 2 epochs (1 after resuming at epoch 1)" in res.stdout and "epoch 1/1:" in res.stderr
    quiet = _train("--out", str(out), "--resume", "--set", "epochs=3", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize(("override", "message"), [
    ("epoch=2", "unknown config key 'epoch'; did you mean 'epochs'?"),
    ("augment=yes", "config key 'augment': 'yes' is not a boolean; expected true or false"),
])
def test_cli_config_mistakes_are_one_line(tmp_path: Path, override: str, message: str) -> None:
    res = _train("--config", "demo", "--set", override, "--out", str(tmp_path / "run"))
    assert res.exit_code != 0 and res.output.count("\n") == 1 and message in res.output
    assert not (tmp_path / "run").exists()
    missing = _train("--out", str(tmp_path / "run"))
    assert missing.exit_code != 0 and "--config is missing" in missing.output


# --- the LR schedule ---------------------------------------------------------------------------------------------

@pytest.mark.slow  # trains
def test_cosine_schedule_decays_both_rates_to_zero_per_step(materialized: dict, tmp_path: Path) -> None:
    """``lr_schedule: cosine`` (the demo config's): main and gate rates fall per step from their configured values
    to zero at the run's last step; ``constant`` keeps them."""
    cfg = _cfg(materialized["sun"], "epochs=2", "lr=0.004", "gate_lr=0.002")
    assert cfg.lr_schedule == "cosine"
    fit(cfg, tmp_path / "cos")
    lrs = list(pd.read_csv(tmp_path / "cos" / "metrics.csv")["lr"])
    assert lrs == pytest.approx([0.002, 0.0], abs=1e-12)  # halfway down the cosine after epoch 0, zero at the end
    gate = _last(tmp_path / "cos")["optimizers"]["gate"]["param_groups"][0]
    assert gate["initial_lr"] == 0.002 and gate["lr"] == pytest.approx(0.0, abs=1e-12)
    fit(_cfg(materialized["sun"], "epochs=2", "lr_schedule=constant"), tmp_path / "flat")
    assert set(pd.read_csv(tmp_path / "flat" / "metrics.csv")["lr"]) == {0.003}
    assert _last(tmp_path / "flat")["scheduler"] is None
    with pytest.raises(ConfigError, match="unknown lr_schedule 'linear'; expected one of: constant, cosine, "
                                          "cosine_restarts"):
        _cfg(materialized["sun"], "lr_schedule=linear")


# --- Ctrl-C, a damaged last.pt, the flags errors name ------------------------------------------------------------

def _sets(*extra: str) -> list[str]:
    return [a for o in [*TINY, *extra] for a in ("--set", o)]


def _ctrl_c_at(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Ctrl-C right after epoch 0's last.pt (``after``), or in epoch 0's first step (``during``)."""
    if where == "after":
        def note(line: str) -> None:
            if line.startswith("epoch 0/"):
                raise KeyboardInterrupt
        monkeypatch.setattr(loop, "note", note)
    else:
        def step(*_args: Any, **_kwargs: Any) -> Any:
            raise KeyboardInterrupt
        monkeypatch.setattr(loop, "train_step", step)


@pytest.mark.slow  # trains
@pytest.mark.parametrize(("where", "said"), [("after", "interrupted after epoch 0 of 0-1"),
                                             ("during", "interrupted before epoch 0 ended")])
def test_ctrl_c_prints_the_exact_resume_command(materialized: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                where: str, said: str) -> None:
    out = tmp_path / "my run"
    _ctrl_c_at(monkeypatch, where)
    res = _train("--config", "demo", "--manifest", str(materialized["sun"]), "--out", str(out), *_sets("epochs=2"))
    monkeypatch.undo()
    assert res.exit_code == 130 and res.stdout == "" and said in res.stderr, res.output
    assert "Traceback" not in res.output and "Aborted" not in res.output
    command = res.stderr.strip().splitlines()[-1].split("continue with: ", 1)[1]
    assert command == f"polypbench train --out '{out}' --resume"
    again = _train(*shlex.split(command)[2:])  # exactly what it printed, after `polypbench train`
    assert again.exit_code == 0, again.output
    assert ("after resuming at epoch 1" in again.stdout) == (where == "after")
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2


@pytest.mark.slow  # trains
def test_ctrl_c_before_the_run_starts_says_nothing_was_written(materialized: dict, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def build_data(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyboardInterrupt
    monkeypatch.setattr(loop, "build_data", build_data)
    res = _train("--config", "demo", "--manifest", str(materialized["sun"]), "--out", str(tmp_path / "r"), *_sets())
    assert res.exit_code == 130 and "interrupted before the run started; nothing was written" in res.stderr


@pytest.fixture(scope="module")
def one_epoch(prepared: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("one-epoch") / "run"  # raw frames: `make test-fast` never materializes
    fit(_cfg(prepared["sun"].out, "epochs=1"), run)
    return run


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes(b ^ 0xFF for b in data[at:at + 64]) + data[at + 64:]


def _wrong_shape(path: Path) -> None:
    last = torch.load(path, weights_only=True)
    name = next(iter(last["state_dict"]))
    last["state_dict"][name] = torch.zeros(3)
    torch.save(last, path)


TAMPERINGS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "text": lambda p: p.write_text("not a checkpoint\n"),
    "pickle bytes flipped": lambda p: p.write_bytes(_flipped(p.read_bytes(), 60)),
    "record name flipped": lambda p: p.write_bytes(_flipped(p.read_bytes(), 1000)),
    "not a dict": lambda p: torch.save([1, 2], p),
    "keys missing": lambda p: torch.save({"format": 1, "epoch": 0}, p),
    "wrong shapes": _wrong_shape,
}


@pytest.mark.parametrize("how", list(TAMPERINGS))
def test_a_tampered_last_pt_is_not_a_readable_checkpoint(one_epoch: Path, tmp_path: Path, how: str) -> None:
    import shutil

    run = Path(shutil.copytree(one_epoch, tmp_path / "run"))
    TAMPERINGS[how](run / "last.pt")
    res = _train("--out", str(run), "--resume", "--set", "epochs=2")
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert f"Error: {run / 'last.pt'}: not a readable checkpoint" in res.output
    assert "--overwrite to start afresh" in res.output and "internal error" not in res.output


@pytest.mark.slow  # trains
def test_train_errors_name_the_flags_the_user_set(prepared: dict, materialized: dict, tmp_path: Path) -> None:
    none = _train("--config", "demo", "--out", str(tmp_path / "a"))
    assert none.exit_code == 1 and none.output.count("\n") == 1
    assert "Error: --manifest: none given; expected at least one prepared manifest folder" in none.output
    assert "prepared" not in none.output.replace("prepared manifest", "")
    run = tmp_path / "b"
    first = _train("--config", "demo", "--manifest", str(materialized["sun"]), "--out", str(run), *_sets("epochs=1"))
    assert first.exit_code == 0, first.output
    other = _train("--out", str(run), "--resume", "--manifest", str(prepared["real-colon"].out))
    assert other.exit_code == 1 and f"differs from the run's (--manifest: ['{materialized['sun']}'] -> " in other.output
    assert "config key" not in other.output
    with pytest.raises(ConfigError, match="config key 'prepared'"):  # in Python, the config key is the name
        fit(_cfg(materialized["sun"], "epochs=1", "prepared=[]"), tmp_path / "c")
