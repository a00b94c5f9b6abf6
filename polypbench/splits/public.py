"""The fixed public splits: how each `split_manifests/<dataset>/v1.csv` is generated, and how it is read.

Splits are assigned per PATIENT, never per frame or per polyp, so two polyps of one patient never sit on both
sides (stricter than the HAG/GR paper's per-object folds, on purpose). Files are keyed only by public ids.

- REAL-Colon: the dataset owners' official video split (in each study 001-004: videos 001-010 train, 011-012
  validation, 013-015 test) and 5 folds over the train+validation videos, grouped by video and stratified by
  size class as far as groups allow (StratifiedGroupKFold; videos without lesions form their own stratum).
- SUN: no official split exists (SUN-SEG's "Seen" test clips share polyps with its training clips). 20% of the
  100 cases are held out as test, stratified by size class, and 5 stratified folds cover the rest. A case is
  treated as a patient (SUN has 99 patients for 100 cases; the website does not say which two cases share one).
  Fold 0 is the default ``validation`` split, folds 1-4 ``train``. SUN-SEG and misawa use SUN's file.
"""

from __future__ import annotations

import io
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from polypbench import catalog, datasets, sizes
from polypbench.datasets import DatasetSpec
from polypbench.errors import InputError
from polypbench.fileio import TEXT_ENCODING

SPLIT_VERSION = "v1"
N_FOLDS = 5
SEED = 0
COLUMNS = ("patient_id", "split", "fold")
PACKAGED_DIR = "split_manifests"
"""Folder of the published split files inside the installed package (copied from the checkout's
``split_manifests/`` when the wheel is built; see setup.py)."""


def published_dir() -> Path:
    """The published split files: the installed package's copy, or the checkout's ``split_manifests/``."""
    packaged = Path(str(resources.files("polypbench").joinpath(PACKAGED_DIR)))
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / PACKAGED_DIR
    if checkout.is_dir():
        return checkout
    raise InputError(packaged, "no published split files", "a polypbench installation with its split_manifests/")


def real_colon_split() -> pd.DataFrame:
    """Generate REAL-Colon's public split from the shipped metadata (one row per video)."""
    from sklearn.model_selection import StratifiedGroupKFold  # lazy: converter workers never need scikit-learn

    videos = catalog.read_real_colon_videos()["unique_video_name"].astype(str)
    number = videos.str.split("-").str[1].astype(int)
    split = np.select([number <= 10, number <= 12], ["train", "validation"], "test")
    table = pd.DataFrame({"patient_id": videos, "split": split, "fold": -1})

    lesions = catalog.read_real_colon_lesions()
    dev = table.loc[table["split"] != "test", "patient_id"]
    samples = pd.DataFrame({"patient_id": lesions["unique_video_name"].astype(str),
                            "stratum": sizes.size_class3(lesions["size [mm]"]).astype(int)})
    samples = samples[samples["patient_id"].isin(dev)]
    lesionless = dev[~dev.isin(samples["patient_id"])]
    samples = pd.concat([samples, pd.DataFrame({"patient_id": lesionless, "stratum": 3})], ignore_index=True)
    cv = StratifiedGroupKFold(n_splits=N_FOLDS, shuffle=True, random_state=SEED)
    fold_of: dict[str, int] = {}
    with warnings.catch_warnings():
        # Only 2 large polyps sit in train+validation: fewer than 5 folds. Expected, and documented.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds = list(cv.split(samples, samples["stratum"], samples["patient_id"]))
    for fold, (_, idx) in enumerate(folds):
        fold_of.update(dict.fromkeys(samples["patient_id"].iloc[idx], fold))
    table["fold"] = table["patient_id"].map(fold_of).fillna(-1).astype(int)
    return table


def sun_split() -> pd.DataFrame:
    """Generate SUN's public split from the shipped case table (one row per case)."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    cases = catalog.read_sun_cases()
    ids = cases["case_id"].map(catalog.sun_patient_id)
    strata = sizes.size_class3(cases["size_mm"])
    dev_ids, _ = train_test_split(ids, test_size=0.2, stratify=strata, random_state=SEED)
    table = pd.DataFrame({"patient_id": ids, "split": "test", "fold": -1})
    dev = table["patient_id"].isin(dev_ids)
    cv = StratifiedKFold(n_splits=N_FOLDS, shuffle=True, random_state=SEED)
    dev_index = np.flatnonzero(dev.to_numpy())
    for fold, (_, idx) in enumerate(cv.split(dev_index, strata[dev_index])):
        table.loc[dev_index[idx], "fold"] = fold
    table.loc[dev, "split"] = np.where(table.loc[dev, "fold"] == 0, "validation", "train")
    return table


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    """The canonical bytes of a split file (LF line ends, fixed column order, rows in metadata order)."""
    buf = io.StringIO()
    table.loc[:, list(COLUMNS)].to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode()


def split_file(dataset: str | DatasetSpec, split_dir: str | Path | None = None) -> Path:
    """Path of the published split file used by ``dataset`` (a name, or its spec; or of the one in ``split_dir``)."""
    name = f"{datasets.spec_of(dataset).split_file}/{SPLIT_VERSION}.csv"
    return (Path(split_dir) if split_dir is not None else published_dir()) / name


def read_split(dataset: str | DatasetSpec, split_dir: str | Path | None = None) -> pd.DataFrame:
    """Read (and check) the split file of ``dataset`` (a name, or its spec): patient_id, split, fold."""
    path = split_file(dataset, split_dir)
    if not path.is_file():
        raise InputError(path, "no such file", "a split file (run `polypbench splits generate`)")
    table = pd.read_csv(path, dtype={"patient_id": str, "split": str}, encoding=TEXT_ENCODING)
    if tuple(table.columns) != COLUMNS:
        raise InputError(path, f"columns {', '.join(table.columns)}", f"columns {', '.join(COLUMNS)}")
    bad = ~table["split"].isin(["train", "validation", "test"])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(path, repr(table["split"].iloc[row]), "train, validation or test", row=row + 2, field="split")
    if table["patient_id"].duplicated().any():
        dup = table.loc[table["patient_id"].duplicated(), "patient_id"].iloc[0]
        raise InputError(path, f"duplicate patient {dup!r}", "one row per patient", field="patient_id")
    return table


def class_counts(dataset: str | DatasetSpec, split_dir: str | Path | None = None) -> pd.DataFrame:
    """Polyps per size class for every split and fold of ``dataset``'s published split, plus patients."""
    spec = datasets.spec_of(dataset)
    table = read_split(spec, split_dir)
    polyps = spec.catalog_polyps()
    polyps["class"] = pd.Categorical.from_codes(sizes.size_class3(polyps["size_mm"]), sizes.CLASS_SCHEMES["triclass"])
    merged = polyps.merge(table, on="patient_id", how="left", validate="many_to_one")
    counts = pd.crosstab([merged["split"], merged["fold"]], merged["class"], dropna=False)
    counts = counts.loc[(counts.sum(axis=1) > 0)] if len(counts) else counts
    counts["polyps"] = counts.sum(axis=1)
    patients = table.groupby(["split", "fold"]).size().rename("patients")
    out = counts.join(patients, how="outer").fillna(0).astype(int)
    order = {"train": 0, "validation": 1, "test": 2}
    return out.sort_index(key=lambda idx: idx.map(order) if idx.name == "split" else idx)
