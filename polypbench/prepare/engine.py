"""Run a converter: parallel over units, resumable, streaming, atomic.

Each finished unit is written at once to ``<out>/.parts/<unit>.parquet`` (atomically: temporary file, then
rename), so an interrupted run keeps its work and a re-run converts only the missing units. The final merge
streams the parts one at a time into ``frames.parquet`` and ``hf/<split>.parquet`` (memory bounded by one
part), builds ``polyps.parquet``, the dataset card and ``prepare_report.json``, and renames them into place.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from polypbench import __version__, schema
from polypbench.errors import InputError, PolypbenchError
from polypbench.fileio import PartStore, atomic_write_json, run_pool, tmp_path
from polypbench.prepare.base import Context, Converter, Unit, UnitResult
from polypbench.prepare.card import HF_DIR, dataset_card
from polypbench.prepare.problems import Problem, summarize
from polypbench.splits import SPLIT_VERSION, file_sha256, read_split, split_file

log = logging.getLogger(__name__)
PARTS = ".parts"
REPORT_FILE = "prepare_report.json"


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
    problems: dict[str, dict[str, object]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    resumed_units: int = 0

    @property
    def skipped(self) -> int:
        return sum(int(v["count"]) for v in self.problems.values())  # type: ignore[call-overload]

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "out": str(self.out), "skipped": self.skipped}

    def describe(self) -> str:
        lines = [
            f"{self.dataset}: {self.rows} boxes of {self.polyps} polyps from {self.patients} patients "
            f"({self.files} annotation records, {self.negative_frames} negative frames) -> {self.out}",
            "rows per split: " + ", ".join(f"{k} {v}" for k, v in self.split_rows.items()),
        ]
        if self.resumed_units:
            lines.append(f"resumed: {self.resumed_units} units reused from an interrupted run")
        lines += [f"note: {n}" for n in self.notes]
        if self.problems:
            lines.append(f"skipped {self.skipped} bad inputs (--strict would stop at the first):")
            for kind, info in self.problems.items():
                lines.append(f"  {kind}: {info['count']} ({info['meaning']}), e.g. {info['examples'][0]}")  # type: ignore[index]
        return "\n".join(lines)


def _convert(args: tuple[type[Converter], Context, Unit]) -> tuple[Unit, UnitResult]:
    converter, ctx, unit = args
    return unit, converter.convert(ctx, unit)


class Engine:
    """Runs one converter over one raw dump into one output directory."""

    def __init__(self, converter: Converter, raw: Path, out: Path, workers: int | None, strict: bool) -> None:
        self.converter, self.raw, self.out, self.strict = converter, Path(raw), Path(out), strict
        self.workers = workers or os.cpu_count() or 1
        self.split_path = split_file(converter.dataset)
        self.split_sha = file_sha256(self.split_path)
        signature = {"dataset": converter.dataset, "raw": str(self.raw.resolve()), "version": __version__,
                     "schema": schema.SCHEMA_VERSION, "split_sha256": self.split_sha}
        self.parts = PartStore(self.out / PARTS, signature)

    def _save(self, unit: Unit, result: UnitResult) -> None:
        info = {"problems": [p.to_dict() for p in result.problems], "files": result.n_files,
                "negative": result.n_negative}
        self.parts.save(unit.key, unit.path, info, {"parquet": lambda tmp: pq.write_table(result.table, tmp)})

    def _run_units(self, ctx: Context, todo: list[Unit]) -> Iterator[tuple[Unit, UnitResult]]:
        jobs = [(type(self.converter), ctx, unit) for unit in todo]
        return run_pool(_convert, jobs, self.workers)

    def run(self) -> PrepareReport:
        if not self.raw.is_dir():
            raise InputError(self.raw, "no such folder", f"the raw {self.converter.dataset} dump")
        polyps = self.converter.polyps(self.raw)
        published = read_split(self.converter.dataset)
        split_of = {row.patient_id: (row.split, int(row.fold)) for row in published.itertuples(index=False)}
        ctx = Context(self.converter.dataset, self.raw, polyps, split_of)
        units = self.converter.units(self.raw)
        if not units:
            raise InputError(self.raw, "no annotations found", f"the raw {self.converter.dataset} layout (docs/datasets.md)")
        self.parts.open()
        todo = [u for u in units if not self.parts.is_done(u.key, u.path)]
        bar = tqdm(total=len(units), initial=len(units) - len(todo), unit="unit", desc=f"prepare {ctx.dataset}",
                   disable=None, leave=False)
        with bar:
            for unit, result in self._run_units(ctx, todo):
                if self.strict and result.problems:
                    raise PolypbenchError(result.problems[0].message)
                self._save(unit, result)
                bar.update()
        report = self._merge(ctx, units, resumed=len(units) - len(todo))
        shutil.rmtree(self.parts.folder)
        return report

    def _merge(self, ctx: Context, units: list[Unit], resumed: int) -> PrepareReport:
        problems: list[Problem] = []
        files = negative = 0
        n_frames: dict[str, int] = {}
        metadata = schema.parquet_metadata({
            schema.META_POLYPBENCH_VERSION: __version__,
            schema.META_SCHEMA_VERSION: schema.SCHEMA_VERSION,
            schema.META_DATASET: ctx.dataset,
            schema.META_SPLIT_VERSION: SPLIT_VERSION,
            schema.META_SPLIT_HASH: self.split_sha,
            schema.META_RAW_ROOT: str(self.raw.resolve()),
        })
        frames_schema = schema.FRAMES.with_metadata(metadata)
        (self.out / HF_DIR).mkdir(exist_ok=True)
        targets = {"frames": self.out / schema.FRAMES_FILE, **{s: self.out / HF_DIR / f"{s}.parquet" for s in schema.SPLITS}}
        writers = {name: pq.ParquetWriter(tmp_path(path), frames_schema, compression="zstd") for name, path in targets.items()}
        split_rows = dict.fromkeys(schema.SPLITS, 0)
        try:
            for unit in units:
                info = self.parts.info(unit.key)
                assert info is not None, f"{unit.key}: part not finished"
                problems += [Problem(**p) for p in info["problems"]]
                files, negative = files + info["files"], negative + info["negative"]
                table = pq.read_table(self.parts.file(unit.key, "parquet")).cast(frames_schema)
                if table.num_rows:  # no empty row groups: some readers (HF datasets) refuse them
                    writers["frames"].write_table(table)
                for split in schema.SPLITS:
                    part = table.filter(pc.equal(table["split"], split))
                    split_rows[split] += part.num_rows
                    if part.num_rows:
                        writers[split].write_table(part)
                for row in table.group_by("polyp_id").aggregate([("polyp_id", "count")]).to_pylist():
                    n_frames[row["polyp_id"]] = n_frames.get(row["polyp_id"], 0) + row["polyp_id_count"]
        finally:
            for writer in writers.values():
                writer.close()
        for key, polyp in ctx.polyps.items():
            if polyp.polyp_id not in n_frames:
                problems.append(Problem("lesion_without_frames", f"{self.raw}: lesion {key} ({polyp.polyp_id}) has no valid "
                                        "box in the dump; expected at least one annotated frame"))
        if self.strict and problems:
            raise PolypbenchError(problems[0].message)
        polyp_table = self._polyps_table(ctx, n_frames, metadata)
        tmp_polyps = tmp_path(self.out / schema.POLYPS_FILE)
        pq.write_table(polyp_table, tmp_polyps, compression="zstd")
        report = PrepareReport(
            dataset=ctx.dataset, out=self.out, rows=sum(split_rows.values()), polyps=polyp_table.num_rows,
            patients=len(set(polyp_table["patient_id"].to_pylist())), files=files, negative_frames=negative,
            split_rows=split_rows, problems=summarize(problems), notes=self.converter.notes(self.raw),
            resumed_units=resumed,
        )
        card = self.out / "README.md"
        tmp_path(card).write_text(dataset_card(ctx.dataset, split_rows, SPLIT_VERSION, self.split_sha))
        for path in [*targets.values(), self.out / schema.POLYPS_FILE, card]:
            os.replace(tmp_path(path), path)
        atomic_write_json(self.out / REPORT_FILE, {**report.to_dict(), "all_problems": [p.to_dict() for p in problems]})
        return report

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
