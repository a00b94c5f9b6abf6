"""Reading and validating a prediction file (DESIGN.md section 4): the one validator for evaluate and the leaderboard.

:func:`read_bounded` is the one bounded reader both use: before any data page is read, a Parquet file's footer
length, column count, row count and decompressed size (from its metadata), or a CSV file's line count (streamed),
is checked against :func:`max_rows` of the frames being scored; then only the contract's columns are read, batch by
batch, stopping at the cap. A 400 KB file declaring 30 M rows is refused in milliseconds, locally as on the board.

Every problem is one line naming the file, the column, the rows (1-based data rows: in a CSV, row N is on line N+1,
after the header) and the expectation. All problems are collected and raised together in one
:class:`SubmissionError`; nothing is scored from a file with any problem.
"""

from __future__ import annotations

import csv
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from polypbench.errors import PolypbenchError
from polypbench.evaluate.truth import ManifestLike, Truth, frame_key, load_truth
from polypbench.fileio import TEXT_ENCODING, decode_text

POLYP_KEY = "polyp_id"
FRAME_KEY = "frame_index"
SIZE = "size_mm"
PROBS = ("p0", "p1", "p2")
CLASS3 = "class3"
CSV_OPTIONS: dict[str, Any] = {"dtype": {POLYP_KEY: "category"}, "keep_default_na": True, "encoding": TEXT_ENCODING}
"""How a CSV prediction file is parsed (``pandas.read_csv``), whole or bounded (:func:`read_bounded`)."""
PROB_TOLERANCE = 1e-3
"""Probabilities of a row must sum to 1 within this."""
_SHOWN = 5
"""How many rows or keys one problem line names before it says how many more there are."""
CONTRACT_COLUMNS = (POLYP_KEY, FRAME_KEY, SIZE, *PROBS, CLASS3)
"""The columns the validator reads; any other column of a file is never loaded."""
ROW_FACTOR = 4
"""A prediction file may have at most this many times the scored frames as rows (plus :data:`ROW_SLACK`)."""
ROW_SLACK = 1000
BYTES_PER_ROW = 160
"""Decompressed Parquet bytes of the contract's columns allowed per allowed row (a plain-encoded row with every
column, id of 30 characters, is about 90 bytes)."""
PARQUET_FOOTER = 1024 * 1024
"""Largest Parquet footer (schema and row-group metadata) read at all."""
MAX_COLUMNS = 64
"""Columns of a prediction file (Parquet or CSV): the contract has 7 (DESIGN.md section 4); others are never read."""
CSV_HEADER = 16 * 1024
"""Bytes of a CSV file's header record (64 column names of up to 250 characters)."""
CSV_BYTES_PER_ROW = 1024
"""Bytes a CSV file may have per allowed row (:data:`ROW_FACTOR`): 64 columns of 16 characters; a file
``polypbench predict`` writes has about 40."""
_CHUNK = 1024 * 1024


