"""SUN Colonoscopy Video Database converter (also ``misawa``: the same database cited through its journal paper).

Raw root: the unzipped positive archives (``SUN-Positive/``, or a folder holding it beside ``SUN-Negative/``):
``annotation_txt/case{N}.txt`` with lines ``<image>.jpg x1,y1,x2,y2,class_id`` and ``case{N}/<image>.jpg``.
Image names carry an acquisition segment and a number that restarts at 0001 in every segment
(``..._a2_ayy_image0001.jpg``, ``..._a10_ayy_image0001.jpg``), so the number alone is not a key:
``frame_index`` is ``segment * 10000 + image number`` and ``frame_path`` keeps the full file name. Sizes and
clinical fields come from the SUN website's Table 2 (shipped). Case folders without a txt are negative cases.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from PIL import Image

from polypbench import catalog
from polypbench.catalog import sun_patient_id
from polypbench.errors import InputError
from polypbench.prepare.base import Context, Converter, PolypInfo, RowBuilder, Unit, UnitResult

_LINE = re.compile(r"^(\S+\.jpg)\s+(-?\d+),(-?\d+),(-?\d+),(-?\d+),(\d+)\s*$")
_IMAGE = re.compile(r"_a(\d+)_[A-Za-z]*_image(\d{1,4})(?:\.jpg)?$")
_CASE = re.compile(r"^case(\d+)$")


def sun_frame_index(name: str) -> int:
    """``..._a10_ayy_image0055.jpg`` -> 100055 (segment 10, image 55): unique within a case."""
    match = _IMAGE.search(name)
    if match is None:
        raise ValueError(name)
    return int(match.group(1)) * 10000 + int(match.group(2))


def sun_polyps(dataset: str) -> dict[str, PolypInfo]:
    """SUN's 100 polyps (one per case) keyed by case number as str, from the shipped Table 2."""
    cases = catalog.read_sun_cases()
    return {
        str(row.case_id): PolypInfo(
            polyp_id=f"{dataset}/{sun_patient_id(row.case_id)}",
            patient_id=sun_patient_id(row.case_id),
            video_id=sun_patient_id(row.case_id),
            size_mm=float(row.size_mm),
            histology=str(row.pathology),
            site=str(row.location),
        )
        for row in cases.itertuples(index=False)
    }


def positive_root(raw: Path) -> Path:
    """The folder holding ``annotation_txt/``: ``raw`` itself or ``raw/SUN-Positive``."""
    for candidate in (raw, raw / "SUN-Positive"):
        if (candidate / "annotation_txt").is_dir():
            return candidate
    raise InputError(raw, "no annotation_txt/ folder", "the unzipped SUN positive archives (SUN-Positive/annotation_txt/case1.txt ...)")


class SunConverter(Converter):

    def polyps(self, raw: Path) -> dict[str, PolypInfo]:
        return sun_polyps(self.dataset)

    def units(self, raw: Path) -> list[Unit]:
        ann = positive_root(raw) / "annotation_txt"
        rel = ann.relative_to(raw).as_posix()
        stems = [e.name[:-4] for e in os.scandir(ann) if e.name.endswith(".txt")]
        stems.sort(key=lambda s: (int(m.group(1)) if (m := _CASE.match(s)) else 1 << 30, s))
        return [Unit(stem, f"{rel}/{stem}.txt") for stem in stems]

    def notes(self, raw: Path) -> list[str]:
        pos = positive_root(raw)
        annotated = {e.name[:-4] for e in os.scandir(pos / "annotation_txt")}
        negative = [e.name for e in os.scandir(pos) if e.is_dir() and _CASE.match(e.name) and e.name not in annotated]
        notes = [f"{len(negative)} case folders without annotation txt under {pos.name}/ (negative cases, no rows)"] if negative else []
        neg_root = raw / "SUN-Negative"
        if neg_root.is_dir():
            n = sum(1 for e in os.scandir(neg_root) if e.is_dir())
            notes.append(f"{n} negative cases in SUN-Negative/ (no polyps, no rows)")
        return notes

    @staticmethod
    def convert(ctx: Context, unit: Unit) -> UnitResult:
        rows = RowBuilder(ctx)
        match = _CASE.match(unit.key)
        case_dir = (ctx.raw / unit.path).parent.parent / unit.key
        case_rel = case_dir.relative_to(ctx.raw).as_posix()
        present = {e.name for e in os.scandir(case_dir)} if case_dir.is_dir() else set()
        n_files = n_negative = 0
        sizes: dict[str, tuple[int, int]] = {}
        text = (ctx.raw / unit.path).read_text(encoding="utf-8", errors="replace")
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            n_files += 1
            source = f"{unit.path}:{line_no}"
            parsed = _LINE.match(line.strip())
            if parsed is None or match is None:
                rows.problem("bad_annotation", f"{source}: {line.strip()[:80]!r}; expected '<image>.jpg xmin,ymin,xmax,ymax,class_id'")
                continue
            name, *coords, class_id = parsed.groups()
            if class_id != "0":
                n_negative += 1  # class_id 1 marks a non-polyp frame
                continue
            try:
                index = sun_frame_index(name)
            except ValueError:
                rows.problem("bad_annotation", f"{source}: image name {name!r}; expected ..._a<segment>_ayy_image<NNNN>.jpg")
                continue
            exists = name in present
            if exists and name not in sizes:
                with Image.open(case_dir / name) as img:  # reads the header only
                    sizes[name] = img.size
            width, height = sizes.get(name, (0, 0))
            rows.add(source, match.group(1), index, f"{case_rel}/{name}", width, height,
                     tuple(int(c) for c in coords), frame_exists=exists)  # type: ignore[arg-type]
        return rows.result(n_files, n_negative)
