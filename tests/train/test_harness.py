"""The training harness end to end on the synthetic ``prepared`` fixture: config, fit, determinism, predict, CLI.

The runs use the packaged ``demo`` config, whose model is the tiny gated CNN: the point here is the harness (one
real-model run per family is in tests/models/test_smoke.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner

from polypbench.cli import main
from polypbench.errors import ConfigError
from polypbench.evaluate import score, validate_predictions
from polypbench.inference.predict import predict
from polypbench.train import fit, load_config, packaged_configs, save_config
from polypbench.train.data import FramesPerPolyp, SampleTransform
from polypbench.train.tasks import tasks_for

TINY = ["img_size=64", "epochs=1", "batch_size=16", "frames_per_polyp_per_epoch=1", "n_bootstrap=10",
        "augment=true"]


def _tiny(prepared: dict, *extra: str, name: str = "demo"):  # type: ignore[no-untyped-def]
    dirs = ",".join(str(prepared[d].out) for d in ("sun",))
    return load_config(name, [*TINY, f"prepared=[{dirs}]", *extra])


# --- config -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", packaged_configs())
def test_every_packaged_config_loads(name: str) -> None:
    cfg = load_config(name)
    assert cfg.task in tasks_for("cifar100" if name.startswith("cifar100") else "polyp")
    assert cfg.gr_mode == "off" or "hag" in cfg.model  # plain models cannot route gradients


def test_overrides_are_typed_and_saved(tmp_path: Path) -> None:
    cfg = load_config("resnet18-hag", ["lr=1e-3", "augment=false", "fold=2", "prepared=[a,b]", "clip_main=null",
                                       "gr_mode=off"])
    assert (cfg.lr, cfg.augment, cfg.fold, cfg.prepared, cfg.clip_main, cfg.gr_mode) == \
        (1e-3, False, 2, ["a", "b"], None, "off")
    saved = yaml.safe_load(save_config(cfg, tmp_path).read_text())
    assert load_config(tmp_path / "config.yaml") == cfg and saved["lr"] == 1e-3


@pytest.mark.parametrize(("override", "message"), [
    ("lrr=1", "unknown config key 'lrr'; did you mean 'lr'?"),
    ("qqqq=1", "unknown config key 'qqqq'; expected one of: model, task"),
    ("augment=yes", "config key 'augment': 'yes' is not a boolean; expected true or false"),
    ("task=size", "unknown task 'size'; expected one of: classification, regression, regression-paper, triclass"),
    ("model=resnet50", "unknown model 'resnet50'; expected one of:"),
    ("epochs=many", "config key 'epochs': 'many' is not int"),
    ("batch_size=0", "'batch_size': 0 must be >= 1"),
    ("lr", "expected key=value"),
])
def test_bad_overrides_fail_in_one_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^[^\n]*$") as info:
        load_config("demo", [override])
    assert message in str(info.value)


def test_unknown_key_in_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model: resnet18\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'learning_rate'; expected one of"):
        load_config(path)
    with pytest.raises(ConfigError, match="neither a file nor a packaged config; expected .*resnet18-hag"):
        load_config("no-such-config")


def test_validating_a_config_leaves_its_input_as_it_was() -> None:
    from polypbench.train.config import from_dict

    kwargs = {"img_size": 224, "streams": ["rgb"]}
    cfg = from_dict({"model": "tiny-hag", "img_size": 64, "model_kwargs": kwargs})
    assert cfg.model_kwargs == {"img_size": 64, "streams": ["rgb"]}  # the model's size follows the config's
    assert kwargs == {"img_size": 224, "streams": ["rgb"]}  # ... in a new mapping: the caller's is untouched


# --- data ---------------------------------------------------------------------------------------------------------

def test_sampler_shares_an_epoch_between_ranks_without_overlap() -> None:
    keys = [i // 3 for i in range(30)]  # 10 polyps of 3 frames
    whole = list(FramesPerPolyp(keys, n=None, seed=1))
    assert sorted(whole) == list(range(30))
    shares = [list(FramesPerPolyp(keys, n=None, seed=1, rank=r, world_size=4)) for r in range(4)]
    assert [len(s) for s in shares] == [8] * 4  # 30 padded to 32 by wrapping round
    flat = [i for s in zip(*shares, strict=True) for i in s]
    assert flat == (whole + whole[:2])
    two = [list(FramesPerPolyp(keys, n=2, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(two[0]) == len(two[1]) == 10 and sorted(two[0] + two[1]) == sorted(FramesPerPolyp(keys, n=2, seed=1))


def test_sampler_draws_n_frames_per_polyp_reproducibly() -> None:
    keys = ["a"] * 5 + ["b"] * 1 + ["c"] * 3
    sampler = FramesPerPolyp(keys, n=2, seed=7)
    first = list(sampler)
    assert len(first) == 6 and sorted(keys[i] for i in first) == ["a", "a", "b", "b", "c", "c"]
    assert list(FramesPerPolyp(keys, n=2, seed=7)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first  # another epoch, another draw


def test_transform_masks_outside_the_box(prepared: dict) -> None:
    from polypbench.load import load_split

    data = load_split(prepared["sun"].out, "train", transform=SampleTransform(64, augment=False))
    sample = data[0]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.float32
    x0, y0, x1, y1 = sample["boxes"][0].round().int().tolist()
    masked = sample["masked"]
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    assert outside.any()  # margin 0.5: the crop is wider than the box
    zero = (torch.zeros(3) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(masked[:, outside], zero[:, None].expand(3, int(outside.sum())), atol=1e-5)
    assert torch.equal(masked[:, y0:y1, x0:x1], sample["image"][:, y0:y1, x0:x1])


# --- fit / predict ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(prepared: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    fit(_tiny(prepared, "task=regression", "seed=3"), run_dir)
    return run_dir


@pytest.mark.slow
def test_fit_writes_checkpoint_config_and_metrics(run: Path) -> None:
    assert load_config(run / "config.yaml").img_size == 64
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["epoch"] == 0 and rows[0]["best"]
    for key in ("train_loss", "train_gate_loss", "val_loss", "val_polyp_balanced_accuracy", "val_polyp_mae_mm"):
        assert isinstance(rows[0][key], float), key
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert (ckpt["model"], ckpt["task"], ckpt["config"]["seed"]) == ("tiny-hag", "regression", 3)
    assert ckpt["size_offset_mm"] > 0


@pytest.mark.slow
def test_same_seed_same_weights(prepared: dict, run: Path, tmp_path: Path) -> None:
    fit(_tiny(prepared, "task=regression", "seed=3"), tmp_path / "again")
    fit(_tiny(prepared, "task=regression", "seed=4"), tmp_path / "other")
    a, b, c = (torch.load(p / "best.pt", weights_only=True)["state_dict"] for p in (run, tmp_path / "again",
                                                                                     tmp_path / "other"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.slow
def test_predict_is_a_valid_submission(prepared: dict, run: Path) -> None:
    out = prepared["sun"].out
    df = predict(run / "best.pt", out, "test", batch_size=8)
    assert list(df.columns) == ["polyp_id", "frame_index", "size_mm"]
    validate_predictions(df, out, split="test")
    result = score(df, out, split="test", n_bootstrap=10)
    assert result.stat("polyp/triclass/pooled/balanced_accuracy").value is not None


@pytest.mark.slow
def test_a_run_predicts_alike_from_its_checkpoint_its_folder_and_its_safetensors(prepared: dict, run: Path,
                                                                                 tmp_path: Path) -> None:
    """One inference path: ``best.pt``, the run folder, and ``model.safetensors`` beside the run's ``config.yaml``
    (what ``submit --model`` uploads and the leaderboard's child loads) give the same predictions."""
    from safetensors.torch import save_file

    from polypbench.inference.spec import META_OFFSET

    out = prepared["sun"].out
    expected = predict(run / "best.pt", out, "validation", batch_size=8)
    ckpt = torch.load(run / "best.pt", weights_only=True)
    folder = tmp_path / "submitted"
    folder.mkdir()
    (folder / "config.yaml").write_text((run / "config.yaml").read_text())
    save_file({k: v.contiguous() for k, v in ckpt["state_dict"].items()}, str(folder / "model.safetensors"),
              metadata={META_OFFSET: repr(float(ckpt["size_offset_mm"]))})
    for source in (run, folder, folder / "model.safetensors"):
        pd.testing.assert_frame_equal(predict(source, out, "validation", batch_size=8), expected)
    (folder / "config.yaml").unlink()
    with pytest.raises(ConfigError, match="no config.yaml beside it"):
        predict(folder, out, "validation")


@pytest.mark.slow
@pytest.mark.parametrize(("model", "gr_mode", "streams"),
                         [("tiny", "off", None), ("tiny-hag", "paper", "[rgb, masked]")])
def test_triclass_fit_and_predict(prepared: dict, tmp_path: Path, model: str, gr_mode: str,
                                  streams: str | None) -> None:
    kwargs = "{}" if streams is None else f"{{streams: {streams}}}"  # two streams: the box-masked one too
    cfg = _tiny(prepared, "task=triclass", f"model={model}", f"gr_mode={gr_mode}", "img_size=32", "epochs=2",
                "balance_classes=true", f"model_kwargs={kwargs}")
    summary = fit(cfg, tmp_path)
    assert len(summary.epochs) == 2 and summary.best_epoch in (0, 1)
    df = predict(summary.checkpoint, prepared["sun"].out, "validation")
    validate_predictions(df, prepared["sun"].out, split="validation")
    probs = df[["p0", "p1", "p2"]].sum(axis=1)
    assert ((probs - 1).abs() < 1e-5).all()


def test_gated_model_refuses_plain_step_modes(prepared: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a gated model"):
        fit(_tiny(prepared, "model=tiny", "gr_mode=gr"), tmp_path)


# --- CLI ----------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_train_then_predict(prepared: dict, tmp_path: Path) -> None:
    """``--manifest`` is a typed value, never override text: a folder whose name has a comma is one folder."""
    out = tmp_path / "sun, prepared"
    out.symlink_to(prepared["sun"].out)
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--config", "demo", "--manifest", str(out), "--out", str(tmp_path / "r"),
                               *[a for o in [*TINY, "img_size=32"] for a in ("--set", o)]])
    assert res.exit_code == 0, res.output
    assert "trained 1 epoch in" in res.stdout and (tmp_path / "r" / "best.pt").is_file()
    assert load_config(tmp_path / "r" / "config.yaml").prepared == [str(out)]
    res = runner.invoke(main, ["predict", "--checkpoint", str(tmp_path / "r" / "best.pt"), "--manifest", str(out),
                               "--out", str(tmp_path / "p.parquet")])
    assert res.exit_code == 0, res.output
    validate_predictions(pd.read_parquet(tmp_path / "p.parquet"), out, split="test")
    res = runner.invoke(main, ["train", "--config", "demo", "--set", "lrr=1", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and res.output.startswith("Error: ") and res.output.count("\n") == 1
    assert "unknown config key 'lrr'; did you mean 'lr'?" in res.output
