"""The report's failure gallery: the polyps a model gets most wrong, each as a strip of crops with its box drawn.

Frames come from where they are at hand, per dataset: the raw dump (``--raw``, read with
:func:`~polypbench.load.decode.read_crop`, the crop every model sees) or, without one, a finished materialization of
the prepared folder (``polypbench materialize``; read here with pyarrow and Pillow, so the gallery needs no torch).
Each crop is shrunk to :data:`THUMB` pixels a side and embedded as a JPEG data URI; the images of one report stop at
:data:`MAX_BYTES` (what is left out is counted on the page), so the HTML stays one small self-contained file.

The order: the largest size error (|predicted - true| of the polyp's median, mm) first; without size predictions,
the class distance (triclass labels apart), then one minus the mean probability of the true class. A polyp's
frames are shown evenly spaced over its frames, each with its own prediction when the file is frame-level, and
the spread of those frame predictions is given in words.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from polypbench.errors import InputError
from polypbench.manifest import Manifest
from polypbench.sizes import CLASS_SCHEMES

log = logging.getLogger(__name__)

FAILURES = 8
"""Polyps with the largest errors shown."""
CONTRAST = 3
"""Polyps classed right with the smallest errors, shown after the failures for contrast."""
FRAMES_SHOWN = 5
"""Crops per polyp (evenly spaced over its frames)."""
THUMB = 112
"""Pixels a side of a shown crop."""
JPEG_QUALITY = 70
MAX_BYTES = 1_500_000
"""Cap on the embedded images of one gallery (base64 characters, about 1.1 MB of JPEG)."""
BOX_COLOR = (0, 255, 0)

Crop = tuple[Image.Image, tuple[float, float, float, float]]
"""A crop (RGB) and the polyp's box in its pixels (x0, y0, x1, y1)."""
Reader = Callable[[pd.DataFrame], list[Crop]]
"""Reads the crops of some manifest frame rows (``frame_path``, ``xmin``.. ``ymax``, ``video_id``, keys)."""


def raw_reader(raw_root: Path) -> Reader:
    """Crops from the raw frames under ``raw_root`` (the default crop window, decoded at about :data:`THUMB`)."""
    from polypbench.load.common import DEFAULT_MARGIN
    from polypbench.load.decode import read_crop

    def read(rows: pd.DataFrame) -> list[Crop]:
        return [read_crop(raw_root / r.frame_path, (int(r.xmin), int(r.ymin), int(r.xmax), int(r.ymax)),
                          DEFAULT_MARGIN, THUMB) for r in rows.itertuples()]

    return read


def shard_reader(root: Path) -> Reader:
    """Crops from the materialized shards in ``root``: each stored crop cut to its window, box moved with it."""
    from polypbench.load.shard_layout import StoredCrops

    crops = StoredCrops(root)

    def read(rows: pd.DataFrame) -> list[Crop]:
        out = []
        for r in rows.itertuples():
            found = crops.get(str(r.polyp_id), int(r.frame_index))
            if found is None:
                raise InputError(root, f"polyp {r.polyp_id} frame {r.frame_index} is not in the shards", "a "
                                 "materialization of this manifest (rerun `polypbench materialize`)")
            out.append(found)
        return out

    return read


@dataclass(frozen=True)
class FramesAtHand:
    """Where a report finds frames: a :data:`Reader` per dataset whose frames are at hand, and the manifest frame
    rows of every scored dataset (keys, path, box, video)."""

    readers: dict[str, Reader]
    rows: pd.DataFrame


FRAME_COLUMNS = ("polyp_id", "frame_index", "video_id", "frame_path", "xmin", "ymin", "xmax", "ymax")


def frames_at_hand(manifests: Sequence[str | Path], raw_roots: Sequence[str | Path] = ()) -> FramesAtHand:
    """Per dataset of ``manifests`` where its frames are: the raw root given for it (``raw_roots`` pairs with
    ``manifests`` in order), else a finished materialization of its prepared folder; datasets with neither have
    no reader (the gallery says so)."""
    from polypbench.load.common import DEFAULT_MARGIN
    from polypbench.load.shard_layout import find_materialized

    if raw_roots and len(raw_roots) != len(manifests):
        raise InputError("--raw", f"{len(raw_roots)} raw folders for {len(manifests)} manifests",
                         "one --raw per --manifest, in the same order")
    readers: dict[str, Reader] = {}
    rows = []
    for i, path in enumerate(manifests):
        manifest = Manifest.open(path)
        rows.append(manifest.frames[list(FRAME_COLUMNS)])
        if raw_roots:
            readers[manifest.dataset] = raw_reader(Path(raw_roots[i]))
            continue
        shards = find_materialized(path, DEFAULT_MARGIN, THUMB)
        if shards is not None:
            readers[manifest.dataset] = shard_reader(shards)
    return FramesAtHand(readers, pd.concat(rows, ignore_index=True))


@dataclass(frozen=True)
class Tile:
    """One shown crop: its data URI and caption (frame number, the frame's own prediction if known)."""

    uri: str
    caption: str


@dataclass(frozen=True)
class Entry:
    """One polyp of the gallery: who it is, truth and prediction in words, the spread of its frame predictions,
    its crops (empty when its dataset's frames are not at hand) and whether it is a failure or a contrast."""

    polyp_id: str
    dataset: str
    truth: str
    predicted: str
    error: str
    spread: str
    tiles: list[Tile]
    failure: bool


@dataclass
class Gallery:
    """The gallery of a report: entries (failures first, then the contrast), what limited it, in words."""

    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    image_bytes: int = 0


