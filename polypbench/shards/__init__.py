"""Materialized shards: every box's crop pre-cut and JPEG-encoded, so training decodes 384x384 crops instead
of 1.3 MP frames (``polypbench materialize``; docs/performance.md)."""

from __future__ import annotations

from polypbench.lazy import lazy_exports

_LAZY = {
    "ShardFrames": "polypbench.shards.dataset",
    "open_shard": "polypbench.shards.dataset",
    "shard_index": "polypbench.shards.dataset",
    "find_materialized": "polypbench.shards.layout",
    "materialized_dir": "polypbench.shards.layout",
    "materialize": "polypbench.shards.write",
}
# Lazy, so that materialize's worker processes start without importing torch.
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
