"""Depth maps computed once (``depth: shards``): the depth network's map of every box's expanded crop of the
un-augmented whole frame, as the ``depth`` stream computes it online (:mod:`polypbench.load.streams`), stored
for the loader (:class:`~polypbench.load.depth_store.DepthStore` owns the layout and reads it).

The network is passed in (``polypbench materialize --depth-weights`` builds MiDaS v2.1), so this package imports
no model code.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from polypbench.fileio import atomic_write
from polypbench.load.augment import UInt8Augment
from polypbench.load.common import resolve_raw_root
from polypbench.load.depth_store import DEPTH_FILE, INFO_FILE, ROWS_FILE, WINDOW, depth_dir
from polypbench.load.frames import PolypFrames
from polypbench.load.spec import NORMALIZATIONS
from polypbench.load.streams import DepthNet, Pixels
from polypbench.manifest import Manifest

log = logging.getLogger(__name__)


def materialize_depth(prepared_dir: str | Path, depth_net: DepthNet, *, size: int, weights: str,
                      normalize: str = "seed", fov_mask: bool = True, raw_root: str | Path | None = None,
                      batch_size: int = 16, device: str | torch.device = "cpu") -> Path:
    """Write the depth map of every box of the prepared manifest: the whole frame resized to ``size`` x ``size``,
    normalised (``normalize``), field-of-view masked (``fov_mask``), the box mask's expanded window cut out and
    resized to ``size``, through ``depth_net`` (``weights`` names it in ``depth.json``). Returns the folder."""
    manifest = Manifest.open(prepared_dir)
    rows = manifest.frames.reset_index(drop=True)
    frames = PolypFrames(rows, resolve_raw_root(manifest, raw_root), UInt8Augment(size, augment=False),
                         decode_size=size, frame="full", mask=True)
    out = depth_dir(manifest.root, size)
    out.mkdir(parents=True, exist_ok=True)
    (out / INFO_FILE).unlink(missing_ok=True)  # written last: a folder without it is unfinished
    maps = np.lib.format.open_memmap(out / DEPTH_FILE, mode="w+", dtype=np.float16, shape=(len(rows), size, size))
    mean, std = NORMALIZATIONS[normalize]
    windows, done = [], 0
    for batch in DataLoader(frames, batch_size=batch_size, shuffle=False):
        pixels = Pixels(batch["image"].to(device), mean=mean, std=std, mask=batch["mask"].to(device), fov=fov_mask)
        with torch.no_grad():
            depth = depth_net(pixels.box_crop()).float()  # the crop the online stream's network sees
        maps[done:done + len(depth)] = depth.cpu().numpy().astype(np.float16)
        windows.append(pixels.windows().numpy())
        done += len(depth)
        log.info("depth maps: %d of %d", done, len(rows))
    maps.flush()
    table = pd.DataFrame(np.concatenate(windows) if windows else np.zeros((0, 4), np.int64), columns=list(WINDOW))
    table.insert(0, "frame_index", rows["frame_index"].astype("int64").to_numpy())
    table.insert(0, "polyp_id", rows["polyp_id"].astype(str).to_numpy())
    table.to_parquet(out / ROWS_FILE, index=False)
    atomic_write(out / INFO_FILE, json.dumps({"size": size, "normalize": normalize, "fov_mask": fov_mask,
                                              "weights": weights, "rows": len(rows)}, indent=2) + "\n")
    return out
