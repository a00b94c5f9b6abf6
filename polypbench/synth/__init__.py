"""Synthetic raw dumps in each dataset's exact on-disk layout (``polypbench synth``).

Real ids, sizes and clinical fields come from the shipped metadata; the frames are rendered endoscopy-like
JPEGs at the real resolutions in which polyp size in mm is learnable (see docs/synthetic.md). The dump holds
only files of the real layout; the ground truth of every box comes back in :attr:`SynthSummary.boxes`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from polypbench import datasets
from polypbench.synth.common import Options, SynthSummary, Writer, check_empty

log = logging.getLogger(__name__)


def synthesize(
    dataset: str,
    out: str | Path,
    *,
    frames_per_polyp: int = 4,
    negatives_per_video: int = 2,
    seed: int = 0,
    workers: int = 1,
) -> SynthSummary:
    """Write a synthetic raw ``dataset`` dump into ``out`` (new or empty folder). Deterministic: the same
    arguments give byte-identical files, whatever ``workers`` is."""
    writer = datasets.get(dataset).synth_writer()
    if frames_per_polyp < 1 or negatives_per_video < 0 or workers < 1:
        raise ValueError("frames_per_polyp >= 1, negatives_per_video >= 0 and workers >= 1 are required")
    root = Path(out)
    check_empty(root)
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    options = Options(frames_per_polyp, negatives_per_video, seed, workers)
    records, n_images = writer(root, options)
    summary = SynthSummary(dataset, root, n_images, records, time.perf_counter() - start)
    log.info("%s", summary.describe())
    return summary


__all__ = ["SynthSummary", "Writer", "synthesize"]
