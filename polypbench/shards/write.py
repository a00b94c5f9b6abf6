"""Materialize a prepared manifest: every box's crop, pre-cut and JPEG-encoded into Arrow shards.

Training from raw frames decodes a 1.2-1.4 MP JPEG per sample to keep a 384x384 crop of it; a materialized
crop decodes 10-20x faster. One shard per (split, video), written by a pool of processes (spawn, like
``prepare``), each shard first to a hidden temporary name and renamed when complete: an interrupted run keeps
its finished shards and a rerun writes only the missing ones; a rerun with other options starts afresh. The
output is deterministic: the same manifest, frames and options give the same bytes.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from PIL import Image

from polypbench import schema
from polypbench.errors import ConfigError, InputError
from polypbench.fileio import atomic_output, atomic_write_json, file_sha256, resume_dir, run_pool
from polypbench.load.common import DEFAULT_MARGIN, DEFAULT_SIZE, resolve_raw_root
from polypbench.load.crop import crop_window
from polypbench.load.decode import draft_scale, unreadable_frame
from polypbench.load.shard_layout import (
    BATCH_ROWS,
    SHARD_SCHEMA,
    SIGNATURE_FILE,
    SPEC_FILE,
    Spec,
    materialized_dir,
    shard_name,
)
from polypbench.manifest import Manifest
from polypbench.progress import Progress

log = logging.getLogger(__name__)

KEY_COLUMNS = ("polyp_id", "frame_index", "dataset", "frame_path", "xmin", "ymin", "xmax", "ymax")
DEFAULT_CONTEXT = 0.15
"""Extra context on each side, as a fraction of the window: a square turned by 20 degrees needs
(cos 20 + sin 20 - 1) / 2 = 0.141 of its side on each side to stay covered."""


@dataclass(frozen=True)
class VideoJob:
    """One shard to write (picklable, for the process pool): the manifest rows of one video of one split."""

    raw: Path
    out: Path
    spec: Spec
    rows: dict[str, list[Any]]


def _open_frame(path: Path, boxes: list[tuple[int, int, int, int]], spec: Spec
                ) -> tuple[Image.Image, int, tuple[int, int]]:
    """The frame decoded (RGB) at the DCT scale 1/k that keeps every window of ``boxes`` >= ``spec.size`` a
    side, k, and the frame's full-resolution (width, height)."""
    try:
        with Image.open(path) as image:
            size = image.size
            windows = [crop_window(b, size[0], size[1], spec.margin) for b in boxes]
            side = min(max(right - left, bottom - top) for left, top, right, bottom in windows)
            k = draft_scale(image, side, spec.size)
            return image.convert("RGB"), k, size
    except (OSError, SyntaxError) as exc:
        raise unreadable_frame(path, exc) from None


def stored_crop(frame: Image.Image, k: int, size: tuple[int, int], box: tuple[int, int, int, int],
                spec: Spec) -> dict[str, Any]:
    """The shard columns of one box: its :func:`crop_window` scaled to ``spec.size`` with up to
    ``spec.context * spec.size`` pixels of real context on each side, JPEG-encoded.

    ``frame`` is the frame decoded at 1/``k``; ``size`` its full-resolution (width, height)."""
    width, height = size
    left, top, right, bottom = crop_window(box, width, height, spec.margin)
    fx, fy = spec.size / (right - left), spec.size / (bottom - top)
    ctx = round(spec.context * spec.size)
    cl, ct = min(ctx, math.floor(left * fx)), min(ctx, math.floor(top * fy))
    cr, cb = min(ctx, math.floor((width - right) * fx)), min(ctx, math.floor((height - bottom) * fy))
    region = ((left - cl / fx) / k, (top - ct / fy) / k, (right + cr / fx) / k, (bottom + cb / fy) / k)
    crop = frame.resize((cl + spec.size + cr, ct + spec.size + cb), Image.Resampling.BILINEAR, box=region)
    buffer = io.BytesIO()
    crop.save(buffer, "JPEG", quality=spec.quality)
    return {
        "width": crop.width, "height": crop.height,
        "window_left": cl, "window_top": ct, "window_right": cl + spec.size, "window_bottom": ct + spec.size,
        "box_x0": (box[0] - left) * fx + cl, "box_y0": (box[1] - top) * fy + ct,
        "box_x1": (box[2] - left) * fx + cl, "box_y1": (box[3] - top) * fy + ct,
        "jpeg": buffer.getvalue(),
    }


def _crops(job: VideoJob) -> Iterator[dict[str, Any]]:
    """Every row of ``job`` with its stored crop, in manifest order; each frame decoded once for all its boxes."""
    rows = job.rows
    boxes = list(zip(rows["xmin"], rows["ymin"], rows["xmax"], rows["ymax"], strict=True))
    by_frame: dict[str, list[int]] = defaultdict(list)
    for i, frame_path in enumerate(rows["frame_path"]):
        by_frame[frame_path].append(i)
    opened = ""
    for i, frame_path in enumerate(rows["frame_path"]):
        if frame_path != opened:  # the boxes of one frame are consecutive in a manifest
            frame, k, size = _open_frame(job.raw / frame_path, [boxes[j] for j in by_frame[frame_path]], job.spec)
            opened = frame_path
        yield {**{c: rows[c][i] for c in KEY_COLUMNS}, **stored_crop(frame, k, size, boxes[i], job.spec)}


