"""``polypbench export-hf``: a prepared manifest as a self-contained Hugging Face dataset, crops embedded.

The folder holds ``README.md`` (a dataset card: features with class names, licence, citation, one configuration
per fold) and ``data/<split>/fold<k>-<n>.parquet`` (``data/test/part-<n>.parquet``): every manifest column plus
``image`` (the crop :func:`~polypbench.load.load_split` gives, JPEG-encoded, as a ``datasets.Image``) and ``box``
(the polyp box in the crop's pixels). ``datasets.load_dataset(<folder>)`` loads it with the images and without
polypbench, and it is ready to upload to the Hub as it is.

Frames are only exported where the dataset's licence allows redistributing them (the registry's
``redistribute_frames``), or when the user declares that they hold that right (``hold_rights``): the card then
states the licence and the declaration. Files are written by worker processes into a staging folder that is
published as a whole (:func:`~polypbench.fileio.publish_dir`): the output is the previous export or the new one.
The staging folder is resumable (:func:`~polypbench.fileio.resume_dir`): a rerun of an interrupted export with the
same manifest, frames and options keeps the Parquet files it finished and writes the rest.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from polypbench import __version__, schema
from polypbench import datasets as registry
from polypbench.errors import ConfigError, InputError, PolypbenchError
from polypbench.fileio import (
    atomic_output,
    atomic_write_json,
    check_replaceable,
    exclusive,
    file_sha256,
    publish_dir,
    resume_dir,
    run_pool,
    writing,
)
from polypbench.load.common import DEFAULT_MARGIN, DEFAULT_SIZE, resolve_raw_root
from polypbench.manifest import Manifest
from polypbench.prepare.card import (
    CLASS_NAMES,
    facts,
    feature_types,
    features_yaml,
    fold_configs,
    front_matter,
    licence_yaml,
)
from polypbench.prepare.inputs import RawRoot
from polypbench.prepare.problems import ProblemError
from polypbench.progress import Progress

log = logging.getLogger(__name__)

DATA_DIR = "data"
INFO_FILE = "polypbench_export.json"
"""Provenance of an export (version, manifest, options, the rights declaration); also marks a folder as one."""
ROWS_PER_FILE = 2000
"""Crops per Parquet file (about 80 MB at 384 px): files small enough to upload and stream."""
BOX_FEATURE = {"list": "float32", "length": 4}
HOLD_RIGHTS_FLAG = "--i-hold-redistribution-rights"
SIGNATURE_FILE = ".signature.json"
"""What the staging folder's files were made from (:func:`~polypbench.fileio.resume_dir`); not published."""


def export_types() -> dict[str, Any]:
    """The export's columns: the manifest's (size classes as ``ClassLabel``), then ``image`` and ``box``."""
    return {**feature_types(), "image": "image", "box": BOX_FEATURE}


@dataclass
class ExportReport:
    """What an export wrote."""

    dataset: str
    out: Path
    rows: int
    files: int
    size: int
    split_rows: dict[str, int]
    bytes: int

    def describe(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.split_rows.items())
        return (f"{self.dataset}: {self.rows} crops of {self.size} px in {self.files} Parquet files "
                f"({self.bytes / 1e6:.1f} MB; {counts}) -> {self.out}\n"
                f"load it with datasets.load_dataset({str(self.out)!r}); upload it with "
                f"huggingface_hub.HfApi().upload_folder(folder_path={str(self.out)!r}, repo_id=..., "
                "repo_type='dataset')")


@dataclass(frozen=True)
class _Job:
    """One Parquet file: its rows (manifest columns), where to read frames and write the file."""

    rows: pd.DataFrame
    """Manifest rows (their index: the row's position in frames.parquet, for error lines)."""
    raw_root: Path
    frames_file: Path
    target: Path
    schema: pa.Schema
    size: int
    margin: float
    quality: int


def _write_file(job: _Job) -> tuple[int, int]:
    """Crop, encode and write one file (in a worker process). Returns (rows, bytes written)."""
    from polypbench.load.hf import crop_image

    root = RawRoot.of(job.raw_root)
    images, boxes = [], []
    for row in job.rows.itertuples(index=True):
        box = (int(row.xmin), int(row.ymin), int(row.xmax), int(row.ymax))
        image, crop_box = crop_image(_frame(root, str(row.frame_path), job.frames_file, int(row.Index)), box, job.size,
                                     job.margin)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=job.quality)
        images.append({"bytes": buffer.getvalue(), "path": None})
        boxes.append(crop_box)
    columns = {name: job.rows[name] for name in job.rows.columns}
    table = pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False)
    table = table.append_column("image", pa.array(images, job.schema.field("image").type))
    table = table.append_column("box", pa.array(boxes, job.schema.field("box").type))
    table = table.select(job.schema.names).cast(job.schema)
    with atomic_output(job.target) as tmp:  # complete or absent: a rerun keeps it
        pq.write_table(table, tmp, compression="zstd")
    return table.num_rows, job.target.stat().st_size


