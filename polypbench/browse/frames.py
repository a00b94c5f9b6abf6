"""Where the browser's pictures of a polyp come from, and the one rule about copying frames.

A dataset whose licence allows redistributing its frames (the registry's ``redistribute_frames``: REAL-Colon) gets
small JPEG thumbnails written into the site: the crop around the box, cut from the raw frame (``--raw``, or the
raw root recorded at prepare time) or, without a raw dump, from the crops ``polypbench materialize`` stored. A
dataset whose licence forbids it (SUN, SUN-SEG) never has a pixel of a frame, crop or thumbnail written into the
site: its pages show the user's own raw frame files through ``<img src="file:///...">`` links, cropped and boxed
by CSS in the browser, so the picture is drawn from the user's dump each time the page is opened; moving or
deleting the dump empties the pictures, and the site can be shared without the frames. Without a raw dump (and,
for REAL-Colon, without shards) the pages have no pictures and say why.

Either way a picture is one :class:`FrameView`: an image (a thumbnail in the site or a raw frame elsewhere) and
where, in percent of a square box on the page, the image and the polyp box lie. Nothing here draws into pixels:
the box is an element over the image, the same for both sources.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from polypbench import datasets as registry
from polypbench import schema
from polypbench.errors import InputError
from polypbench.fileio import file_sha256
from polypbench.load.crop import crop_window
from polypbench.load.decode import read_crop
from polypbench.load.shard_layout import MATERIALIZED_DIR, StoredCrops, read_spec
from polypbench.manifest import Manifest

MARGIN = 1.0
"""Context shown around a box: its longer side added on each side (more than the training crop, to see where
the polyp is)."""
QUALITY = 85
"""JPEG quality of the thumbnails written into the site."""


@dataclass(frozen=True)
class FrameView:
    """One picture on a polyp page: ``src`` (a site-relative path or a ``file://`` URI of a raw frame), ``href``
    (where a click leads: the raw frame, or None), and in percent of the square it is shown in: the image's
    width and offset (``img``: width, left, top) and the polyp box (``box``: left, top, width, height).
    ``missing``: why there is no picture of this frame (then ``src`` is empty)."""

    frame_index: int
    src: str = ""
    href: str | None = None
    img: tuple[float, float, float] = (100.0, 0.0, 0.0)
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    missing: str = ""


@dataclass(frozen=True)
class Source:
    """How one dataset's frames are shown: ``kind`` is ``thumbs`` (written into the site, from ``raw`` or from the
    materialization in ``shards``), ``links`` (the raw frames of ``raw``, linked) or ``none``; ``note`` says so on
    the pages in one sentence."""

    kind: str
    note: str
    raw: Path | None = None
    shards: Path | None = None


def _pct(value: float) -> float:
    return round(100.0 * value, 3)


def file_uri(path: Path) -> str:
    """The ``file://`` URI of ``path`` made absolute (percent-encoded), as a page links to a raw frame."""
    return Path(path).resolve().as_uri()


def choose_source(manifest: Manifest, raw: Path | None) -> Source:
    """The :class:`Source` of ``manifest``'s pictures: ``raw`` (given, else the root recorded at prepare time when
    it is still a folder), then finished shards of this manifest; the dataset's licence decides copy or link."""
    spec = registry.get(manifest.dataset)
    if raw is not None and not raw.is_dir():
        raise InputError(raw, "not a folder", f"--raw the folder {manifest.root} was prepared from")
    recorded = manifest.raw_root if raw is None else None
    root = raw if raw is not None else (recorded if recorded is not None and recorded.is_dir() else None)
    given = "--raw" if raw is not None else "the raw root recorded at prepare time"
    if root is not None and spec.redistribute_frames:
        return Source("thumbs", f"Thumbnails cut from the frames of {root} ({given}); {spec.title}'s licence allows "
                                "redistributing its frames.", raw=root)
    if root is not None:
        return Source("links", f"{spec.title}'s licence does not allow copying its frames, so the site holds none: "
                               f"the pictures are your own frames in {root} ({given}), linked and shown by your "
                               "browser; they disappear if that folder moves.", raw=root)
    shards = materialization(manifest)
    if shards is not None and spec.redistribute_frames:
        return Source("thumbs", f"Thumbnails cut from the crops `polypbench materialize` stored in {shards} (no raw "
                                "dump at hand).", shards=shards)
    why = ("" if recorded is None else f" (the raw root recorded at prepare time, {recorded}, is not a folder here)")
    if spec.redistribute_frames:
        return Source("none", f"No pictures: no raw dump{why} and no materialized crops. Pass --raw with the folder "
                              "the dataset was prepared from.")
    return Source("none", f"No pictures: no raw dump{why}, and {spec.title}'s licence does not allow copying its "
                          "frames or crops into the site. Pass --raw with your dump: the pages then link to its "
                          "frames.")


