"""Stored depth maps (``depth: shards``): the depth network's map of every box's expanded crop of the un-augmented
frame, computed once (:func:`polypbench.shards.materialize_depth`, ``polypbench materialize --depth-weights``) and
read by the loader, which pastes each map back where its crop lies in the frame so that the frame's augmentation
moves it with the frame (:class:`~polypbench.load.augment.UInt8Augment`); the ``depth`` stream then cuts the
augmented frame's expanded crop out of it as the online path cuts the network's input
(:mod:`polypbench.load.streams`).

Layout of ``<prepared>/materialized/depth-<size>/``: ``depth.npy`` (N, size, size) float16, the raw network
outputs; ``rows.parquet`` one row per map (``polyp_id``, ``frame_index`` and the crop window ``x0, y0, x1, y1``,
inclusive, in the pixels of the frame resized to size x size); ``depth.json`` what they were made with (size,
normalisation, field-of-view mask, weights file), written last.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from polypbench.errors import ConfigError, InputError
from polypbench.load.shard_layout import MATERIALIZED_DIR

DEPTH_FILE, ROWS_FILE, INFO_FILE = "depth.npy", "rows.parquet", "depth.json"
WINDOW = ("x0", "y0", "x1", "y1")


def depth_dir(prepared_dir: str | Path, size: int) -> Path:
    """``<prepared_dir>/materialized/depth-<size>``."""
    return Path(prepared_dir) / MATERIALIZED_DIR / f"depth-{size}"


class DepthStore:
    """The stored depth maps of one prepared folder at ``size``, for the manifest ``rows`` (in their order)."""

    def __init__(self, prepared_dir: str | Path, size: int, rows: pd.DataFrame, *, normalize: str | None,
                 fov_mask: bool) -> None:
        self.root = depth_dir(prepared_dir, size)
        try:
            info: dict[str, Any] = json.loads((self.root / INFO_FILE).read_text())
        except (OSError, ValueError):
            raise InputError(self.root, "no stored depth maps here", "`polypbench materialize PREPARED --size "
                             f"{size} --depth-weights midas_v21_384.pt` run to the end (depth: shards)") from None
        made = (info.get("normalize"), info.get("fov_mask"))
        if made != (normalize, fov_mask):
            raise ConfigError(f"{self.root}: depth maps made with normalize {made[0]!r}, fov_mask {made[1]!r}; "
                              f"expected normalize {normalize!r}, fov_mask {fov_mask!r} (the config's)")
        self.size = size
        stored = pd.read_parquet(self.root / ROWS_FILE).assign(_row=lambda d: np.arange(len(d)))
        keys = rows[["polyp_id", "frame_index"]].astype({"polyp_id": str, "frame_index": "int64"})
        located = keys.merge(stored.astype({"polyp_id": str, "frame_index": "int64"}), how="left",
                             on=["polyp_id", "frame_index"], validate="one_to_one")
        if located["_row"].isna().any():
            first = keys[located["_row"].isna()].iloc[0]
            raise InputError(self.root, f"no depth map of polyp {first['polyp_id']} frame {first['frame_index']}",
                             "depth maps of this manifest (rerun materialize --depth-weights)")
        self._row = located["_row"].to_numpy(np.int64)
        self._window = located[list(WINDOW)].to_numpy(np.int64)
        self._maps: np.ndarray | None = None
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": None}  # each DataLoader worker maps the file itself

    def canvas(self, index: int, height: int, width: int) -> torch.Tensor:
        """(1, height, width) float32: row ``index``'s map pasted where its crop lies in a frame of that size
        (resized bilinearly with align_corners, the inverse of the crop's resize), zeros elsewhere."""
        if self._maps is None or self._pid != os.getpid():
            self._maps, self._pid = np.load(self.root / DEPTH_FILE, mmap_mode="r"), os.getpid()
        depth = torch.from_numpy(np.asarray(self._maps[self._row[index]], dtype=np.float32))[None, None]
        sx, sy = width / self.size, height / self.size
        x0, y0, x1, y1 = self._window[index].tolist()
        left, top = round(x0 * sx), round(y0 * sy)
        right, bottom = max(left, round((x1 + 1) * sx) - 1), max(top, round((y1 + 1) * sy) - 1)
        out = torch.zeros(1, height, width)
        out[:, top:bottom + 1, left:right + 1] = F.interpolate(depth, size=[bottom - top + 1, right - left + 1],
                                                                mode="bilinear", align_corners=True)[0]
        return out