class SubmissionError(PolypbenchError):
    """A prediction file with problems; ``problems`` holds one line per problem, and ``str()`` is those lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class ValidPredictions:
    """A validated prediction file, re-ordered to the truth's order (its frames or its polyps, by ``level``).

    ``size_mm`` (n,), ``probs`` (n, 3) and ``class3`` (n,) are None when the file has no such column.
    """

    name: str
    level: str
    n_rows: int
    size_mm: np.ndarray | None
    probs: np.ndarray | None
    class3: np.ndarray | None

    @property
    def columns(self) -> list[str]:
        cols = [POLYP_KEY] + ([FRAME_KEY] if self.level == "frame" else [])
        cols += [SIZE] if self.size_mm is not None else []
        cols += list(PROBS) if self.probs is not None else []
        return cols + ([CLASS3] if self.class3 is not None else [])


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read a Parquet (``.parquet``, ``.pq``) or CSV (``.csv``) prediction file; refuse anything else."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            names = pq.read_schema(path).names
            table = pq.read_table(path, read_dictionary=[POLYP_KEY] if POLYP_KEY in names else None)
            return table.to_pandas()
        if suffix == ".csv":
            return pd.read_csv(path, **CSV_OPTIONS)
    except pd.errors.EmptyDataError:
        problem = f"{path}: empty file; expected a header and one row per test frame or polyp"
        raise SubmissionError([problem]) from None
    except (OSError, ValueError, UnicodeDecodeError, pa.ArrowException) as exc:
        kind = "Parquet" if suffix != ".csv" else "CSV"
        reason = " ".join(str(exc).split())[:200]
        problem = f"{path}: not a readable {kind} file ({reason}); expected a {kind} prediction file"
        raise SubmissionError([problem]) from None
    kind = suffix or "(none)"
    raise SubmissionError([f"{path}: file type {kind!r} is not Parquet/CSV; expected a .parquet or .csv file"])


def max_rows(n_frames: int) -> int:
    """The most rows a prediction file for ``n_frames`` scored frames may have (checked before it is read)."""
    return n_frames * ROW_FACTOR + ROW_SLACK


def _too_many(name: str, what: str, row_cap: int) -> SubmissionError:
    return SubmissionError([f"{name}: {what}; expected at most {row_cap} ({ROW_FACTOR} times the frames scored, "
                            f"plus {ROW_SLACK})"])


def _unreadable(name: str, reason: str) -> SubmissionError:
    return SubmissionError([f"{name}: not a readable Parquet file ({reason}); expected a Parquet prediction file"])


def _parquet_checks(path: Path, name: str, row_cap: int) -> pq.ParquetFile:
    """The Parquet file at ``path``, opened once its footer, columns, rows and decompressed size are within bounds."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size < 12:
            raise _unreadable(name, "too short")
        fh.seek(size - 8)
        tail = fh.read(8)
    footer, magic = struct.unpack("<I4s", tail)
    if magic != b"PAR1":
        raise _unreadable(name, "no Parquet footer")
    if footer > min(PARQUET_FOOTER, size - 12):
        raise SubmissionError([f"{name}: Parquet footer of {footer} bytes; expected at most {PARQUET_FOOTER} bytes "
                               "of metadata"])
    try:
        parquet = pq.ParquetFile(path)
        if POLYP_KEY in parquet.schema_arrow.names:  # text ids as a dictionary: pandas categories, as CSV is read
            parquet = pq.ParquetFile(path, read_dictionary=[POLYP_KEY])
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise _unreadable(name, " ".join(str(exc).split())[:200]) from None
    meta = parquet.metadata
    if meta.num_columns > MAX_COLUMNS:
        raise SubmissionError([f"{name}: {meta.num_columns} columns; expected at most {MAX_COLUMNS}"])
    if meta.num_rows > row_cap:
        raise _too_many(name, f"declares {meta.num_rows} rows", row_cap)
    wanted = [i for i, n in enumerate(parquet.schema_arrow.names) if n in CONTRACT_COLUMNS]
    decompressed = sum(meta.row_group(g).column(c).total_uncompressed_size
                       for g in range(meta.num_row_groups) for c in wanted)
    byte_cap = row_cap * BYTES_PER_ROW
    if decompressed > byte_cap:
        raise SubmissionError([f"{name}: {decompressed} bytes once decompressed; expected at most {byte_cap}"])
    return parquet


def _read_parquet(path: Path, name: str, row_cap: int) -> pd.DataFrame:
    parquet = _parquet_checks(path, name, row_cap)
    columns = [c for c in parquet.schema_arrow.names if c in CONTRACT_COLUMNS]
    batches, rows = [], 0
    try:
        for batch in parquet.iter_batches(batch_size=65_536, columns=columns):
            rows += batch.num_rows
            if rows > row_cap:  # the metadata lied about its row count
                raise _too_many(name, f"more than {row_cap} rows", row_cap)
            batches.append(batch)
        table = pa.Table.from_batches(batches) if batches else parquet.schema_arrow.empty_table().select(columns)
        return table.replace_schema_metadata(None).to_pandas()
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise _unreadable(name, " ".join(str(exc).split())[:200]) from None


