"""The pixel pipeline, chosen once: a :class:`PixelSpec` says where a split's pixels come from (its *source*),
which crop is cut, how it is resized and augmented, and which *streams* a model gets, normalised how.

One frozen value, checked in one place (``PixelSpec.__post_init__``, each error one line naming the field and the
valid values). Who reads which part:

- :func:`polypbench.load_split` (``source``, ``size``, ``margin``, ``decode_size``, ``context``, ``augment``): the
  samples a split hands out;
- :func:`polypbench.train.data.model_input` (``streams``, ``mean``, ``std``): a model's input from a batch, each
  stream an entry of :data:`polypbench.load.streams.STREAMS`;
- a training config builds its spec with :meth:`polypbench.train.config.TrainConfig.pixel_spec`, starting from its
  model's defaults, which are a spec too (:func:`polypbench.models.default_cfg`).

A source is a table entry (:data:`SOURCES`): what it reads and in what form its samples leave the loader, so the
loader follows the entry instead of testing names. Importing this module loads no torch; checking ``streams``
imports the stream table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from polypbench.errors import ConfigError, choice_error
from polypbench.load.common import DEFAULT_MARGIN, DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD, SEED_MEAN, SEED_STD


@dataclass(frozen=True)
class Source:
    """Where a split's pixels are read (an entry of :data:`SOURCES`)."""

    doc: str
    shards: Literal["never", "fit", "required"]
    """Materialized shards (``polypbench materialize``): never read (raw frames), read when one fits the spec's
    ``margin`` and ``decode_size`` (raw frames otherwise), or required (a one-line error when none fits)."""
    encoded: bool = False
    """Samples carry the stored JPEG bytes (``jpeg``) instead of pixels, for the training device to decode: the
    loader does no pixel work, so the spec's ``augment`` must be ``device``."""


SOURCES: dict[str, Source] = {
    "auto": Source("materialized shards when a finished materialization of this manifest has this margin and at "
                   "least decode_size pixels a side, the raw frames otherwise", shards="fit"),
    "raw": Source("the raw frames, decoded and cropped on the CPU (a JPEG frame at the smallest DCT scale that "
                  "keeps decode_size pixels a side)", shards="never"),
    "shards": Source("the crops `polypbench materialize` wrote, decoded on the CPU", shards="required"),
    "device": Source("the crops `polypbench materialize` wrote, handed out as JPEG bytes and decoded on the training "
                     "device (nvJPEG on a GPU; training's device_decode)", shards="required", encoded=True),
}
"""Pixel sources by name (a spec's ``source``). Hugging Face datasets are another output form, not a source:
:func:`polypbench.load_hf` cuts the same crops from the raw frames."""

AUGMENTS: dict[str, str] = {
    "none": "the crop resized to size x size (antialiased), nothing random",
    "loader": "resized and augmented in the loader workers on uint8: turn, flips, colour jitter (UInt8Augment)",
    "device": "the loader scales the crop window to size and keeps the context around it (WindowScale); the turn, "
              "flips and jitter run on the training device for whole batches (DeviceAugment; training's "
              "device_augment)",
}
"""Where the crop is resized and augmented (a spec's ``augment``); the loader's step for each is
:data:`polypbench.load.augment.LOADER_STEPS`."""


FRAMES: dict[str, str] = {
    "crop": "the square crop_window around the box (margin times its longer side added on each side), resized to "
            "size x size",
    "full": "the whole frame resized to size x size, aspect not kept (the HAG/GR seed code's input); raw frames "
            "only (shards hold crops)",
}
"""What part of a frame the pipeline hands out (a spec's ``frame``)."""


@dataclass(frozen=True)
class Recipe:
    """One training augmentation (an entry of :data:`RECIPES`): a turn by U(-degrees, degrees), horizontal and
    vertical flips each with probability ``flip``, colour jitter (brightness, contrast, saturation, hue), then
    Gaussian noise of standard deviation ``noise`` on [0, 1] pixels, clamped to [0, 1] (0: none)."""

    doc: str
    degrees: float
    flip: float
    jitter: tuple[float, float, float, float]
    noise: float = 0.0


