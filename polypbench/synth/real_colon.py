"""REAL-Colon raw dump: the two shipped CSVs, ``{vid}_frames/{vid}_{t}.jpg`` and one ``{vid}_annotations/{vid}_{t}.xml``
per frame for all 60 videos (docs/synthetic.md lists what is exact and what is approximated)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from polypbench import catalog
from polypbench.synth.common import BoxRecord, Options, jpeg_bytes, rng_for, run_jobs, write_bytes
from polypbench.synth.render import render_frame, video_style

log = logging.getLogger(__name__)
DATASET = "real-colon"
RELEASE = "v1.0_20230228"
FLOAT_SUFFIX_VIDEOS = frozenset({"001-012"})
"""Videos whose frame stems carry a ``.0`` suffix in the official data (``001-012_40104.0.xml``)."""

# Frame size per video (formats.md 1.3): the named videos exactly, the rest assigned so the per-size counts match
# the published table (29 x 1352x1080, 8 x 1350x1080, 7 x 1248x959, 6 x 1162x1007, ...).
_STUDY_004 = {
    1: (1162, 1007), 2: (1162, 1007), 3: (1244, 1080), 4: (1162, 1007), 5: (1244, 1080), 6: (1162, 1007),
    7: (1158, 1008), 8: (1244, 1080), 9: (1162, 1007), 10: (1158, 1024), 11: (1246, 1080), 12: (1160, 1052),
    13: (1162, 1007), 14: (1164, 1010), 15: (1164, 1034),
}

DESCRIPTION = """# REAL-Colon dataset (synthetic stand-in written by polypbench)

This folder reproduces the on-disk layout of the REAL-Colon release (Biffi et al., Sci Data 11:539, 2024):
`video_info.csv`, `lesion_info.csv` (verbatim copies of the official tables), and per video `SSS-VVV`
the folders `SSS-VVV_frames/` (`SSS-VVV_<frame>.jpg`) and `SSS-VVV_annotations/` (one VOC-like
`SSS-VVV_<frame>.xml` per frame, negative frames without `<object>`).

