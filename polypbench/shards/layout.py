"""Deprecated import path of :mod:`polypbench.load.shard_layout`, the shard format's one owner (moved beside its
reader so that ``load`` never imports ``shards``). Kept only while ``polypbench/train/data.py`` imports
``read_spec`` from here; import from :mod:`polypbench.load.shard_layout` instead."""

from polypbench.load.shard_layout import (
    BATCH_ROWS,
    BOX_COLUMNS,
    FORMAT_VERSION,
    MATERIALIZED_DIR,
    SHARD_SCHEMA,
    SHARD_SUFFIX,
    SIGNATURE_FILE,
    SPEC_FILE,
    WINDOW_COLUMNS,
    Spec,
    find_materialized,
    materialized_dir,
    read_spec,
    shard_name,
    shard_paths,
)

__all__ = ["BATCH_ROWS", "BOX_COLUMNS", "FORMAT_VERSION", "MATERIALIZED_DIR", "SHARD_SCHEMA", "SHARD_SUFFIX",
           "SIGNATURE_FILE", "SPEC_FILE", "WINDOW_COLUMNS", "Spec", "find_materialized", "materialized_dir",
           "read_spec", "shard_name", "shard_paths"]
