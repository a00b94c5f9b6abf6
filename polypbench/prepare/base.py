"""What every converter shares: the unit of parallel work, the context sent to workers, and the row builder
that applies the same checks (known lesion of this video, frame file present, box inside the image, values in
range) to every dataset."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from polypbench import schema, sizes
from polypbench.prepare.inputs import INT32_MAX, RawRoot
from polypbench.prepare.problems import IO_KINDS, Problem, ProblemError


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
    refused: str | None = None
    """Why its metadata row was refused (its boxes are then skipped as ``refused_lesion``); None when usable."""


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
    unit_paths: frozenset[str] = frozenset()
    """Real paths of every unit's input (a symlink to a file inside one of them is a duplicate, not a new file)."""
    root: RawRoot = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", RawRoot.of(self.raw))


@dataclass
class UnitResult:
    """A converted unit: its rows (Arrow, FRAMES schema), the problems found, simple counts, and the fingerprint of
    the inputs it was converted from (None: never reuse it on resume)."""

    table: pa.Table
    problems: list[Problem]
    n_files: int = 0
    n_negative: int = 0
    fingerprint: str | None = None


@dataclass
class RowBuilder:
    """Accumulates checked rows column by column (no per-row DataFrame work) and the problems met."""

    ctx: Context
    columns: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in schema.FRAMES.names})
    problems: list[Problem] = field(default_factory=list)
    _seen: set[tuple[str, int]] = field(default_factory=set)

    def problem(self, kind: str, message: str) -> None:
        self.problems.append(Problem(kind, message))

    def record(self, error: ProblemError) -> None:
        self.problems.append(error.problem)

    def internal(self, source: str, exc: BaseException) -> None:
        """The last resort: an unexpected exception while reading ``source`` becomes a counted problem."""
        what = " ".join(str(exc).split())[:200]
        self.problem("internal", f"{source}: internal error ({type(exc).__name__}: {what}); skipped, please report it")

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
        owner: str | None = None,
        edge: int = 0,
    ) -> bool:
        """Add one box of polyp ``key`` (the dataset's own id) unless a check fails; ``source`` names the file
        (and line) the box came from, for the problem message; ``owner`` is the video whose annotation names the
        lesion (checked against the lesion's video). Numbers are ints already range-checked by the parser; a box
        partly outside the image is clamped to it (counted as ``clamped``): to 0 and to ``width - edge``,
        ``height - edge`` (``edge`` 1: REAL-Colon, whose owners' exporter caps coordinates at W-1, H-1). A box with
        no width or height inside those limits is refused. Returns whether the row was kept."""
        info = self.ctx.polyps.get(key)
        xmin, ymin, xmax, ymax = box
        right, bottom = width - edge, height - edge
        if info is None:
            self.problem("unknown_lesion", f"{source}: lesion {key!r} is not in the metadata; expected a known id")
        elif info.refused is not None:
            self.problem("refused_lesion", f"{source}: box of lesion {key} skipped: {info.refused}")
        elif owner is not None and info.video_id != owner:
            self.problem("wrong_video", f"{source}: lesion {key} belongs to video {info.video_id}, not {owner}; "
                         "expected only this video's lesions (the row would leak across the split)")
        elif not frame_exists:
            self.problem("missing_frame", f"{source}: frame file {frame_path} is missing or not a regular file "
                         "inside the raw root; expected it beside the annotation")
        elif not (0 <= frame_index <= INT32_MAX and 0 < width <= INT32_MAX and 0 < height <= INT32_MAX):
            self.problem("bad_value", f"{source}: frame index {frame_index} or size {width}x{height} out of range; "
                         "expected a frame index >= 0 and a positive size within int32")
        elif not (frame_path.isascii() or _encodable(frame_path)):
            self.problem("bad_value", f"{source}: frame path {frame_path!r} is not valid UTF-8; expected UTF-8 names")
        elif xmin >= xmax or ymin >= ymax:
            self.problem("empty_box", f"{source}: box {list(box)} of {key}; expected xmin < xmax and ymin < ymax")
        elif xmax <= 0 or ymax <= 0 or xmin >= right or ymin >= bottom:
            limit = f" (coordinates capped at {right}, {bottom} as the owners' exporter does)" if edge else ""
            self.problem("box_outside_image", f"{source}: box {list(box)} of {key} lies wholly outside the "
                         f"{width}x{height} image{limit}; expected a box overlapping the image")
        elif (info.polyp_id, frame_index) in self._seen:
            self.problem("duplicate_box", f"{source}: {key} annotated twice on frame {frame_index}; "
                         "expected one box per polyp and frame")
        elif info.patient_id not in self.ctx.split_of:
            self.problem("unknown_patient", f"{source}: patient {info.patient_id} is not in the published split")
        else:
            if xmin < 0 or ymin < 0 or xmax > right or ymax > bottom:
                xmin, ymin, xmax, ymax = max(xmin, 0), max(ymin, 0), min(xmax, right), min(ymax, bottom)
                limit = f" (at most {right}, {bottom} as the owners' exporter caps them)" if edge else ""
                self.problem("clamped", f"{source}: box {list(box)} of {key} extends past the {width}x{height} "
                             f"image; clamped to {[xmin, ymin, xmax, ymax]}{limit}")
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

    def result(self, n_files: int = 0, n_negative: int = 0, fingerprint: str | None = None) -> UnitResult:
        size = self.columns["size_mm"]
        columns: dict[str, Any] = dict(self.columns)
        columns["size_class3"] = sizes.size_class3(size) if size else []  # vectorised, once per unit
        columns["size_class2"] = sizes.size_class2(size) if size else []
        if any(p.kind in IO_KINDS for p in self.problems):
            fingerprint = None  # the file system's state, not the content, decided: convert it again next time
        return UnitResult(pa.table(columns, schema=schema.FRAMES), self.problems, n_files, n_negative, fingerprint)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Converter(abc.ABC):
    """One raw dataset layout -> manifest rows. Each subclass is named by its entry in :mod:`polypbench.datasets`.

    ``dataset`` is the value of the manifest's ``dataset`` column and the prefix of ``polyp_id``: the name the
    user prepared under (an alias such as ``misawa`` keeps its name). Every method reports bad input as
    :class:`~polypbench.prepare.problems.Problem` s (appended to ``problems`` or to the unit's result) and raises
    :class:`~polypbench.errors.InputError` only when nothing at all can be read (no metadata table, no layout).
    """

    unit_name = "unit"
    """What a unit is, for the progress line (``video``, ``case``, ``subset``)."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset

    @abc.abstractmethod
    def polyps(self, raw: Path, problems: list[Problem]) -> dict[str, PolypInfo]:
        """Polyp metadata keyed by the id the annotations use; a bad row is reported in ``problems`` and its
        polyp marked ``refused``."""

    @abc.abstractmethod
    def units(self, raw: Path, problems: list[Problem]) -> list[Unit]:
        """The independent units of work found under ``raw``, in a stable order; inputs refused by the path policy
        (bad symlinks, duplicates, not a file) are reported in ``problems``."""

    @staticmethod
    @abc.abstractmethod
    def convert(ctx: Context, unit: Unit) -> UnitResult:
        """Convert one unit (runs in a worker process), with the fingerprint of what it read."""

    @staticmethod
    def fingerprint(ctx: Context, unit: Unit) -> str | None:  # noqa: ARG004 - the hook's signature (the default)
        """The fingerprint :meth:`convert` would return for ``unit`` now, computed without converting (a resumed
        run reuses a finished part only when it is unchanged); None when unknown (the unit is converted again)."""
        return None

    def notes(self, raw: Path) -> list[str]:  # noqa: ARG002 - the hook's signature (the default: no notes)
        """Facts about the dump worth reporting that are not problems (e.g. negative cases without boxes)."""
        return []


Job = tuple[type[Converter], Context, Unit, object]
"""(converter class, context, unit, the fingerprint of its finished part or None), sent to a worker."""


def convert_job(job: Job) -> tuple[Unit, UnitResult | None]:
    """Worker entry: None when the finished part (its fingerprint given) is still current, else the unit converted.
    Any unexpected exception becomes an ``internal`` problem naming the unit: never a traceback. (Here, not in the
    engine, so that a spawned worker imports only what converting needs.)"""
    converter, ctx, unit, done = job
    try:
        if done is not None and converter.fingerprint(ctx, unit) == done:
            return unit, None
        return unit, converter.convert(ctx, unit)
    except Exception as exc:  # noqa: BLE001 - the last resort of the policy in problems.py
        rows = RowBuilder(ctx)
        rows.internal(unit.path, exc)
        return unit, rows.result()
