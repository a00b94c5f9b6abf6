"""What the server scores: the public track's datasets (one scope per dataset, plus ``pooled``) and the private
track's test set, split by patient into a public part (the live board) and a private part (the final ranking).

- Public track: the prepared folders given with ``--labels`` (their test splits). A submission may cover any subset
  of the datasets; each covered dataset is scored on its own (so every entry of a dataset's board is scored on the
  same patient resamples), and ``pooled`` when the file covers every dataset of :attr:`PublicTrack.pool`. Datasets
  are compared as registry datasets, never by name: one dataset under two names (``sun`` and its alias ``misawa``)
  is refused, and a dataset that re-annotates another served dataset's polyps (SUN-SEG beside SUN or ``misawa``)
  is never pooled with it.
- Private track: the prepared folders given with ``--private-labels`` (scored together, so neither one dataset
  twice nor a re-annotation beside its original); participants never see their frames or labels. Patients are
  ordered by a seeded hash and the first ``public_fraction`` of them form the public part.
  Each part is written once as a derived prepared folder (the same files, with the other part's test rows moved
  out of the test split), so each part is scored by the one scorer through the public :class:`Manifest` API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from polypbench import datasets as registry
from polypbench import schema
from polypbench.errors import InputError, PolypbenchError
from polypbench.evaluate import Truth
from polypbench.evaluate.truth import load_truth
from polypbench.evaluate.validate import POLYP_KEY
from polypbench.leaderboard.columns import Part

if TYPE_CHECKING:
    from polypbench.leaderboard.config import Settings
from polypbench.leaderboard.uploads import max_rows
from polypbench.manifest import Manifest

log = logging.getLogger(__name__)

POOLED = "pooled"
PARTS = tuple(Part)
"""The private track's parts, in board order."""


def _registry_name(name: str) -> str:
    """The registry dataset a served manifest's name stands for (``misawa`` is ``sun``); a name the registry does
    not know stands for itself."""
    return registry.canonical(name) if name in registry.names() else name


def _same_polyps_as(name: str) -> str | None:
    """The registry dataset whose polyps ``name``'s dataset re-annotates (SUN-SEG: SUN), if any."""
    return registry.get(name).same_polyps_as if name in registry.names() else None


def served_datasets(manifests: Sequence[Manifest], option: str, *, pooled: bool) -> dict[str, str]:
    """Each prepared folder's dataset name -> the registry dataset it is, resolved once at start-up: two folders of
    one registry dataset (``sun`` and ``misawa``) are refused, and with ``pooled`` (a track that scores all its
    datasets together) so is a dataset beside the one whose polyps it re-annotates (SUN-SEG beside SUN)."""
    out: dict[str, str] = {}
    for manifest in manifests:
        name = manifest.dataset
        canonical = _registry_name(name)
        other = next((n for n, c in out.items() if c == canonical), None)
        if other is not None:
            alias = f" is the dataset {canonical!r}" if name != canonical or other != canonical else ""
            raise InputError(manifest.root, f"{option}: {name!r}{alias}, served twice (also as {other!r})",
                             "one prepared folder per dataset")
        out[name] = canonical
    if pooled:
        for name, canonical in out.items():
            owner = _same_polyps_as(canonical)
            if owner in out.values():
                raise InputError(option, f"{name!r} re-annotates the polyps of {owner!r}, also served",
                                 "datasets with polyps of their own (they are scored together)")
    return out


def _summary(truth: Truth) -> dict[str, Any]:
    meta = truth.manifests[0]
    return {"split_version": meta.get("split_version", ""), "split_sha256": meta.get("split_sha256", ""),
            "n_frames": truth.n_frames, "n_polyps": truth.n_polyps, "n_patients": truth.n_patients}


class PublicTrack:
    """The public track's datasets and the truth of any subset of them (built once, then cached). Each prepared
    folder is opened once, at start-up: every later read (names, truths, known polyps) uses that
    :class:`Manifest`."""

    def __init__(self, labels: Sequence[str | Path]) -> None:
        manifests = [Manifest.open(p) for p in labels]
        self.registry_names = served_datasets(manifests, "--labels", pooled=False)  # name -> registry dataset
        self.manifests: dict[str, Manifest] = dict(zip(self.registry_names, manifests, strict=True))
        self.paths: dict[str, Path] = {name: m.root for name, m in self.manifests.items()}
        if not self.paths:
            raise InputError("--labels", "no prepared folder", "at least one prepared folder")
        self.names = tuple(sorted(self.paths))
        self._truths: dict[frozenset[str], Truth] = {}
        self._lock = threading.Lock()
        self.summaries = {name: _summary(self.truth([name])) for name in self.names}
        served = set(self.registry_names.values())  # registry datasets, never names: misawa is sun
        self.pool = tuple(n for n in self.names if _same_polyps_as(self.registry_names[n]) not in served)
        self.n_frames = sum(s["n_frames"] for s in self.summaries.values())
        self.row_cap = max_rows(self.n_frames)
        self._known = {name: set(self.manifests[name].polyps["polyp_id"].astype(str)) for name in self.names}

    @property
    def scopes(self) -> list[str]:
        """Board scopes: each dataset, then ``pooled``."""
        return [*self.names, POOLED]

    def truth(self, names: Iterable[str]) -> Truth:
        key = frozenset(names)
        with self._lock:
            if key not in self._truths:
                self._truths[key] = load_truth([self.manifests[n] for n in sorted(key)], "test")
            return self._truths[key]

    def covered(self, predictions: pd.DataFrame) -> list[str]:
        """The served datasets that ``predictions`` has rows of (by polyp id, any split)."""
        if POLYP_KEY not in predictions:
            return list(self.names)  # the validator names the missing column
        col = predictions[POLYP_KEY]
        values = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else pd.unique(col.dropna())
        ids = {str(v) for v in values}
        return [name for name in self.names if ids & self._known[name]]

    def info(self) -> dict[str, Any]:
        out = []
        for name in self.names:
            spec = registry.get(name) if name in registry.names() else None
            out.append({"name": name, "title": spec.title if spec else name, "licence": spec.licence if spec else "",
                        "split": "test", **self.summaries[name]})
        return {"datasets": out, "pooled": list(self.pool), "scopes": self.scopes, "max_rows": self.row_cap}


