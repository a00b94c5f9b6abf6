"""SUN Colonoscopy Video Database converter (also ``misawa``: the same database cited through its journal paper).

Raw root: the unzipped positive archives (``SUN-Positive/``, or a folder holding it beside ``SUN-Negative/``):
``annotation_txt/case{N}.txt`` with lines ``<image>.jpg x1,y1,x2,y2,class_id`` (class 0 a polyp box, 1 a non-polyp
frame; any other id is a ``bad_annotation``, never a silent negative) and ``case{N}/<image>.jpg``.
Image names carry an acquisition segment and a number that restarts at 0001 in every segment
(``..._a2_ayy_image0001.jpg``, ``..._a10_ayy_image0001.jpg``), so the number alone is not a key:
``frame_index`` is ``segment * 10000 + image number`` and ``frame_path`` keeps the full file name. Sizes and
clinical fields come from the SUN website's Table 2 (shipped). Case folders without a txt are negative cases.
Width and height come from each frame's JPEG header, read with a check that the frame is a complete JPEG.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from polypbench.errors import InputError
from polypbench.fileio import decode_text
from polypbench.jpeg import JpegError, inspect_fd
from polypbench.prepare.base import Context, Converter, PolypInfo, RowBuilder, Unit, UnitResult
from polypbench.prepare.inputs import (
    BadValue,
    Fingerprint,
    RawRoot,
    open_regular,
    os_problem,
    parse_int,
    read_regular,
)
from polypbench.prepare.problems import Problem, ProblemError

if TYPE_CHECKING:
    import pandas as pd

_LINE = re.compile(r"^(\S+\.jpg)\s+(-?\d+),(-?\d+),(-?\d+),(-?\d+),(\d+)\s*$")
POLYP, NON_POLYP = 0, 1
"""The class ids SUN defines ("class_id of 0 and 1 represent polyp and non-polyp frames"); any other is refused."""
_IMAGE = re.compile(r"_a(\d{1,6})_[A-Za-z]*_image(\d{1,4})(?:\.jpg)?$")
_CASE = re.compile(r"^case(\d+)$")
_COORDS = ("xmin", "ymin", "xmax", "ymax")


def sun_frame_index(name: str) -> int:
    """``..._a10_ayy_image0055.jpg`` -> 100055 (segment 10, image 55): unique within a case."""
    match = _IMAGE.search(name)
    if match is None:
        raise ValueError(name)
    return int(match.group(1)) * SEGMENT_STRIDE + int(match.group(2))


SEGMENT_STRIDE = 10000
"""``frame_index`` = segment * SEGMENT_STRIDE + image number (:func:`sun_frame_index`)."""


def seed_frames(rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The SUN rows the HAG/GR seed code keeps, and how many it drops: it keys a SUN frame by (case, image number)
    only (``extract_info``: ``image_{int:03d}``) and ``drop_duplicates`` on that key, so of frames whose image numbers
    repeat across a case's acquisition segments it keeps the first in annotation order (our row order)."""
    import pandas as pd

    image = rows["frame_index"].to_numpy() % SEGMENT_STRIDE
    dup = pd.DataFrame({"polyp": rows["polyp_id"].to_numpy(), "image": image}).duplicated().to_numpy()
    return rows[~dup], int(dup.sum())


def sun_polyps(dataset: str) -> dict[str, PolypInfo]:
    """SUN's 100 polyps (one per case) keyed by case number as str, from the shipped Table 2."""
    from polypbench import catalog  # pandas: the main process only, never the workers
    from polypbench.catalog import sun_patient_id

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
    raise InputError(raw, "no annotation_txt/ folder",
                     "the unzipped SUN positive archives (SUN-Positive/annotation_txt/case1.txt ...)")


