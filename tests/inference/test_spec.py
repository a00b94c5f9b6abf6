"""The inference config: derived from the training config in one place, torch-free, validated when made, carried
by a job spec as plain values and read back unchanged (also in the form older jobs stored)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import pytest

from polypbench.errors import ConfigError
from polypbench.inference.spec import INFERENCE_KEYS, InferenceConfig, ModelError, ModelRun, submitted_config
from polypbench.train.config import FIELDS, TrainConfig, load_config


def test_the_inference_keys_are_training_keys_of_the_same_type_and_default() -> None:
    hints, train_hints = typing.get_type_hints(InferenceConfig), typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(InferenceConfig):
        assert f.name in FIELDS and hints[f.name] == train_hints[f.name], f.name
        if f.name != "model":  # the architecture has no default: a submission names it
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            train = FIELDS[f.name]
            assert default == (train.default_factory() if train.default is dataclasses.MISSING  # type: ignore[misc]
                               else train.default), f.name


def test_a_training_config_gives_its_inference_part_once() -> None:
    cfg = load_config("resnet18-hag", ["img_size=96", "model_kwargs={img_size: 32, head_hidden: 64}", "bf16=true"])
    derived = cfg.inference()
    assert derived == InferenceConfig.of_training(cfg.to_dict())
    assert derived == InferenceConfig("resnet18-hag", "regression", 96, cfg.margin, {"img_size": 96, "head_hidden": 64},
                                      bf16=True)
    assert InferenceConfig.from_dict(derived.to_dict()) == derived  # the job spec's round trip


def test_validating_an_inference_config_imports_no_torch() -> None:
    code = ("import sys\nfrom polypbench.inference.spec import InferenceConfig, submitted_config\n"
            "submitted_config({'model': 'tiny', 'task': 'triclass', 'img_size': 32, 'lr': 1}, 'tiny')\n"
            "assert 'torch' not in sys.modules and not any(m.startswith('polypbench.train') for m in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("values", "message"), [
    ({"model": "tiny", "img_size": 0}, "config key 'img_size': 0; expected an integer >= 1"),
    ({"model": "tiny", "img_size": True}, "config key 'img_size'"),
    ({"model": "tiny", "margin": -1}, "config key 'margin': -1; expected a number >= 0"),
    ({"model": "tiny", "bf16": "yes"}, "config key 'bf16': 'yes' is not a boolean"),
    ({"model": ""}, "config key 'model': ''; expected a name"),
    ({"task": "triclass"}, "no config key 'model'"),
    ({"model": "tiny", "lr": 1}, "unknown inference key 'lr'"),
])
def test_a_bad_inference_config_is_one_line(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="^[^\n]*$") as info:
        InferenceConfig.from_dict(values)
    assert message in str(info.value)


def test_a_submitted_config_is_checked_for_a_run_on_the_server() -> None:
    ok = submitted_config({"task": "triclass", "img_size": 32, "epochs": 3, "model_kwargs": {"streams": ["rgb"]}},
                          "tiny", {"triclass": False})
    assert ok == InferenceConfig("tiny", "triclass", 32, model_kwargs={"streams": ["rgb"]})
    for config, message in (({"img_size": 4096}, "expected an integer in 16..1024"),
                            ({"margin": 9}, "expected a number in 0..4"),
                            ({"model_kwargs": {"weights": "/etc/passwd"}}, "model_kwargs.weights"),
                            ({"model_kwargs": {"head": {"deep": 1}}}, "model_kwargs.head"),
                            ({"task": "classification"}, "expected a task the board scores: triclass"),
                            ({"channels_last": "no"}, "config key 'channels_last'")):
        with pytest.raises(ModelError, match=message):
            submitted_config({"task": "triclass", **config}, "tiny", {"triclass": False})


def test_a_model_run_spec_round_trips_and_older_jobs_still_load() -> None:
    run = ModelRun(InferenceConfig("tiny", "triclass", 32), "w.safetensors", ("a,b", "c"))
    assert ModelRun.from_dict(run.to_dict()) == run
    older = {"model": "resnet18", "task": "triclass", "img_size": 32}  # what a job stored before bf16 was a key
    assert InferenceConfig.from_dict(older) == InferenceConfig("resnet18", "triclass", 32)
    assert set(INFERENCE_KEYS) == set(run.config.to_dict())
