"""Hardened uploads: a body-size limit enforced while streaming, bounded prediction-file reading, safetensors checks.

- :class:`BodyLimit` (ASGI middleware) refuses a declared ``Content-Length`` over the route's limit before reading
  a byte, and stops a body without one (chunked) as soon as it passes the limit: nothing larger is ever spooled.
- :func:`read_bounded` reads a prediction file only after checking what it declares: a Parquet file's footer
  length, row count, column count and decompressed size (from its metadata, before any data page is read), or a
  CSV file's header record (read alone: its columns and bytes), size, and rows under every line terminator pandas
  reads (``\\n``, ``\\r\\n``, a lone ``\\r``; streamed); then it parses the contract's columns only and stops at
  the row cap. The cap is the served test frames times :data:`~polypbench.leaderboard.limits.ROW_FACTOR`.
- :func:`check_safetensors` validates a weights file from its JSON header (dtypes, shapes, offsets that tile the
  data exactly), then opens it with the safetensors library's own parser (without torch), so that the server
  accepts exactly what the model run can load: weights are data, never a pickle or code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polypbench.errors import PolypbenchError
from polypbench.evaluate import SubmissionError, read_predictions
from polypbench.evaluate.validate import CLASS3, CSV_OPTIONS, FRAME_KEY, POLYP_KEY, PROBS, SIZE
from polypbench.leaderboard import limits

CONTRACT_COLUMNS = (POLYP_KEY, FRAME_KEY, SIZE, *PROBS, CLASS3)
"""The columns the validator reads; any other column of a file is never loaded."""
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1024 * 1024


class TooLarge(HTTPException):
    """A request body over its route's limit (HTTP 413), raised while the body streams in; FastAPI passes HTTP
    exceptions from body parsing through to the app's handler (one JSON line)."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


def json_error(status: int, message: str) -> tuple[dict[str, Any], bytes]:
    body = json.dumps({"error": " ".join(message.split())}).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"connection", b"close")]}
    return start, body


