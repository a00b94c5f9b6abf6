"""What a model run needs to know, without torch: :class:`InferenceConfig` (the part of a training config that
inference reads), :class:`ModelRun` (one sandboxed run: the config, the safetensors weights, the frames, where it
writes), the weights' size offset and the rules a submitted config must follow.

A training config (``config.yaml``, a checkpoint's ``config``, a submitted JSON text) becomes an
:class:`InferenceConfig` in one place, :meth:`InferenceConfig.of_training`: the keys of :data:`INFERENCE_KEYS` are
kept, the others (how it was trained) ignored. :meth:`polypbench.train.config.TrainConfig.inference` is that call.
The leaderboard's web process imports this module (it validates uploads); it never imports torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from polypbench.errors import ConfigError, PolypbenchError, choice_error

DEFAULT_TASK = "regression"
"""The task of a config that names none (``TrainConfig.task``'s default too)."""
META_OFFSET = "polypbench.size_offset_mm"
"""safetensors metadata key: the regression output's offset (the train mean size; ``best.pt``'s size_offset_mm)."""
FORBIDDEN_KWARGS = ("weights",)
"""``model_kwargs`` that name files on the machine that builds the model: never taken from a submission."""
MAX_MODEL_KWARGS = 32
"""Keys of a submitted config's ``model_kwargs``."""
SUBMITTED_SIZES = (16, 1024)
"""The ``img_size`` range a submitted model may ask for (the model run's memory is limited)."""
SUBMITTED_MARGINS = (0.0, 4.0)
"""The ``margin`` range a submitted model may ask for."""


class ModelError(PolypbenchError):
    """A submitted model that cannot run (shown to its team; not retried)."""


def _key(key: str) -> str:
    return f"config key {key!r}"


@dataclass(frozen=True)
class InferenceConfig:
    """The config keys a model's predictions depend on: the architecture (``model``) and its keywords
    (``model_kwargs``), the task (its outputs and how they decode), the crop (``img_size``, ``margin``), the frame
    geometry and normalisation (``frame``, ``fov_mask``, ``normalize``: a model trained on the seed's whole frames
    is run on them) and the numerics (``channels_last``, ``bf16``). Same names, types and defaults as
    :class:`~polypbench.train.config.TrainConfig`'s fields (tested); validated when made. ``img_size`` and
    ``margin`` None: the model's own (:func:`polypbench.models.default_cfg`, resolved where the model is built).
    ``model_kwargs``: a private copy, whose ``img_size`` (where given) follows ``img_size``, as training's does."""

    model: str
    task: str = DEFAULT_TASK
    img_size: int | None = None
    margin: float | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    channels_last: bool = False
    bf16: bool = False
    frame: str = "crop"
    fov_mask: bool = False
    normalize: str | None = None

    def __post_init__(self) -> None:
        from polypbench.load.spec import FRAMES, NORMALIZATIONS  # no torch


        for key in ("model", "task"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value or len(value) > 100:
                raise ConfigError(f"{_key(key)}: {value!r}; expected a name")
        size = self.img_size
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ConfigError(f"{_key('img_size')}: {size!r}; expected an integer >= 1 (or null: the model's)")
        margin = self.margin
        if margin is not None and (not isinstance(margin, (int, float)) or isinstance(margin, bool)
                                   or not 0 <= margin < math.inf):
            raise ConfigError(f"{_key('margin')}: {margin!r}; expected a number >= 0 (or null: the model's)")
        if self.frame not in FRAMES:
            raise choice_error("frame", self.frame, FRAMES)
        if self.normalize is not None and self.normalize not in NORMALIZATIONS:
            raise choice_error("normalize", self.normalize, NORMALIZATIONS)
        for key in ("channels_last", "bf16", "fov_mask"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{_key(key)}: {getattr(self, key)!r} is not a boolean; expected true or false")
        if not isinstance(self.model_kwargs, Mapping) or not all(isinstance(k, str) for k in self.model_kwargs):
            raise ConfigError(f"{_key('model_kwargs')}: {self.model_kwargs!r}; expected a mapping")
        kwargs = dict(self.model_kwargs)
        if "img_size" in kwargs and size is not None:  # the model's input size follows the config's
            kwargs["img_size"] = size
        object.__setattr__(self, "margin", None if margin is None else float(margin))
        object.__setattr__(self, "model_kwargs", kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON, YAML): what a job spec carries; :meth:`from_dict` reads it back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> InferenceConfig:
        """The config of :meth:`to_dict`'s mapping; a key that is not an inference key is refused."""
        unknown = sorted(set(values) - set(INFERENCE_KEYS))
        if unknown:
            raise ConfigError(f"{source}: unknown inference key {unknown[0]!r}; expected keys of: "
                              f"{', '.join(INFERENCE_KEYS)}")
        if "model" not in values:
            raise ConfigError(f"{source}: no {_key('model')}; expected the architecture's name")
        return cls(**values)

    @classmethod
    def of_training(cls, values: Mapping[str, Any], source: str = "config") -> InferenceConfig:
        """The inference part of a training config's mapping (``config.yaml``, a checkpoint's ``config``, a
        submitted config): the :data:`INFERENCE_KEYS` it has; its other keys say how it was trained and are
        ignored. The one derivation of an inference config from a training config."""
        return cls.from_dict({k: values[k] for k in INFERENCE_KEYS if k in values}, source)


INFERENCE_KEYS = tuple(f.name for f in dataclasses.fields(InferenceConfig))
"""The config keys (of :class:`polypbench.train.config.TrainConfig`) that inference reads; others are ignored."""


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= 100
    if isinstance(value, list):
        return len(value) <= 16 and all(isinstance(v, str) and len(v) <= 100 for v in value)
    return isinstance(value, (bool, int, float)) or value is None


def submitted_config(config: Mapping[str, Any], architecture: str,
                     tasks: Mapping[str, bool] | None = None) -> InferenceConfig:
    """The :class:`InferenceConfig` of a submitted training config (already parsed from its text), checked for a
    model run on someone else's machine: its ``model`` is ``architecture`` (the default), its ``task`` one of
    ``tasks`` (the tasks the board takes; None: any name, the model run checks it), its crop within
    :data:`SUBMITTED_SIZES` and :data:`SUBMITTED_MARGINS`, its ``model_kwargs`` few, small and naming no file
    (:data:`FORBIDDEN_KWARGS`). Every fault is a :class:`ModelError` naming the key."""
    values = {k: config[k] for k in INFERENCE_KEYS if k in config}
    model = values.setdefault("model", architecture)
    if model != architecture:
        raise ModelError(f"config key 'model': {model!r} differs from the architecture {architecture!r}")
    task = values.get("task", DEFAULT_TASK)
    if not isinstance(task, str) or not task or len(task) > 40:
        raise ModelError(f"config key 'task': {task!r}; expected a task name (the model run checks it is one)")
    if tasks is not None and task not in tasks:
        raise ModelError(f"config key 'task': {task!r}; expected a task the board scores: {', '.join(tasks)}")
    low, high = SUBMITTED_SIZES
    size = values.get("img_size")  # None: the model's own, within the bounds
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or not low <= size <= high):
        raise ModelError(f"config key 'img_size': {size!r}; expected an integer in {low}..{high}")
    lo, hi = SUBMITTED_MARGINS
    margin = values.get("margin")
    if margin is not None and (not isinstance(margin, (int, float)) or isinstance(margin, bool)
                               or not lo <= margin <= hi):
        raise ModelError(f"config key 'margin': {margin!r}; expected a number in {lo:g}..{hi:g}")
    kwargs = values.get("model_kwargs", {})
    if not isinstance(kwargs, dict) or len(kwargs) > MAX_MODEL_KWARGS:
        raise ModelError("config key 'model_kwargs': expected a small mapping")
    for key, value in kwargs.items():
        if key in FORBIDDEN_KWARGS:
            raise ModelError(f"config key 'model_kwargs.{key}': names a file; expected it absent (the weights are "
                             "the uploaded file)")
        if not _scalar(value):
            raise ModelError(f"config key 'model_kwargs.{key}': expected a number, a flag or short text")
    try:
        return InferenceConfig.from_dict(values)
    except ConfigError as exc:
        raise ModelError(str(exc)) from None


def size_offset(metadata: Mapping[str, str], task: str, needed: bool) -> float | None:
    """The regression offset in the weights' metadata (:data:`META_OFFSET`), checked as the model run reads it, at
    upload and in the run alike: a finite number of mm, present when the ``task`` decodes with it (``needed``)."""
    text = metadata.get(META_OFFSET)
    if text is None:
        if needed:
            raise ModelError(f"weights: a {task} model without {META_OFFSET!r} in the safetensors metadata; expected "
                             "the mean training size (as `polypbench submit --model` writes it)")
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ModelError(f"weights: metadata {META_OFFSET!r}: {text[:40]!r}; expected a finite number of mm")
    return value


@dataclass(frozen=True)
class ModelRun:
    """One model run in a child process (:mod:`polypbench.inference.sandbox`): the model (``config`` and the
    safetensors ``weights``), the prepared folders whose ``split`` it predicts, and how: ``device``, CPU
    ``threads``, ``batch_size``; ``out``: the prediction file it writes. Its :meth:`to_dict` is the child's
    ``spec.json``."""

    config: InferenceConfig
    weights: str
    prepared: tuple[str, ...]
    split: str = "test"
    out: str = "predictions.parquet"
    device: str = "cpu"
    threads: int = 1
    batch_size: int = 16

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "config": self.config.to_dict(), "prepared": list(self.prepared)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelRun:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ConfigError(f"model run spec: unknown key {unknown[0]!r}; expected keys of: {', '.join(fields)}")
        prepared: Sequence[str] = values["prepared"]
        return cls(**{**values, "config": InferenceConfig.from_dict(values["config"]),
                      "prepared": tuple(str(p) for p in prepared)})
