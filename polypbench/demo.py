"""The demo pipeline on synthetic data: synth -> prepare -> verify splits -> summary table.

Later stages (train, predict, evaluate) join here as they land, so `make demo` always shows the whole
toolkit working end to end on the embedded synthetic data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from polypbench.manifest import Manifest
from polypbench.prepare import prepare
from polypbench.splits import verify
from polypbench.synth import synthesize

log = logging.getLogger(__name__)

DEMO_DATASETS = ("real-colon", "sun", "sun-seg")


def run_demo(out: str | Path, *, frames_per_polyp: int = 4, seed: int = 0, workers: int | None = None) -> pd.DataFrame:
    """Build, prepare and verify a synthetic dump of every dataset under ``out``; return one summary row each."""
    out = Path(out)
    rows = []
    for name in DEMO_DATASETS:
        raw, prepared = out / "raw" / name, out / "prepared" / name
        if not raw.is_dir():
            synthesize(name, raw, frames_per_polyp=frames_per_polyp, seed=seed, workers=workers or 1)
        report = prepare(name, raw, prepared, workers=workers)
        log.info("%s", verify(prepared))
        frames = Manifest.open(prepared).frames
        polyps = frames.drop_duplicates("polyp_id")
        rows.append({
            "dataset": name,
            "boxes": len(frames),
            "polyps": len(polyps),
            "patients": frames["patient_id"].nunique(),
            **{f"{s} polyps": int((polyps["split"] == s).sum()) for s in ("train", "validation", "test")},
            "diminutive/small/large": "/".join(str(int((polyps["size_class3"] == c).sum())) for c in range(3)),
            "skipped": report.skipped,
            "split verified": True,
        })
    return pd.DataFrame(rows).set_index("dataset")
