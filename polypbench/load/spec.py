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
from polypbench.load.common import DEFAULT_MARGIN, DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD


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
    - ``streams``: what the model takes (:data:`~polypbench.load.streams.STREAMS` names): ``None`` is one
      tensor of the RGB crop (single-stream models), a tuple a ``{stream: tensor}`` dict.
    - ``mean``, ``std``: the per-channel normalisation of the RGB streams (default ImageNet's).
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

    def __post_init__(self) -> None:
        for name in ("streams", "mean", "std"):  # lists (YAML, keywords) become tuples: the spec is hashable
            value = getattr(self, name)
            if isinstance(value, Sequence) and not isinstance(value, (str, tuple)):
                object.__setattr__(self, name, tuple(value))
        _check(self)

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


def _check(spec: PixelSpec) -> None:
    """Every rule a spec obeys, each field and each combination; the one place they are checked."""
    if spec.source not in SOURCES:
        raise choice_error("source", spec.source, SOURCES)
    if spec.augment not in AUGMENTS:
        raise choice_error("augment", spec.augment, AUGMENTS)
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
        _check_streams(spec.streams)
    if spec.augment != "none" and spec.size is None:
        raise ConfigError(f"augment {spec.augment!r} with size=None: the augmentation makes size x size crops; "
                          "expected size=N")
    if spec.source_entry.encoded and spec.augment != "device":
        raise ConfigError(f"source {spec.source!r} hands out JPEG bytes that only the training device decodes and "
                          f"augments; expected augment='device', not {spec.augment!r} (in a training config: "
                          "device_decode: true needs device_augment: true)")


def _check_streams(streams: object) -> None:
    from polypbench.load.streams import built_streams

    built = built_streams()
    if not isinstance(streams, tuple) or not streams or len(set(streams)) != len(streams):
        raise ConfigError(f"streams {streams!r}; expected distinct stream names, at least one (or None: one RGB "
                          f"tensor) from: {', '.join(built)}")
    for name in streams:
        if name not in built:
            raise ConfigError(f"stream {name!r} is not built by the pixel pipeline; expected streams from: "
                              f"{', '.join(built)}")


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
