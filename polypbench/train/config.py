"""Training configuration: a typed dataclass; YAML files give defaults, ``key=value`` overrides win, and the
resolved configuration is saved next to the run's outputs (``config.yaml``).

Packaged configurations (the reference grid) live in ``polypbench/configs/*.yaml``; ``resolve_config`` turns a
bare name such as ``resnet18-hag`` into that file.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from polypbench.errors import ConfigError, choice_error
from polypbench.inference.spec import DEFAULT_TASK, INFERENCE_KEYS, InferenceConfig
from polypbench.load.spec import PixelSpec
from polypbench.schema import PROTOCOLS
from polypbench.train.tasks import DATASETS, REGRESSION_LOSSES, TASKS, check_task

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEVICES = ("cpu", "cuda")
PAPER_AMP = ("none", "fp16-scaler", "auto")
"""``paper_amp``: ``fp16-scaler`` reproduces the reference's fp16 autocast and GradScaler step (gr_mode paper or
off; docs/models.md), on the CPU too (there in fp32, scaler still scaling, for tests); ``auto`` (the ``-paper``
configs): ``fp16-scaler`` on CUDA, ``none`` on the CPU, as the seed's ``torch.cuda.amp`` autocast and GradScaler
switch themselves off without CUDA; ``none`` (recommended; bf16 autocast needs no scaler)."""
FRAME_SAMPLERS = ("replacement", "seed")
"""``frame_sampler``: how ``frames_per_polyp_per_epoch`` frames are drawn per polyp (see
:class:`~polypbench.load.sampler.FramesPerPolyp`)."""
PROVENANCE_KEY = "provenance"
"""The block of a run's ``config.yaml`` that records what else decided the result (versions, data, pixel
source); :func:`load_config` skips it, so a run's ``config.yaml`` is itself a config to rerun."""


class _StrictBoolLoader(yaml.SafeLoader):
    """YAML that reads only ``true`` / ``false`` as booleans (YAML 1.2), not YAML 1.1's ``yes``, ``no``, ``on``,
    ``off``: ``augment: yes`` stays the string ``'yes'`` and is refused by the type check."""


_StrictBoolLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictBoolLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                        list("tTfF"))


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_StrictBoolLoader)  # noqa: S506 - a SafeLoader subclass


