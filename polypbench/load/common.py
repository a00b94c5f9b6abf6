"""What the torch and the Hugging Face loaders share, without importing either: the default crop (size and
margin), the default normalisation, and where the raw frames are.

:data:`DEFAULT_SIZE` and :data:`DEFAULT_MARGIN` are the one owner of the crop every data-layer function hands out
by default (``crop_window``, the loaders, ``materialize``, ``export-hf``), for users without a model. A model's
own input defaults are its registry entry's (:func:`polypbench.models.default_cfg`, as timm's ``default_cfg``):
the reference models' are these values, and a training config without ``img_size`` or ``margin`` reads the
model's. :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD` are the one owner of the normalisation constants."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from polypbench.errors import InputError

if TYPE_CHECKING:  # the CLI reads DEFAULT_SIZE at start-up: no pandas here
    from polypbench.manifest import Manifest

DEFAULT_SIZE = 384
"""Side of the square crops the loaders hand out by default (``load_split`` without a transform, ``load_hf``,
``export-hf``, ``materialize``): the reference models' input size (the training configs' ``img_size``)."""
DEFAULT_MARGIN = 0.5
"""Context around a polyp box in the default crop, as a fraction of the box's longer side added on each side
(:func:`~polypbench.load.crop.crop_window`; the training configs' ``margin``)."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet's RGB pixels in [0, 1]: the normalisation of every reference model's input
(:class:`~polypbench.load.spec.PixelSpec`'s ``mean``)."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel standard deviation matching :data:`IMAGENET_MEAN`."""
SEED_MEAN = (0.32239652, 0.22631808, 0.17500061)
"""Per-channel mean the seed (cosmoimd/feature-selection-gates, ``config_resnet18_FSAG_LOC_DPT.yml``) normalises
its frames with: its polyp datasets' statistics. The seed feeds this input to MiDaS as well
(:mod:`polypbench.models.midas`)."""
SEED_STD = (0.31781745, 0.2405859, 0.19327126)
"""Per-channel standard deviation matching :data:`SEED_MEAN`."""


def resolve_raw_root(manifest: Manifest, raw_root: str | Path | None) -> Path:
    """The raw root to read frames from: the one given, else the one recorded at prepare time."""
    root = Path(raw_root) if raw_root is not None else manifest.raw_root
    if root is None or not root.is_dir():
        raise InputError(manifest.root, f"raw root {root} is not a folder",
                         "raw_root= the folder the dump was prepared from")
    return root
