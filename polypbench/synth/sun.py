"""SUN raw dump: ``SUN-Positive/annotation_txt/case{N}.txt`` and ``SUN-Positive/case{N}/<long name>.jpg`` for the
100 positive cases, plus ``SUN-Negative/case{M}/*.jpg`` negative cases without txt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from polypbench import catalog
from polypbench.synth.common import BoxRecord, Options, jpeg_bytes, rng_for, run_jobs, write_bytes
from polypbench.synth.render import render_frame, video_style
from polypbench.synth.sun_names import case_frames

DATASET = "sun"
N_NEGATIVE_CASES = 2


@dataclass(frozen=True)
class CaseJob:
    """One SUN case to write (picklable)."""

    out: Path
    case_id: int
    size_mm: float
    negative: bool
    options: Options


def write_case(job: CaseJob) -> tuple[list[BoxRecord], int]:
    """Render one case's frames; a positive case also gets its ``annotation_txt/case{N}.txt``."""
    opts = job.options
    n = opts.negatives_per_video if job.negative else opts.frames_per_polyp
    case = case_frames(job.case_id, n, opts.seed, negative=job.negative)
    kind = "SUN-Negative" if job.negative else "SUN-Positive"
    folder = f"{kind}/case{job.case_id}"
    rng = rng_for(opts.seed, DATASET, kind, str(job.case_id))
    style = video_style(rng, case.width, case.height, "octagon")
    records: list[BoxRecord] = []
    lines: list[str] = []
    for name in case.names:
        rendered = render_frame(rng, style, [] if job.negative else [job.size_mm])
        if not job.negative:
            box = rendered.boxes[0]
            lines.append(f"{name} {box[0]},{box[1]},{box[2]},{box[3]},0")
            records.append(BoxRecord(DATASET, job.case_id, f"{folder}/{name}", *box, case.width, case.height,
                                     job.size_mm))
        write_bytes(job.out / folder / name, jpeg_bytes(rendered.image))
    if not job.negative:
        txt = job.out / "SUN-Positive" / "annotation_txt" / f"case{job.case_id}.txt"
        write_bytes(txt, ("\n".join(lines) + "\n").encode())
    return records, len(case.frames)


def write(out: Path, options: Options) -> tuple[list[BoxRecord], int]:
    """Write the SUN dump to ``out``; return all boxes and the number of frames."""
    cases = catalog.read_sun_cases()
    (out / "SUN-Positive" / "annotation_txt").mkdir(parents=True, exist_ok=True)
    jobs = [CaseJob(out, int(c.case_id), float(c.size_mm), False, options) for c in cases.itertuples(index=False)]
    if options.negatives_per_video:
        jobs += [CaseJob(out, m, 0.0, True, options) for m in range(1, N_NEGATIVE_CASES + 1)]
    results = run_jobs(write_case, jobs, options.workers, f"synth {DATASET}", "case")
    return [r for recs, _ in results for r in recs], sum(n for _, n in results)