def materialization(manifest: Manifest) -> Path | None:
    """A finished materialization of this manifest (same frames.parquet), the largest, or None."""
    base = manifest.root / MATERIALIZED_DIR
    found = []
    frames_sha = None
    for root in sorted(base.iterdir()) if base.is_dir() else []:
        info = read_spec(root)
        if info is None:
            continue
        frames_sha = frames_sha or file_sha256(manifest.root / schema.FRAMES_FILE)
        if info["frames_sha256"] == frames_sha:
            found.append((int(info["size"]), root))
    return max(found)[1] if found else None


def thumb_name(polyp_id: str, frame_index: int) -> str:
    """File name of a thumbnail: the polyp id's letters, digits, ``.``, ``_`` and ``-``, then the frame."""
    return f"{safe_name(polyp_id)}-{frame_index}.jpg"


def safe_name(polyp_id: str) -> str:
    """A polyp's id without its dataset prefix, as a file name (anything but ``[A-Za-z0-9._-]`` replaced)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", polyp_id.split("/", 1)[-1]).lstrip(".") or "_"


def linked_view(row: pd.Series, root: Path) -> FrameView:
    """A raw frame shown through a link: the image is scaled and shifted by CSS so that the square shows the
    crop window around the box."""
    path = root / str(row["frame_path"])
    box = (int(row["xmin"]), int(row["ymin"]), int(row["xmax"]), int(row["ymax"]))
    width, height = int(row["width"]), int(row["height"])
    if not path.is_file():
        return FrameView(int(row["frame_index"]), missing=f"{path} is missing")
    left, top, right, bottom = crop_window(box, width, height, MARGIN)
    side = float(max(right - left, bottom - top, 1))
    uri = file_uri(path)
    return FrameView(int(row["frame_index"]), uri, uri, (_pct(width / side), _pct(-left / side), _pct(-top / side)),
                     (_pct((box[0] - left) / side), _pct((box[1] - top) / side), _pct((box[2] - box[0]) / side),
                      _pct((box[3] - box[1]) / side)))


def _save(crop: Image.Image, box: tuple[float, float, float, float], size: int, target: Path,
          frame_index: int, href: str | None) -> FrameView:
    width, height = crop.size
    crop.resize((size, size), Image.Resampling.BILINEAR).save(target, "JPEG", quality=QUALITY)
    return FrameView(frame_index, f"{target.parent.name}/{target.name}", href, box=(
        _pct(box[0] / width), _pct(box[1] / height), _pct((box[2] - box[0]) / width),
        _pct((box[3] - box[1]) / height)))


def raw_thumb(row: pd.Series, root: Path, size: int, target: Path) -> FrameView:
    """A thumbnail (``size`` px a side) of the crop around the box, cut from the raw frame into ``target``."""
    path = root / str(row["frame_path"])
    box = (int(row["xmin"]), int(row["ymin"]), int(row["xmax"]), int(row["ymax"]))
    if not path.is_file():
        return FrameView(int(row["frame_index"]), missing=f"{path} is missing")
    try:
        crop, in_crop = read_crop(path, box, MARGIN, size)
    except InputError as exc:
        return FrameView(int(row["frame_index"]), missing=str(exc))
    return _save(crop, in_crop, size, target, int(row["frame_index"]), file_uri(path))


class ShardReader:
    """Thumbnails of the stored crops of one materialization (:class:`~polypbench.load.shard_layout.StoredCrops`)."""

    def __init__(self, root: Path) -> None:
        self.crops = StoredCrops(root)

    def thumb(self, row: pd.Series, size: int, target: Path) -> FrameView:
        """A thumbnail of the stored crop window of ``row`` (the training margin the crops were cut with), into
    ``target``."""
        frame = int(row["frame_index"])
        found = self.crops.get(str(row["polyp_id"]), frame)
        if found is None:
            return FrameView(frame, missing="not in the materialized crops")
        crop, box = found
        return _save(crop, box, size, target, frame, None)


Picture = Callable[[pd.Series], FrameView]
"""A frame row of the manifest -> its picture on the polyp page (writing its thumbnail, if any)."""


def pictures(source: Source, thumbs: Path, size: int) -> Picture:
    """How :class:`Source` ``source`` pictures a frame: a thumbnail written into ``thumbs`` (from the raw frame or
    the stored crop), a link to the raw frame, or no picture."""
    if source.kind == "links" and source.raw is not None:
        raw = source.raw
        return lambda row: linked_view(row, raw)
    if source.kind == "thumbs" and source.raw is not None:
        raw = source.raw
        return lambda row: raw_thumb(row, raw, size, thumbs / thumb_name(str(row["polyp_id"]), int(row["frame_index"])))
    if source.kind == "thumbs" and source.shards is not None:
        reader = ShardReader(source.shards)
        return lambda row: reader.thumb(row, size, thumbs / thumb_name(str(row["polyp_id"]), int(row["frame_index"])))
    return lambda row: FrameView(int(row["frame_index"]))