def _class_name(label: float) -> str:
    return CLASS_SCHEMES["triclass"][int(label)]


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """The per-polyp table with ``error`` (what the gallery orders by, see the module docstring) and
    ``class_right``, sorted worst first (ties: polyp id)."""
    out = table.copy()
    out["class_right"] = out["pred_class3"].astype(int) == out["size_class3"].astype(int)
    if not out["pred_size_mm"].isna().all():
        out["error"] = (out["pred_size_mm"] - out["size_mm"]).abs()
    else:
        out["error"] = (out["pred_class3"].astype(int) - out["size_class3"].astype(int)).abs().astype(float)
        if "pred_p0" in out:
            probs = out[["pred_p0", "pred_p1", "pred_p2"]].to_numpy(np.float64)
            out["error"] += 1 - probs[np.arange(len(out)), out["size_class3"].astype(int).to_numpy()]
    return out.sort_values(["error", "polyp_id"], ascending=[False, True], kind="stable")


def _spread(frames: pd.DataFrame | None) -> str:
    """The spread of one polyp's frame predictions in words."""
    if frames is None or not len(frames):
        return "one polyp-level prediction (no frame predictions)"
    parts = [f"{len(frames)} frame{'s' if len(frames) != 1 else ''}"]
    sizes = frames["pred_size_mm"].dropna().to_numpy(np.float64)
    if len(sizes):
        q1, q3 = np.percentile(sizes, [25, 75])
        parts.append(f"size median {np.median(sizes):.1f} mm, IQR {q1:.1f}-{q3:.1f}, range {sizes.min():.1f}-"
                     f"{sizes.max():.1f}")
    votes = np.bincount(frames["pred_class3"].astype(int), minlength=3)
    parts.append("class votes " + ", ".join(f"{n} {c}" for n, c in zip(votes, CLASS_SCHEMES["triclass"],
                                                                        strict=True)))
    return "; ".join(parts)


def _uri(crop: Crop) -> str:
    image, (x0, y0, x1, y1) = crop
    scale = THUMB / max(image.width, image.height, 1)
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.BILINEAR)
    ImageDraw.Draw(small).rectangle((x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1), outline=BOX_COLOR,
                                    width=2)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _evenly(rows: pd.DataFrame, n: int) -> pd.DataFrame:
    rows = rows.sort_values("frame_index")
    if len(rows) <= n:
        return rows
    return rows.iloc[np.unique(np.linspace(0, len(rows) - 1, n).round().astype(int))]


def build_gallery(table: pd.DataFrame | None, frame_table: pd.DataFrame | None, at_hand: FramesAtHand, *,
                  failures: int = FAILURES, contrast: int = CONTRAST, max_bytes: int = MAX_BYTES) -> Gallery:
    """The gallery of a scored file: ``table`` its per-polyp table (``Result.polyp_table``), ``frame_table`` its
    frame predictions (``Result.frame_table``, None for a polyp-level file), ``at_hand`` where its frames are
    (:func:`frames_at_hand`)."""
    readers = at_hand.readers
    gallery = Gallery()
    if table is None or not len(table):
        return gallery
    order = ranked(table)
    worst = order.head(failures)
    right = order[order["class_right"] & ~order["polyp_id"].isin(worst["polyp_id"])].tail(contrast).iloc[::-1]
    by_polyp = dict(tuple(frame_table.groupby("polyp_id", sort=False))) if frame_table is not None else {}
    scored = at_hand.rows[at_hand.rows["polyp_id"].isin(order["polyp_id"])]
    rows_of = dict(tuple(scored.groupby("polyp_id", sort=False)))
    left_out = unreadable = 0
    missing = sorted(set(order["dataset"]) - set(readers))
    if missing:
        gallery.notes.append(f"no frames at hand for {', '.join(missing)} (give --raw, one per --manifest, or "
                             "materialize the prepared folder): those polyps are listed without crops")
    for failure, part in ((True, worst), (False, right)):
        for r in part.itertuples():
            own = by_polyp.get(r.polyp_id)
            tiles: list[Tile] = []
            reader = readers.get(r.dataset)
            shown = _evenly(rows_of[r.polyp_id], FRAMES_SHOWN) if reader and r.polyp_id in rows_of else None
            if shown is not None and gallery.image_bytes < max_bytes:
                try:
                    crops = reader(shown) if reader else []
                except InputError as exc:
                    unreadable += len(shown)
                    log.warning("gallery: %s", exc)
                    crops = []
                preds = own.set_index("frame_index")["pred_size_mm"] if own is not None else None
                for row, crop in zip(shown.itertuples(), crops, strict=False):
                    uri = _uri(crop)
                    if gallery.image_bytes + len(uri) > max_bytes:
                        left_out += 1
                        continue
                    gallery.image_bytes += len(uri)
                    size = preds.get(int(row.frame_index)) if preds is not None else None
                    note = f": {size:.1f} mm" if size is not None and not pd.isna(size) else ""
                    tiles.append(Tile(uri, f"frame {int(row.frame_index)}{note}"))
            elif shown is not None:
                left_out += len(shown)
            pred_size = "" if pd.isna(r.pred_size_mm) else f"{r.pred_size_mm:.1f} mm, "
            gallery.entries.append(Entry(
                str(r.polyp_id), str(r.dataset), f"{r.size_mm:g} mm, {_class_name(r.size_class3)}",
                f"{pred_size}{_class_name(r.pred_class3)}",
                (f"{r.pred_size_mm - r.size_mm:+.1f} mm" if pred_size else "")
                + ("" if r.class_right else (", " if pred_size else "") + "class wrong"),
                _spread(own), tiles, failure))
    if left_out:
        gallery.notes.append(f"{left_out} crops left out to keep the images under {max_bytes / 1e6:.1f} MB")
    if unreadable:
        gallery.notes.append(f"{unreadable} crops unreadable (the first error is in the log)")
    return gallery
