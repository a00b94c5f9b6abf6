"""Small synthetic dumps for the fault corpus and the fuzz test: a few REAL-Colon videos and SUN cases, all of
SUN-SEG (hard-link copies of the session dumps), each with its clean result."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from polypbench.prepare import prepare
from tests.helpers import link_copy
from tests.prepare.helpers import BASE, REAL_VIDEOS, SUN_CASES, Small, counts


def _small_real(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for video in REAL_VIDEOS:
        for kind in ("frames", "annotations"):
            link_copy(src / f"{video}_{kind}", dst / f"{video}_{kind}")
    shutil.copyfile(src / "video_info.csv", dst / "video_info.csv")
    lines = (src / "lesion_info.csv").read_text().splitlines(keepends=True)
    (dst / "lesion_info.csv").write_text("".join(lines[:1] + [ln for ln in lines[1:] if ln[1:8] in REAL_VIDEOS]))
    return dst


def _small_sun(src: Path, dst: Path) -> Path:
    pos = dst / "SUN-Positive"
    (pos / "annotation_txt").mkdir(parents=True)
    for case in SUN_CASES:
        link_copy(src / "SUN-Positive" / f"case{case}", pos / f"case{case}")
        os.link(src / "SUN-Positive" / "annotation_txt" / f"case{case}.txt", pos / "annotation_txt" / f"case{case}.txt")
    return dst


@pytest.fixture(scope="session")
def small(dumps: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Small]:
    """Small dumps and their clean results (SUN's lists the 97 shipped cases absent from it as
    ``lesion_without_frames``)."""
    root = tmp_path_factory.mktemp("small")
    raws = {
        "real-colon": _small_real(Path(dumps["real-colon"].root), root / "real-colon"),  # type: ignore[attr-defined]
        "sun": _small_sun(Path(dumps["sun"].root), root / "sun"),  # type: ignore[attr-defined]
        "sun-seg": link_copy(Path(dumps["sun-seg"].root), root / "sun-seg"),  # type: ignore[attr-defined]
    }
    out = {}
    for name, raw in raws.items():
        prepare(name, raw, root / f"{name}.out", workers=1)
        report = json.loads((root / f"{name}.out" / "prepare_report.json").read_text())
        out[name] = Small(name, raw, pd.read_parquet(root / f"{name}.out" / "frames.parquet"), counts(report))
    assert out["real-colon"].problems == {} and out["sun-seg"].problems == {}
    BASE.update(out)
    return out
