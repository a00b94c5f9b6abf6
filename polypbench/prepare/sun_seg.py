"""SUN-SEG converter (Ji et al., 2022): the re-organized SUN-SEG tree over the SUN frames.

Raw root: ``TrainDataset/``, ``TestEasyDataset/{Seen,Unseen}/``, ``TestHardDataset/{Seen,Unseen}/``, each with
``Frame/case{N}_{M}/<SUN image name>.jpg`` and ``Detection/bbox_annotation.json`` (COCO-like, with the singular
key ``annotation`` and boxes as ``[x, y, width, height]``). A unit of work is one subset's json. Clips
``case{N}_{M}`` belong to case N: the split is by case (SUN's file), never by SUN-SEG's own train/test folders,
whose "Seen" clips share polyps with training. Sizes come from SUN's Table 2, as SUN-SEG ships none.
Subsets are found at depth one or two; a symlinked folder is followed only inside the raw root and never into
a folder above it (``ln -s . loop`` is a counted loop, not a second copy of every subset).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from polypbench.fileio import decode_text
from polypbench.prepare.base import Context, Converter, PolypInfo, RowBuilder, Unit, UnitResult
from polypbench.prepare.inputs import (
    BadValue,
    Fingerprint,
    RawRoot,
    os_problem,
    parse_int,
    read_regular,
)
from polypbench.prepare.problems import Problem, ProblemError
from polypbench.prepare.sun import listing, sun_frame_index, sun_polyps

_CLIP = re.compile(r"^case(\d+)_(\d+)$")
ANNOTATION_FILE = "Detection/bbox_annotation.json"
_BBOX = ("bbox x", "bbox y", "bbox width", "bbox height")


def _subset_dirs(root: RawRoot, problems: list[Problem]) -> list[tuple[str, str]]:
    """(relative path, real path) of every folder at depth 1 and 2, under the symlink policy: a link into one of
    its own ancestors is a loop, a link outside the root is refused, a second path to a folder is a duplicate."""
    found: list[tuple[str, str]] = []
    seen: dict[str, str] = {}

    def visit(rel: str, real: str, depth: int) -> None:
        try:  # a link is a candidate whatever it points to: the policy below reports a dangling one or a loop
            entries = sorted((e.is_symlink(), e.name) for e in os.scandir(real)
                             if e.is_symlink() or e.is_dir(follow_symlinks=False))
        except OSError as exc:
            problems.append(os_problem(rel or ".", exc).problem)
            return
        for symlink, name in entries:  # real folders first, so that a link to one is the duplicate
            child = f"{rel}/{name}" if rel else name
            try:
                target = root.resolve(child, want="any")
            except ProblemError as exc:
                problems.append(exc.problem)
                continue
            if target is None or not os.path.isdir(target):
                continue  # a link to a file is not a subset folder
            if symlink and (target == real or real.startswith(target.rstrip(os.sep) + os.sep)):
                problems.append(Problem("bad_symlink", f"{child}: symlink to a folder above it (a loop); not followed"))
                continue
            if target in seen:
                if symlink:
                    problems.append(Problem("duplicate_input", f"{child}: a second path to {seen[target]} (a "
                                            "symlink); expected each folder once"))
                continue
            seen[target] = child
            found.append((child, target))
            if depth < 2:
                visit(child, target, depth + 1)

    visit("", root.real, 1)
    return found


def _list(value: object, what: str, source: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProblemError("bad_annotation", f"{source}: {what} is {type(value).__name__}; expected a list")
    return value


class SunSegConverter(Converter):

    unit_name = "subset"

    def polyps(self, raw: Path, problems: list[Problem]) -> dict[str, PolypInfo]:  # noqa: ARG002 - an override
        """SUN's sizes ship with polypbench (its catalog), not with the raw dump: nothing is read from ``raw``."""
        return sun_polyps(self.dataset)

    def units(self, raw: Path, problems: list[Problem]) -> list[Unit]:
        root = RawRoot.of(raw)
        units = []
        for rel, real in _subset_dirs(root, problems):
            if not os.path.lexists(os.path.join(real, ANNOTATION_FILE)):
                continue
            try:
                if root.resolve(f"{rel}/{ANNOTATION_FILE}") is None:
                    continue
            except ProblemError as exc:
                problems.append(exc.problem)
                continue
            units.append(Unit(rel.replace("/", "-"), f"{rel}/{ANNOTATION_FILE}"))
        return sorted(units, key=lambda u: u.path)

    @staticmethod
    def fingerprint(ctx: Context, unit: Unit) -> str | None:
        """The json's size and modification time, and the listing of every clip folder of the subset."""
        subset = unit.path[: -len(ANNOTATION_FILE) - 1]
        fp = Fingerprint()
        try:
            fp.stat(unit.path, os.stat(ctx.raw / unit.path))
            _, clips = listing(ctx, f"{subset}/Frame")
            for clip in sorted(clips):
                _, names = listing(ctx, f"{subset}/Frame/{clip}")
                fp.names([clip, *names])
        except OSError:
            return None
        return fp.hexdigest()

    @staticmethod
    def convert(ctx: Context, unit: Unit) -> UnitResult:
        rows = RowBuilder(ctx)
        fingerprint = SunSegConverter.fingerprint(ctx, unit)
        try:
            doc = json.loads(decode_text(read_regular(str(ctx.raw / unit.path), unit.path)))
            if not isinstance(doc, dict):
                raise ProblemError("bad_annotation", f"{unit.path}: a json {type(doc).__name__}; expected an object")
            images = _list(doc.get("images"), "'images'", unit.path)
            annotations = _list(doc["annotation"] if "annotation" in doc else doc.get("annotations"), "'annotation'",
                                unit.path)
        except ProblemError as exc:
            rows.record(exc)
            return rows.result()
        except (ValueError, RecursionError) as exc:
            rows.problem("bad_annotation", f"{unit.path}: unreadable json ({type(exc).__name__}: {str(exc)[:120]}); "
                         "expected SUN-SEG's COCO-like json with 'images' and 'annotation'")
            return rows.result()
        by_id: dict[str, list[object]] = {}
        for n, ann in enumerate(annotations):
            if not isinstance(ann, dict) or "id" not in ann:
                rows.problem("bad_annotation", f"{unit.path}: annotation #{n} is {str(ann)[:60]!r}; expected an "
                             "object with 'id' and 'bbox'")
                continue
            by_id.setdefault(str(ann["id"]), []).append(ann.get("bbox"))
        subset = unit.path[: -len(ANNOTATION_FILE) - 1]
        listings: dict[str, dict[str, bool]] = {}
        image_ids: set[str] = set()
        n_negative = 0
        for n, image in enumerate(images):
            source = f"{unit.path}: image #{n}"
            try:
                n_negative += _convert_image(ctx, rows, source, subset, image, by_id, image_ids, listings)
            except Exception as exc:  # noqa: BLE001 - the last resort: counted, named, never a traceback
                rows.internal(source, exc)
        for image_id in by_id:
            rows.problem("bad_annotation", f"{unit.path}: annotation {image_id!r} names no image; "
                         "expected an id from 'images'")
        return rows.result(len(images), n_negative, fingerprint)


