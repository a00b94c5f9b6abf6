"""REAL-Colon converter (Biffi et al., Sci Data 2024; layout in docs/datasets.md).

Raw root: ``video_info.csv``, ``lesion_info.csv`` and, per video ``SSS-VVV``, ``SSS-VVV_frames/SSS-VVV_t.jpg``
with one ``SSS-VVV_annotations/SSS-VVV_t.xml`` per frame (negative frames have no <object>). Frame indices
are not zero-padded; video 001-012 carries a ``.0`` suffix (``001-012_40104.0.xml``), read as an int.
A unit of work is one video. Sites are normalised (``trasnverse`` -> ``transverse``, ``caecum`` -> ``cecum``).
A box may only name a lesion of the video it is annotated in; a lesion listed twice in lesion_info.csv, or with
an unusable size, is refused (counted) rather than letting one row silently win.

Boxes at the border get the owners' coordinates (``export_coco_format.py`` caps every coordinate at W-1, H-1:
:data:`OWNERS_EDGE`); where the owners keep a box with no width or height, or a negative coordinate, we drop it or
clamp it to 0, both counted (docs/datasets.md says exactly where we differ and why).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import numpy as np

from polypbench.prepare.base import Context, Converter, PolypInfo, RowBuilder, Unit, UnitResult
from polypbench.prepare.inputs import BadValue, Fingerprint, RawRoot, check_size, os_problem, parse_int
from polypbench.prepare.problems import Problem, ProblemError
from polypbench.prepare.voc import VocError, is_negative, parse_voc

SITE_SPELLING = {"trasnverse": "transverse", "caecum": "cecum"}
LESIONS = "lesion_info.csv"
_VIDEO_DIR = re.compile(r"^(\d{3}-\d{3})_annotations$")
_STEM = re.compile(r"^(.*)_(\d+)(?:\.0+)?$")
_OPEN = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # never blocks on a FIFO
OWNERS_EDGE = 1
"""The owners' exporter caps xmin, xmax at W-1 and ymin, ymax at H-1; boxes are clamped alike (``RowBuilder.add``)."""


def frame_index_of(stem: str) -> int:
    """``001-001_17562`` -> 17562; ``001-012_40104.0`` -> 40104 (the float suffix of video 001-012).

    Raises ValueError for anything else (negative, ``inf``, other suffixes) and BadValue beyond int32."""
    match = _STEM.match(stem)
    if match is None:
        raise ValueError(stem)
    return parse_int(match.group(2), "frame index", minimum=0)


def _sort_key(name: str) -> tuple[int, str]:
    """Numeric frame order, as all official REAL-Colon code sorts (never lexicographic)."""
    try:
        return frame_index_of(name[:-4]), name
    except ValueError:
        return -1, name


def _text(value: object) -> str | None:
    return None if value is None or value != value else str(value)  # NaN != NaN: an empty CSV cell


def _frame_names(ctx: Context, video: str, rows: RowBuilder) -> tuple[set[str], str]:
    """Names of the usable frame files of ``video`` (regular files, or links to one inside the raw root) and a
    digest of the folder's listing."""
    rel = f"{video}_frames"
    try:
        real = ctx.root.resolve(rel, want="dir")
    except ProblemError as exc:
        rows.record(exc)
        return set(), "refused"
    if real is None:
        return set(), "absent"
    names = []
    try:
        with os.scandir(real) as entries:
            for entry in entries:
                if entry.is_symlink():
                    try:
                        if ctx.root.resolve(f"{rel}/{entry.name}") is None:
                            continue
                    except ProblemError:
                        continue  # a bad link is not a frame: a box on it is a missing_frame
                elif not entry.is_file(follow_symlinks=False):
                    continue
                names.append(entry.name)
    except OSError as exc:
        rows.record(os_problem(rel, exc))
        return set(), "unreadable"
    return set(names), Fingerprint().names(names).hexdigest()


def _follow(ctx: Context, unit: Unit, name: str, seen: set[str]) -> str:
    """The real path of annotation symlink ``name``, under the policy: inside the raw root, a regular file, not
    a file some unit reads directly, and not one already read through another link."""
    real = ctx.root.resolve(f"{unit.path}/{name}")
    if real is None:  # vanished since the listing
        raise ProblemError("unreadable", f"{unit.path}/{name}: vanished while reading; expected a stable dump")
    if os.path.dirname(real) in ctx.unit_paths or real in seen:
        raise ProblemError("duplicate_input", f"{unit.path}/{name}: symlink to {real}, which is read already; "
                           "expected each annotation file once")
    seen.add(real)
    return real


