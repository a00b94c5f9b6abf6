"""``polypbench browse``: a static site of one or more prepared datasets, readable from a ``file://`` URL.

``SITE/index.html`` lists every dataset and every polyp, with a search box and filters by dataset, split and size
class (a few lines of plain JavaScript; without it the whole list shows). ``SITE/<dataset>/index.html`` is the
dataset's overview: its registry facts, polyps, patients and frames per split and fold, the class balance, size
and frames-per-polyp plots (SVG files beside it) and the problems ``prepare`` counted. ``SITE/<dataset>/polyp-<id>
.html`` is one polyp: its facts and a strip of up to ``frames_per_polyp`` of its frames, each with the box drawn.
Which pictures a dataset may have, and from where, is :mod:`polypbench.browse.frames`' rule (the licence decides
between thumbnails in the site and links to the user's own frames).

The site is built in a staging folder beside ``SITE`` and replaces it as a whole
(:func:`~polypbench.fileio.publish_dir`); a folder that is not an earlier site is refused rather than replaced.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polypbench import __version__, schema
from polypbench import datasets as registry
from polypbench.browse import plots
from polypbench.browse.frames import choose_source, pictures, safe_name
from polypbench.errors import ConfigError, InputError
from polypbench.fileio import atomic_write_json, check_replaceable, publish_dir, read_json, writing
from polypbench.manifest import Manifest
from polypbench.progress import Progress
from polypbench.templating import render

log = logging.getLogger(__name__)

INFO_FILE = "browse.json"
"""Written last into a site: what it was built from. Its presence marks a folder ``browse`` may replace."""
FRAMES_PER_POLYP = 8
THUMB_SIZE = 160


@dataclass
class DatasetSummary:
    """What the site shows of one dataset, counted for the command's summary."""

    name: str
    source: str
    polyps: int = 0
    thumbs: int = 0
    links: int = 0
    missing: int = 0


@dataclass
class BrowseReport:
    """What :func:`browse` wrote."""

    out: Path
    datasets: list[DatasetSummary] = field(default_factory=list)
    seconds: float = 0.0

    def describe(self) -> str:
        lines = [f"wrote {self.out / 'index.html'} in {self.seconds:.1f} s"]
        for d in self.datasets:
            pictures = {"thumbs": f"{d.thumbs} thumbnails", "links": f"{d.links} linked raw frames",
                        "none": "no pictures"}[d.source]
            lines.append(f"  {d.name}: {d.polyps} polyp pages, {pictures}"
                         + (f"; {d.missing} frames missing or unreadable (their pages say which)" if d.missing else ""))
        return "\n".join(lines)


def _page(path: Path, template: str, size: int, **context: Any) -> None:
    """Write ``path`` from a browser template; every page gets the class colours and the picture size."""
    with writing(path):
        path.write_text(render(template, colours=plots.CLASS_COLOURS, size=size, **context))


def _natural(text: str) -> list[Any]:
    """Sort key: digits as numbers (case2 before case10)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _mm(value: float) -> str:
    return f"{float(value):g} mm"


def _fold(value: int) -> str:
    return "-" if int(value) < 0 else str(int(value))


def pick_frames(frames: pd.DataFrame, n: int) -> pd.DataFrame:
    """At most ``n`` of a polyp's frames, evenly spaced over its frame order (the first and the last included)."""
    frames = frames.sort_values("frame_index")
    if len(frames) <= n:
        return frames
    return frames.iloc[np.unique(np.linspace(0, len(frames) - 1, n).round().astype(int))]


