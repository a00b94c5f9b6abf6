"""The manifest schema (DESIGN.md section 2): column names, Arrow types and Parquet metadata keys.

One owner for the layout that converters write and loaders, scoring and the leaderboard read.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from polypbench.errors import InputError

SCHEMA_VERSION = "1"
SPLITS = ("train", "validation", "test")
SELECTIONS = (*SPLITS, "all")
"""What ``Manifest.select`` and ``splits.select`` accept: a split, or ``all`` rows (e.g. to score out-of-fold
predictions)."""
PROTOCOLS = ("public", "paper")
"""Evaluation protocols: ``public``, the published per-patient split and its cross-validation folds; ``paper``, the
HAG/GR paper's per-object folds (split_manifests/paper/v1.csv: test fold k, validation fold k + 1 mod 6)."""

FRAMES_FILE = "frames.parquet"
POLYPS_FILE = "polyps.parquet"
REPORT_FILE = "prepare_report.json"
"""Written last into the staged manifest; see polypbench/prepare/engine.py for how a manifest is published."""
VERIFY_FILE = "verify.json"
"""Written by ``polypbench verify``: frames checked, problems, and with ``--hash`` the Merkle root per split."""
VERIFY_FAILED_FILE = "verify.failed.json"
"""Written by a ``polypbench verify`` run that found bad frames: the same record, never replacing a passing one."""
HASHES_FILE = "frame_hashes.parquet"
"""Written by ``polypbench verify --hash``: the sha256 of every frame the manifest references."""
RUN_METRICS_FILE = "metrics.jsonl"
"""A training run folder's per-epoch history, one JSON object per line (written by :mod:`polypbench.train.rundir`,
read by the report's training curves)."""
MATERIALIZED_DIR = "materialized"
"""Written by ``polypbench materialize``: one ``<size>/`` folder of crop shards each
(:mod:`polypbench.load.shard_layout`)."""

FRAMES = pa.schema(
    [
        ("dataset", pa.string()),
        ("patient_id", pa.string()),
        ("video_id", pa.string()),
        ("polyp_id", pa.string()),
        ("frame_index", pa.int32()),
        ("frame_path", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("xmin", pa.int32()),
        ("ymin", pa.int32()),
        ("xmax", pa.int32()),
        ("ymax", pa.int32()),
        ("size_mm", pa.float32()),
        ("size_class3", pa.int8()),
        ("size_class2", pa.int8()),
        ("split", pa.string()),
        ("fold", pa.int8()),
        ("histology", pa.string()),
        ("site", pa.string()),
        ("endoscope", pa.string()),
    ]
)
"""One row per annotated box. ``frame_path`` is relative to the raw root; ``xmax``/``ymax`` are exclusive."""

POLYPS = pa.schema(
    [
        ("polyp_id", pa.string()),
        ("dataset", pa.string()),
        ("patient_id", pa.string()),
        ("video_id", pa.string()),
        ("size_mm", pa.float32()),
        ("size_class3", pa.int8()),
        ("size_class2", pa.int8()),
        ("split", pa.string()),
        ("fold", pa.int8()),
        ("n_frames", pa.int32()),
        ("histology", pa.string()),
        ("site", pa.string()),
        ("endoscope", pa.string()),
    ]
)
"""One row per polyp with at least one valid box."""

# Parquet key-value metadata keys (:func:`parquet_metadata` encodes them as Parquet stores them, in bytes).
META_POLYPBENCH_VERSION = "polypbench.version"
META_SCHEMA_VERSION = "polypbench.schema_version"
META_DATASET = "polypbench.dataset"
META_SPLIT_VERSION = "polypbench.split_version"
META_SPLIT_HASH = "polypbench.split_sha256"
META_RAW_ROOT = "polypbench.raw_root"
META_FRAMES_HASH = "polypbench.frames_sha256"
"""sha256 of the frames.parquet a derived file (``verify``'s frame hashes) was computed from."""
META_PAPER_SPLIT_HASH = "polypbench.paper_split_sha256"
"""sha256 of split_manifests/paper/v1.csv, the paper protocol's per-object folds (``protocol="paper"``)."""
_META_PREFIX = "polypbench."


def parquet_metadata(values: dict[str, str]) -> dict[bytes, bytes]:
    """Key-value metadata (``META_*`` keys) as a Parquet schema stores it."""
    return {key.encode(): value.encode() for key, value in values.items()}


ROW_GROUP_ROWS = 65_536
"""Rows per row group of the Parquet files ``prepare`` writes (the last one may hold fewer)."""


class RowGroupWriter:
    """A ``pq.ParquetWriter`` (zstd) that gathers the small tables it is given into row groups of
    :data:`ROW_GROUP_ROWS` rows. ``prepare`` streams one table per unit (a video, a case): written as they come, a
    synthetic or small dump became hundreds of row groups of a few rows, and every read of the manifest paid for
    each (44 ms instead of 2 ms for 200 rows). Memory stays bounded by one row group. A context manager."""

    def __init__(self, path: str | Path, schema: pa.Schema, rows: int = ROW_GROUP_ROWS) -> None:
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self._rows = rows
        self._pending: list[pa.Table] = []  # fewer than ``rows`` rows in all, not written yet

    def write_table(self, table: pa.Table) -> None:
        """Add ``table``'s rows; every full row group is written (no empty ones: some readers refuse them)."""
        if not table.num_rows:
            return
        self._pending.append(table)
        pending = sum(t.num_rows for t in self._pending)
        if pending >= self._rows:
            gathered = pa.concat_tables(self._pending)
            full = pending - pending % self._rows
            self._writer.write_table(gathered.slice(0, full), row_group_size=self._rows)
            self._pending = [gathered.slice(full)]

    def close(self) -> None:
        """Write the last, partial row group and close the file."""
        rest = [t for t in self._pending if t.num_rows]
        if rest:
            self._writer.write_table(pa.concat_tables(rest))
        self._pending = []
        self._writer.close()

    def __enter__(self) -> RowGroupWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metadata(path: str | Path) -> dict[str, str]:
    """The polypbench key-value metadata of a manifest Parquet file, as str -> str."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file", f"a manifest written by `polypbench prepare` ({FRAMES_FILE})")
    meta = pq.read_schema(path).metadata or {}
    out = {k.decode(): v.decode() for k, v in meta.items() if k.startswith(_META_PREFIX.encode())}
    if out.get(META_SCHEMA_VERSION) != SCHEMA_VERSION:
        raise InputError(
            path,
            f"schema version {out.get(META_SCHEMA_VERSION)!r}",
            f"schema version {SCHEMA_VERSION!r} (re-run `polypbench prepare`)",
        )
    return out


def check_columns(table: pa.Table | pa.Schema, expected: pa.Schema, path: str | Path) -> None:
    """Refuse a table whose columns or types differ from ``expected``, naming the first difference."""
    schema = table if isinstance(table, pa.Schema) else table.schema
    for field in expected:
        idx = schema.get_field_index(field.name)
        if idx < 0:
            raise InputError(path, f"missing column {field.name!r}", f"the columns {', '.join(expected.names)}")
        if not schema.field(idx).type.equals(field.type):
            raise InputError(path, f"type {schema.field(idx).type}", str(field.type), field=field.name)
