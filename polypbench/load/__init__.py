"""Loading prepared manifests: PyTorch datasets and Hugging Face datasets (docs/loading.md).

- :func:`load_split`: one sample per annotated box, the crop around it (fixed-size by default, so torch's default
  collate works), from the raw frames (:class:`PolypFrames`) or from materialized shards (:class:`ShardFrames`,
  whose format :mod:`polypbench.load.shard_layout` owns); :func:`load_polyps`: one item per polyp with all its
  frames, for sequence models.
- :class:`PixelSpec`: the pixel pipeline chosen once (source, crop, resize and augmentation, streams,
  normalisation; :mod:`polypbench.load.spec`); :data:`STREAMS`: the input streams, one entry each
  (:mod:`polypbench.load.streams`).
- :func:`pad_collate`: the collate for crops of native sizes and per-polyp items of different lengths (pads).
- :class:`FramesPerPolyp`: the polyp-balanced sampler (n frames of every polyp per epoch, seeded, DDP-aware).
- :func:`load_hf`: a split as a ``datasets.Dataset`` with the crops.
"""

from __future__ import annotations

from polypbench.lazy import lazy_exports

_LAZY = {
    "PolypFrames": "polypbench.load.frames",
    "ShardFrames": "polypbench.load.shards",
    "PolypSequences": "polypbench.load.torch_dataset",
    "DEFAULT_MARGIN": "polypbench.load.common",
    "DEFAULT_SIZE": "polypbench.load.common",
    "IMAGENET_MEAN": "polypbench.load.common",
    "IMAGENET_STD": "polypbench.load.common",
    "PixelSpec": "polypbench.load.spec",
    "SOURCES": "polypbench.load.spec",
    "STREAMS": "polypbench.load.streams",
    "load_split": "polypbench.load.torch_dataset",
    "load_polyps": "polypbench.load.torch_dataset",
    "pad_collate": "polypbench.load.collate",
    "FramesPerPolyp": "polypbench.load.sampler",
    "crop_window": "polypbench.load.crop",
    "load_hf": "polypbench.load.hf",
}
# Lazy, so that a process needing only crop/decode (materialize's workers) imports neither torch nor datasets.
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