class BodyLimit:
    """ASGI middleware: at most ``limit_for(path)`` body bytes per request, declared or streamed."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            start, body = json_error(413, f"request body of {declared} bytes; expected at most {limit} bytes")
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge(f"request body over {limit} bytes (sent without Content-Length); expected at most "
                                   f"{limit} bytes")
            return message

        await self.app(scope, limited, send)


def safe_filename(name: str | None, default: str = "predictions") -> str:
    """The base name of an uploaded file with anything but ``A-Za-z0-9._-`` replaced, at most FILENAME chars."""
    base = re.split(r"[\\/]", name or "")[-1]
    clean = _SAFE_NAME.sub("_", base).strip("._") or default
    suffix = Path(clean).suffix[:12]
    return clean[: limits.FILENAME - len(suffix)] + suffix if len(clean) > limits.FILENAME else clean


async def save_upload(upload: Any, dest: Path) -> tuple[int, str]:
    """Copy an uploaded file to ``dest`` in chunks; (bytes, sha256 hex)."""
    digest = hashlib.sha256()
    size = 0
    with dest.open("wb") as out:
        while chunk := await upload.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def max_rows(n_frames: int) -> int:
    return n_frames * limits.ROW_FACTOR + limits.ROW_SLACK


def _parquet_checks(path: Path, name: str, row_cap: int) -> pq.ParquetFile:
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size < 12:
            raise SubmissionError([f"{name}: not a readable Parquet file (too short); expected a Parquet prediction "
                                   "file"])
        fh.seek(size - 8)
        tail = fh.read(8)
    footer, magic = struct.unpack("<I4s", tail)
    if magic != b"PAR1":
        raise SubmissionError([f"{name}: not a readable Parquet file (no Parquet footer); expected a Parquet "
                               "prediction file"])
    if footer > min(limits.PARQUET_FOOTER, size - 12):
        raise SubmissionError([f"{name}: Parquet footer of {footer} bytes; expected at most {limits.PARQUET_FOOTER} "
                               "bytes of metadata"])
    try:
        parquet = pq.ParquetFile(path)
        if POLYP_KEY in parquet.schema_arrow.names:  # text ids as a dictionary: pandas categories, as the CLI reads
            parquet = pq.ParquetFile(path, read_dictionary=[POLYP_KEY])
    except (OSError, ValueError, pa.ArrowException) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise SubmissionError([f"{name}: not a readable Parquet file ({reason}); expected a Parquet prediction "
                               "file"]) from None
    meta = parquet.metadata
    if meta.num_columns > limits.MAX_COLUMNS:
        raise SubmissionError([f"{name}: {meta.num_columns} columns; expected at most {limits.MAX_COLUMNS}"])
    if meta.num_rows > row_cap:
        raise SubmissionError([f"{name}: declares {meta.num_rows} rows; expected at most {row_cap} (the served test "
                               f"frames times {limits.ROW_FACTOR})"])
    wanted = [i for i, n in enumerate(parquet.schema_arrow.names) if n in CONTRACT_COLUMNS]
    decompressed = sum(meta.row_group(g).column(c).total_uncompressed_size
                       for g in range(meta.num_row_groups) for c in wanted)
    byte_cap = row_cap * limits.BYTES_PER_ROW
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
                raise SubmissionError([f"{name}: more than {row_cap} rows; expected at most {row_cap}"])
            batches.append(batch)
        table = pa.Table.from_batches(batches) if batches else parquet.schema_arrow.empty_table().select(columns)
        return table.replace_schema_metadata(None).to_pandas()
    except (OSError, ValueError, pa.ArrowException) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise SubmissionError([f"{name}: not a readable Parquet file ({reason}); expected a Parquet prediction "
                               "file"]) from None


def _csv_header(path: Path, name: str) -> None:
    """Refuse a CSV file whose header record has more than :data:`~.limits.MAX_COLUMNS` columns or more than
    :data:`~.limits.CSV_HEADER` bytes, reading that record alone. It is the first non-blank record as the
    :mod:`csv` module splits it, which is the tokenizer pandas derives from: quoted fields may hold separators and
    line breaks, and a record ends at ``\\n``, ``\\r\\n`` or a lone ``\\r``."""
    with path.open("rb") as fh:
        head = fh.read(limits.CSV_HEADER + 2)
    text = head.decode("utf-8", errors="replace")
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
    whole = len(head) <= limits.CSV_HEADER + 1 or sum(map(len, read)) < len(text)
    contract = f"(the contract's columns are {', '.join(CONTRACT_COLUMNS)})"
    if len(record) > limits.MAX_COLUMNS:
        count = f"{len(record)}" if whole else f"more than {limits.MAX_COLUMNS}"
        raise SubmissionError([f"{name}: {count} columns in the header; expected at most {limits.MAX_COLUMNS} "
                               f"{contract}"])
    if not whole:
        raise SubmissionError([f"{name}: header longer than {limits.CSV_HEADER} bytes; expected a header of "
                               f"column names {contract}"])


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
    then read as the validator reads it (:func:`polypbench.evaluate.read_predictions`), the contract's columns only
    and at most ``row_cap`` + 1 rows."""
    _csv_header(path, name)
    size, byte_cap = path.stat().st_size, limits.CSV_HEADER + row_cap * limits.CSV_BYTES_PER_ROW
    if size > byte_cap:
        raise SubmissionError([f"{name}: {size} bytes; expected at most {byte_cap} ({limits.CSV_BYTES_PER_ROW} bytes "
                               f"per allowed row)"])
    if _csv_rows(path) > row_cap:
        raise SubmissionError([f"{name}: more than {row_cap} rows; expected at most {row_cap} (the served test frames "
                               f"times {limits.ROW_FACTOR})"])
    try:
        frame = pd.read_csv(path, usecols=lambda c: c in CONTRACT_COLUMNS, nrows=row_cap + 1, **CSV_OPTIONS)
    except pd.errors.EmptyDataError:
        raise SubmissionError([f"{name}: empty file; expected a header and one row per test frame or "
                               "polyp"]) from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise SubmissionError([f"{name}: not a readable CSV file ({reason}); expected a CSV prediction file"]) from None
    if len(frame) > row_cap:  # never reached while _csv_rows over-counts; kept as the parser's own bound
        raise SubmissionError([f"{name}: more than {row_cap} rows; expected at most {row_cap}"])
    return frame


