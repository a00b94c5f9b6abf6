"""REAL-Colon converter (Biffi et al., Sci Data 2024; layout in docs/datasets.md).

Raw root: ``video_info.csv``, ``lesion_info.csv`` and, per video ``SSS-VVV``, ``SSS-VVV_frames/SSS-VVV_t.jpg``
with one ``SSS-VVV_annotations/SSS-VVV_t.xml`` per frame (negative frames have no <object>). Frame indices
are not zero-padded; video 001-012 carries a ``.0`` suffix (``001-012_40104.0.xml``), read as an int.
A unit of work is one video. Sites are normalised (``trasnverse`` -> ``transverse``, ``caecum`` -> ``cecum``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from polypbench import catalog
from polypbench.prepare.base import Context, Converter, PolypInfo, RowBuilder, Unit, UnitResult
from polypbench.prepare.voc import VocError, is_negative, parse_voc

SITE_SPELLING = {"trasnverse": "transverse", "caecum": "cecum"}
_VIDEO_DIR = re.compile(r"^(\d{3}-\d{3})_annotations$")


def frame_index_of(stem: str) -> int:
    """``001-001_17562`` -> 17562; ``001-012_40104.0`` -> 40104 (the float suffix of video 001-012)."""
    return int(float(stem.rsplit("_", 1)[1]))


def _sort_key(name: str) -> tuple[int, str]:
    """Numeric frame order, as all official REAL-Colon code sorts (never lexicographic)."""
    try:
        return frame_index_of(name[:-4]), name
    except ValueError:
        return -1, name


class RealColonConverter(Converter):

    def polyps(self, raw: Path) -> dict[str, PolypInfo]:
        lesions = catalog.read_real_colon_lesions(raw / "lesion_info.csv")
        videos = catalog.read_real_colon_videos(raw / "video_info.csv")
        brand = dict(zip(videos["unique_video_name"].astype(str), videos["endoscope_brand"]))
        out = {}
        for row in lesions.itertuples(index=False):
            uid, video = str(row.unique_object_id), str(row.unique_video_name)
            site = None if row.site is None or row.site != row.site else str(row.site)
            out[uid] = PolypInfo(
                polyp_id=f"{self.dataset}/{uid}",
                patient_id=video,
                video_id=video,
                size_mm=float(row[2]),
                histology=None if row.histology_class != row.histology_class else str(row.histology_class),
                site=None if site is None else SITE_SPELLING.get(site, site),
                endoscope=brand.get(video),
            )
        return out

    def units(self, raw: Path) -> list[Unit]:
        found = sorted(m.group(1) for e in os.scandir(raw) if e.is_dir() and (m := _VIDEO_DIR.match(e.name)))
        return [Unit(video, f"{video}_annotations") for video in found]

    @staticmethod
    def convert(ctx: Context, unit: Unit) -> UnitResult:
        video = unit.key
        rows = RowBuilder(ctx)
        frames_dir = ctx.raw / f"{video}_frames"
        frame_names = {e.name for e in os.scandir(frames_dir)} if frames_dir.is_dir() else set()
        n_files = n_negative = 0
        positives: list[tuple[str, bytes]] = []
        with os.scandir(ctx.raw / unit.path) as entries:
            for entry in entries:  # plain strings and entry.path: Path joins would cost more than the parse
                if not entry.name.endswith(".xml"):
                    continue
                n_files += 1
                with open(entry.path, "rb") as fh:
                    data = fh.read()
                if is_negative(data):
                    n_negative += 1
                else:
                    positives.append((entry.name, data))
        positives.sort(key=lambda item: _sort_key(item[0]))  # deterministic row order: numeric frame order
        for name, data in positives:
            source = f"{unit.path}/{name}"
            try:
                ann = parse_voc(data)
                index = frame_index_of(name[:-4])
            except VocError as exc:
                rows.problem("malformed_xml", f"{source}: {exc}; expected a REAL-Colon VOC annotation")
                continue
            except ValueError:
                rows.problem("bad_annotation", f"{source}: file name; expected {video}_<frame index>.xml")
                continue
            if not ann.boxes:
                n_negative += 1
                continue
            jpg = name[:-4] + ".jpg"
            for box in ann.boxes:
                rows.add(
                    source, box.unique_id, index, f"{video}_frames/{jpg}", ann.width, ann.height,
                    (box.xmin, box.ymin, box.xmax, box.ymax), frame_exists=jpg in frame_names,
                )
        return rows.result(n_files, n_negative)
