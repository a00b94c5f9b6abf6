"""Public metadata of the supported datasets, shipped as package data (see ATTRIBUTION.md).

The readers here also parse the same tables inside a raw dump, so a converter and the synthetic generator
read metadata through one code path and refuse a table with missing columns with one line.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pandas as pd

from polypbench.errors import InputError
from polypbench.fileio import TEXT_ENCODING

REAL_COLON_LESION_COLUMNS = (
    "unique_object_id",
    "unique_video_name",
    "size [mm]",
    "site",
    "histology_extended",
    "histology_class",
)
REAL_COLON_VIDEO_COLUMNS = (
    "unique_video_name",
    "age",
    "sex",
    "endoscope_brand",
    "fps",
    "num_frames",
    "num_lesions",
    "bbps",
)
SUN_CASE_COLUMNS = ("case_id", "num_frames", "shape", "size", "location", "pathology")

_SUN_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*mm\s*(-?)\s*$")


def shipped_path(dataset: str, name: str) -> Path:
    """Path of a shipped metadata file, e.g. ``shipped_path("real-colon", "lesion_info.csv")``."""
    return Path(str(resources.files("polypbench.catalog").joinpath(dataset, name)))


def _read_csv(path: Path, columns: tuple[str, ...], dtype: dict[str, str]) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(path, "no such file", f"a metadata CSV with columns {', '.join(columns)}")
    try:
        df = pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=[""], encoding=TEXT_ENCODING)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(path, f"unreadable CSV ({first})", f"a CSV with columns {', '.join(columns)}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(map(repr, missing))}", f"columns {', '.join(columns)}")
    return df


def read_real_colon_lesion_table(path: str | Path) -> pd.DataFrame:
    """REAL-Colon ``lesion_info.csv`` as written, rows in file order, values unchecked (``prepare`` checks each row
    and refuses a bad one alone); only a missing file or column raises."""
    return _read_csv(Path(path), REAL_COLON_LESION_COLUMNS, {"unique_object_id": "str", "unique_video_name": "str"})


def read_real_colon_lesions(path: str | Path | None = None) -> pd.DataFrame:
    """REAL-Colon ``lesion_info.csv`` (the dump's, or the shipped copy), rows in file order; a bad size raises."""
    path = Path(path) if path is not None else shipped_path("real-colon", "lesion_info.csv")
    df = read_real_colon_lesion_table(path)
    sizes = pd.to_numeric(df["size [mm]"], errors="coerce")
    bad = sizes.isna() | (sizes < 0) | (sizes == float("inf"))
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0]) + 2  # 1-based, after the header
        raise InputError(path, f"{df['size [mm]'].iloc[row - 2]!r}", "a size in mm", row=row, field="size [mm]")
    return df.assign(**{"size [mm]": sizes.astype("float64")})


def read_real_colon_videos(path: str | Path | None = None) -> pd.DataFrame:
    """REAL-Colon ``video_info.csv`` (the dump's, or the shipped copy)."""
    path = Path(path) if path is not None else shipped_path("real-colon", "video_info.csv")
    return _read_csv(path, REAL_COLON_VIDEO_COLUMNS, {"unique_video_name": "str", "endoscope_brand": "str"})


def parse_sun_size(text: str) -> float:
    """Size string of SUN's Table 2 in mm: ``"6mm"`` -> 6.0, ``"15mm-"`` (15 mm or more) -> 15.0."""
    match = _SUN_SIZE.match(str(text))
    if match is None:
        raise ValueError(f"size {text!r}: expected '<n>mm' or '<n>mm-'")
    return float(match.group(1))


def read_sun_cases(path: str | Path | None = None) -> pd.DataFrame:
    """SUN's per-case table (Table 2 of the SUN website) with a parsed ``size_mm`` column."""
    path = Path(path) if path is not None else shipped_path("sun", "cases.csv")
    df = _read_csv(path, SUN_CASE_COLUMNS, {"size": "str"})
    sizes = []
    for row, text in enumerate(df["size"], start=2):
        try:
            sizes.append(parse_sun_size(text))
        except ValueError:
            raise InputError(path, f"{text!r}", "'<n>mm' or '<n>mm-'", row=row, field="size") from None
    return df.assign(case_id=df["case_id"].astype(int), size_mm=sizes)


def real_colon_polyps() -> pd.DataFrame:
    """REAL-Colon's lesions from the shipped table: ``patient_id`` (the video) and ``size_mm``, one row per lesion."""
    lesions = read_real_colon_lesions()
    return pd.DataFrame({"patient_id": lesions["unique_video_name"].astype(str),
                         "size_mm": lesions["size [mm]"].astype("float64")})


def sun_patient_id(case: int | str) -> str:
    """SUN case number -> patient id (``case1``), as the raw folders name it."""
    return f"case{int(case)}"


def sun_polyps() -> pd.DataFrame:
    """SUN's polyps from the shipped case table: ``patient_id`` (the case) and ``size_mm``, one row per case."""
    cases = read_sun_cases()
    return pd.DataFrame({"patient_id": cases["case_id"].map(sun_patient_id), "size_mm": cases["size_mm"]})
