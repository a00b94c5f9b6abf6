"""CIFAR-100 through torchvision from a tiny file in the real release's format (``cifar-100-python/``)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from polypbench.cli import main
from polypbench.errors import ConfigError, InputError
from polypbench.inference.predict import predict
from polypbench.train import fit, load_config
from polypbench.train.cifar import open_cifar100, train_val_indices

TINY = ["img_size=32", "epochs=2", "batch_size=50", "per_class_per_epoch=1", "model=tiny-hag", "model_kwargs={}",
        "val_fraction=0.2"]


def _write_cifar(root: Path, per_class_train: int = 5, per_class_test: int = 1) -> Path:
    """A CIFAR-100 python release in miniature: the class shows as the image's mean colour, so it is learnable."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, per_class in (("train", per_class_train), ("test", per_class_test)):
        labels = np.repeat(np.arange(100), per_class)
        base = (labels[:, None] * 2.5).astype(np.uint8)
        data = np.clip(base + rng.integers(0, 20, (len(labels), 3072)), 0, 255).astype(np.uint8)
        entry = {"filenames": [f"img{i}.png" for i in range(len(labels))], "batch_label": name,
                 "fine_labels": labels.tolist(), "coarse_labels": (labels // 5).tolist(), "data": data}
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"fine_label_names": [f"class{i}" for i in range(100)],
            "coarse_label_names": [f"super{i}" for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    return root


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_cifar(tmp_path_factory.mktemp("cifar"))


def test_reads_the_release_format_and_flags_an_unofficial_copy(cifar_root: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    train = open_cifar100(cifar_root, train=True)
    assert train.data.shape == (500, 32, 32, 3) and len(train.targets) == 500 and train.classes[3] == "class3"
    assert "checksum differs from the official CIFAR-100 release" in caplog.text


def test_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"")
    with pytest.raises(InputError, match=r"cifar-100-python/test: missing; expected the CIFAR-100 python release"):
        open_cifar100(tmp_path, train=True)
    (tmp_path / "cifar-100-python" / "test").write_bytes(b"not a pickle")
    (tmp_path / "cifar-100-python" / "meta").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match=r"cifar-100-python/test: unreadable"):
        open_cifar100(tmp_path, train=False)


def test_validation_is_held_out_of_train_stratified_and_fixed() -> None:
    labels = np.repeat(np.arange(100), 10)
    keep, val = train_val_indices(labels, 0.1)
    assert len(val) == 100 and not set(keep) & set(val) and len(keep) + len(val) == 1000
    assert (np.bincount(labels[val], minlength=100) == 1).all()  # one per class
    assert np.array_equal(val, train_val_indices(labels, 0.1)[1])


def test_fit_validates_on_held_out_train_and_scores_test_once(cifar_root: Path, tmp_path: Path) -> None:
    cfg = load_config("cifar100-vit-tiny-hag", [*TINY, f"data_root={cifar_root}", "lr=3e-3", "gate_lr=1e-2"])
    summary = fit(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 <= r["val_top1"] <= r["val_top5"] <= 1 for r in rows)
    test = json.loads((tmp_path / "test_metrics.json").read_text())
    assert set(test) == {"test_loss", "test_top1", "test_top5"} and test == summary.test
    ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    assert ckpt["task"] == "classification" and ckpt["state_dict"]["head.out.weight"].shape[0] == 100
    with pytest.raises(ConfigError, match="a cifar100 checkpoint"):
        predict(tmp_path / "best.pt", tmp_path, "test")


@pytest.mark.parametrize(("overrides", "message"), [
    (["dataset=cifar100"], "task.*does not fit dataset 'cifar100'; expected classification"),
    (["task=classification"], "does not fit dataset 'polyp'; expected regression or regression-paper or triclass"),
    (["dataset=cifar100", "task=classification", "val_fraction=1.5"], "val_fraction"),
    (["dataset=imagenet"], "unknown dataset 'imagenet'"),
])
def test_dataset_and_task_must_agree(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("resnet18-hag", overrides)


def test_cli_dataset_option_trains_on_cifar(cifar_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["train", "--config", "resnet18-hag", "--dataset", "cifar100", "--data-root", str(cifar_root),
            "--out", str(tmp_path / "r"), *[a for o in [*TINY, "epochs=1"] for a in ("--set", o)]]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "test (best checkpoint): test_loss" in res.output and (tmp_path / "r" / "test_metrics.json").is_file()
    res = runner.invoke(main, [*args[:5], "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r2"),
                               *args[9:]])
    assert res.exit_code != 0 and res.output.count("\n") == 1
    assert "nowhere/cifar-100-python/train: missing" in res.output and not (tmp_path / "r2").exists()
    res = runner.invoke(main, ["train", "--config", "resnet18-hag", "--dataset", "cifar100", "--out",
                               str(tmp_path / "x")])
    assert res.exit_code != 0 and "--data-root: none given for dataset 'cifar100'" in res.output