RECIPES: dict[str, Recipe] = {
    "polypbench": Recipe("turn U(+-20 deg), h/v flips 0.5, jitter (.2, .2, .2, .02), no noise", 20.0, 0.5,
                         (0.2, 0.2, 0.2, 0.02)),
    "seed": Recipe("the HAG/GR seed code's PairedTCombo1: turn U(+-30 deg), h/v flips 0.5, jitter (.15, .15, .15, "
                   ".01), Gaussian noise sigma 0.01 then clamp", 30.0, 0.5, (0.15, 0.15, 0.15, 0.01), noise=0.01),
}
"""Training augmentations by name (a spec's ``augment_recipe``), applied where ``augment`` says, in this order:
turn, flips, jitter (on uint8 in the loader, or on the device), then the noise (on the device, on [0, 1])."""

NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "seed": (SEED_MEAN, SEED_STD),
}
"""Named per-channel normalisations (a spec's ``normalize``): (mean, std) of RGB pixels in [0, 1]."""

DEPTHS: dict[str, str] = {
    "online": "the depth network runs on every batch, on the augmented frame (the seed code's way: exact)",
    "shards": "depth maps computed once by `polypbench materialize --depth-weights` and moved with the frame's "
              "augmentation (fast)",
}
"""Where the ``depth`` stream's maps come from (a spec's ``depth``)."""
RANDOM_DEPTH_WEIGHTS = "random"
"""``depth_weights: random``: a randomly initialised depth network, for tests and smoke runs only."""


class PixelOptions(TypedDict, total=False):
    """The :class:`PixelSpec` fields as keywords (:func:`polypbench.load_split`'s ``**pixels``); ``size`` also
    takes ``"auto"`` there."""

    source: str
    size: int | None | Literal["auto"]
    margin: float
    decode_size: int | None
    context: bool
    augment: str
    streams: Sequence[str] | None
    mean: Sequence[float]
    std: Sequence[float]
    frame: str
    fov_mask: bool
    augment_recipe: str
    normalize: str | None
    depth: str
    depth_weights: str | None