@dataclass
class TrainConfig:
    """Everything one training run depends on (saved as ``config.yaml`` beside ``best.pt``).

    ``task``: an entry of :data:`~polypbench.train.tasks.TASKS`: ``regression`` (one output, size in mm,
    ``regression_loss`` in mm) or ``triclass`` (three logits, cross-entropy; ``balance_classes`` weights it by
    inverse train-class frequency) on polyps, or ``classification`` (100 logits) on ``dataset: cifar100``.
    ``gr_mode``: ``gr`` | ``paper`` | ``off`` (see ``polypbench.train.routing``; plain models need ``off``).
    ``prepared``: prepared manifest folders trained on jointly; ``raw_roots``: one raw root per prepared folder
    (empty: the roots recorded at prepare time). ``fold``: ``None`` = the default public split, k = cross-validation
    fold k; with ``protocol: paper`` the paper's per-object folds (k = the test fold, k + 1 mod 6 validation).
    ``paper_amp: fp16-scaler`` reproduces the reference's fp16 GradScaler step (gr_mode paper or off; ``auto``: on
    CUDA only, see :data:`PAPER_AMP`).
    ``lr_schedule``: ``constant``, ``cosine`` (both rates decay to zero over the run, per step) or
    ``cosine_restarts`` (the seed's warm restarts every ``lr_t0`` epochs, None: ``epochs``, down to ``min_lr``,
    stepped per batch at ``epoch + i / n``); ``lr_schedule_gates: false`` keeps the gate rate constant (see
    ``polypbench.train.schedule``). ``frame_sampler``: ``replacement`` (every polyp gives
    ``frames_per_polyp_per_epoch`` frames, drawn with replacement where it has fewer) or ``seed`` (the seed's rule:
    min(N, available) without replacement, single-frame polyps skipped and counted). ``val_every``: validate every
    k-th epoch (epochs 0, k, 2k, ...); ``val_frames_per_polyp``: validate on at most that many frames per polyp,
    drawn afresh each time (None: every frame). ``weights``: the backbone's init, ``none``, ``imagenet`` (the
    published file from the local torch hub / Hugging Face cache, never downloaded) or a PATH.
    ``seed_sun_frames``: keep only the SUN frames the seed keeps (one per image number; the count dropped is
    printed). ``model_kwargs`` go to ``create_model`` (an ``img_size`` there always follows
    ``img_size``). CIFAR-100 (``dataset: cifar100``) reads ``data_root``, validates on a fixed held-out
    ``val_fraction`` of its train split and draws ``per_class_per_epoch`` images of each class per epoch (0: every
    image). ``batch_size`` is per process under DDP. ``device_augment`` moves the augmentation from the loader
    workers to the training device (batched; see ``polypbench.train.device_augment``); ``device_decode`` (with it,
    and materialized shards) decodes the training crops there too (nvJPEG on a GPU). ``img_size`` and ``margin``:
    ``None`` (the default) is the model's own (:func:`polypbench.models.default_cfg`: 384 and 0.5 for the reference
    models); a loaded config holds the numbers. ``frame`` (``crop`` | ``full``), ``fov_mask``, ``augment_recipe``
    (``polypbench`` | ``seed``), ``normalize`` (``imagenet`` | ``seed``; ``None``: the model's), ``depth``
    (``online`` | ``shards``) and ``depth_weights`` (``midas_v21_384.pt``, or ``random`` for tests and smoke runs)
    are the :class:`~polypbench.load.spec.PixelSpec` fields of those names (docs/loading.md). These keys, the
    model's streams and normalisation make the config's pixel pipeline, one
    :class:`~polypbench.load.spec.PixelSpec` (:meth:`pixel_spec`).
    """

    model: str = "resnet18-hag"
    task: str = DEFAULT_TASK
    regression_loss: str = "smooth_l1"
    balance_classes: bool = False
    gr_mode: str = "gr"
    lr: float = 2e-4
    gate_lr: float = 3e-4
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    clip_main: float | None = 8.0
    clip_gate: float | None = 8.0
    epochs: int = 30
    batch_size: int = 32
    img_size: int | None = None
    frames_per_polyp_per_epoch: int = 4
    augment: bool = True
    device_augment: bool = False
    device_decode: bool = False
    margin: float | None = None
    num_workers: int = 0
    seed: int = 0
    device: str = "cpu"
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    n_bootstrap: int = 200
    prepared: list[str] = field(default_factory=list)
    raw_roots: list[str] = field(default_factory=list)
    fold: int | None = None
    protocol: str = "public"
    paper_amp: str = "none"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "polyp"
    data_root: str | None = None
    val_fraction: float = 0.1
    per_class_per_epoch: int = 0
    min_lr: float = 0.0
    lr_t0: int | None = None
    lr_schedule_gates: bool = True
    frame_sampler: str = "replacement"
    val_every: int = 1
    val_frames_per_polyp: int | None = None
    weights: str = "none"
    seed_sun_frames: bool = False
    # the pixel pipeline's options, with PixelSpec's defaults (their one owner)
    frame: str = PixelSpec.frame
    fov_mask: bool = PixelSpec.fov_mask
    augment_recipe: str = PixelSpec.augment_recipe
    normalize: str | None = PixelSpec.normalize
    depth: str = PixelSpec.depth
    depth_weights: str | None = PixelSpec.depth_weights

    @property
    def num_outputs(self) -> int:
        return TASKS[self.task].num_outputs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def pixel_spec(self, augment: bool = False) -> PixelSpec:
        """This config's pixel pipeline for a split that ``augment`` s (the training split with ``augment: true``)
        or not: its model's input defaults (:func:`polypbench.models.default_cfg`: normalisation, streams) with
        ``img_size`` and ``margin`` (the decode size too), the streams of ``model_kwargs``, context around the
        crops, where the augmentation runs (``device_augment``) and the decoding (``device_decode``), and the
        frame geometry, augmentation recipe, normalisation and depth keys of the same names."""
        from polypbench.models import default_cfg

        model = default_cfg(self.model)
        streams = self.model_kwargs.get("streams")
        streams = model.streams if streams is None else streams
        where = ("device" if self.device_augment else "loader") if augment else "none"
        return model.replace(source="device" if augment and self.device_decode else "auto",
                             size=model.size if self.img_size is None else self.img_size,
                             margin=model.margin if self.margin is None else self.margin,
                             decode_size=model.size if self.img_size is None else self.img_size,
                             context=True, augment=where, streams=None if streams is None else tuple(streams),
                             frame=self.frame, fov_mask=self.fov_mask, augment_recipe=self.augment_recipe,
                             normalize=model.normalize if self.normalize is None else self.normalize,
                             depth=self.depth, depth_weights=self.depth_weights)

    def inference(self) -> InferenceConfig:
        """The part of this config that inference reads (:data:`~polypbench.inference.spec.INFERENCE_KEYS`)."""
        return InferenceConfig.of_training({k: getattr(self, k) for k in INFERENCE_KEYS})


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _check_type(key: str, value: Any) -> Any:
    """``value`` coerced to the field's type, or a one-line ConfigError."""
    hint = _HINTS[key]
    args = typing.get_args(hint)
    optional = isinstance(hint, types.UnionType) and type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key {key!r}: null is not allowed; expected {getattr(base, '__name__', base)}")
    origin = typing.get_origin(base) or base
    if origin is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        list: isinstance(value, list) and all(isinstance(v, str) for v in value),
        dict: isinstance(value, dict),
    }[origin]
    if not ok:
        if origin is bool:
            raise ConfigError(f"config key {key!r}: {value!r} is not a boolean; expected true or false")
        name = {list: "a list of strings", dict: "a mapping"}.get(origin, getattr(origin, "__name__", str(origin)))
        raise ConfigError(f"config key {key!r}: {value!r} is not {name}")
    return float(value) if origin is float else value


