"""Map-style dataset over materialized shards: the same samples as :class:`~polypbench.load.PolypFrames`, read
from pre-cut JPEG crops instead of raw frames.

The trainer's sampler draws by index, so each index resolves to (shard, row) through the manifest keys. Shards
are Arrow IPC files opened memory-mapped, lazily, once per process: a sample costs one slice of the mapped
file (no read amplification, pages shared by every DataLoader worker) plus the JPEG decode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from polypbench.errors import InputError
from polypbench.load.decode import Box, box_in_crop, decode_window
from polypbench.load.frames import PolypFrames, Transform
from polypbench.load.shard_layout import BOX_COLUMNS, WINDOW_COLUMNS, open_shard, read_spec, shard_paths


def shard_index(root: Path) -> tuple[list[Path], pd.DataFrame]:
    """The shard files of the finished materialization in ``root`` and, for every stored row, its keys
    (``polyp_id``, ``frame_index``), ``shard`` and ``row`` numbers, stored window and box."""
    info = read_spec(root)
    if info is None:
        raise InputError(root, "no finished materialization here", "`polypbench materialize` run to the end")
    paths = shard_paths(root, info)
    parts = []
    for number, path in enumerate(paths):
        table = open_shard(path).drop_columns(["jpeg"])
        part = table.select(["polyp_id", "frame_index", *WINDOW_COLUMNS, *BOX_COLUMNS]).to_pandas()
        parts.append(part.assign(shard=number, row=np.arange(len(part))))
    columns = ["polyp_id", "frame_index", *WINDOW_COLUMNS, *BOX_COLUMNS, "shard", "row"]
    index = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return paths, index


class ShardFrames(PolypFrames):
    """The manifest ``rows`` (same order, same sample dict as :class:`PolypFrames`) read from the finished
    materialization in ``root`` (``<prepared>/materialized/<size>``).

    ``image`` is the crop window (the region :func:`~polypbench.load.crop_window` cuts from the raw frame) at
    the materialized size, or at 1/2, 1/4, 1/8 of it when ``decode_size`` allows (DCT-domain decoding).
    With ``context=True`` the image is the whole stored crop (window plus real context on each side, for
    augmentations that turn the image) and the sample gains ``window`` (float32 XYXY: the crop window in
    image coordinates); :class:`~polypbench.load.augment.UInt8Augment` uses and drops it.

    With ``encoded=True`` (``device_decode``) a sample hands out the stored JPEG bytes instead of pixels: ``jpeg``
    (uint8 1-D tensor), ``window`` and ``boxes`` (a (1, 4) float32 tensor) in the stored crop's pixels, the
    labels and ids, and no ``image``; the training loop decodes the batch on its device
    (:func:`~polypbench.load.decode.decode_jpeg_batch`).
    """

    def __init__(self, rows: pd.DataFrame, root: str | Path, transform: Transform | None = None, *,
                 decode_size: int | None = None, context: bool = False, encoded: bool = False,
                 mask: bool = False) -> None:
        self.root = Path(root)
        info = read_spec(self.root)
        if info is None:
            raise InputError(self.root, "no finished materialization here", "`polypbench materialize` run to the end")
        super().__init__(rows, None, transform, float(info["margin"]), decode_size, mask=mask)
        self.size, self.context, self.encoded = int(info["size"]), context, encoded
        self.paths, index = shard_index(self.root)
        keys = self.rows[["polyp_id", "frame_index"]].astype({"frame_index": "int64"})
        located = keys.merge(index.astype({"frame_index": "int64"}), on=["polyp_id", "frame_index"], how="left",
                             validate="one_to_one")
        missing = located["shard"].isna()
        if missing.any():
            first = keys[missing].iloc[0]
            raise InputError(self.root, f"{int(missing.sum())} manifest rows are not in the shards, e.g. polyp "
                             f"{first['polyp_id']} frame {first['frame_index']}", "a materialization of this manifest")
        self._shard = located["shard"].to_numpy(np.int64)
        self._row = located["row"].to_numpy(np.int64)
        self._window = located[list(WINDOW_COLUMNS)].to_numpy(np.int64)
        self._stored_box = located[list(BOX_COLUMNS)].to_numpy(np.float64)
        self._tables: dict[int, pa.ChunkedArray] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tables"] = {}  # memory maps stay in their process; each DataLoader worker maps its own
        return state

    def _jpeg(self, shard: int, row: int) -> bytes:
        if self._pid != os.getpid():
            self._tables, self._pid = {}, os.getpid()
        if shard not in self._tables:
            self._tables[shard] = open_shard(self.paths[shard]).column("jpeg")
        return self._tables[shard][row].as_py()

    def _crop(self, index: int) -> tuple[torch.Tensor, Box]:
        shard, row = int(self._shard[index]), int(self._row[index])
        x0, y0, x1, y1 = (float(v) for v in self._stored_box[index])
        data = self._jpeg(shard, row)
        if self.context:
            crop, _ = decode_window(data, name=self.paths[shard])
            return crop, (x0, y0, x1, y1)
        left, top, right, bottom = (int(v) for v in self._window[index])
        crop, k = decode_window(data, (left, top, right, bottom), self.decode_size, name=self.paths[shard])
        return crop, box_in_crop((x0, y0, x1, y1), (left, top, right, bottom), k)

    def _sample(self, index: int) -> dict[str, Any]:
        if self.encoded:
            data = self._jpeg(int(self._shard[index]), int(self._row[index]))
            return {"jpeg": torch.frombuffer(bytearray(data), dtype=torch.uint8),
                    "window": torch.tensor(self._window[index], dtype=torch.float32),
                    "boxes": torch.tensor(self._stored_box[index][None], dtype=torch.float32), **self._labels(index)}
        sample = super()._sample(index)
        if self.context:
            sample["window"] = torch.tensor(self._window[index], dtype=torch.float32)
        return sample