def _csv_header(path: Path, name: str) -> None:
    """Refuse a CSV file whose header record has more than :data:`MAX_COLUMNS` columns or more than
    :data:`CSV_HEADER` bytes, reading that record alone. It is the first non-blank record as the :mod:`csv` module
    splits it, which is the tokenizer pandas derives from: quoted fields may hold separators and line breaks, and a
    record ends at ``\\n``, ``\\r\\n`` or a lone ``\\r``."""
    with path.open("rb") as fh:
        head = fh.read(CSV_HEADER + 2)
    text = decode_text(head, errors="replace")
    read: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):  # splits at \n, \r\n and \r, keeping them
            read.append(line)
            yield line

    try:
        record = next((r for r in csv.reader(lines()) if r and not (len(r) == 1 and not r[0].strip())), [])
    except csv.Error as exc:
        raise SubmissionError([f"{name}: not a readable CSV file (header: {exc}); expected a CSV prediction "
                               "file"]) from None
    whole = len(head) <= CSV_HEADER + 1 or sum(map(len, read)) < len(text)
    contract = f"(the contract's columns are {', '.join(CONTRACT_COLUMNS)})"
    if len(record) > MAX_COLUMNS:
        count = f"{len(record)}" if whole else f"more than {MAX_COLUMNS}"
        raise SubmissionError([f"{name}: {count} columns in the header; expected at most {MAX_COLUMNS} {contract}"])
    if not whole:
        raise SubmissionError([f"{name}: header longer than {CSV_HEADER} bytes; expected a header of column names "
                               f"{contract}"])


def _csv_rows(path: Path) -> int:
    """At least the data rows of a CSV file (records ended by ``\\n``, ``\\r\\n`` or a lone ``\\r``, as pandas
    reads them, less the header), counted in chunks without parsing; a quoted line break counts as a row."""
    ends, size, cr_before, last = 0, 0, False, b""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            size += len(chunk)
            ends += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
            ends -= cr_before and chunk[:1] == b"\n"  # a \r\n split between two chunks
            cr_before = chunk[-1:] == b"\r"
            last = chunk[-1:]
    unterminated = size > 0 and last not in (b"\n", b"\r")
    return ends + unterminated - 1


def _read_csv(path: Path, name: str, row_cap: int) -> pd.DataFrame:
    """A CSV prediction file checked before it is parsed (header record, bytes, rows under any line terminator),
    then parsed as :func:`read_predictions` parses it, the contract's columns only and at most ``row_cap`` + 1
    rows."""
    _csv_header(path, name)
    size, byte_cap = path.stat().st_size, CSV_HEADER + row_cap * CSV_BYTES_PER_ROW
    if size > byte_cap:
        raise SubmissionError([f"{name}: {size} bytes; expected at most {byte_cap} ({CSV_BYTES_PER_ROW} bytes per "
                               "allowed row)"])
    if _csv_rows(path) > row_cap:
        raise _too_many(name, f"more than {row_cap} rows", row_cap)
    try:
        frame = pd.read_csv(path, usecols=lambda c: c in CONTRACT_COLUMNS, nrows=row_cap + 1, **CSV_OPTIONS)
    except pd.errors.EmptyDataError:
        raise SubmissionError([f"{name}: empty file; expected a header and one row per test frame or "
                               "polyp"]) from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise SubmissionError([f"{name}: not a readable CSV file ({reason}); expected a CSV prediction file"]) from None
    if len(frame) > row_cap:  # never reached while _csv_rows over-counts; kept as the parser's own bound
        raise _too_many(name, f"more than {row_cap} rows", row_cap)
    return frame