def read_bounded(path: Path, name: str, row_cap: int) -> pd.DataFrame:
    """The prediction file at ``path`` (shown as ``name`` in problems), read within ``row_cap`` rows; raises
    :class:`SubmissionError` with one-line problems. Only the contract's columns are ever parsed."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path, name, row_cap)
    if suffix == ".csv":
        return _read_csv(path, name, row_cap)
    try:
        return read_predictions(path)  # refuses any other file type, naming it
    except SubmissionError as exc:
        raise SubmissionError([p.replace(str(path), name) for p in exc.problems]) from None


# -- JSON and safetensors ---------------------------------------------------------------------------------------
def load_json(text: str | bytes, what: str, expected: str,
              error: type[PolypbenchError] = PolypbenchError) -> Any:
    """``text`` parsed as JSON, or ``error`` in one line for anything the parser refuses: malformed text, invalid
    UTF-8, nesting deeper than the interpreter's recursion limit, an integer of more than 4,300 digits."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        reason = exc.msg
    except RecursionError:
        reason = "nested too deeply"
    except ValueError as exc:  # UnicodeDecodeError, or int()'s digit limit
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "number too long"
    raise error(f"{what}: not JSON ({reason}); expected {expected}")


DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
"""safetensors dtypes a checkpoint may use, with their sizes in bytes."""
HEADER_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True)
class Weights:
    """A checked safetensors file: its tensors (name -> (dtype, shape)) and its string metadata."""

    tensors: dict[str, tuple[str, tuple[int, ...]]]
    metadata: dict[str, str]


def check_safetensors(path: Path, name: str = "weights") -> Weights:
    """Validate ``path`` as a safetensors file from its header; raise :class:`PolypbenchError` naming the defect."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise PolypbenchError(f"{name}: not a safetensors file (too short); expected a .safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > min(HEADER_LIMIT, size - 8):
            raise PolypbenchError(f"{name}: safetensors header of {n} bytes; expected at most {HEADER_LIMIT} bytes "
                                  "within the file")
        raw = fh.read(n)
    header = load_json(raw, f"{name}: safetensors header", "a .safetensors file")
    if not isinstance(header, dict):
        raise PolypbenchError(f"{name}: safetensors header is not a mapping; expected a .safetensors file")
    meta = header.pop("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise PolypbenchError(f"{name}: safetensors metadata is not a str -> str mapping")
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    spans = []
    for key, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError, OverflowError):  # OverflowError: a dimension of 1e400 (infinity)
            raise PolypbenchError(f"{name}: tensor {key!r}: malformed header entry") from None
        if dtype not in DTYPES:
            raise PolypbenchError(f"{name}: tensor {key!r}: dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
        count = 1
        for d in shape:
            if d < 0:
                raise PolypbenchError(f"{name}: tensor {key!r}: negative dimension")
            count *= d
        if not (isinstance(begin, int) and isinstance(end, int)) or end - begin != count * DTYPES[dtype]:
            raise PolypbenchError(f"{name}: tensor {key!r}: data offsets do not match its dtype and shape")
        tensors[key] = (dtype, shape)
        spans.append((begin, end))
    spans.sort()
    position = 0
    for begin, end in spans:
        if begin != position:
            raise PolypbenchError(f"{name}: tensor data overlaps or leaves gaps; expected a well-formed file")
        position = end
    if position != size - 8 - n:
        raise PolypbenchError(f"{name}: {size - 8 - n} data bytes for tensors of {position}; expected equal sizes")
    if not tensors:
        raise PolypbenchError(f"{name}: no tensors; expected the model's state dict")
    _library_check(path, name)
    return Weights(tensors, meta)


def _library_check(path: Path, name: str) -> None:
    """Open ``path`` with the safetensors library's own parser (numpy framework: no torch), as the model run will:
    a header that it refuses (a dimension written as text, one beyond 64 bits) is refused at upload."""
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:  # a dependency of polypbench[leaderboard]
        raise PolypbenchError("checking weights needs the safetensors package; expected "
                              "`pip install 'polypbench[leaderboard]'` on the server") from None
    try:
        with safe_open(str(path), framework="numpy") as fh:
            fh.metadata()
    except (SafetensorError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise PolypbenchError(f"{name}: not a valid safetensors file ({reason}); expected a file written by "
                              "safetensors (`polypbench submit --model` writes one)") from None
