"""The dataset browser (``polypbench browse``): a static site of prepared datasets, one overview per dataset and
one page per polyp, readable from a ``file://`` URL (docs/browse.md). :func:`browse` writes it; the rule about
which frames may be copied into it is :mod:`polypbench.browse.frames`'."""

from __future__ import annotations

from polypbench.lazy import lazy_exports

_LAZY = {"browse": "polypbench.browse.site", "BrowseReport": "polypbench.browse.site"}
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