def _validate(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` checked against every rule (ConfigError naming the key otherwise), or a new config where a value
    follows another; ``cfg`` and the mappings it holds are left as they are."""
    from polypbench.models import default_cfg, list_models
    from polypbench.train.routing import GR_MODES
    from polypbench.train.schedule import LR_SCHEDULES

    for key, value, valid in (("model", cfg.model, list_models()), ("task", cfg.task, TASKS),
                              ("gr_mode", cfg.gr_mode, GR_MODES), ("regression_loss", cfg.regression_loss,
                              REGRESSION_LOSSES), ("device", cfg.device, DEVICES),
                              ("dataset", cfg.dataset, DATASETS), ("protocol", cfg.protocol, PROTOCOLS),
                              ("paper_amp", cfg.paper_amp, PAPER_AMP),
                              ("frame_sampler", cfg.frame_sampler, FRAME_SAMPLERS),
                              ("lr_schedule", cfg.lr_schedule, LR_SCHEDULES)):
        if value not in valid:
            raise choice_error(key, value, valid)
    model = default_cfg(cfg.model)  # None: the model's own input size and margin, written out from here on
    cfg = dataclasses.replace(cfg, img_size=model.size if cfg.img_size is None else cfg.img_size,
                              margin=model.margin if cfg.margin is None else cfg.margin)
    for key in ("epochs", "batch_size", "img_size", "frames_per_polyp_per_epoch", "val_every", "lr_t0",
                "val_frames_per_polyp"):
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise ConfigError(f"config key {key!r}: {getattr(cfg, key)} must be >= 1")
    check_task(cfg.task, cfg.dataset)
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError(f"config key 'val_fraction': {cfg.val_fraction} is not in [0, 1)")
    for key in ("lr", "gate_lr", "weight_decay", "margin", "num_workers", "n_bootstrap", "per_class_per_epoch",
                "min_lr"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"config key {key!r}: {getattr(cfg, key)} must be >= 0")
    if cfg.raw_roots and len(cfg.raw_roots) != len(cfg.prepared):
        raise ConfigError(f"raw_roots has {len(cfg.raw_roots)} entries for {len(cfg.prepared)} prepared folders; "
                          "expected one per prepared folder, or none")
    if cfg.protocol == "paper" and (cfg.fold is None or cfg.dataset != "polyp"):
        raise ConfigError("config key 'protocol': 'paper' needs polyp manifests and a test fold (fold: 0..5; "
                          "validation is fold + 1 mod 6)")
    if cfg.paper_amp != "none" and (cfg.gr_mode == "gr" or cfg.bf16):
        raise ConfigError(f"config key 'paper_amp': {cfg.paper_amp!r} reproduces the reference's fp16 GradScaler step "
                          "and needs gr_mode: paper (or off) and bf16: false")
    if not cfg.weights:
        raise ConfigError("config key 'weights': empty; expected none, imagenet or the path of a local state dict")
    cfg.pixel_spec(augment=True)  # the pixel pipeline's combinations (device_decode, streams): checked there
    if "img_size" in cfg.model_kwargs:  # the model's input size follows the config's, in a new mapping
        return dataclasses.replace(cfg, model_kwargs={**cfg.model_kwargs, "img_size": cfg.img_size})
    return cfg


def config_key(key: str) -> str:
    """How an error names a config key: ``config key 'prepared'`` (:func:`in_terms_of` rewrites it for a caller
    that sets the key by another name, as ``polypbench train --manifest`` sets ``prepared``)."""
    return f"config key {key!r}"


def in_terms_of(message: str, names: dict[str, str]) -> str:
    """``message`` with every ``config key 'k'`` whose ``k`` is in ``names`` replaced by ``names[k]`` (e.g.
    ``{"prepared": "--manifest"}``): an error then names what the user typed."""
    for key, name in names.items():
        message = message.replace(config_key(key), name)
    return message


def unknown_key(key: str) -> str:
    """``unknown config key 'epoch'; did you mean 'epochs'?`` (every valid key when none is close)."""
    close = difflib.get_close_matches(key, FIELDS, n=3, cutoff=0.7)
    if close:
        return f"unknown config key {key!r}; did you mean {' or '.join(repr(c) for c in close)}?"
    return f"unknown config key {key!r}; expected one of: {', '.join(FIELDS)}"


def _typed(values: Mapping[str, Any], source: str) -> TrainConfig:
    """A :class:`TrainConfig` of ``values``, each checked against its key's type; the rules are not checked yet."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{source}: {unknown_key(unknown[0])}")
    return TrainConfig(**{k: _check_type(k, v) for k, v in values.items()})


def from_dict(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """A validated :class:`TrainConfig` from a mapping; an unknown key fails naming the closest valid ones."""
    return _validate(_typed(values, source))


def packaged_configs() -> list[str]:
    """Names of the packaged configurations (``polypbench/configs/<name>.yaml``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def packaged_summary() -> str:
    """The packaged configurations as a compact table: name, task, model, input size (the config's ``img_size``,
    else the model's :func:`~polypbench.models.default_cfg`) and the device it is meant for (the model's,
    :func:`~polypbench.models.meant_for`)."""
    from polypbench.models import default_cfg, meant_for

    rows = [["config", "task", "model", "img_size", "device", "data"]]
    for name in packaged_configs():
        cfg = load_config(name)
        size = cfg.img_size if cfg.img_size is not None else default_cfg(cfg.model).size
        rows.append([name, cfg.task, cfg.model, str(size), meant_for(cfg.model), cfg.dataset])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def resolve_config(name_or_path: str | Path) -> Path:
    """A YAML path as given, or the packaged config of that bare name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = CONFIG_DIR / f"{name_or_path}.yaml"
    if path.suffix == "" and packaged.is_file():
        return packaged
    raise ConfigError(f"config {str(name_or_path)!r} is neither a file nor a packaged config; "
                      f"expected a YAML path or one of: {', '.join(packaged_configs())}")


def parse_override(item: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value parsed as YAML: ``lr=1e-3``, ``augment=false``, ``prepared=[a,b]``; only
    ``true`` / ``false`` are booleans)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected key=value")
    if key not in FIELDS:
        raise ConfigError(f"override {item!r}: {unknown_key(key)}")
    try:
        value = _yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if _HINTS[key] is str and value is not None and not isinstance(value, str):
        value = raw.strip()  # e.g. model=1 stays a string
    return key, value


def read_values(path: str | Path) -> dict[str, Any]:
    """The config keys of the YAML at ``path`` (a file or a packaged name), unvalidated; a run's ``config.yaml``
    without its ``provenance`` block."""
    file = resolve_config(path)
    try:
        loaded = _yaml(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{file}: expected a mapping of config keys")
    loaded.pop(PROVENANCE_KEY, None)  # a run's config.yaml: the record, not a setting
    return loaded


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                changes: Mapping[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the YAML at ``path`` (a file or a packaged name), then ``key=value`` ``overrides`` (text the
    user typed, parsed here), then ``changes``: typed values a program sets, applied with
    :func:`replace_config` (never written as text, so a path with a comma stays one path). The rules are checked
    once, after all of them (``--dataset cifar100`` may change the task a YAML file set)."""
    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(resolve_config(path))
        values.update(read_values(path))
    for item in overrides:
        key, value = parse_override(item)
        values[key] = value
    return replace_config(_typed(values, source), **(changes or {}))


def replace_config(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """``cfg`` with ``changes`` (typed values, e.g. ``prepared=[...]``, ``fold=None``): each checked against its
    key's type, then :func:`dataclasses.replace`, then every rule, as for a loaded config."""
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise ConfigError(unknown_key(unknown[0]))
    return _validate(dataclasses.replace(cfg, **{k: _check_type(k, v) for k, v in changes.items()}))


def save_config(cfg: TrainConfig, run_dir: str | Path, provenance: dict[str, Any] | None = None) -> Path:
    """Write the resolved configuration to ``run_dir/config.yaml`` (atomically), followed by a ``provenance``
    block when given (what :func:`load_config` skips); return its path."""
    from polypbench.fileio import atomic_write

    path = Path(run_dir) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = cfg.to_dict() if provenance is None else {**cfg.to_dict(), PROVENANCE_KEY: provenance}
    atomic_write(path, yaml.safe_dump(doc, sort_keys=False))
    return path


def read_provenance(run_dir: str | Path) -> dict[str, Any]:
    """The ``provenance`` block of ``run_dir/config.yaml`` (empty when absent or unreadable)."""
    try:
        doc = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    block = doc.get(PROVENANCE_KEY) if isinstance(doc, dict) else None
    return block if isinstance(block, dict) else {}
