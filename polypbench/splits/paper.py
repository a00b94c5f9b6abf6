"""The HAG/GR paper's own protocol, offered only for reproducing its numbers (it is NOT the public split).

The seed code (cosmoimd/feature-selection-gates, ``IMDKfoldSplitter.create_splits(mode="per_object")``) pools the
REAL-Colon and SUN frames, takes one representative row per object with ``groupby("unique_id").first()`` and runs
``StratifiedKFold(6, shuffle=True, random_state=1)`` on the objects' D/S/L size group. For test fold k the
validation fold is (k + 1) mod 6 and the other four folds train. The ORDER of the objects decides the folds: in the
seed's table SUN ids are integers (the case number) and REAL-Colon ids strings (``001-001_1``), so pandas sorts the
groups with every SUN case first, numerically (1, 2, ..., 100), then the REAL-Colon ids as strings.
:func:`generate_paper_split` rebuilds that order from the shipped public metadata (no data needed), so the
committed ``split_manifests/paper/v1.csv`` is the seed code's fold of each of the 232 objects. Folds are per object:
two polyps of one patient can sit in different folds (the public split never allows that).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from polypbench import catalog, datasets, schema, sizes
from polypbench.errors import InputError, choice_error
from polypbench.fileio import TEXT_ENCODING, file_sha256
from polypbench.manifest import Manifest
from polypbench.splits.public import published_dir

PAPER_FOLDS = 6
PAPER_SEED = 1
PAPER_VERSION = "v1"
PAPER_DIR = "paper"
COLUMNS = ("dataset", "polyp", "fold")
"""``dataset`` (registered name), ``polyp`` (the id after ``<dataset>/`` in ``polyp_id``), ``fold`` 0..5."""
GROUPS = ("Dim", "Small", "Large")
"""The seed's size-group labels (its ``map_to_class_gt``), by triclass label."""


def seed_objects() -> pd.DataFrame:
    """The 232 objects as the seed code keys them, in its order: ``unique_id`` (int for SUN, str for REAL-Colon),
    ``dataset``, ``polyp`` and ``gt_group``."""
    lesions = catalog.read_real_colon_lesions()
    cases = catalog.read_sun_cases()
    real = pd.DataFrame({"unique_id": lesions["unique_object_id"].astype(str).astype(object),
                         "dataset": "real-colon", "polyp": lesions["unique_object_id"].astype(str),
                         "size_mm": lesions["size [mm]"].astype(float)})
    sun = pd.DataFrame({"unique_id": cases["case_id"].astype(int).astype(object), "dataset": "sun",
                        "polyp": cases["case_id"].map(catalog.sun_patient_id), "size_mm": cases["size_mm"]})
    table = pd.concat([real, sun], ignore_index=True)
    table["gt_group"] = np.asarray(GROUPS, dtype=object)[sizes.size_class3(table["size_mm"])]
    # groupby(...).first() as the seed does: the sorted group keys give the order (ints first, then strings)
    first = table.groupby("unique_id", sort=True).first()
    return first.reset_index()[["unique_id", "dataset", "polyp", "gt_group"]]


def generate_paper_split() -> pd.DataFrame:
    """The seed code's per-object fold of every object, from the shipped metadata (``COLUMNS``, seed order)."""
    from sklearn.model_selection import StratifiedKFold  # lazy: importing scikit-learn costs about 1 s

    objects = seed_objects()
    fold = np.full(len(objects), -1, dtype=int)
    cv = StratifiedKFold(n_splits=PAPER_FOLDS, shuffle=True, random_state=PAPER_SEED)
    for k, (_, idx) in enumerate(cv.split(objects, objects["gt_group"])):
        fold[idx] = k
    return pd.DataFrame({"dataset": objects["dataset"], "polyp": objects["polyp"], "fold": fold})


def paper_split_file(split_dir: str | Path | None = None) -> Path:
    """``split_manifests/paper/v1.csv`` (published) or the one under ``split_dir``."""
    root = Path(split_dir) if split_dir is not None else published_dir()
    return root / PAPER_DIR / f"{PAPER_VERSION}.csv"


def read_paper_split(split_dir: str | Path | None = None) -> pd.DataFrame:
    """The committed per-object folds (checked: columns, folds 0..5, one row per object)."""
    path = paper_split_file(split_dir)
    if not path.is_file():
        raise InputError(path, "no such file", "the paper's fold file (run `polypbench splits generate`)")
    table = pd.read_csv(path, dtype={"dataset": str, "polyp": str}, encoding=TEXT_ENCODING)
    if tuple(table.columns) != COLUMNS:
        raise InputError(path, f"columns {', '.join(table.columns)}", f"columns {', '.join(COLUMNS)}")
    bad = ~table["fold"].isin(range(PAPER_FOLDS))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(path, repr(table["fold"].iloc[row]), f"a fold in 0..{PAPER_FOLDS - 1}", row=row + 2,
                         field="fold")
    if table.duplicated(["dataset", "polyp"]).any():
        dup = table.loc[table.duplicated(["dataset", "polyp"])].iloc[0]
        raise InputError(path, f"object {dup['dataset']}/{dup['polyp']} listed twice", "one row per object")
    return table


