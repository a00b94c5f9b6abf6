"""SUN-SEG converter (Ji et al., 2022): the re-organized SUN-SEG tree over the SUN frames.

Raw root: ``TrainDataset/``, ``TestEasyDataset/{Seen,Unseen}/``, ``TestHardDataset/{Seen,Unseen}/``, each with
``Frame/case{N}_{M}/<SUN image name>.jpg`` and ``Detection/bbox_annotation.json`` (COCO-like, with the singular
key ``annotation`` and boxes as ``[x, y, width, height]``). A unit of work is one subset's json. Clips
``case{N}_{M}`` belong to case N: the split is by case (SUN's file), never by SUN-SEG's own train/test folders,
whose "Seen" clips share polyps with training. Sizes come from SUN's Table 2, as SUN-SEG ships none.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from polypbench.prepare.base import Context, Converter, PolypInfo, RowBuilder, Unit, UnitResult
from polypbench.prepare.sun import sun_frame_index, sun_polyps

_CLIP = re.compile(r"^case(\d+)_(\d+)$")
ANNOTATION_FILE = "Detection/bbox_annotation.json"


class SunSegConverter(Converter):

    def polyps(self, raw: Path) -> dict[str, PolypInfo]:
        return sun_polyps(self.dataset)

    def units(self, raw: Path) -> list[Unit]:
        found = sorted(p.relative_to(raw).as_posix() for depth in ("*", "*/*") for p in raw.glob(f"{depth}/{ANNOTATION_FILE}"))
        return [Unit(path[: -len(ANNOTATION_FILE) - 1].replace("/", "-"), path) for path in found]

    @staticmethod
    def convert(ctx: Context, unit: Unit) -> UnitResult:
        rows = RowBuilder(ctx)
        subset = unit.path[: -len(ANNOTATION_FILE) - 1]
        try:
            doc = json.loads((ctx.raw / unit.path).read_bytes())
            images = doc["images"]
            annotations = doc["annotation"] if "annotation" in doc else doc["annotations"]
        except (ValueError, KeyError, TypeError) as exc:
            rows.problem("bad_annotation", f"{unit.path}: unreadable ({type(exc).__name__}: {exc}); expected SUN-SEG's "
                         "COCO-like json with 'images' and 'annotation'")
            return rows.result()
        by_id: dict[str, list[list[float]]] = {}
        for ann in annotations:
            by_id.setdefault(str(ann.get("id")), []).append(ann.get("bbox"))
        listings: dict[str, set[str]] = {}
        n_negative = 0
        for image in images:
            image_id = str(image.get("id"))
            source = f"{unit.path}: image {image_id}"
            clip = _CLIP.match(str(image.get("case_name", "")))
            try:
                name = str(image["file_name"]) + ".jpg"
                width, height = int(image["width"]), int(image["height"])
                index = sun_frame_index(name)
            except (KeyError, ValueError, TypeError):
                rows.problem("bad_annotation", f"{source}: expected file_name (a SUN image name), width and height")
                continue
            if clip is None:
                rows.problem("bad_annotation", f"{source}: case_name {image.get('case_name')!r}; expected case<N>_<M>")
                continue
            boxes = by_id.pop(image_id, [])
            if not boxes:
                n_negative += 1
                continue
            clip_dir = f"{subset}/Frame/{clip.group(0)}"
            if clip_dir not in listings:
                full = ctx.raw / clip_dir
                listings[clip_dir] = {e.name for e in os.scandir(full)} if full.is_dir() else set()
            for bbox in boxes:
                try:
                    x, y, w, h = (int(round(float(v))) for v in bbox)
                except (TypeError, ValueError):
                    rows.problem("bad_annotation", f"{source}: bbox {bbox!r}; expected [x, y, width, height]")
                    continue
                rows.add(source, clip.group(1), index, f"{clip_dir}/{name}", width, height, (x, y, x + w, y + h),
                         frame_exists=name in listings[clip_dir], video_id=clip.group(0))
        for image_id in by_id:
            rows.problem("bad_annotation", f"{unit.path}: annotation {image_id!r} names no image; expected an id from 'images'")
        return rows.result(len(images), n_negative)
