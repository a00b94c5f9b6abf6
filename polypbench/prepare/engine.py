"""Run a converter: parallel over units, resumable by content, streaming, and published complete or not at all.

While a run works on ``<out>``, it keeps everything in ``<parent>/.<out name>.prepare/``:

- ``parts/``: each finished unit, written at once (atomically) with the fingerprint of the inputs it was
  converted from (names, sizes, modification times; :class:`~polypbench.prepare.inputs.Fingerprint`). A rerun
  after an interruption reuses a part only when its unit's inputs are unchanged, and reconverts the rest.
- ``staging/``: the new manifest. The merge streams the parts one at a time into ``frames.parquet``,
  ``hf/<split>.parquet`` and ``hf/fold<k>.parquet`` (memory bounded by one part), then writes ``polyps.parquet``,
  the dataset card and, last, ``prepare_report.json``.
- ``lock``: one run at a time per output.

A finished manifest already in ``<out>`` is updated (resumed, reconverting only what changed) only when it was
prepared from the same dataset name and raw root; any other (another dataset, an alias, another dump, a folder
whose manifest cannot be read) is replaced only with ``overwrite``, and never while it holds materialized crops of
another dataset: those are never deleted (:meth:`Engine._check_existing`).

Only then is ``staging/`` published in place of ``<out>`` by :func:`~polypbench.fileio.publish_dir`: every
reader (``Manifest.open``, ``splits verify``, ``load_split``, plain ``datasets.load_dataset``) sees the previous
complete manifest, then for a moment none, then the new complete one; a run that fails or is killed leaves the
previous manifest untouched. Derived data of the previous manifest (``materialized/`` shards, ``verify``'s
records) is carried over when the new ``frames.parquet`` is byte-identical, and dropped with a log line otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from polypbench import __version__, schema
from polypbench.datasets import DatasetSpec
from polypbench.errors import InputError, PolypbenchError
from polypbench.fileio import PartStore, exclusive, file_sha256, publish_dir, recover_dir, run_pool, writing
from polypbench.manifest import Manifest
from polypbench.prepare.base import Context, Converter, Job, Unit, UnitResult, convert_job
from polypbench.prepare.card import HF_DIR, dataset_card, fold_file
from polypbench.prepare.problems import FIXES, Problem, first_skip, summarize
from polypbench.progress import Progress
from polypbench.splits import SPLIT_VERSION, read_split, split_file
from polypbench.splits.paper import paper_split_file

log = logging.getLogger(__name__)
REPORT_FILE = schema.REPORT_FILE
DERIVED = (schema.MATERIALIZED_DIR, schema.VERIFY_FILE, schema.VERIFY_FAILED_FILE, schema.HASHES_FILE)
"""Entries other commands add to a manifest, kept across a re-prepare that writes the same frames.parquet."""


def work_dir(out: Path) -> Path:
    """Where a run on ``out`` keeps its parts, staging folder and lock: ``<parent>/.<name>.prepare``."""
    return out.with_name(f".{out.name}.prepare")


@dataclass
class PrepareReport:
    """What a run produced and what it skipped (also saved as prepare_report.json)."""

    dataset: str
    out: Path
    rows: int
    polyps: int
    patients: int
    files: int
    negative_frames: int
    split_rows: dict[str, int]
    problems: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    resumed_units: int = 0
    units: int = 0

    @property
    def skipped(self) -> int:
        """Inputs left out (every problem kind but the fixes, such as ``clamped``)."""
        return sum(int(v["count"]) for k, v in self.problems.items() if k not in FIXES)

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "out": str(self.out), "skipped": self.skipped}

    def describe(self) -> str:
        lines = [
            f"{self.dataset}: {self.rows} boxes of {self.polyps} polyps from {self.patients} patients "
            f"({self.files} annotation records, {self.negative_frames} negative frames) -> {self.out}",
            "rows per split: " + ", ".join(f"{k} {v}" for k, v in self.split_rows.items()),
        ]
        if self.resumed_units:
            lines.append(f"resumed: {self.resumed_units} of {self.units} units reused unchanged from an earlier run")
        lines += [f"note: {n}" for n in self.notes]
        fixed = {k: v for k, v in self.problems.items() if k in FIXES}
        skipped = {k: v for k, v in self.problems.items() if k not in FIXES}
        for kind, info in fixed.items():
            lines.append(f"{kind}: {info['count']} ({info['meaning']}), e.g. {info['examples'][0]}")
        if skipped:
            lines.append(f"skipped {self.skipped} bad inputs (--strict would stop at the first; all in {REPORT_FILE}):")
            for kind, info in skipped.items():
                lines.append(f"  {kind}: {info['count']} ({info['meaning']}), e.g. {info['examples'][0]}")
        return "\n".join(lines)


def _metadata_hash(ctx: Context) -> str:
    """The polyps joined onto rows: parts made with other metadata are not reused."""
    import hashlib

    text = json.dumps(sorted((k, asdict(v)) for k, v in ctx.polyps.items()), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Engine:
    """Runs one converter over one raw dump into one output directory."""

    def __init__(self, converter: Converter, spec: DatasetSpec, raw: Path, out: Path, workers: int | None,
                 strict: bool, overwrite: bool = False) -> None:
        """``converter`` for the dataset named as the user gave it (an alias stays), ``spec`` its registry entry."""
        self.converter, self.spec, self.raw, self.strict, self.overwrite = converter, spec, Path(raw), strict, overwrite
        out = Path(out)
        self.out = Path(os.path.realpath(out)) if out.is_symlink() else Path(os.path.abspath(out))
        self.work = work_dir(self.out)
        self.workers = workers or os.cpu_count() or 1
        self.split_path = split_file(spec)
        self.split_sha = file_sha256(self.split_path)

    def _check_paths(self) -> None:
        if not self.raw.is_dir():
            raise InputError(self.raw, "no such folder", f"the raw {self.converter.dataset} dump")
        out = self.out
        if out.exists() and not out.is_dir():
            raise InputError(out, "a file, not a folder",
                             "--out a new folder or a manifest written by `polypbench prepare`")
        if out.is_dir():
            with writing(out):
                entries = set(os.listdir(out))
            if entries and not entries & {REPORT_FILE, schema.FRAMES_FILE, ".parts"}:  # .parts: an older version's
                raise InputError(out, "a folder with other files, which publishing a manifest would replace",
                                 "--out a new or empty folder, or a manifest written by `polypbench prepare`")
        real_raw = os.path.realpath(self.raw)
        if os.path.realpath(out) == real_raw or real_raw.startswith(str(out) + os.sep):
            raise InputError(out, "the raw dump or a folder holding it", "--out a folder outside the raw dump")
        old = out.with_name(f".{out.name}.old")  # a publish a crash interrupted: the manifest _recover restores
        self._check_existing(out if out.exists() or not old.is_dir() else old)

    def _check_existing(self, folder: Path) -> None:
        """Refuse to replace a finished manifest that this run would not merely update (another dataset or alias,
        another raw root, or one that cannot be read) unless ``overwrite``; even then refuse while it holds another
        dataset's materialized crops, which are never deleted (they are hours of work and serve only that
        dataset)."""
        frames, report = folder / schema.FRAMES_FILE, folder / REPORT_FILE
        if not (frames.exists() or report.exists()):
            return  # new, empty, or an older version's unfinished run
        try:
            meta = {k.decode(): v.decode() for k, v in (pq.read_schema(frames).metadata or {}).items()}
        except (OSError, ValueError, pa.ArrowException):
            meta = {}
        old, old_raw = meta.get(schema.META_DATASET), meta.get(schema.META_RAW_ROOT)
        dataset, raw = self.converter.dataset, str(self.raw.resolve())
        if old == dataset and old_raw in (raw, None):
            return  # the same manifest: updated in place, reconverting only what changed
        what = (f"a finished {old} manifest prepared from {old_raw}" if old is not None
                else "a manifest whose frames.parquet cannot be read")
        if not self.overwrite:
            update = f", --raw {old_raw} to update it" if old == dataset else ""
            raise InputError(self.out, f"holds {what}, which preparing {dataset} from {raw} would replace",
                             f"--out a new folder{update}, or --overwrite to replace it")
        crops = folder / schema.MATERIALIZED_DIR
        if old != dataset and crops.is_dir() and any(crops.iterdir()):
            raise InputError(crops, f"materialized crops of the {old or 'unreadable'} manifest, which replacing it "
                             "would delete", f"them moved out of {self.out} first (--overwrite never deletes "
                             "another dataset's crops)")
        log.warning("%s: replacing %s (--overwrite)", self.out, what)

    def _stop(self, problems: list[Problem]) -> None:
        if self.strict and (problem := first_skip(problems)) is not None:
            raise PolypbenchError(problem.message)

    def run(self) -> PrepareReport:
        self._check_paths()
        with writing(self.work):
            self.work.mkdir(parents=True, exist_ok=True)
        with exclusive(self.work / "lock", str(self.out)):
            self._recover()
            report = self._run()
        with writing(self.work):
            shutil.rmtree(self.work)
        return report

    def _run(self) -> PrepareReport:
        problems: list[Problem] = []
        polyps = self.converter.polyps(self.raw, problems)
        published = read_split(self.spec)
        split_of = {row.patient_id: (row.split, int(row.fold)) for row in published.itertuples(index=False)}
        try:
            units = self.converter.units(self.raw, problems)
        except OSError as exc:
            raise InputError(self.raw, f"cannot list the dump ({exc.strerror})", "a readable raw folder") from None
        if not units:
            raise InputError(self.raw, "no annotations found",
                             f"the raw {self.converter.dataset} layout (docs/datasets.md)")
        unit_paths = frozenset(os.path.realpath(self.raw / u.path) for u in units)
        ctx = Context(self.converter.dataset, self.raw, polyps, split_of, unit_paths)
        self._stop(problems)
        signature = {"dataset": ctx.dataset, "raw": ctx.root.real, "version": __version__,
                     "schema": schema.SCHEMA_VERSION, "split_sha256": self.split_sha, "metadata": _metadata_hash(ctx)}
        parts = PartStore(self.work / "parts", signature)
        parts.open()
        jobs: list[Job] = [(type(self.converter), ctx, u, parts.fingerprint(u.key)) for u in units]
        resumed = 0
        with Progress(len(units), f"prepare {ctx.dataset}", unit=self.converter.unit_name) as bar:
            for unit, result in run_pool(convert_job, jobs, self.workers):
                if result is None:
                    resumed += 1
                else:
                    self._stop(result.problems)
                    self._save(parts, unit, result)
                bar.update()
        staging = self.work / "staging"
        with writing(staging):
            if staging.exists():
                shutil.rmtree(staging)  # a stale one from a run killed while merging
            (staging / HF_DIR).mkdir(parents=True)
        report = self._merge(ctx, parts, units, problems, resumed, staging)
        keep = self._keep(self.out, staging)
        publish_dir(staging, self.out, keep)
        return report

    def _keep(self, old: Path, new: Path) -> tuple[str, ...]:
        """The derived entries of ``old`` to carry into ``new``: all when both frames.parquet are identical."""
        present = [name for name in DERIVED if (old / name).exists()]
        if not present:
            return ()
        try:
            same = file_sha256(old / schema.FRAMES_FILE) == file_sha256(new / schema.FRAMES_FILE)
        except OSError:
            same = False
        if same:
            return DERIVED
        log.warning("%s: frames.parquet changed, so %s made from the previous one %s dropped; run them again",
                    self.out, ", ".join(present), "is" if len(present) == 1 else "are")
        return ()

    def _recover(self) -> None:
        """Finish or roll back a publish that a crash interrupted."""
        old = self.out.with_name(f".{self.out.name}.old")
        if old.exists():
            recover_dir(self.out, self._keep(old, self.out) if self.out.exists() else ())

    def _save(self, parts: PartStore, unit: Unit, result: UnitResult) -> None:
        info = {"problems": [p.to_dict() for p in result.problems], "files": result.n_files,
                "negative": result.n_negative}
        parts.save(unit.key, result.fingerprint, info, {"parquet": lambda tmp: pq.write_table(result.table, tmp)})

    def _merge(self, ctx: Context, parts: PartStore, units: list[Unit], problems: list[Problem], resumed: int,
               staging: Path) -> PrepareReport:
        problems = list(problems)
        files = negative = 0
        n_frames: dict[str, int] = {}
        metadata = schema.parquet_metadata({
            schema.META_POLYPBENCH_VERSION: __version__,
            schema.META_SCHEMA_VERSION: schema.SCHEMA_VERSION,
            schema.META_DATASET: ctx.dataset,
            schema.META_SPLIT_VERSION: SPLIT_VERSION,
            schema.META_SPLIT_HASH: self.split_sha,
            schema.META_PAPER_SPLIT_HASH: file_sha256(paper_split_file()),
            schema.META_RAW_ROOT: str(self.raw.resolve()),
        })
        frames_schema = schema.FRAMES.with_metadata(metadata)
        targets = {"frames": staging / schema.FRAMES_FILE,
                   **{s: staging / HF_DIR / f"{s}.parquet" for s in schema.SPLITS}}
        split_rows = dict.fromkeys(schema.SPLITS, 0)
        fold_rows: dict[int, int] = {}
        with writing(staging), ExitStack() as stack:
            writers = {name: stack.enter_context(schema.RowGroupWriter(path, frames_schema))
                       for name, path in targets.items()}
            fold_writers: dict[int, schema.RowGroupWriter] = {}  # hf/fold<k>.parquet: the card's fold<k> configs
            seen: dict[str, list[tuple[str, np.ndarray]]] = {}
            for unit, table, info in self._parts(parts, units, frames_schema):
                problems += [Problem(**p) for p in info["problems"]]
                table = self._unique(unit, table, seen, problems)
                files, negative = files + info["files"], negative + info["negative"]
                writers["frames"].write_table(table)
                for split in schema.SPLITS:
                    part = table.filter(pc.equal(table["split"], split))
                    split_rows[split] += part.num_rows
                    writers[split].write_table(part)
                for fold in sorted(f for f in pc.unique(table["fold"]).to_pylist() if f >= 0):
                    part = table.filter(pc.equal(table["fold"], fold))
                    if fold not in fold_writers:
                        fold_writers[fold] = stack.enter_context(
                            schema.RowGroupWriter(staging / fold_file(fold), frames_schema))
                    fold_writers[fold].write_table(part)
                    fold_rows[fold] = fold_rows.get(fold, 0) + part.num_rows
                for row in table.group_by("polyp_id").aggregate([("polyp_id", "count")]).to_pylist():
                    n_frames[row["polyp_id"]] = n_frames.get(row["polyp_id"], 0) + row["polyp_id_count"]
        for key, polyp in ctx.polyps.items():
            if polyp.polyp_id not in n_frames and polyp.refused is None:
                problems.append(Problem("lesion_without_frames", f"{self.raw}: lesion {key} ({polyp.polyp_id}) has "
                                        "no valid box in the dump; expected at least one annotated frame"))
        self._stop(problems)
        polyp_table = self._polyps_table(ctx, n_frames, metadata)
        report = PrepareReport(
            dataset=ctx.dataset, out=self.out, rows=sum(split_rows.values()), polyps=polyp_table.num_rows,
            patients=len(set(polyp_table["patient_id"].to_pylist())), files=files, negative_frames=negative,
            split_rows=split_rows, problems=summarize(problems), notes=self.converter.notes(self.raw),
            resumed_units=resumed, units=len(units),
        )
        with writing(staging):
            pq.write_table(polyp_table, staging / schema.POLYPS_FILE, compression="zstd")
            provenance = Manifest.open(staging).provenance()  # what frames.parquet records, read back
            (staging / "README.md").write_text(dataset_card(self.spec, provenance, split_rows, fold_rows,
                                                            self.raw.resolve()))
            doc = {**report.to_dict(), "all_problems": [p.to_dict() for p in problems]}
            (staging / REPORT_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")  # last
        return report

    @staticmethod
    def _parts(parts: PartStore, units: list[Unit], frames_schema: pa.Schema
               ) -> Iterator[tuple[Unit, pa.Table, dict]]:
        """Each unit's finished part (rows and info), in unit order, one at a time."""
        for unit in units:
            info = parts.info(unit.key)
            if info is None:
                raise PolypbenchError(f"{parts.folder}: part {unit.key} vanished during the run; "
                                      "expected one run at a time")
            yield unit, pq.read_table(parts.file(unit.key, "parquet")).cast(frames_schema), info

    def _unique(self, unit: Unit, table: pa.Table, seen: dict[str, list[tuple[str, np.ndarray]]],
                problems: list[Problem]) -> pa.Table:
        """``table`` without the rows whose key (``polyp_id``, ``frame_index``) an earlier unit gave already, each a
        counted ``duplicate_box`` (a SUN-SEG clip copied into two subsets); ``seen`` holds each polyp's frames per
        unit so far. A unit's own duplicates were refused by its converter."""
        if not table.num_rows:
            return table
        polyp = table["polyp_id"].to_numpy(zero_copy_only=False)
        frame = table["frame_index"].to_numpy()
        keep = np.ones(len(frame), dtype=bool)
        for pid in pc.unique(table["polyp_id"]).to_pylist():
            rows = np.flatnonzero(polyp == pid)
            earlier = seen.setdefault(pid, [])
            for other, frames in earlier:
                for i in rows[keep[rows] & np.isin(frame[rows], frames)]:
                    path = table["frame_path"][int(i)].as_py()
                    problems.append(Problem("duplicate_box", f"{unit.path}: {pid} on frame {frame[i]} ({path}) is "
                                            f"annotated in {other} already; expected each frame in one "
                                            f"{self.converter.unit_name} (the second box is left out)"))
                    keep[i] = False
            earlier.append((unit.path, frame[rows[keep[rows]]]))
        return table if keep.all() else table.filter(pa.array(keep))

    @staticmethod
    def _polyps_table(ctx: Context, n_frames: dict[str, int], metadata: dict[bytes, bytes]) -> pa.Table:
        from polypbench import sizes

        rows = [p for p in ctx.polyps.values() if p.polyp_id in n_frames]
        rows.sort(key=lambda p: p.polyp_id)
        size = [p.size_mm for p in rows]
        split = [ctx.split_of[p.patient_id] for p in rows]
        columns = {
            "polyp_id": [p.polyp_id for p in rows],
            "dataset": [ctx.dataset] * len(rows),
            "patient_id": [p.patient_id for p in rows],
            "video_id": [p.video_id for p in rows],
            "size_mm": size,
            "size_class3": sizes.size_class3(size) if rows else [],
            "size_class2": sizes.size_class2(size) if rows else [],
            "split": [s for s, _ in split],
            "fold": [f for _, f in split],
            "n_frames": [n_frames[p.polyp_id] for p in rows],
            "histology": [p.histology for p in rows],
            "site": [p.site for p in rows],
            "endoscope": [p.endoscope for p in rows],
        }
        return pa.table(columns, schema=schema.POLYPS.with_metadata(metadata))