def _groups(polyps: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """(label, mask) per split and fold: train folds, validation folds, then test."""
    order = {s: i for i, s in enumerate(("train", "validation", "test"))}
    keys = sorted({(str(s), int(f)) for s, f in zip(polyps["split"], polyps["fold"], strict=True)},
                  key=lambda k: (order.get(k[0], 3), k[1]))
    return [(s if f < 0 else f"{s}, fold {f}", (polyps["split"] == s) & (polyps["fold"] == f)) for s, f in keys]


def _count_rows(polyps: pd.DataFrame, frames: pd.DataFrame) -> list[list[str]]:
    """The overview's table: per split and fold (and all), polyps per class, patients, frames."""
    rows = []
    for label, mask in [*_groups(polyps), ("all", pd.Series(True, index=polyps.index))]:
        part = polyps[mask]
        ids = set(part["polyp_id"])
        rows.append([label, str(len(part)), *(str(int((part["size_class3"] == c).sum()))
                                              for c in range(len(plots.CLASSES))),
                     str(part["patient_id"].nunique()), str(int(frames["polyp_id"].isin(ids).sum()))])
    return rows


def _problems(manifest: Manifest) -> dict[str, Any]:
    """The problems ``prepare`` counted, from its report (``None`` values when it is absent)."""
    report = read_json(manifest.root / schema.REPORT_FILE)
    if not isinstance(report, dict):
        return {"found": False, "rows": [], "skipped": None, "notes": []}
    rows = [{"kind": kind, "count": info.get("count", 0), "meaning": info.get("meaning", ""),
             "skips": bool(info.get("skips", True)), "example": (info.get("examples") or [""])[0]}
            for kind, info in sorted((report.get("problems") or {}).items())]
    return {"found": True, "rows": rows, "skipped": report.get("skipped", 0), "notes": report.get("notes") or []}


def _polyp_facts(p: pd.Series) -> dict[str, str]:
    """A polyp page's facts, label -> text, in the order shown."""
    return {"dataset": str(p["dataset"]), "size": _mm(p["size_mm"]), "class": plots.CLASSES[int(p["size_class3"])],
            "split": str(p["split"]), "fold": _fold(p["fold"]), "patient": str(p["patient_id"]),
            "video": str(p["video_id"]), "histology": str(p["histology"] or "-"), "site": str(p["site"] or "-"),
            "endoscope": str(p["endoscope"] or "-"), "annotated frames": str(int(p["n_frames"]))}


def _write_dataset(manifest: Manifest, raw: Path | None, staging: Path, frames_per_polyp: int, size: int,
                   bar: Progress) -> tuple[DatasetSummary, list[dict[str, Any]], dict[str, Any]]:
    """One dataset's overview, plots and polyp pages under ``staging/<dataset>``; returns its summary, its index
    rows and its card for the index page."""
    spec = registry.get(manifest.dataset)
    source = choose_source(manifest, raw)
    folder = staging / spec.name
    with writing(folder):
        (folder / "plots").mkdir(parents=True)
        if source.kind == "thumbs":
            (folder / "thumbs").mkdir()
    picture = pictures(source, folder / "thumbs", size)
    polyps = manifest.polyps.fillna({"histology": "", "site": "", "endoscope": ""})
    polyps = polyps.iloc[sorted(range(len(polyps)), key=lambda i: _natural(str(polyps["polyp_id"].iat[i])))]
    frames = manifest.frames
    by_polyp = dict(tuple(frames.groupby("polyp_id", sort=False)))
    pages: dict[str, str] = {}
    for pid in polyps["polyp_id"].astype(str):
        name, n = f"polyp-{safe_name(pid)}.html", 1
        while name in pages.values():  # two ids that differ only in replaced characters
            n += 1
            name = f"polyp-{safe_name(pid)}-{n}.html"
        pages[pid] = name
    summary = DatasetSummary(spec.name, source.kind, polyps=len(polyps))
    index_rows = []
    ids = list(polyps["polyp_id"].astype(str))
    for i, (_, p) in enumerate(polyps.iterrows()):
        pid = str(p["polyp_id"])
        shown = pick_frames(by_polyp.get(pid, frames.iloc[:0]), frames_per_polyp)
        views = [picture(row) for _, row in shown.iterrows()]
        summary.thumbs += sum(1 for v in views if v.src and source.kind == "thumbs")
        summary.links += sum(1 for v in views if v.src and source.kind == "links")
        summary.missing += sum(1 for v in views if v.missing)
        _page(folder / pages[pid], "browse_polyp.html.j2", size, title=pid, spec=spec, facts=_polyp_facts(p),
              cls=int(p["size_class3"]), views=views, source=source, shown=len(shown), total=int(p["n_frames"]),
              root="../", prev=pages[ids[i - 1]] if i > 0 else None,
              next=pages[ids[i + 1]] if i + 1 < len(ids) else None)
        index_rows.append({"href": f"{spec.name}/{pages[pid]}", "id": pid, "dataset": spec.name,
                           "split": str(p["split"]), "fold": _fold(p["fold"]), "class": int(p["size_class3"]),
                           "size": _mm(p["size_mm"]), "frames": int(p["n_frames"]), "patient": str(p["patient_id"]),
                           "histology": str(p["histology"])})
        bar.update(1)
    svgs = {"balance": plots.class_balance_svg(polyps, _groups(polyps)), "sizes": plots.size_histogram_svg(polyps),
            "frames": plots.frames_histogram_svg(polyps)}
    with writing(folder):
        for key, svg in svgs.items():
            (folder / "plots" / f"{key}.svg").write_text(svg)
    provenance = manifest.provenance()
    card = {"name": spec.name, "title": spec.title, "licence": spec.licence_terms, "polyps": len(polyps),
            "patients": int(polyps["patient_id"].nunique()), "frames": len(frames), "source": source}
    _page(folder / "index.html", "browse_dataset.html.j2", size, title=spec.title, spec=spec, card=card,
          source=source, counts=_count_rows(polyps, frames), classes=plots.CLASSES, provenance=provenance,
          problems=_problems(manifest), rows=[dict(r, href=pages[str(r["id"])]) for r in index_rows], root="../")
    return summary, index_rows, card


def browse(prepared: Sequence[str | Path], out: str | Path, raw: Sequence[str | Path] = (), *,
           frames_per_polyp: int = FRAMES_PER_POLYP, size: int = THUMB_SIZE) -> BrowseReport:
    """Write the browser site of the ``prepared`` folders into ``out``.

    ``raw``: empty, or one raw root per prepared folder in the same order (else the roots recorded at prepare
    time, where they are still folders). ``frames_per_polyp``: most frames shown per polyp; ``size``: the
    thumbnails' side in pixels (also the side of a linked frame's square on the page)."""
    start = time.monotonic()
    if frames_per_polyp < 1:
        raise ConfigError(f"frames_per_polyp {frames_per_polyp}; expected at least 1")
    if not 32 <= size <= 1024:
        raise ConfigError(f"size {size}; expected a thumbnail side of 32 to 1024 pixels")
    if not prepared:
        raise ConfigError("no prepared folder given; expected at least one folder written by `polypbench prepare`")
    if raw and len(raw) != len(prepared):
        raise ConfigError(f"{len(raw)} --raw for {len(prepared)} prepared folders; expected none (the roots "
                          "recorded at prepare time) or one per prepared folder, in the same order")
    manifests = [Manifest.open(p) for p in prepared]
    seen: dict[str, Path] = {}
    for m in manifests:
        if m.dataset in seen:
            raise InputError(m.root, f"dataset {m.dataset} given twice (also {seen[m.dataset]})",
                             "one prepared folder per dataset")
        seen[m.dataset] = m.root
    out = Path(os.path.abspath(out))
    check_replaceable(out, INFO_FILE, "an earlier `polypbench browse` site", "site")
    with writing(out.parent):
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".browse", dir=out.parent))
    report = BrowseReport(out)
    try:
        rows: list[dict[str, Any]] = []
        cards = []
        with Progress(sum(len(m.polyps) for m in manifests), "browse", unit="polyp") as bar:
            roots: list[Path | None] = [Path(r) for r in raw] or [None] * len(manifests)
            for m, root in zip(manifests, roots, strict=True):
                summary, index_rows, card = _write_dataset(m, root, staging, frames_per_polyp, size, bar)
                report.datasets.append(summary)
                rows += index_rows
                cards.append(card)
        _page(staging / "index.html", "browse_index.html.j2", size, title="polypbench dataset browser", cards=cards,
              rows=rows, classes=plots.CLASSES, splits=schema.SPLITS, root="", version=__version__)
        atomic_write_json(staging / INFO_FILE, {
            "polypbench_version": __version__, "frames_per_polyp": frames_per_polyp, "size": size,
            "datasets": [{**m.provenance(), "pictures": s.source} for m, s in zip(manifests, report.datasets,
                                                                                  strict=True)]})
        publish_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.monotonic() - start
    return report
