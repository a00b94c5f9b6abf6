"""Hardened uploads: a body-size limit enforced while streaming, bounded prediction-file reading, safetensors checks.

- :class:`BodyLimit` (ASGI middleware) refuses a declared ``Content-Length`` over the route's limit before reading
  a byte, and stops a body without one (chunked) as soon as it passes the limit: nothing larger is ever spooled.
- :func:`read_bounded` reads a prediction file only after checking what it declares (Parquet metadata, a CSV's
  line count), then the contract's columns only: the validator's own bounded reader
  (:func:`polypbench.evaluate.validate.read_bounded`, which ``polypbench evaluate`` uses too), with the cap
  :func:`max_rows` of the served test frames.
- :func:`read_config` parses a submitted model's config text, once, into the
  :class:`~polypbench.inference.spec.InferenceConfig` the job carries and the model run builds from.
- :func:`check_safetensors` validates a weights file from its JSON header (dtypes, shapes, offsets that tile the
  data exactly), then opens it with the safetensors library's own parser (without torch), so that the server
  accepts exactly what the model run can load: weights are data, never a pickle or code.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polypbench.errors import PolypbenchError
from polypbench.evaluate.validate import max_rows, read_bounded  # noqa: F401 - the validator's bounded reader
from polypbench.inference.spec import InferenceConfig, ModelError, submitted_config
from polypbench.leaderboard import limits

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


def read_config(text: str, architecture: str, tasks: Mapping[str, bool] | None = None) -> InferenceConfig:
    """A submitted model's config (the JSON text of its training config, at most :data:`~.limits.CONFIG`
    characters) as the :class:`~polypbench.inference.spec.InferenceConfig` its model run builds from
    (:func:`~polypbench.inference.spec.submitted_config`: the inference keys, checked for a run on this machine;
    the others are ignored). ``tasks``: the tasks the board takes. Every fault is a
    :class:`~polypbench.inference.spec.ModelError` in one line."""
    if len(text) > limits.CONFIG:
        raise ModelError(f"config: {len(text)} characters; expected at most {limits.CONFIG}")
    config = load_json(text, "config", "the run's config.yaml as a JSON object", ModelError)
    if not isinstance(config, dict):
        raise ModelError("config: not a JSON object; expected the run's config as a mapping")
    return submitted_config(config, architecture, tasks)


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
