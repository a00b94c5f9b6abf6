"""Sharing shards out between DDP ranks and DataLoader workers, for readers that stream shards in order
(an IterableDataset, an export, an evaluation pass) rather than draw indices through a sampler.

The unit is one record batch of one shard (:data:`~polypbench.shards.layout.BATCH_ROWS` rows). Consumer
``rank * num_workers + worker`` of ``world_size * num_workers`` takes every that-many-th unit of one fixed
order, so the consumers never overlap and together read every row exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from torch.utils.data import get_worker_info

from polypbench.errors import ConfigError, InputError
from polypbench.shards.layout import read_spec, shard_paths


@dataclass(frozen=True)
class ShardUnit:
    """Record batch ``batch`` (``rows`` rows) of the shard at ``path``."""

    path: Path
    batch: int
    rows: int

    def read(self) -> pa.RecordBatch:
        """The unit's rows (memory-mapped: the JPEG bytes are read when touched)."""
        with pa.memory_map(str(self.path)) as source:
            return pa.ipc.open_file(source).get_batch(self.batch)


def shard_units(root: str | Path) -> list[ShardUnit]:
    """Every record batch of the finished materialization in ``root``, in shard order then batch order."""
    root = Path(root)
    info = read_spec(root)
    if info is None:
        raise InputError(root, "no finished materialization here", "`polypbench materialize` run to the end")
    units = []
    for path in shard_paths(root, info):
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_file(source)
            units += [ShardUnit(path, i, reader.get_batch(i).num_rows) for i in range(reader.num_record_batches)]
    return units


def assign_units(units: list[ShardUnit], *, rank: int = 0, world_size: int = 1, worker: int = 0,
                 num_workers: int = 1) -> list[ShardUnit]:
    """The units of DataLoader worker ``worker`` (of ``num_workers``) on DDP rank ``rank`` (of ``world_size``)."""
    if not (0 <= rank < world_size and 0 <= worker < num_workers):
        raise ConfigError(f"rank {rank} of {world_size}, worker {worker} of {num_workers}: expected "
                          "0 <= rank < world_size and 0 <= worker < num_workers")
    return units[rank * num_workers + worker::world_size * num_workers]


def worker_units(units: list[ShardUnit], rank: int = 0, world_size: int = 1) -> list[ShardUnit]:
    """:func:`assign_units` for the calling DataLoader worker process (all of this rank's units outside one)."""
    info = get_worker_info()
    worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return assign_units(units, rank=rank, world_size=world_size, worker=worker, num_workers=num_workers)
