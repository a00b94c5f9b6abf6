"""polypbench: reproducible colonoscopy polyp-size estimation.

Converters from the raw REAL-Colon / SUN / SUN-SEG dumps to Parquet manifests with fixed public splits,
PyTorch and Hugging Face loaders, HAG/GR reference models, one scorer and a leaderboard.
"""

from __future__ import annotations

from polypbench.lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "load_split": "polypbench.load",
    "load_hf": "polypbench.load",
    "Manifest": "polypbench.manifest",
    "score": "polypbench.evaluate",
}
# Lazy so that `import polypbench` stays cheap (no torch import for the CLI's --help).
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = ["__version__", *_LAZY]