def _frame(root: RawRoot, rel: str, frames_file: Path, index: int) -> str:
    """The real path of frame ``rel`` under the raw root's containment rule (:meth:`RawRoot.resolve`, as prepare
    and verify apply it): a path out of the root is never read, let alone embedded."""
    where = {"field": f"row {index + 1} frame_path"}
    try:
        real = root.resolve(rel)
    except ProblemError as exc:
        raise InputError(frames_file, exc.problem.message, **where) from None
    if real is None:
        raise InputError(frames_file, f"{rel}: no such file under the raw root {root.path}",
                         "every frame the manifest references (polypbench verify checks them)", **where)
    return real


def _partition(split: str, fold: int) -> str:
    """Folder-relative glob of one (split, fold) part of the data."""
    return f"{DATA_DIR}/test/part-*.parquet" if split == "test" else f"{DATA_DIR}/{split}/fold{fold}-*.parquet"


def _file(split: str, fold: int, number: int) -> str:
    return (f"{DATA_DIR}/test/part-{number:05d}.parquet" if split == "test"
            else f"{DATA_DIR}/{split}/fold{fold}-{number:05d}.parquet")


def _size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket of ``n`` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def export_card(spec: registry.DatasetSpec, parts: dict[tuple[str, int], int], size: int, margin: float,
                quality: int, manifest: Manifest) -> str:
    """README.md of an export: configurations over the (split, fold) parts written, features, licence, facts."""
    splits = [s for s in schema.SPLITS if any(k[0] == s for k in parts)]
    default = {"config_name": "default", "default": True, "data_files": [
        {"split": s, "path": sorted({_partition(*k) for k in parts if k[0] == s})} for s in splits]}
    folds = sorted({fold for split, fold in parts if split != "test"})
    by_fold = {k: sorted(_partition(*p) for p in parts if p[0] != "test" and p[1] == k) for k in folds}
    test = [_partition("test", -1)] if ("test", -1) in parts else []
    configs = [default, *fold_configs(folds, by_fold, test)]
    for config in configs:
        config["data_files"] = [f for f in config["data_files"] if f["path"]]
    features = features_yaml(export_types())
    rows = sum(parts.values())
    meta = {
        "pretty_name": f"{spec.title} polyp crops (polypbench)",
        **licence_yaml(spec),
        "task_categories": ["image-classification"],
        "tags": ["medical", "colonoscopy", "polyp-size"],
        "size_categories": [_size_category(rows)],
        "configs": configs,
        "dataset_info": [{"config_name": c["config_name"], "features": features} for c in configs],
    }
    split_rows = {s: sum(n for (split, _), n in parts.items() if split == s) for s in splits}
    provenance = manifest.provenance()
    rights = ""
    if not spec.redistribute_frames:
        rights = (f"\n**Redistribution.** {spec.title}'s licence does not by itself allow redistributing its frames. "
                  f"This export was made with `{HOLD_RIGHTS_FLAG}`: whoever made it declared that they hold the right "
                  "to redistribute these frames. The licence above still binds every user.\n")
    return front_matter(meta) + f"""# {spec.title}: polyp crops

{facts(spec)}{rights}
## What is here
One row per annotated polyp box of the polypbench manifest (public split
{provenance["split_version"]}, sha256 {provenance["split_sha256"]}),
with `image`: the square crop around the box ({margin:g} x the box's longer side added on each side, inside the
frame) resized to {size} x {size} pixels and stored as JPEG (quality {quality}), and `box`: the polyp box in the
crop's pixels (x0, y0, x1, y1). Targets: `size_mm`, `size_class3` ({", ".join(CLASS_NAMES["size_class3"])}),
`size_class2` ({", ".join(CLASS_NAMES["size_class2"])}); ids: `dataset`, `patient_id` (the unit of the split),
`video_id`, `polyp_id`, `frame_index`; `frame_path`, `width`, `height` and `xmin`..`ymax` locate the crop in the
original frame. Column meanings: polypbench docs/manifest.md. Made by `polypbench export-hf` {__version__}.

- Rows per split: {", ".join(f"{k} {v}" for k, v in split_rows.items())}.
- Configurations: `default` (the published train / validation / test) and `fold0`..`fold{max(folds, default=0)}`
  (validation is fold k, train the other non-test folds, test unchanged).

```python
import datasets
ds = datasets.load_dataset("<this folder or repository>")             # or ..., "fold0"
row = ds["train"][0]                                                   # row["image"]: a PIL image
name = ds["train"].features["size_class3"].int2str(row["size_class3"])
```
Report per-polyp results with the polypbench scorer (`polypbench evaluate`), which resamples patients.
"""


