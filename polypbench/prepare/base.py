"""What every converter shares: the unit of parallel work, the context sent to workers, and the row builder
that applies the same checks (known lesion, frame file present, box inside the image) to every dataset."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from polypbench import schema, sizes
from polypbench.prepare.problems import Problem


@dataclass(frozen=True)
class PolypInfo:
    """Metadata of one polyp, joined onto each of its boxes."""

    polyp_id: str
    patient_id: str
    video_id: str
    size_mm: float
    histology: str | None = None
    site: str | None = None
    endoscope: str | None = None


@dataclass(frozen=True)
class Unit:
    """One independent piece of work (a video, a case, a SUN-SEG subset); ``key`` names its part file."""

    key: str
    path: str
    """Path of the unit's input, relative to the raw root."""


@dataclass(frozen=True)
class Context:
    """Everything a worker needs, picklable: raw root, polyps by dataset key, the split per patient."""

    dataset: str
    raw: Path
    polyps: dict[str, PolypInfo]
    split_of: dict[str, tuple[str, int]]


@dataclass
class UnitResult:
    """A converted unit: its rows (Arrow, FRAMES schema), the problems found and simple counts."""

    table: pa.Table
    problems: list[Problem]
    n_files: int = 0
    n_negative: int = 0


@dataclass
class RowBuilder:
    """Accumulates checked rows column by column (no per-row DataFrame work)."""

    ctx: Context
    columns: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in schema.FRAMES.names})
    problems: list[Problem] = field(default_factory=list)
    _seen: set[tuple[str, int]] = field(default_factory=set)

    def problem(self, kind: str, message: str) -> None:
        self.problems.append(Problem(kind, " ".join(message.split())))

    def add(
        self,
        source: str,
        key: str,
        frame_index: int,
        frame_path: str,
        width: int,
        height: int,
        box: tuple[int, int, int, int],
        *,
        frame_exists: bool,
        video_id: str | None = None,
    ) -> bool:
        """Add one box of polyp ``key`` (the dataset's own id) unless a check fails; ``source`` names the file
        (and line) the box came from, for the problem message. Returns whether the row was kept."""
        info = self.ctx.polyps.get(key)
        xmin, ymin, xmax, ymax = box
        if info is None:
            self.problem("unknown_lesion", f"{source}: lesion {key!r} is not in the metadata; expected a known id")
        elif not frame_exists:
            self.problem("missing_frame", f"{source}: frame file {frame_path} is missing; expected it beside the annotation")
        elif xmin >= xmax or ymin >= ymax:
            self.problem("empty_box", f"{source}: box {list(box)} of {key}; expected xmin < xmax and ymin < ymax")
        elif xmin < 0 or ymin < 0 or xmax > width or ymax > height:
            self.problem("box_outside_image", f"{source}: box {list(box)} of {key}; expected inside the {width}x{height} image")
        elif (info.polyp_id, frame_index) in self._seen:
            self.problem("duplicate_box", f"{source}: {key} annotated twice on frame {frame_index}; expected one box per polyp and frame")
        elif info.patient_id not in self.ctx.split_of:
            self.problem("unknown_patient", f"{source}: patient {info.patient_id} is not in the published split")
        else:
            self._seen.add((info.polyp_id, frame_index))
            split, fold = self.ctx.split_of[info.patient_id]
            values = {
                "dataset": self.ctx.dataset,
                "patient_id": info.patient_id,
                "video_id": video_id or info.video_id,
                "polyp_id": info.polyp_id,
                "frame_index": frame_index,
                "frame_path": frame_path,
                "width": width,
                "height": height,
                "xmin": xmin,
                "ymin": ymin,
                "xmax": xmax,
                "ymax": ymax,
                "size_mm": info.size_mm,
                "split": split,
                "fold": fold,
                "histology": info.histology,
                "site": info.site,
                "endoscope": info.endoscope,
            }
            for name, value in values.items():
                self.columns[name].append(value)
            return True
        return False

    def result(self, n_files: int = 0, n_negative: int = 0) -> UnitResult:
        size = self.columns["size_mm"]
        columns: dict[str, Any] = dict(self.columns)
        columns["size_class3"] = sizes.size_class3(size) if size else []  # vectorised, once per unit
        columns["size_class2"] = sizes.size_class2(size) if size else []
        return UnitResult(pa.table(columns, schema=schema.FRAMES), self.problems, n_files, n_negative)


class Converter(abc.ABC):
    """One raw dataset layout -> manifest rows. Each subclass is named by its entry in :mod:`polypbench.datasets`.

    ``dataset`` is the value of the manifest's ``dataset`` column and the prefix of ``polyp_id``: the name the
    user prepared under (an alias such as ``misawa`` keeps its name).
    """

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset

    @abc.abstractmethod
    def polyps(self, raw: Path) -> dict[str, PolypInfo]:
        """Polyp metadata keyed by the id the annotations use (raises InputError on a bad metadata table)."""

    @abc.abstractmethod
    def units(self, raw: Path) -> list[Unit]:
        """The independent units of work found under ``raw``, in a stable order."""

    @staticmethod
    @abc.abstractmethod
    def convert(ctx: Context, unit: Unit) -> UnitResult:
        """Convert one unit (runs in a worker process)."""

    def notes(self, raw: Path) -> list[str]:
        """Facts about the dump worth reporting that are not problems (e.g. negative cases without boxes)."""
        return []
