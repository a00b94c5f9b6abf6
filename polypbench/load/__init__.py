"""Loading prepared manifests: PyTorch datasets and Hugging Face datasets."""

from __future__ import annotations

from polypbench.lazy import lazy_exports

_LAZY = {
    "PolypFrames": "polypbench.load.torch_dataset",
    "load_split": "polypbench.load.torch_dataset",
    "crop_window": "polypbench.load.crop",
    "load_hf": "polypbench.load.hf",
}
# Lazy, so that a process needing only crop/decode (materialize's workers) imports neither torch nor datasets.
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = ["PolypFrames", "crop_window", "load_hf", "load_split"]