def export_hf(prepared: str | Path, out: str | Path, raw_root: str | Path | None = None, *,
              size: int = DEFAULT_SIZE, margin: float = DEFAULT_MARGIN, quality: int = 90, workers: int | None = None,
              hold_rights: bool = False, rows_per_file: int = ROWS_PER_FILE) -> ExportReport:
    """Write the Hugging Face dataset of ``prepared`` (crops of ``raw_root``'s frames) into ``out``.

    Refuses a dataset whose licence forbids redistributing frames unless ``hold_rights`` (the user declares
    that they hold that right). See the module docstring for the layout."""
    if size < 16:
        raise ConfigError(f"size {size}; expected an integer >= 16 pixels")
    if not 1 <= quality <= 100:
        raise ConfigError(f"quality {quality}; expected a JPEG quality in 1..100")
    if rows_per_file < 1:
        raise ConfigError(f"rows_per_file {rows_per_file}; expected at least 1")
    manifest = Manifest.open(prepared)
    spec = registry.get(manifest.dataset)
    if not spec.redistribute_frames and not hold_rights:
        raise PolypbenchError(
            f"{manifest.root}: {spec.title}'s licence does not allow redistributing its frames "
            f"({spec.licence_terms.rstrip('.')}), so none are exported; expected a dataset whose licence allows it, "
            f"or {HOLD_RIGHTS_FLAG} if you hold the right to redistribute them (the card then states the licence)")
    root = resolve_raw_root(manifest, raw_root)
    out = Path(os.path.abspath(out))
    check_replaceable(out, INFO_FILE, "an earlier export-hf output", "export")
    from polypbench.load.hf import hf_features

    arrow_schema = hf_features(export_types()).arrow_schema  # carries the features for readers of the files alone
    work = out.with_name(f".{out.name}.export")
    staging = work / "staging"
    with writing(work):
        work.mkdir(parents=True, exist_ok=True)
    frames_sha = file_sha256(manifest.root / schema.FRAMES_FILE)
    signature = {"polypbench_version": __version__, "frames_sha256": frames_sha, "raw_root": str(root.resolve()),
                 "size": size, "margin": margin, "quality": quality, "rows_per_file": rows_per_file}
    with exclusive(work / "lock", str(out)):
        resume_dir(staging, signature, signature_file=SIGNATURE_FILE)  # a run killed half-way resumes
        frames = manifest.frames
        jobs: list[_Job] = []
        parts: dict[tuple[str, int], int] = {}
        for (split, fold), rows in frames.groupby(["split", "fold"], sort=True):
            parts[(str(split), int(fold))] = len(rows)
            for number, start in enumerate(range(0, len(rows), rows_per_file)):
                target = staging / _file(str(split), int(fold), number)
                with writing(target.parent):
                    target.parent.mkdir(parents=True, exist_ok=True)
                jobs.append(_Job(rows.iloc[start:start + rows_per_file], root, manifest.root / schema.FRAMES_FILE,
                                 target, arrow_schema, size, margin, quality))
        finished = [job for job in jobs if job.target.is_file()]
        todo = [job for job in jobs if not job.target.is_file()]
        if finished:
            log.info("resuming: %d of %d files already written", len(finished), len(jobs))
        written = sum(job.target.stat().st_size for job in finished)
        done = sum(len(job.rows) for job in finished)
        with Progress(len(frames), f"export-hf {manifest.dataset}", unit="crop", initial=done) as bar:
            for n, nbytes in run_pool(_write_file, todo, workers or os.cpu_count() or 1):
                written += nbytes
                bar.update(n)
        with writing(staging):
            (staging / "README.md").write_text(export_card(spec, parts, size, margin, quality, manifest))
        atomic_write_json(staging / INFO_FILE, {
            "polypbench_version": __version__, "manifest": manifest.provenance(), "frames_sha256": frames_sha,
            "size": size, "margin": margin, "quality": quality, "rows": len(frames),
            "hold_rights_declared": hold_rights, "licence": spec.licence})
        with writing(staging):
            (staging / SIGNATURE_FILE).unlink()  # the staging folder's, not the export's
        publish_dir(staging, out)
    with writing(work):
        shutil.rmtree(work)
    split_rows = {s: sum(n for (split, _), n in parts.items() if split == s) for s in schema.SPLITS}
    return ExportReport(manifest.dataset, out, len(frames), len(jobs), size, split_rows, written)


