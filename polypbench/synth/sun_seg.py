"""SUN-SEG raw dump (the re-organized tree): per subset ``Frame/case{N}_{M}/*.jpg``, ``GT/case{N}_{M}/*.png``
binary masks, ``Classification/classification.txt`` and ``Detection/bbox_annotation.json`` (singular key
``annotation``, boxes ``[x, y, width, height]``). "Seen" test clips come from training cases, "Unseen" ones
from cases with no training clip, as in the real release."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from polypbench import catalog
from polypbench.synth.common import BoxRecord, Options, jpeg_bytes, rng_for, run_jobs, write_bytes
from polypbench.synth.render import Rendered, render_frame, video_style
from polypbench.synth.sun_names import case_frames

DATASET = "sun-seg"
TRAIN = "TrainDataset"
SUBSETS = (TRAIN, "TestEasyDataset/Seen", "TestEasyDataset/Unseen", "TestHardDataset/Seen", "TestHardDataset/Unseen")
SEEN = ("TestEasyDataset/Seen", "TestHardDataset/Seen")
N_UNSEEN_CASES = 20
"""Cases per Unseen subset (easy and hard): all their clips are test clips."""
INFO = {
    "description": "SUN-SEG bounding boxes (synthetic stand-in written by polypbench; frames are rendered)",
    "version": "1.0",
    "year": 2022,
}


def classification_label(pathology: str) -> str:
    """SUN's pathology as a SUN-SEG class label: ``Low-grade adenoma`` -> ``low_grade_adenoma``."""
    text = re.sub(r"\(.*?\)", "", pathology).strip().lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def mask_png(rendered: Rendered) -> bytes:
    """The frame's binary polyp mask as SUN-SEG's GT image: an 8-bit greyscale PNG, 0 or 255."""
    width, height = rendered.image.size
    canvas = np.zeros((height, width), dtype=np.uint8)
    for x0, y0, mask in rendered.masks:
        canvas[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]][mask] = 255
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, "PNG", compress_level=3)
    return buf.getvalue()


@dataclass(frozen=True)
class Clip:
    name: str
    """``case{N}_{M}``."""
    subset: str
    frames: tuple[tuple[int, int], ...]
    """(segment, image number) of each frame."""


@dataclass(frozen=True)
class CaseJob:
    """One case's clips to write (picklable)."""

    out: Path
    case_id: int
    size_mm: float
    label: str
    clips: tuple[Clip, ...]
    options: Options


@dataclass
class CaseResult:
    records: list[BoxRecord]
    n_images: int
    images: dict[str, list[dict[str, object]]]
    annotations: dict[str, list[dict[str, object]]]
    classes: dict[str, list[str]]


def plan_clips(case_ids: list[int], options: Options) -> dict[int, tuple[Clip, ...]]:
    """Cut every case's ``frames_per_polyp`` frames into 1-3 contiguous clips and give each clip a subset:
    ``2 * N_UNSEEN_CASES`` cases go wholly to the Unseen test sets; the others put their first and third clip in
    training and their second clip in a Seen test set (Easy and Hard alternately)."""
    rng = rng_for(options.seed, DATASET, "clips")
    order = [int(c) for c in rng.permutation(case_ids)]
    unseen_easy = set(order[:N_UNSEEN_CASES])
    unseen_hard = set(order[N_UNSEEN_CASES:2 * N_UNSEEN_CASES])
    train_order = order[2 * N_UNSEEN_CASES:]
    forced = set(train_order[:2])  # guarantees both Seen sets have a clip when cases have 2+ frames
    plan: dict[int, tuple[Clip, ...]] = {}
    n_seen = 0
    for case_id in case_ids:
        frames = case_frames(case_id, options.frames_per_polyp, options.seed).frames
        n_clips = int(rng.integers(1, 4))
        if case_id in forced:
            n_clips = max(n_clips, 2)
        n_clips = min(n_clips, len(frames))
        parts = np.array_split(np.arange(len(frames)), n_clips)
        clips = []
        for m, part in enumerate(parts, start=1):
            if case_id in unseen_easy:
                subset = "TestEasyDataset/Unseen"
            elif case_id in unseen_hard:
                subset = "TestHardDataset/Unseen"
            elif m == 2:
                subset = SEEN[n_seen % 2]
                n_seen += 1
            else:
                subset = TRAIN
            clips.append(Clip(f"case{case_id}_{m}", subset, tuple(frames[i] for i in part)))
        plan[case_id] = tuple(clips)
    return plan


def write_case(job: CaseJob) -> CaseResult:
    """Render one case's clips: frames, masks, and its json/classification entries per subset."""
    case = case_frames(job.case_id, job.options.frames_per_polyp, job.options.seed)
    rng = rng_for(job.options.seed, DATASET, str(job.case_id))
    style = video_style(rng, case.width, case.height, "octagon")
    result = CaseResult([], 0, {}, {}, {})
    for clip in job.clips:
        for segment, number in clip.frames:
            name = case.name(segment, number)
            stem = name[:-4]
            rendered = render_frame(rng, style, [job.size_mm])
            xmin, ymin, xmax, ymax = rendered.boxes[0]
            frame_file = f"{clip.subset}/Frame/{clip.name}/{name}"
            write_bytes(job.out / frame_file, jpeg_bytes(rendered.image))
            write_bytes(job.out / clip.subset / "GT" / clip.name / f"{stem}.png", mask_png(rendered))
            image_id = f"{clip.name}-a{segment}-image{number:04d}"
            result.images.setdefault(clip.subset, []).append(
                {"id": image_id, "width": case.width, "height": case.height, "case_name": clip.name, "file_name": stem})
            result.annotations.setdefault(clip.subset, []).append(
                {"id": image_id, "bbox": [xmin, ymin, xmax - xmin, ymax - ymin]})
            result.classes.setdefault(clip.subset, []).append(f"{name}\t{job.label}")
            result.records.append(BoxRecord(DATASET, job.case_id, frame_file, xmin, ymin, xmax, ymax,
                                            case.width, case.height, job.size_mm))
            result.n_images += 1
    return result


def write(out: Path, options: Options) -> tuple[list[BoxRecord], int]:
    """Write the SUN-SEG dump to ``out``; return all boxes and the number of frames."""
    cases = catalog.read_sun_cases()
    plan = plan_clips([int(c) for c in cases["case_id"]], options)
    jobs = [CaseJob(out, int(c.case_id), float(c.size_mm), classification_label(str(c.pathology)),
                    plan[int(c.case_id)], options)
            for c in cases.itertuples(index=False)]
    results = run_jobs(write_case, jobs, options.workers, f"synth {DATASET}", "case")
    for subset in SUBSETS:
        doc = {
            "info": INFO,
            "images": [img for r in results for img in r.images.get(subset, [])],
            "annotation": [ann for r in results for ann in r.annotations.get(subset, [])],
        }
        write_bytes(out / subset / "Detection" / "bbox_annotation.json", json.dumps(doc, indent=1).encode())
        lines = [line for r in results for line in r.classes.get(subset, [])]
        write_bytes(out / subset / "Classification" / "classification.txt", "".join(f"{x}\n" for x in lines).encode())
        for folder in ("Frame", "GT"):
            (out / subset / folder).mkdir(parents=True, exist_ok=True)
    return [rec for r in results for rec in r.records], sum(r.n_images for r in results)
