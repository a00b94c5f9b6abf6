"""Materialized shards: every box's crop pre-cut and JPEG-encoded, so training decodes 384x384 crops instead
of 1.3 MP frames (``polypbench materialize``; docs/performance.md).

This package writes them (:mod:`~polypbench.shards.write`, which crops with :mod:`polypbench.load`'s functions);
their format (:mod:`polypbench.load.shard_layout`) and reader (:mod:`polypbench.load.shards`) live in ``load``,
which chooses where pixels come from, so ``load`` never imports this package. The names below are re-exported.
"""

from __future__ import annotations

from polypbench.lazy import lazy_exports

_LAZY = {
    "ShardFrames": "polypbench.load.shards",
    "open_shard": "polypbench.load.shard_layout",
    "shard_index": "polypbench.load.shards",
    "find_materialized": "polypbench.load.shard_layout",
    "materialized_dir": "polypbench.load.shard_layout",
    "materialize": "polypbench.shards.write",
    "materialize_depth": "polypbench.shards.depth",
}
# Lazy, so that materialize's worker processes start without importing torch.
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