def _patient_order(patients: pd.DataFrame, seed: int) -> list[tuple[str, str]]:
    keys = list(zip(patients["dataset"].astype(str), patients["patient_id"].astype(str), strict=True))
    return sorted(keys, key=lambda k: hashlib.sha256(f"{seed}\x00{k[0]}\x00{k[1]}".encode()).hexdigest())


def _write_part(src: Path, dst: Path, keep: set[tuple[str, str]]) -> None:
    """``src`` copied to ``dst`` with every test row of a patient outside ``keep`` moved to the train split."""
    dst.mkdir(parents=True)
    for file in (schema.FRAMES_FILE, schema.POLYPS_FILE):
        table = pq.read_table(src / file)
        df = table.select(["dataset", "patient_id", "split"]).to_pandas()
        pairs = zip(df["dataset"].astype(str), df["patient_id"].astype(str), strict=True)
        outside = np.array([p not in keep for p in pairs], dtype=bool) & (df["split"] == "test").to_numpy()
        split = np.where(outside, "train", df["split"].to_numpy(dtype=object))
        index = table.schema.get_field_index("split")
        table = table.set_column(index, table.schema.field(index), pa.array(split, type=table.schema.field(index).type))
        pq.write_table(table, dst / file)


class PrivateTrack:
    """The private test set and its two parts; ``truths[part]`` scores a part, ``polyps[part]`` are its polyp ids."""

    def __init__(self, labels: Sequence[str | Path], work_dir: str | Path, *, public_fraction: float = 0.5,
                 seed: int = 0) -> None:
        if not 0 < public_fraction < 1:
            raise PolypbenchError(f"public fraction {public_fraction}: expected a number in (0, 1)")
        self.paths = [Path(p) for p in labels]
        if not self.paths:
            raise InputError("--private-labels", "no prepared folder", "at least one prepared folder")
        manifests = [Manifest.open(p) for p in self.paths]  # each opened once
        self.names = tuple(served_datasets(manifests, "--private-labels", pooled=True))
        full = load_truth(manifests, "test")
        order = _patient_order(full.patients, seed)
        if len(order) < 2:
            raise InputError(", ".join(map(str, self.paths)), f"{len(order)} test patient(s)",
                             "at least 2 test patients to split into a public and a private part")
        n_public = min(len(order) - 1, max(1, round(public_fraction * len(order))))
        members = {Part.PUBLIC: set(order[:n_public]), Part.PRIVATE: set(order[n_public:])}
        digest = hashlib.sha256(json.dumps([[str(p.resolve()) for p in self.paths], public_fraction, seed,
                                            [os.stat(p / schema.FRAMES_FILE).st_mtime_ns for p in self.paths]])
                                .encode()).hexdigest()[:16]
        root = Path(work_dir) / "private-parts" / digest
        if not root.is_dir():
            tmp = root.with_name(f"{digest}.tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            for part in PARTS:
                for path, name in zip(self.paths, self.names, strict=True):
                    _write_part(path, tmp / part.value / name, members[part])
            try:
                os.replace(tmp, root)
            except OSError:  # another process wrote it first
                shutil.rmtree(tmp, ignore_errors=True)
        self.truths = {part: load_truth([root / part.value / n for n in self.names], "test") for part in PARTS}
        self.polyps = {part: set(self.truths[part].polyps["polyp_id"].astype(str)) for part in PARTS}
        self.public_fraction = public_fraction
        self.n_frames = full.n_frames
        log.info("private track: %d test patients, %d in the public part", len(order), n_public)

    def info(self) -> dict[str, Any]:
        return {"datasets": list(self.names), "parts": [part.value for part in PARTS],
                "public_fraction": self.public_fraction}


def open_tracks(settings: Settings, store_root: Path) -> tuple[PublicTrack | None, PrivateTrack | None]:
    """The tracks that ``settings`` serves (None where it gives no labels), for the server and the worker alike."""
    public = PublicTrack(settings.labels) if settings.labels else None
    private = None
    if settings.private_labels:
        private = PrivateTrack(settings.private_labels, store_root, public_fraction=settings.private_public_fraction,
                               seed=settings.private_seed)
    return public, private