The frames are rendered by `polypbench synth`: they are NOT colonoscopy images. Only a few frames per
lesion are written, at the real per-video resolutions, with the real lesion ids and sizes.
"""


def frame_size(video: str, brand: str) -> tuple[int, int]:
    """(width, height) of a video's frames: per video, from the published size table (an approximation for
    videos the table does not name)."""
    study, number = video.split("-")
    n = int(number)
    if study == "004":
        return _STUDY_004[n]
    if study == "002":
        return (1248, 959) if brand == "Fujifilm" else (1350, 1080)
    if study == "001" and n == 10:
        return (1246, 1080)
    return (1352, 1080)


def frame_stem(video: str, index: int) -> str:
    """``001-001_17562``; ``001-012_40104.0`` for the video whose official names carry a float suffix."""
    return f"{video}_{index}.0" if video in FLOAT_SUFFIX_VIDEOS else f"{video}_{index}"


def annotation_xml(video: str, stem: str, width: int, height: int,
                   objects: list[tuple[str, tuple[int, int, int, int]]]) -> bytes:
    """One annotation document as the release writes it (tab-indented; bndbox children xmin, xmax, ymin, ymax)."""
    lines = [
        "<annotation>",
        "\t<version_fmt>1.0</version_fmt>",
        f"\t<folder>{video}_frames</folder>",
        f"\t<filename>{stem}.jpg</filename>",
        "\t<source>",
        "\t\t<database>cosmoimd</database>",
        f"\t\t<release>{RELEASE}</release>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{width}</width>",
        f"\t\t<height>{height}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
    ]
    for box_id, (uid, (xmin, ymin, xmax, ymax)) in enumerate(objects, start=1):
        lines += [
            "\t<object>",
            "\t\t<name>lesion</name>",
            f"\t\t<unique_id>{uid}</unique_id>",
            f"\t\t<box_id>{box_id}</box_id>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{xmin}</xmin>",
            f"\t\t\t<xmax>{xmax}</xmax>",
            f"\t\t\t<ymin>{ymin}</ymin>",
            f"\t\t\t<ymax>{ymax}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class VideoJob:
    """Everything needed to write one video (picklable, for the process pool)."""

    out: Path
    video: str
    brand: str
    num_frames: int
    lesions: tuple[tuple[str, float], ...]
    """(unique_object_id, size_mm) in lesion_info row order."""
    options: Options


def plan_frames(job: VideoJob) -> dict[int, list[tuple[str, float]]]:
    """Frame index -> lesions visible on it. Each lesion gets a track of ``frames_per_polyp`` frames from a random
    offset in its own slice of the video; the second lesion's track starts on the first lesion's last frame,
    so a video with two or more lesions has a frame with two objects. Negatives go to unused indices."""
    opts = job.options
    rng = rng_for(opts.seed, DATASET, job.video, "plan")
    plan: dict[int, list[tuple[str, float]]] = {}
    n_lesions, fpp = len(job.lesions), opts.frames_per_polyp
    slot = job.num_frames // max(n_lesions + 1, 1)
    step = int(max(1, min(5, slot // (2 * fpp + 2)))) if n_lesions else 1
    last_of_first = -1
    for k, lesion in enumerate(job.lesions):
        if k == 1:
            start = last_of_first
        else:
            room = max(slot - 2 * fpp * step, 1)
            start = k * slot + int(rng.integers(0, room))
        track = [(start + i * step) % job.num_frames for i in range(fpp)]
        if k == 0:
            last_of_first = track[-1]
        for index in track:
            if index in plan and lesion in plan[index]:
                continue
            plan.setdefault(index, []).append(lesion)
    negatives = 0
    while negatives < opts.negatives_per_video and len(plan) < job.num_frames:
        index = int(rng.integers(0, job.num_frames))
        if index not in plan:
            plan[index] = []
            negatives += 1
    return dict(sorted(plan.items()))


def write_video(job: VideoJob) -> tuple[list[BoxRecord], int]:
    """Render and write one video's frames and annotations; return its boxes and the number of frames."""
    width, height = frame_size(job.video, job.brand)
    rng = rng_for(job.options.seed, DATASET, job.video, "render")
    style = video_style(rng, width, height, "circle" if job.brand == "Fujifilm" else "octagon")
    frames_dir, ann_dir = f"{job.video}_frames", f"{job.video}_annotations"
    (job.out / frames_dir).mkdir(parents=True, exist_ok=True)
    (job.out / ann_dir).mkdir(parents=True, exist_ok=True)
    records: list[BoxRecord] = []
    plan = plan_frames(job)
    for index, lesions in plan.items():
        stem = frame_stem(job.video, index)
        rendered = render_frame(rng, style, [size for _, size in lesions])
        objects = [(uid, box) for (uid, _), box in zip(lesions, rendered.boxes, strict=True)]
        write_bytes(job.out / frames_dir / f"{stem}.jpg", jpeg_bytes(rendered.image))
        write_bytes(job.out / ann_dir / f"{stem}.xml", annotation_xml(job.video, stem, width, height, objects))
        for (uid, size), (_, box) in zip(lesions, objects, strict=True):
            records.append(BoxRecord(DATASET, uid, f"{frames_dir}/{stem}.jpg", *box, width, height, float(size)))
    return records, len(plan)


def write(out: Path, options: Options) -> tuple[list[BoxRecord], int]:
    """Write the REAL-Colon dump to ``out``; return all boxes and the number of frames."""
    shutil.copyfile(catalog.shipped_path(DATASET, "video_info.csv"), out / "video_info.csv")
    shutil.copyfile(catalog.shipped_path(DATASET, "lesion_info.csv"), out / "lesion_info.csv")
    (out / "dataset_description.md").write_text(DESCRIPTION, encoding="utf-8")
    videos = catalog.read_real_colon_videos(out / "video_info.csv")
    lesions = catalog.read_real_colon_lesions(out / "lesion_info.csv")
    by_video: dict[str, list[tuple[str, float]]] = {}
    for row in lesions.itertuples(index=False):
        by_video.setdefault(str(row.unique_video_name), []).append((str(row.unique_object_id), float(row[2])))
    jobs = [
        VideoJob(out, str(v.unique_video_name), str(v.endoscope_brand), int(v.num_frames),
                 tuple(by_video.get(str(v.unique_video_name), ())), options)
        for v in videos.itertuples(index=False)
    ]
    results = run_jobs(write_video, jobs, options.workers, f"synth {DATASET}", "video")
    return [r for recs, _ in results for r in recs], sum(n for _, n in results)