def fold_of(dataset: str, polyps: Sequence[str], split_dir: str | Path | None = None) -> np.ndarray:
    """The paper fold of each polyp key of ``dataset`` (a registered name, an alias or a re-annotation of a paper
    dataset: ``misawa`` and ``sun-seg`` use SUN's objects); -1 for a polyp the paper did not use."""
    spec = datasets.get(dataset)
    owner = spec.same_polyps_as or spec.name
    table = read_paper_split(split_dir)
    mine = table[table["dataset"] == owner].set_index("polyp")["fold"]
    return pd.Series(list(polyps), dtype=object).map(mine).fillna(-1).astype(int).to_numpy()


def paper_folds(prepared: Sequence[str | Path], split_dir: str | Path | None = None) -> pd.DataFrame:
    """The paper fold of every polyp of the ``prepared`` manifests (any order, any alias): ``polyp_id``,
    ``dataset``, ``patient_id``, ``size_mm``, ``size_class3``, ``paper_fold``; refuses a polyp the paper lacks."""
    parts = []
    for path in prepared:
        manifest = Manifest.open(path)
        polyps = manifest.polyps[["polyp_id", "dataset", "patient_id", "size_mm", "size_class3"]].copy()
        keys = polyps["polyp_id"].str.split("/", n=1).str[1]
        polyps["paper_fold"] = fold_of(manifest.dataset, keys.tolist(), split_dir)
        missing = polyps["paper_fold"] < 0
        if missing.any():
            raise InputError(manifest.root, f"polyp {polyps.loc[missing, 'polyp_id'].iloc[0]!r} is not one of the "
                             "paper's 232 objects", "manifests of REAL-Colon and SUN (or its aliases)")
        parts.append(polyps)
    return pd.concat(parts, ignore_index=True).sort_values("polyp_id", kind="stable", ignore_index=True)


def paper_split(paper_fold: pd.Series, test_fold: int, n_folds: int = PAPER_FOLDS) -> pd.Series:
    """Split name per object for one run of the paper's protocol: test fold k, validation fold k+1, train rest
    (``none`` for an object the paper did not use)."""
    out = pd.Series("train", index=paper_fold.index)
    out[paper_fold < 0] = "none"
    out[paper_fold == test_fold] = "test"
    out[paper_fold == (test_fold + 1) % n_folds] = "validation"
    return out


def row_folds(manifest: Manifest, table: str = "frames") -> pd.Series:
    """The paper's fold of every row of ``manifest``'s ``table`` (``frames`` or ``polyps``), by public id whatever
    the alias; -1 for a polyp the paper did not use. Refuses a manifest prepared with another paper fold file."""
    recorded = manifest.metadata.get(schema.META_PAPER_SPLIT_HASH)
    if recorded is not None and recorded != file_sha256(paper_split_file()):
        raise InputError(manifest.root, f"prepared with another paper fold file (sha256 {recorded[:12]})",
                         "a manifest prepared with this polypbench version (re-run `polypbench prepare`)")
    ids = manifest.polyps["polyp_id"].astype(str)
    folds = fold_of(manifest.dataset, ids.str.split("/", n=1).str[1].tolist())
    fold_by_id = dict(zip(ids, (int(f) for f in folds), strict=True))
    df = manifest.frames if table == "frames" else manifest.polyps
    return df["polyp_id"].astype(str).map(fold_by_id).fillna(-1).astype(int)


def select(manifest: Manifest, split: str, fold: int | None = None, *, table: str = "frames",
           protocol: str = "public") -> pd.DataFrame:
    """Rows of one split (or ``all`` rows) of ``manifest``'s ``table`` under ``protocol``.

    ``public``: the published split, :meth:`Manifest.select` (``fold`` k: public cross-validation fold k).
    ``paper``: the paper's per-object folds, ``fold`` k required: ``test`` is paper fold k, ``validation`` fold
    (k + 1) mod 6, ``train`` the rest (:func:`paper_split`).
    """
    if protocol not in schema.PROTOCOLS:
        raise choice_error("protocol", protocol, schema.PROTOCOLS)
    if protocol == "public" or split == "all":
        return manifest.select(split, fold, table=table)
    if split not in schema.SELECTIONS:
        raise choice_error("split", split, schema.SELECTIONS)
    if fold is None or not 0 <= fold < PAPER_FOLDS:
        raise choice_error("paper-protocol fold (the test fold)", fold, range(PAPER_FOLDS))
    df = manifest.frames if table == "frames" else manifest.polyps
    mask = paper_split(row_folds(manifest, table), fold) == split
    return df.loc[mask.to_numpy()].reset_index(drop=True)