def read_bounded(path: str | Path, name: str, row_cap: int) -> pd.DataFrame:
    """The prediction file at ``path`` (shown as ``name`` in problems), read within ``row_cap`` rows (see
    :func:`max_rows`); raises :class:`SubmissionError` with one-line problems. What a file declares is checked
    before any of its data is read: a Parquet file's footer, columns, rows and decompressed size, a CSV file's
    header record (read alone), bytes and rows under every line terminator; only the contract's columns are parsed."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path, name, row_cap)
    if suffix == ".csv":
        return _read_csv(path, name, row_cap)
    try:
        return read_predictions(path)  # refuses any other file type, naming it
    except SubmissionError as exc:
        raise SubmissionError([p.replace(str(path), name) for p in exc.problems]) from None


def _rows(positions: np.ndarray) -> str:
    """'row 3' or 'rows 3, 7, 9 (and 12 more)' from 0-based positions."""
    rows = np.asarray(positions)[:_SHOWN] + 1
    more = len(positions) - len(rows)
    head = f"row {rows[0]}" if len(positions) == 1 else "rows " + ", ".join(map(str, rows))
    return head + (f" (and {more} more)" if more else "")


def _values(values: np.ndarray) -> str:
    shown = ", ".join(repr(str(v)) for v in values[:_SHOWN])
    return shown + (f" (and {len(values) - _SHOWN} more)" if len(values) > _SHOWN else "")


class _Checker:
    """Collects problem lines for one file."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[str] = []

    def add(self, column: str | None, problem: str, expected: str, rows: np.ndarray | None = None) -> None:
        where = [self.name] + ([column] if column else []) + ([_rows(rows)] if rows is not None else [])
        self.problems.append(" ".join(f"{': '.join(where)}: {problem}; expected {expected}".split()))

    def rows_where(self, column: str, mask: np.ndarray, problem: str, expected: str) -> None:
        if mask.any():
            self.add(column, f"{problem} in {int(mask.sum())} row(s)", expected, np.flatnonzero(mask))


def _is_text(col: pd.Series) -> bool:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return len(col.cat.categories) == 0 or pd.api.types.infer_dtype(col.cat.categories, skipna=True) == "string"
    if pd.api.types.is_string_dtype(col.dtype) and not pd.api.types.is_object_dtype(col.dtype):
        return True
    return pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty")


def _is_number(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)


def _is_integer(col: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)


def _float(col: pd.Series) -> np.ndarray:
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def _polyp_codes(col: pd.Series, known: pd.Index) -> np.ndarray:
    """Position of each row's polyp id in ``known`` (-1 when unknown), hashing each distinct id once."""
    cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
    lookup = known.get_indexer(cat.cat.categories.astype(str))
    codes = cat.cat.codes.to_numpy()
    return np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1)