def listing(ctx: Context, rel: str, rows: RowBuilder | None = None) -> tuple[str | None, dict[str, bool]]:
    """A folder's real path and entries (name -> is a symlink), under the symlink policy; a refused or
    unreadable folder is reported to ``rows`` and listed as empty."""
    try:
        real = ctx.root.resolve(rel, want="dir")
        if real is None:
            return None, {}
        with os.scandir(real) as entries:
            return real, {e.name: e.is_symlink() for e in entries}
    except ProblemError as exc:
        if rows is not None:
            rows.record(exc)
    except OSError as exc:
        if rows is not None:
            rows.record(os_problem(rel, exc))
    return None, {}


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """A folder, or a link to one; never raises (a link loop is not a folder)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _case_rel(unit: Unit) -> str:
    return Path(unit.path).parent.parent.joinpath(unit.key).as_posix()


class SunConverter(Converter):

    unit_name = "case"

    def polyps(self, raw: Path, problems: list[Problem]) -> dict[str, PolypInfo]:  # noqa: ARG002 - an override
        """SUN's sizes ship with polypbench (its catalog), not with the raw dump: nothing is read from ``raw``."""
        return sun_polyps(self.dataset)

    def units(self, raw: Path, problems: list[Problem]) -> list[Unit]:
        ann = positive_root(raw) / "annotation_txt"
        rel = ann.relative_to(raw).as_posix()
        names = [e.name for e in os.scandir(ann) if e.name.endswith(".txt")]
        stems = [name[:-4] for name in RawRoot.of(raw).distinct(rel, names, problems, what="case")]
        stems.sort(key=lambda s: (int(m.group(1)) if (m := _CASE.match(s)) else 1 << 30, s))
        return [Unit(stem, f"{rel}/{stem}.txt") for stem in stems]

    def notes(self, raw: Path) -> list[str]:
        pos = positive_root(raw)
        annotated = {e.name[:-4] for e in os.scandir(pos / "annotation_txt")}
        negative = [e.name for e in os.scandir(pos) if _CASE.match(e.name) and e.name not in annotated and _is_dir(e)]
        notes = []
        if negative:
            notes.append(f"{len(negative)} case folders without annotation txt under {pos.name}/ "
                         "(negative cases, no rows)")
        neg_root = raw / "SUN-Negative"
        if neg_root.is_dir():
            n = sum(1 for e in os.scandir(neg_root) if _is_dir(e))
            notes.append(f"{n} negative cases in SUN-Negative/ (no polyps, no rows)")
        return notes

    @staticmethod
    def fingerprint(ctx: Context, unit: Unit) -> str | None:
        """The txt's and the case folder's files: names, sizes and modification times."""
        fp = Fingerprint()
        try:
            fp.stat(unit.path, os.stat(ctx.raw / unit.path))
            real, entries = listing(ctx, _case_rel(unit))
            for name in entries:
                fp.stat(name, os.stat(os.path.join(real, name)))  # type: ignore[arg-type]  # entries: real is set
        except OSError:
            return None
        return fp.hexdigest()

    @staticmethod
    def convert(ctx: Context, unit: Unit) -> UnitResult:
        rows = RowBuilder(ctx)
        fingerprint = SunConverter.fingerprint(ctx, unit)
        try:
            data = read_regular(str(ctx.raw / unit.path), unit.path)
        except ProblemError as exc:
            rows.record(exc)
            return rows.result()
        case = _CASE.match(unit.key)
        case_rel = _case_rel(unit)
        case_real, present = listing(ctx, case_rel, rows)
        frames: dict[str, tuple[int, int] | ProblemError] = {}
        n_files = n_negative = 0
        for line_no, line in enumerate(decode_text(data, "replace").splitlines(), start=1):
            if not line.strip():
                continue
            n_files += 1
            source = f"{unit.path}:{line_no}"
            try:
                n_negative += _convert_line(ctx, rows, source, line, case, case_rel, case_real, present, frames)
            except Exception as exc:  # noqa: BLE001 - the last resort: counted, named, never a traceback
                rows.internal(source, exc)
        return rows.result(n_files, n_negative, fingerprint)


def _frame_size(ctx: Context, rel: str, real: str, symlink: bool) -> tuple[int, int]:
    """(width, height) of a frame that must be a complete JPEG; raises ProblemError."""
    if symlink and ctx.root.resolve(rel) is None:
        raise ProblemError("missing_frame", f"{rel}: vanished while reading; expected a stable dump")
    try:
        fd, info = open_regular(real, rel)
    except FileNotFoundError:
        raise ProblemError("missing_frame", f"{rel}: vanished while reading; expected a stable dump") from None
    except OSError as exc:
        raise os_problem(rel, exc) from None
    try:
        jpeg = inspect_fd(fd, info.st_size)
    except JpegError as exc:
        raise ProblemError("bad_frame", f"{rel}: {exc}; expected a complete JPEG frame") from None
    except OSError as exc:
        raise os_problem(rel, exc) from None
    finally:
        os.close(fd)
    return jpeg.width, jpeg.height


def _convert_line(ctx: Context, rows: RowBuilder, source: str, line: str, case: re.Match[str] | None, case_rel: str,
                  case_real: str | None, present: dict[str, bool],
                  frames: dict[str, tuple[int, int] | ProblemError]) -> int:
    """Add the box of one txt line; return 1 for a line marking a non-polyp frame, else 0."""
    parsed = _LINE.match(line.strip())
    if parsed is None or case is None:
        rows.problem("bad_annotation", f"{source}: {line.strip()[:80]!r}; "
                     "expected '<image>.jpg xmin,ymin,xmax,ymax,class_id'")
        return 0
    name, *coords, class_text = parsed.groups()
    try:
        class_id = parse_int(class_text, "class_id", minimum=0)
    except BadValue as exc:
        rows.problem("bad_value", f"{source}: {exc}")
        return 0
    if class_id == NON_POLYP:
        return 1
    if class_id != POLYP:
        rows.problem("bad_annotation", f"{source}: class_id {class_id}; expected {POLYP} (polyp) or {NON_POLYP} "
                     "(non-polyp frame), the ids SUN defines")
        return 0
    try:
        index = sun_frame_index(name)
        x0, y0, x1, y1 = (parse_int(text, field) for text, field in zip(coords, _COORDS, strict=True))
        box = (x0, y0, x1, y1)
    except BadValue as exc:
        rows.problem("bad_value", f"{source}: {exc}")
        return 0
    except ValueError:
        rows.problem("bad_annotation", f"{source}: image name {name!r}; expected ..._a<segment>_ayy_image<NNNN>.jpg")
        return 0
    rel = f"{case_rel}/{name}"
    exists = name in present
    if exists and name not in frames:
        try:
            frames[name] = _frame_size(ctx, rel, os.path.join(case_real or "", name), present[name])
        except ProblemError as exc:
            frames[name] = exc
    size = frames.get(name, (0, 0))
    if isinstance(size, ProblemError):
        rows.record(size)
        return 0
    rows.add(source, case.group(1), index, rel, size[0], size[1], box, frame_exists=exists)
    return 0