def _convert_image(ctx: Context, rows: RowBuilder, source: str, subset: str, image: object,
                   by_id: dict[str, list[object]], image_ids: set[str], listings: dict[str, dict[str, bool]]) -> int:
    """Add the boxes of one ``images`` entry; return 1 for an image without a box, else 0."""
    if not isinstance(image, dict):
        rows.problem("bad_annotation", f"{source}: {str(image)[:60]!r}; expected an object with id, file_name, "
                     "width, height and case_name")
        return 0
    image_id = str(image.get("id"))
    source = f"{source} ({image_id})"
    if image_id in image_ids:
        rows.problem("bad_annotation", f"{source}: id listed twice in 'images'; expected unique ids")
        return 0
    image_ids.add(image_id)
    boxes = by_id.pop(image_id, [])
    clip = _CLIP.match(str(image.get("case_name", "")))
    try:
        name = str(image["file_name"]) + ".jpg"
        index = sun_frame_index(name)
        width = parse_int(image["width"], "width", minimum=1)
        height = parse_int(image["height"], "height", minimum=1)
    except BadValue as exc:
        rows.problem("bad_value", f"{source}: {exc}")
        return 0
    except (KeyError, ValueError):
        rows.problem("bad_annotation", f"{source}: expected file_name (a SUN image name), width and height")
        return 0
    if clip is None:
        rows.problem("bad_annotation", f"{source}: case_name {image.get('case_name')!r}; expected case<N>_<M>")
        return 0
    if not boxes:
        return 1
    clip_dir = f"{subset}/Frame/{clip.group(0)}"
    if clip_dir not in listings:
        listings[clip_dir] = listing(ctx, clip_dir, rows)[1]
    present = listings[clip_dir]
    for bbox in boxes:
        if not isinstance(bbox, list) or len(bbox) != 4:
            rows.problem("bad_annotation", f"{source}: bbox {str(bbox)[:60]}; expected [x, y, width, height]")
            continue
        try:
            x, y, w, h = (parse_int(v, field) for v, field in zip(bbox, _BBOX, strict=True))
        except BadValue as exc:
            rows.problem("bad_value", f"{source}: {exc}")
            continue
        rows.add(source, clip.group(1), index, f"{clip_dir}/{name}", width, height, (x, y, x + w, y + h),
                 frame_exists=name in present, video_id=clip.group(0))
    return 0
