"""polypbench: reproducible colonoscopy polyp-size estimation.

Converters from the raw REAL-Colon / SUN / SUN-SEG dumps to Parquet manifests with fixed public splits,
PyTorch and Hugging Face loaders, HAG/GR reference models, one scorer and a leaderboard.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from polypbench.lazy import lazy_exports

try:
    __version__ = version("polypbench")  # the one owner: pyproject.toml's [project] version
except PackageNotFoundError:  # a source tree on sys.path without an install: say so rather than guess
    __version__ = "0+unknown"

_LAZY = {
    "load_split": "polypbench.load",
    "load_polyps": "polypbench.load",
    "load_hf": "polypbench.load",
    "PixelSpec": "polypbench.load",
    "Manifest": "polypbench.manifest",
    "score": "polypbench.evaluate",
}
# Lazy so that `import polypbench` stays cheap (no torch import for the CLI's --help).
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = ["__version__", *_LAZY]