class RealColonConverter(Converter):

    unit_name = "video"

    def polyps(self, raw: Path, problems: list[Problem]) -> dict[str, PolypInfo]:
        from polypbench import catalog  # pandas: the main process only, never the workers

        lesions = catalog.read_real_colon_lesion_table(raw / LESIONS)
        videos = catalog.read_real_colon_videos(raw / "video_info.csv")
        brand = dict(zip(videos["unique_video_name"].astype(str), videos["endoscope_brand"], strict=True))
        ids = lesions["unique_object_id"].astype(str).to_numpy()
        out: dict[str, PolypInfo] = {}
        for i, row in enumerate(lesions.itertuples(index=False)):
            uid, video, line = str(row.unique_object_id), str(row.unique_video_name), i + 2
            refused = None
            lines = np.flatnonzero(ids == uid) + 2
            if len(lines) > 1:
                refused = f"{LESIONS} lists it {len(lines)} times"
                if line == lines[0]:
                    sizes = ", ".join(str(lesions.iloc[j - 2, 2]) for j in lines)
                    problems.append(Problem("bad_metadata", f"{LESIONS}:{','.join(map(str, lines))}: unique_object_id "
                                            f"{uid!r} appears {len(lines)} times (sizes {sizes}); expected one row per "
                                            "lesion, so none is used"))
            try:
                size = check_size(row[2], "size [mm]")
            except BadValue as exc:
                size = 0.0
                refused = refused or f"{LESIONS}:{line} has no usable size"
                problems.append(Problem("bad_metadata", f"{LESIONS}:{line}: {exc}; the lesion {uid} is not used"))
            site = _text(row.site)
            out[uid] = PolypInfo(
                polyp_id=f"{self.dataset}/{uid}",
                patient_id=video,
                video_id=video,
                size_mm=size,
                histology=_text(row.histology_class),
                site=None if site is None else SITE_SPELLING.get(site, site),
                endoscope=brand.get(video),
                refused=refused,
            )
        return out

    def units(self, raw: Path, problems: list[Problem]) -> list[Unit]:
        names = [e.name for e in os.scandir(raw) if _VIDEO_DIR.match(e.name)]
        kept = RawRoot.of(raw).distinct("", names, problems, want="dir", what="video")
        videos = sorted(name[: -len("_annotations")] for name in kept)
        return [Unit(video, f"{video}_annotations") for video in videos]

    @staticmethod
    def fingerprint(ctx: Context, unit: Unit) -> str | None:
        names, sizes, mtimes = [], [], []
        try:
            with os.scandir(ctx.raw / unit.path) as entries:
                for entry in entries:
                    if entry.name.endswith(".xml"):
                        info = entry.stat()
                        names.append(entry.name)
                        sizes.append(info.st_size)
                        mtimes.append(info.st_mtime_ns)
        except OSError:
            return None
        _, frames = _frame_names(ctx, unit.key, RowBuilder(ctx))
        return Fingerprint().files(names, sizes, mtimes).names([frames]).hexdigest()

    @staticmethod
    def convert(ctx: Context, unit: Unit) -> UnitResult:
        video = unit.key
        rows = RowBuilder(ctx)
        frame_names, frames_digest = _frame_names(ctx, video, rows)
        names: list[str] = []
        sizes: list[int] = []
        mtimes: list[int] = []
        positives: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        n_files = n_negative = 0
        try:
            entries = os.scandir(ctx.raw / unit.path)
        except OSError as exc:
            rows.record(os_problem(unit.path, exc))
            return rows.result()
        with entries:
            for entry in entries:  # plain strings and entry.path: Path joins would cost more than the parse
                name = entry.name
                if not name.endswith(".xml"):
                    continue
                n_files += 1
                try:
                    path = _follow(ctx, unit, name, seen) if entry.is_symlink() else entry.path
                    fd = os.open(path, _OPEN)
                    try:
                        info = os.fstat(fd)
                        if not stat.S_ISREG(info.st_mode):
                            raise ProblemError("not_a_file", f"{unit.path}/{name}: not a regular file; expected an "
                                               "annotation XML file")
                        data = os.read(fd, info.st_size + 1)
                    finally:
                        os.close(fd)
                except ProblemError as exc:
                    rows.record(exc)
                    continue
                except OSError as exc:
                    rows.record(os_problem(f"{unit.path}/{name}", exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - the last resort: counted, named, never a traceback
                    rows.internal(f"{unit.path}/{name}", exc)
                    continue
                names.append(name)
                sizes.append(info.st_size)
                mtimes.append(info.st_mtime_ns)
                if is_negative(data):
                    n_negative += 1
                else:
                    positives.append((name, data))
        positives.sort(key=lambda item: _sort_key(item[0]))  # deterministic row order: numeric frame order
        for name, data in positives:
            source = f"{unit.path}/{name}"
            try:
                n_negative += _convert_file(rows, video, source, name, data, frame_names)
            except Exception as exc:  # noqa: BLE001 - the last resort: counted, named, never a traceback
                rows.internal(source, exc)
        fingerprint = Fingerprint().files(names, sizes, mtimes).names([frames_digest]).hexdigest()
        return rows.result(n_files, n_negative, fingerprint)


def _convert_file(rows: RowBuilder, video: str, source: str, name: str, data: bytes, frame_names: set[str]) -> int:
    """Add the boxes of one annotation file that the byte test could not prove negative; return 1 when it has
    none (a negative frame after all), else 0."""
    stem = name[:-4]
    try:
        if not stem.startswith(f"{video}_"):
            raise ValueError(stem)
        index = frame_index_of(stem)
    except BadValue as exc:
        rows.problem("bad_value", f"{source}: file name: {exc}")
        return 0
    except ValueError:
        rows.problem("bad_annotation", f"{source}: file name; expected {video}_<frame index>.xml with an index >= 0")
        return 0
    try:
        ann = parse_voc(data)
    except VocError as exc:
        rows.problem("malformed_xml", f"{source}: {exc}; expected a REAL-Colon VOC annotation")
        return 0
    except BadValue as exc:
        rows.problem("bad_value", f"{source}: {exc}")
        return 0
    if not ann.boxes:
        return 1
    jpg = stem + ".jpg"
    for box in ann.boxes:
        rows.add(source, box.unique_id, index, f"{video}_frames/{jpg}", ann.width, ann.height,
                 (box.xmin, box.ymin, box.xmax, box.ymax), frame_exists=jpg in frame_names, owner=video,
                 edge=OWNERS_EDGE)
    return 0