def write_shard(job: VideoJob) -> int:
    """Write one shard (temporary name, renamed when complete); return its number of rows."""
    n = 0
    with (atomic_output(job.out) as tmp, pa.OSFile(str(tmp), "wb") as sink,
          pa.ipc.new_file(sink, SHARD_SCHEMA) as writer):
        batch: list[dict[str, Any]] = []
        for row in _crops(job):
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=SHARD_SCHEMA))
                n, batch = n + len(batch), []
        if batch:
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=SHARD_SCHEMA))
            n += len(batch)
    return n


def _check(size: int, margin: float, context: float, quality: int) -> None:
    if not isinstance(size, int) or size < 16:
        raise ConfigError(f"size {size!r}: expected an integer >= 16 (the training input size, e.g. {DEFAULT_SIZE})")
    if margin < 0:
        raise ConfigError(f"margin {margin!r}: expected >= 0 (the fraction of the box's longer side added on each "
                          f"side; default {DEFAULT_MARGIN})")
    if not 0 <= context <= 1:
        raise ConfigError(f"context {context!r}: expected a fraction of the crop in [0, 1] "
                          "(0.15 covers a 20 degree turn)")
    if not 1 <= quality <= 100:
        raise ConfigError(f"quality {quality!r}: expected a JPEG quality in 1..100")


def _plan(frames: Any, raw: Path, root: Path, spec: Spec) -> list[tuple[str, str, VideoJob]]:
    """(split, video_id, job) per shard, in manifest order."""
    jobs, names = [], set()
    for (split, video), part in frames.groupby(["split", "video_id"], sort=False):
        out = root / split / shard_name(video)
        if out in names:
            raise InputError(root, f"videos whose names differ only in punctuation share the shard {out.name}",
                             "video ids that stay distinct as file names")
        names.add(out)
        jobs.append((split, video, VideoJob(raw, out, spec, {c: part[c].tolist() for c in KEY_COLUMNS})))
    return jobs


def materialize(
    prepared_dir: str | Path,
    *,
    size: int = DEFAULT_SIZE,
    margin: float = DEFAULT_MARGIN,
    context: float = DEFAULT_CONTEXT,
    quality: int = 90,
    workers: int | None = None,
    raw_root: str | Path | None = None,
) -> Path:
    """Write the crops of every box of ``prepared_dir`` into ``<prepared_dir>/materialized/<size>/`` and return
    that folder. ``load_split(..., decode_size=size, margin=margin)`` then reads them instead of the raw frames.

    Each crop is the :func:`~polypbench.load.crop_window` (``margin``) scaled to ``size`` x ``size`` plus up to
    ``context`` x ``size`` pixels of real context on each side (for rotations without black corners), as a
    JPEG of ``quality``. ``workers`` processes (default: one per core) write one video each; ``raw_root``
    defaults to the folder recorded at prepare time. Resumable and deterministic (see the module docstring).
    """
    _check(size, margin, context, quality)
    manifest = Manifest.open(prepared_dir)
    raw = resolve_raw_root(manifest, raw_root)
    spec = Spec(size, float(margin), float(context), int(quality), file_sha256(manifest.root / schema.FRAMES_FILE))
    root = resume_dir(materialized_dir(manifest.root, size), spec.to_dict(), signature_file=SIGNATURE_FILE)
    (root / SPEC_FILE).unlink(missing_ok=True)  # unfinished until the end of this run
    plan = _plan(manifest.frames, raw, root, spec)
    for split in {s for s, _, _ in plan}:
        (root / split).mkdir(exist_ok=True)
    todo = [job for _, _, job in plan if not job.out.is_file()]
    if len(todo) < len(plan):
        log.info("resuming: %d of %d shards already written", len(plan) - len(todo), len(plan))
    with Progress(len(plan), f"materialize {manifest.dataset}", unit="shard", initial=len(plan) - len(todo)) as bar:
        for _ in run_pool(write_shard, todo, workers or os.cpu_count() or 1):  # an InputError reaches here whole
            bar.update()
    shards = [{"path": f"{split}/{job.out.name}", "split": split, "video_id": video,
               "rows": len(job.rows["polyp_id"])} for split, video, job in plan]
    splits: dict[str, int] = {}
    for split, _, job in plan:
        splits[split] = splits.get(split, 0) + len(job.rows["polyp_id"])
    info = {**spec.to_dict(), "dataset": manifest.dataset, "rows": sum(splits.values()), "splits": splits,
            "shards": shards}
    atomic_write_json(root / SPEC_FILE, info)
    log.info("materialized %d boxes of %s into %d shards in %s", info["rows"], manifest.dataset, len(shards), root)
    return root
