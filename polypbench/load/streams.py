"""The input streams a model can take, one table entry each (:data:`STREAMS`).

A stream is computed from a batch's :class:`Pixels` (the images where the model runs, after augmentation, and
the polyp boxes) by its entry's ``build``, on whole batches; ``needs`` names what it reads besides the images, so
a batch without it fails in one line. Adding a stream (the paper's depth map, a circular field-of-view mask) is
adding an entry with :func:`register_stream`, not a branch: :func:`~polypbench.train.data.model_input` builds
whatever a :class:`~polypbench.load.spec.PixelSpec` names, and the models read each stream's ``channels`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from polypbench.errors import ConfigError, choice_error
from polypbench.load.common import IMAGENET_MEAN, IMAGENET_STD
from polypbench.load.geometry import box_windows, crop_resize, fov_mask, minmax

DepthNet = Callable[[torch.Tensor], torch.Tensor]
"""A depth network: (B, 3, H, W) float images -> (B, H, W) relative inverse depth (MiDaS v2.1,
:func:`polypbench.models.midas.build_midas`), frozen."""


@dataclass
class Pixels:
    """One batch's pixels on the device the model runs on, what every stream is computed from.

    ``images``: (B, 3, H, W) uint8, or float in [0, 1] (after device augmentation); ``None`` when the batch brings
    its streams ready (``ready``: normalised already, as :class:`~polypbench.train.data.SampleTransform` makes
    them). ``box``: (B, 4) XYXY polyp boxes in image pixels, where a requested stream needs them. ``mean``,
    ``std``: the normalisation (:class:`~polypbench.load.spec.PixelSpec`'s). ``mask``: (B, 1, H, W) float box
    masks moved with the images (the loader's, where a stream needs them). ``fov``: multiply every stream by the
    circular field-of-view mask. ``noise``: the standard deviation of the Gaussian noise added to the [0, 1]
    pixels, then clamped (the training augmentation's last step; 0: none). ``depth_net``: the depth network, or
    ``depth_maps`` (B, 1, H, W): stored depth maps moved with the images (``depth: shards``), where a stream needs
    depth.
    """

    images: torch.Tensor | None
    box: torch.Tensor | None = None
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    ready: Mapping[str, torch.Tensor] = field(default_factory=dict)
    mask: torch.Tensor | None = None
    fov: bool = False
    noise: float = 0.0
    depth_net: DepthNet | None = None
    depth_maps: torch.Tensor | None = None
    _unit: torch.Tensor | None = field(default=None, init=False, repr=False)
    _normalized: torch.Tensor | None = field(default=None, init=False, repr=False)
    _windows: torch.Tensor | None = field(default=None, init=False, repr=False)
    _box_crop: torch.Tensor | None = field(default=None, init=False, repr=False)

    def unit(self) -> torch.Tensor:
        """The images as float in [0, 1], with the ``noise`` added and clamped (computed once for all streams)."""
        if self.images is None:
            raise ConfigError(f"this batch holds normalised streams ({', '.join(self.ready)}) and no pixels to "
                              "compute others from; expected uint8 batches (the training loaders')")
        if self._unit is None:
            self._unit = self.images.float().div_(255) if self.images.dtype == torch.uint8 else self.images
            if self.noise:
                self._unit = (self._unit + torch.randn_like(self._unit) * self.noise).clamp_(0, 1)
        return self._unit

    @property
    def depth(self) -> DepthNet | torch.Tensor | None:
        """What the depth stream reads: the stored maps, else the network (None: neither)."""
        return self.depth_maps if self.depth_maps is not None else self.depth_net

    def normalized(self) -> torch.Tensor:
        """:meth:`unit` normalised, times the field-of-view mask with ``fov`` (computed once for all streams)."""
        if self._normalized is None:
            self._normalized = self.in_view(self.normalize(self.unit()))
        return self._normalized

    def windows(self) -> torch.Tensor:
        """(B, 4) the expanded box windows of ``mask`` (:func:`~polypbench.load.geometry.box_windows`: the mask's
        bounds grown by half their extent on each side, clipped; computed once for all streams)."""
        if self.mask is None:
            raise ConfigError(f"the expanded box crop needs {NEEDS['mask']}; this batch has none")
        if self._windows is None:
            self._windows = box_windows(self.mask)
        return self._windows

    def box_crop(self) -> torch.Tensor:
        """The seed code's expanded box crop (its ``prepare_input(inputs, mask, expand_factor=0.5)``): each
        image's :meth:`windows` cut from :meth:`normalized` (the normalised, field-of-view masked images) and
        resized bilinearly with ``align_corners`` to the images' size. What the ``box_crop`` stream hands the
        model and what the ``depth`` stream's network sees: one computation for both (computed once)."""
        if self._box_crop is None:
            self._box_crop = crop_resize(self.normalized(), self.windows())
        return self._box_crop

    def in_view(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, H, W) times the circular field-of-view mask with ``fov``; ``x`` itself without."""
        return x * fov_mask(x.shape[-2], x.shape[-1], device=x.device) if self.fov else x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, 3, H, W) in [0, 1], minus ``mean``, over ``std``, per channel."""
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


NEEDS = {"box": "polyp boxes", "mask": "box masks moved with the frame (the loader's; augment 'none' or 'loader')",
         "depth": "a depth network (depth_weights) or stored depth maps (depth: shards)"}
"""What a stream may need besides the images (a :class:`Pixels` field), in words for its error."""


@dataclass(frozen=True)
class Stream:
    """One input stream: its ``name``, ``channels`` (what a model's encoder for it takes), how it is built from a
    batch's :class:`Pixels` (``None``: models take it, but the pipeline builds none yet; you pass it yourself)
    and what it ``needs`` besides the images (:data:`NEEDS`)."""

    name: str
    channels: int
    build: Callable[[Pixels], torch.Tensor] | None
    doc: str
    needs: tuple[str, ...] = ()

    def __call__(self, pixels: Pixels) -> torch.Tensor:
        """This stream of ``pixels`` (the one the batch carries ready, if it does)."""
        if self.name in pixels.ready:
            return pixels.ready[self.name]
        if self.build is None:
            raise ConfigError(f"stream {self.name!r} is not built by the pixel pipeline; expected streams from: "
                              f"{', '.join(built_streams())}")
        for need in self.needs:
            if getattr(pixels, need) is None:
                without = [s for s in built_streams()
                           if all(getattr(pixels, n) is not None for n in STREAMS[s].needs)]
                raise ConfigError(f"stream {self.name!r} needs {NEEDS[need]}; this data has none (expected streams "
                                  f"from: {', '.join(without)})")
        return self.build(pixels)


STREAMS: dict[str, Stream] = {}
"""Stream name -> :class:`Stream` (:func:`register_stream` adds one)."""


def register_stream(stream: Stream) -> Stream:
    """Add ``stream`` to :data:`STREAMS` (a name is registered once)."""
    if stream.name in STREAMS:
        raise ValueError(f"stream {stream.name!r} is registered twice")
    STREAMS[stream.name] = stream
    return stream


def built_streams() -> list[str]:
    """The names of the streams the pipeline builds, sorted."""
    return sorted(name for name, s in STREAMS.items() if s.build is not None)


def build_streams(pixels: Pixels, streams: Sequence[str] | None) -> torch.Tensor | dict[str, torch.Tensor]:
    """What a model's ``forward`` takes: the ``rgb`` tensor when ``streams`` is None; the tensor of the one stream
    itself when ``streams`` names one (what every model with one stream takes: a single-stream model such as
    ``resnet18`` or ``vit-tiny`` takes it in place of ``rgb``); ``{stream: tensor}`` for two or more."""
    if streams is None:
        return STREAMS["rgb"](pixels)
    if len(streams) == 1:
        return STREAMS[streams[0]](pixels)
    return {name: STREAMS[name](pixels) for name in streams}


def single_stream(streams: Sequence[str] | None) -> Stream:
    """The entry of the one stream a single-stream model takes: ``rgb`` when ``streams`` is None, else the one
    name it holds; a one-line error for an unknown name or for two or more (a multistream model's input)."""
    names = ("rgb",) if streams is None else tuple(streams)
    if len(names) != 1:
        raise ConfigError(f"streams {list(names)!r} for a single-stream model; expected one stream (it takes that "
                          "stream's tensor in place of rgb), or a multistream model (multistream, "
                          "multistream-hag) for two or more")
    if names[0] not in STREAMS:
        raise choice_error("stream", names[0], STREAMS)
    return STREAMS[names[0]]


def needs(streams: Sequence[str] | None, what: str) -> bool:
    """Whether one of ``streams`` (None: ``rgb``) needs ``what`` (a :data:`NEEDS` key)."""
    return any(what in STREAMS[name].needs for name in streams or ("rgb",))


def _rgb(pixels: Pixels) -> torch.Tensor:
    return pixels.normalized()


def _masked(pixels: Pixels) -> torch.Tensor:
    x, box = pixels.unit(), pixels.box
    assert box is not None  # Stream.__call__ checked it
    h, w = x.shape[-2:]
    b = box.to(x.device).round()
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys >= b[:, 1, None, None]) & (ys < b[:, 3, None, None]) & (xs >= b[:, 0, None, None])
              & (xs < b[:, 2, None, None]))
    return pixels.in_view(pixels.normalize(x * inside[:, None]))


def _masked_frame(pixels: Pixels) -> torch.Tensor:
    assert pixels.mask is not None  # Stream.__call__ checked it
    return pixels.normalized() * pixels.mask.to(pixels.normalized().device).clamp(0, 1)


def _box_crop(pixels: Pixels) -> torch.Tensor:
    return pixels.box_crop()


def _depth(pixels: Pixels) -> torch.Tensor:
    if pixels.depth_maps is not None:  # stored maps, moved with the frame: cut as the network's input is
        return minmax(pixels.in_view(crop_resize(pixels.depth_maps.float(), pixels.windows())))
    assert pixels.depth_net is not None  # Stream.__call__ checked it
    crops = pixels.box_crop()
    with torch.no_grad():
        if crops.device.type == "cuda":  # the seed code's autocast (fp16 on CUDA); full precision elsewhere
            with torch.autocast("cuda", dtype=torch.float16):
                maps = pixels.depth_net(crops)
        else:
            maps = pixels.depth_net(crops)
    return minmax(pixels.in_view(maps.float()[:, None]))


register_stream(Stream("rgb", 3, _rgb, "the crop (or frame) normalised"))
register_stream(Stream("masked", 3, _masked, "the crop with every pixel outside the polyp box zeroed before "
                       "normalisation", needs=("box",)))
register_stream(Stream("masked_frame", 3, _masked_frame, "the normalised frame times the box mask moved with it "
                       "(the seed code's LOC stream, its masked_rgb: frame 'full')", needs=("mask",)))
register_stream(Stream("box_crop", 3, _box_crop, "the box expanded by half its width and height on each side (the "
                       "bounds of the box mask moved with the frame), clipped, cut from the normalised, "
                       "field-of-view masked frame and resized bilinearly with align_corners to the image size (the "
                       "seed code's RGB input, what its depth network sees too: frame 'full')", needs=("mask",)))
register_stream(Stream("depth", 1, _depth, "the depth network's map of the expanded box crop (the box's mask "
                       "bounds grown by half their extent on each side, clipped, resized bilinearly with "
                       "align_corners to the image size), field-of-view masked, min-max scaled per map (the seed "
                       "code's depth stream; depth 'shards': the stored map of the un-augmented frame, moved with "
                       "the frame and cut the same way)", needs=("mask", "depth")))