def _lookup(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Position of each key in ``table`` (unique int64 keys), -1 when absent; sort-based, no hash table."""
    if len(keys) == len(table) and np.array_equal(keys, table):
        return np.arange(len(keys))  # the common case: rows in manifest order
    if len(table) < 2 or bool(np.all(table[1:] > table[:-1])):
        order, ordered = None, table
    else:
        order = np.argsort(table, kind="stable")
        ordered = table[order]
    idx = np.minimum(np.searchsorted(ordered, keys), len(ordered) - 1)
    found = ordered[idx] == keys
    pos = idx if order is None else order[idx]
    return np.where(found, pos, -1)


def _check_values(df: pd.DataFrame, chk: _Checker) -> dict[str, np.ndarray]:
    """Type and range checks of the prediction columns; returns the columns that passed, as arrays."""
    out: dict[str, np.ndarray] = {}
    if SIZE in df:
        if not _is_number(df[SIZE]):
            chk.add(SIZE, f"type {df[SIZE].dtype}", "numbers (size in mm)")
        else:
            size = _float(df[SIZE])
            finite = np.isfinite(size)
            chk.rows_where(SIZE, ~finite, "missing or non-finite value", "a finite size in mm")
            chk.rows_where(SIZE, finite & (size < 0), "negative size", "a size >= 0 mm")
            out[SIZE] = size
    present = [p for p in PROBS if p in df]
    if present and len(present) < len(PROBS):
        missing = ", ".join(p for p in PROBS if p not in df)
        chk.add(None, f"missing column(s) {missing}", "all of p0, p1, p2 (triclass probabilities) or none")
    elif present:
        ok = True
        for p in PROBS:
            if not _is_number(df[p]):
                chk.add(p, f"type {df[p].dtype}", "numbers (probabilities)")
                ok = False
        if ok:
            probs = np.column_stack([_float(df[p]) for p in PROBS])
            finite = np.isfinite(probs)
            for j, p in enumerate(PROBS):
                chk.rows_where(p, ~finite[:, j], "missing or non-finite value", "a probability in [0, 1]")
                chk.rows_where(p, finite[:, j] & ((probs[:, j] < 0) | (probs[:, j] > 1)), "value outside [0, 1]",
                               "a probability in [0, 1]")
            all_finite = finite.all(axis=1)
            off = all_finite & (np.abs(probs.sum(axis=1) - 1.0) > PROB_TOLERANCE)
            chk.rows_where("p0+p1+p2", off, "probabilities do not sum to 1", f"a sum within {PROB_TOLERANCE} of 1")
            out["probs"] = probs
    if CLASS3 in df:
        col = df[CLASS3]
        if not _is_integer(col):
            chk.add(CLASS3, f"type {col.dtype}", "integers 0, 1, 2 (diminutive, small, large)")
        else:
            missing = col.isna().to_numpy()
            chk.rows_where(CLASS3, missing, "missing value", "a label 0, 1 or 2")
            labels = col.to_numpy(dtype=np.int64, na_value=0)
            chk.rows_where(CLASS3, ~missing & ((labels < 0) | (labels > 2)), "label not in {0, 1, 2}",
                           "0 (diminutive), 1 (small) or 2 (large)")
            out[CLASS3] = labels.astype(np.int8)
    if not (SIZE in df or present or CLASS3 in df):
        chk.add(None, "no prediction column", f"at least one of {SIZE}; p0, p1, p2; {CLASS3}")
    return out


def _check_keys(df: pd.DataFrame, truth: Truth, level: str, chk: _Checker) -> np.ndarray | None:
    """Key checks against the split; returns, per truth unit, its prediction row (None when keys have problems)."""
    ids = df[POLYP_KEY]
    if not _is_text(ids):
        chk.add(POLYP_KEY, f"type {ids.dtype}", "text ids as in the manifest, e.g. 'real-colon/001-013_1'")
        return None
    missing_id = ids.isna().to_numpy()
    chk.rows_where(POLYP_KEY, missing_id, "missing value", "a polyp id from the manifest")
    known = _polyp_codes(ids, truth.known_polyps)
    unknown = (known < 0) & ~missing_id
    if unknown.any():
        names = pd.unique(ids.to_numpy()[unknown].astype(str))
        chk.add(POLYP_KEY, f"unknown polyp id(s) {_values(names)}", "ids from the manifest", np.flatnonzero(unknown))
    polyp = np.where(known >= 0, pd.Index(truth.polyps["polyp_id"]).get_indexer(truth.known_polyps)[known], -1)
    other = (known >= 0) & (polyp < 0)
    if other.any():
        splits = sorted({str(s) for s in truth.known_splits[known[other]]})
        chk.add(POLYP_KEY, f"polyp(s) outside the selection, from the {', '.join(splits)} split",
                f"only rows of the {truth.split_label} split", np.flatnonzero(other))
    if level == "frame":
        frames = df[FRAME_KEY]
        if not _is_integer(frames):
            chk.add(FRAME_KEY, f"type {frames.dtype}", "integer frame numbers as in the manifest (omit the column "
                    "for polyp-level predictions)")
            return None
        missing_frame = frames.isna().to_numpy()
        chk.rows_where(FRAME_KEY, missing_frame, "missing value", "a frame number")
        number = frames.to_numpy(dtype=np.int64, na_value=-1)
        out_of_range = ~missing_frame & ((number < 0) | (number > np.iinfo(np.int32).max))
        chk.rows_where(FRAME_KEY, out_of_range, "frame number outside 0..2^31-1", "a frame number of the manifest")
        missing_frame = missing_frame | out_of_range  # never folded into the 32-bit key below
        pos = _lookup(truth.frame_keys, frame_key(polyp, number))
        pos[(polyp < 0) | missing_frame] = -1
        no_frame = (pos < 0) & (polyp >= 0) & ~missing_frame
        chk.rows_where(FRAME_KEY, no_frame, f"(polyp_id, frame_index) not a frame of the {truth.split_label} split",
                       "keys of manifest frame rows")
        n_units, unit = truth.n_frames, "frame"
    else:
        pos, n_units, unit = polyp, len(truth.polyps), "polyp"
    found = pos >= 0
    counts = np.bincount(pos[found], minlength=n_units)
    dup = found & (counts[np.maximum(pos, 0)] > 1)
    key_name = "(polyp_id, frame_index)" if level == "frame" else POLYP_KEY
    hint = "" if level == "frame" else f" (frame-level predictions need a {FRAME_KEY} column)"
    chk.rows_where(key_name, dup, "duplicate key", f"one row per {unit}{hint}")
    absent = np.flatnonzero(counts == 0)
    if len(absent):
        ids_missing = truth.polyps["polyp_id"].to_numpy()
        if level == "frame":
            shown = [f"({ids_missing[truth.frame_polyp[i]]}, {truth.frame_index[i]})" for i in absent[:_SHOWN]]
        else:
            shown = [repr(ids_missing[i]) for i in absent[:_SHOWN]]
        more = f" (and {len(absent) - _SHOWN} more)" if len(absent) > _SHOWN else ""
        chk.add(None, f"{len(absent)} of {n_units} {truth.split_label} {unit}s have no prediction: "
                f"{', '.join(shown)}{more}", f"one row per {truth.split_label} {unit} (complete coverage)")
    if chk.problems:
        return None
    row_of = np.empty(n_units, dtype=np.int64)
    row_of[pos] = np.arange(len(df))
    return row_of


def validate_predictions(
    predictions: pd.DataFrame,
    manifest: ManifestLike | Truth | list[ManifestLike],
    *,
    split: str = "test",
    fold: int | None = None,
    name: str = "predictions",
) -> ValidPredictions:
    """Check ``predictions`` against ``split`` (and cross-validation ``fold``) of ``manifest`` (or a :class:`Truth`);
    raise :class:`SubmissionError` listing every problem, or return the predictions re-ordered to the truth's
    frames (frame level) or polyps (polyp level)."""
    truth = load_truth(manifest, split, fold)
    chk = _Checker(name)
    if len(predictions) == 0:
        chk.add(None, "empty file (no rows)", f"one row per {truth.split_label} frame or polyp")
        raise SubmissionError(chk.problems)
    if POLYP_KEY not in predictions:
        chk.add(None, f"missing key column {POLYP_KEY!r}", f"columns {POLYP_KEY}[, {FRAME_KEY}] and predictions")
    level = "frame" if FRAME_KEY in predictions else "polyp"
    values = _check_values(predictions, chk)
    row_of = _check_keys(predictions, truth, level, chk) if POLYP_KEY in predictions else None
    if chk.problems or row_of is None:
        raise SubmissionError(chk.problems)
    return ValidPredictions(
        name=name,
        level=level,
        n_rows=len(predictions),
        size_mm=values[SIZE][row_of] if SIZE in values else None,
        probs=values["probs"][row_of] if "probs" in values else None,
        class3=values[CLASS3][row_of] if CLASS3 in values else None,
    )