@dataclass(frozen=True)
class PixelSpec:
    """The pixel pipeline of one split: source, crop, resize and augmentation, streams and normalisation.

    - ``source``: where pixels are read (:data:`SOURCES`: ``auto``, ``raw``, ``shards``, ``device``).
    - ``size``: the side of the square crop the pipeline makes (an int), or ``None``: the native crop, whose size
      follows the box. With ``augment='device'`` the device makes it (the loader scales the window to it).
    - ``margin``: context around the box, a fraction of its longer side added on each side
      (:func:`~polypbench.load.crop_window`).
    - ``decode_size``: decode JPEG frames and shards at the smallest DCT scale that keeps this many pixels a side
      (faster, the same region); with ``source='auto'`` it also decides whether shards fit. ``None``: full size.
    - ``context``: shards hand out the context stored around the window as well, and the window (for the turns of
      ``augment``, which then fill the corners with real pixels); raw frames ignore it.
    - ``augment``: where the crop is resized and augmented (:data:`AUGMENTS`: ``none``, ``loader``, ``device``).
    - ``streams``: what the model takes (:data:`~polypbench.load.streams.STREAMS` names): ``None`` is the
      ``rgb`` tensor; one name that stream's tensor itself (what a single-stream model takes in place of ``rgb``,
      e.g. ``("box_crop",)``: the seed code's RGB input); two or more a ``{stream: tensor}`` dict
      (:func:`~polypbench.load.streams.build_streams`).
    - ``mean``, ``std``: the per-channel normalisation of the RGB streams (default ImageNet's).
    - ``frame``: what part of the frame is handed out (:data:`FRAMES`: ``crop`` around the box, or the ``full``
      frame resized to size x size).
    - ``fov_mask``: multiply every stream by the circular field-of-view mask (1 where the pixel's centre, on a
      [-1, 1] grid of the image, lies within radius 1 of its centre; the seed code's circular crop).
    - ``augment_recipe``: the training augmentation (:data:`RECIPES`: ``polypbench`` or ``seed``).
    - ``normalize``: a named normalisation (:data:`NORMALIZATIONS`: ``imagenet``, ``seed``) that sets ``mean``
      and ``std``; ``None``: ``mean`` and ``std`` as given.
    - ``depth``, ``depth_weights``: where the ``depth`` stream's maps come from (:data:`DEPTHS`: ``online`` or
      ``shards``) and the depth network's weights file (``midas_v21_384.pt``; ``random``: random weights, for
      tests and smoke runs).
    """

    source: str = "auto"
    size: int | None = DEFAULT_SIZE
    margin: float = DEFAULT_MARGIN
    decode_size: int | None = None
    context: bool = False
    augment: str = "none"
    streams: tuple[str, ...] | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    frame: str = "crop"
    fov_mask: bool = False
    augment_recipe: str = "polypbench"
    normalize: str | None = None
    depth: str = "online"
    depth_weights: str | None = None

    def __post_init__(self) -> None:
        for name in ("streams", "mean", "std"):  # lists (YAML, keywords) become tuples: the spec is hashable
            value = getattr(self, name)
            if isinstance(value, Sequence) and not isinstance(value, (str, tuple)):
                object.__setattr__(self, name, tuple(value))
        if self.normalize is not None:
            _named_normalization(self)
        _check(self)

    @property
    def recipe(self) -> Recipe:
        """This spec's training augmentation (:data:`RECIPES` entry of ``augment_recipe``)."""
        return RECIPES[self.augment_recipe]

    @property
    def noise(self) -> float:
        """The Gaussian noise the device adds to this spec's pixels: the recipe's when the spec augments, else 0."""
        return self.recipe.noise if self.augment != "none" else 0.0

    @property
    def source_entry(self) -> Source:
        """This spec's entry of :data:`SOURCES`."""
        return SOURCES[self.source]

    def replace(self, **changes: Any) -> PixelSpec:
        """A new spec with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)


FIELDS = tuple(f.name for f in dataclasses.fields(PixelSpec))


def _pixel_count(name: str, value: object, none: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{name} {value!r}; expected a positive number of pixels or None ({none})")


def _named_normalization(spec: PixelSpec) -> None:
    """Set ``mean`` and ``std`` from ``normalize``; mean and std of another name (a spec replaced from another
    normalisation) are replaced, values of none are refused (give either)."""
    if spec.normalize not in NORMALIZATIONS:
        raise choice_error("normalize", spec.normalize, NORMALIZATIONS)
    given = (tuple(spec.mean), tuple(spec.std))
    if given not in NORMALIZATIONS.values():
        raise ConfigError(f"normalize {spec.normalize!r} with mean {spec.mean!r} and std {spec.std!r}; expected "
                          "either a named normalisation or your own mean and std (normalize: null)")
    object.__setattr__(spec, "mean", NORMALIZATIONS[spec.normalize][0])
    object.__setattr__(spec, "std", NORMALIZATIONS[spec.normalize][1])


def _check(spec: PixelSpec) -> None:
    """Every rule a spec obeys, each field and each combination; the one place they are checked."""
    for name, table in (("source", SOURCES), ("augment", AUGMENTS), ("frame", FRAMES),
                        ("augment_recipe", RECIPES), ("depth", DEPTHS)):
        if getattr(spec, name) not in table:
            raise choice_error(name, getattr(spec, name), table)
    if not isinstance(spec.fov_mask, bool):
        raise ConfigError(f"fov_mask {spec.fov_mask!r}; expected true or false")
    if spec.depth_weights is not None and (not isinstance(spec.depth_weights, str) or not spec.depth_weights):
        raise ConfigError(f"depth_weights {spec.depth_weights!r}; expected the path of midas_v21_384.pt (or "
                          f"{RANDOM_DEPTH_WEIGHTS!r}: random weights, for tests and smoke runs)")
    _pixel_count("size", spec.size, "native crops")
    _pixel_count("decode_size", spec.decode_size, "full resolution")
    if isinstance(spec.margin, bool) or not isinstance(spec.margin, (int, float)) or not spec.margin >= 0:
        raise ConfigError(f"margin {spec.margin!r}; expected a number >= 0 (the fraction of the box's longer side "
                          "added on each side)")
    if not isinstance(spec.context, bool):
        raise ConfigError(f"context {spec.context!r}; expected true or false")
    for name in ("mean", "std"):
        value = getattr(spec, name)
        if (not isinstance(value, tuple) or len(value) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                or (name == "std" and not all(v > 0 for v in value))):
            raise ConfigError(f"{name} {value!r}; expected three numbers, one per RGB channel"
                              + (", each > 0" if name == "std" else ""))
    if spec.streams is not None:
        _check_streams(spec)
    if spec.augment != "none" and spec.size is None:
        raise ConfigError(f"augment {spec.augment!r} with size=None: the augmentation makes size x size crops; "
                          "expected size=N")
    if spec.frame == "full" and (spec.source_entry.shards == "required" or spec.augment == "device"):
        raise ConfigError(f"frame 'full' with source {spec.source!r} and augment {spec.augment!r}: whole frames are "
                          "read from the raw frames and augmented in the loader; expected source 'auto' or 'raw' "
                          "and augment 'none' or 'loader'")
    if spec.source_entry.encoded and spec.augment != "device":
        raise ConfigError(f"source {spec.source!r} hands out JPEG bytes that only the training device decodes and "
                          f"augments; expected augment='device', not {spec.augment!r} (in a training config: "
                          "device_decode: true needs device_augment: true)")


def _check_streams(spec: PixelSpec) -> None:
    from polypbench.load.streams import STREAMS, built_streams

    built, streams = built_streams(), spec.streams
    if not isinstance(streams, tuple) or not streams or len(set(streams)) != len(streams):
        raise ConfigError(f"streams {streams!r}; expected distinct stream names, at least one (or None: one RGB "
                          f"tensor) from: {', '.join(built)}")
    for name in streams:
        if name not in built:
            raise ConfigError(f"stream {name!r} is not built by the pixel pipeline; expected streams from: "
                              f"{', '.join(built)}")
        needs = STREAMS[name].needs
        if "mask" in needs and spec.augment == "device":
            raise ConfigError(f"stream {name!r} needs the box mask, which the loader moves with the frame; expected "
                              "augment 'none' or 'loader', not 'device' (in a training config: device_augment: false)")
        if "depth" in needs:
            _check_depth(spec, name)


def depth_weights_error(name: str = "depth") -> ConfigError:
    """The one line for a ``depth`` stream computed online without ``depth_weights`` (raised where the network
    would be built: a config without them still loads, to be completed with ``depth_weights=PATH``)."""
    return ConfigError(f"stream {name!r} needs the depth network's weights; expected depth_weights: the path of "
                       "midas_v21_384.pt (https://github.com/isl-org/MiDaS/releases/tag/v2_1), or "
                       f"{RANDOM_DEPTH_WEIGHTS!r} for tests and smoke runs")


def _check_depth(spec: PixelSpec, name: str) -> None:
    if spec.depth == "shards" and spec.frame != "full":
        raise ConfigError(f"stream {name!r} with depth 'shards': the stored maps lie in the whole frame; expected "
                          "frame 'full' (or depth 'online')")
    if spec.size is None or spec.size % 32:
        raise ConfigError(f"stream {name!r} with size {spec.size!r}: the depth network takes sides that are "
                          "multiples of 32; expected size=N with N % 32 == 0 (the seed code's is 384)")


def spec_with(spec: PixelSpec | None, options: PixelOptions, *, transform: bool) -> PixelSpec:
    """``spec`` (default: ``PixelSpec()``) with the fields ``options`` gives; a ``size`` of ``"auto"`` (the
    default without a ``spec``) is :data:`DEFAULT_SIZE` without a ``transform`` and the native crop with one."""
    unknown = sorted(set(options) - set(FIELDS))
    if unknown:
        hint = " (encoded=True is source='device', augment='device' now)" if unknown[0] == "encoded" else ""
        raise ConfigError(f"unknown pixel option {unknown[0]!r}{hint}; expected one of: {', '.join(FIELDS)}")
    values: dict[str, Any] = dict(options)
    size = values.pop("size", "auto" if spec is None else spec.size)
    if size == "auto":
        size = None if transform else DEFAULT_SIZE
    return dataclasses.replace(spec or PixelSpec(), size=size, **values)
