"""The materialized-shard layout: where shards live, the Arrow schema of a shard, and the JSON that describes
a finished materialization. One owner for the format that :mod:`~polypbench.shards.write` writes and
:mod:`~polypbench.load.shards` reads; it sits in ``load`` beside its reader (below the writer, which crops with
``load``'s functions), and imports neither torch nor anything above ``load``.

``<prepared>/materialized/<size>/`` holds ``<split>/<video>.arrow`` (one Arrow IPC file per video, record
batches of :data:`BATCH_ROWS` rows) and ``materialized.json``, written last: a folder without it is an
unfinished run, never read. See docs/performance.md for why Arrow IPC and not Parquet.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from polypbench import __version__, schema
from polypbench.errors import InputError
from polypbench.fileio import file_sha256, read_text

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
MATERIALIZED_DIR = schema.MATERIALIZED_DIR
SPEC_FILE = "materialized.json"
SIGNATURE_FILE = ".signature.json"
SHARD_SUFFIX = ".arrow"
BATCH_ROWS = 256
"""Rows per record batch (a streaming reader's unit, as a Parquet row group would be)."""

SHARD_SCHEMA = pa.schema(
    [
        ("polyp_id", pa.string()),
        ("frame_index", pa.int32()),
        ("dataset", pa.string()),
        ("frame_path", pa.string()),
        ("xmin", pa.int32()),
        ("ymin", pa.int32()),
        ("xmax", pa.int32()),
        ("ymax", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("window_left", pa.int32()),
        ("window_top", pa.int32()),
        ("window_right", pa.int32()),
        ("window_bottom", pa.int32()),
        ("box_x0", pa.float32()),
        ("box_y0", pa.float32()),
        ("box_x1", pa.float32()),
        ("box_y1", pa.float32()),
        ("jpeg", pa.binary()),
    ]
)
"""One row per manifest box. Keys: ``polyp_id`` + ``frame_index`` (unique in a manifest); ``xmin``..``ymax`` the
manifest box (full-resolution pixels). ``width`` x ``height``: the stored crop, whose ``window_*`` rectangle is
the :func:`~polypbench.load.crop_window` region scaled to ``size`` x ``size`` and the rest extra context;
``box_*``: the box in stored-crop coordinates; ``jpeg``: the encoded crop."""

WINDOW_COLUMNS = ("window_left", "window_top", "window_right", "window_bottom")
BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")


@dataclass(frozen=True)
class Spec:
    """What a materialization was made from and with; a rerun with another spec starts afresh."""

    size: int
    margin: float
    context: float
    quality: int
    frames_sha256: str
    format: str = FORMAT_VERSION
    polypbench: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def materialized_dir(prepared_dir: str | Path, size: int) -> Path:
    """``<prepared_dir>/materialized/<size>``."""
    return Path(prepared_dir) / MATERIALIZED_DIR / str(size)


def shard_name(video_id: str) -> str:
    """File name of a video's shard: the id with anything but letters, digits, ``.``, ``_`` and ``-`` replaced."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", video_id).lstrip(".") + SHARD_SUFFIX


def read_spec(root: Path) -> dict[str, Any] | None:
    """The ``materialized.json`` of a finished materialization in ``root``, or None (absent or unreadable)."""
    path = root / SPEC_FILE
    try:
        info = json.loads(read_text(path))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("format") == FORMAT_VERSION else None


def shard_paths(root: Path, info: dict[str, Any]) -> list[Path]:
    """The shard files a finished materialization lists, in its order."""
    return [root / s["path"] for s in info["shards"]]


def open_shard(path: Path) -> pa.Table:
    """A shard as a memory-mapped Arrow table (nothing is read until a value is touched)."""
    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(path, f"unreadable shard ({str(exc).splitlines()[0]})",
                         "an Arrow file written by `polypbench materialize` (rerun it)") from None


class StoredCrops:
    """The stored crops of one finished materialization in ``root``, looked up by (polyp, frame) without torch
    (the report's gallery, the dataset browser): each crop cut to its window, its box moved with it."""

    def __init__(self, root: Path) -> None:
        info = read_spec(root)
        if info is None:
            raise InputError(root, "no finished materialization here", "`polypbench materialize` run to the end")
        self.root = root
        self.tables = [open_shard(path) for path in shard_paths(root, info)]
        self.where = {(pid, int(frame)): (number, row) for number, table in enumerate(self.tables)
                      for row, (pid, frame) in enumerate(zip(table.column("polyp_id").to_pylist(),
                                                             table.column("frame_index").to_pylist(), strict=True))}

    def get(self, polyp_id: str, frame_index: int) -> tuple[Any, tuple[float, float, float, float]] | None:
        """The crop of (``polyp_id``, ``frame_index``) as an RGB PIL image and the box in its pixels; None when
        the materialization does not hold that frame."""
        from PIL import Image

        found = self.where.get((polyp_id, frame_index))
        if found is None:
            return None
        table: pa.Table = self.tables[found[0]]
        values = {c: table.column(c)[found[1]].as_py() for c in (*WINDOW_COLUMNS, *BOX_COLUMNS, "jpeg")}
        left, top, right, bottom = (int(values[c]) for c in WINDOW_COLUMNS)
        with Image.open(io.BytesIO(values["jpeg"])) as image:
            crop = image.convert("RGB").crop((left, top, right, bottom))
        x0, y0, x1, y1 = (float(values[c]) for c in BOX_COLUMNS)
        return crop, (x0 - left, y0 - top, x1 - left, y1 - top)


def find_materialized(prepared_dir: str | Path, margin: float, decode_size: int | None, *,
                      required: bool = False) -> Path | None:
    """The materialization of ``prepared_dir`` to read for ``margin`` and input size ``decode_size``.

    Only finished runs of the current manifest (same frames.parquet hash) with this margin count. Among those,
    the smallest size >= ``decode_size``; with ``required`` (``source='shards'``) the largest when none is big
    enough or ``decode_size`` is None. Without ``required``, None when ``decode_size`` is None or nothing fits;
    with it, an :class:`InputError` when nothing matches.
    """
    base = Path(prepared_dir) / MATERIALIZED_DIR
    found: list[tuple[int, Path]] = []
    frames_sha = None
    for root in sorted(base.iterdir()) if base.is_dir() else []:
        info = read_spec(root)
        if info is None:
            continue
        if not math.isclose(float(info["margin"]), margin, abs_tol=1e-9):
            log.info("%s: materialized with margin %s, not %s; not used", root, info["margin"], margin)
            continue
        frames_sha = frames_sha or file_sha256(Path(prepared_dir) / schema.FRAMES_FILE)
        if info["frames_sha256"] != frames_sha:
            log.warning("%s: materialized from another frames.parquet (re-prepared since?); not used", root)
            continue
        found.append((int(info["size"]), root))
    if not found:
        if required:
            raise InputError(base, f"no finished materialization with margin {margin} of this manifest",
                             f"`polypbench materialize {prepared_dir} --size N --margin {margin}` run to the end")
        return None
    big_enough = [f for f in sorted(found) if decode_size is not None and f[0] >= decode_size]
    if big_enough:
        return big_enough[0][1]
    if not required:
        return None
    size, root = max(found)
    if decode_size is not None:
        log.warning("%s: crops of %d px, fewer than the %d asked for", root, size, decode_size)
    return root
