"""Is a file a complete JPEG, and how big is it? Answered from its markers, without decoding the image.

A complete JPEG starts with the start-of-image marker (``FF D8``), carries a frame header (SOF) before its first
scan, and ends with the end-of-image marker (``FF D9``; zero bytes after it, a padding some writers add, are
allowed, however many: every decoder ignores them). Inside the entropy-coded data ``FF`` is always followed by
``00`` or a restart marker, so a truncated file cannot end in ``FF D9`` by chance, and a cut download padded with
zeros (a preallocated file) has no end marker before its zeros. Width and height come from the SOF segment.
Reading costs two small reads (the head and the tail) whatever the file's size, plus one more per
:data:`TAIL_BYTES` of zero padding. Used by ``prepare`` (SUN frames) and ``polypbench verify``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

SOI, EOI = b"\xff\xd8", b"\xff\xd9"
HEAD_BYTES = 4096
"""Bytes read first: the markers up to the SOF fit in them unless large metadata (EXIF, ICC) precedes it."""
TAIL_BYTES = 512
"""Bytes read from the end; more are read, backwards, only while they are all zero padding."""
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # C4 DHT, C8 JPG extension, CC DAC are not frames
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class JpegError(ValueError):
    """Not a complete JPEG; the message says why in a few words (``truncated: no end-of-image marker``)."""


@dataclass(frozen=True)
class JpegInfo:
    width: int
    height: int
    size: int
    """File size in bytes."""


def _frame_size(read: Callable[[int, int], bytes], size: int) -> tuple[int, int]:
    """(width, height) from the SOF segment, walking the marker segments from the start."""
    if size == 0:
        raise JpegError("empty file (0 bytes)")
    if read(0, 2) != SOI:
        raise JpegError("not a JPEG (no start-of-image marker)")
    pos = 2
    while pos < size:
        seg = read(pos, 9)
        if len(seg) < 2 or seg[0] != 0xFF:
            raise JpegError(f"corrupt header (no marker at byte {pos})")
        marker = seg[1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            raise JpegError("no frame header (SOF) before the image data")
        if len(seg) < 4:
            break
        length = int.from_bytes(seg[2:4], "big")
        if length < 2:
            raise JpegError(f"corrupt header (segment length {length} at byte {pos})")
        if marker in _SOF:
            if len(seg) < 9:
                break
            return int.from_bytes(seg[7:9], "big"), int.from_bytes(seg[5:7], "big")
        pos += 2 + length
    raise JpegError("truncated in the header (no frame header)")


def _complete(read: Callable[[int, int], bytes], size: int) -> None:
    """Raise unless the last bytes before any zero padding are the end-of-image marker."""
    end = size
    while end > 0:
        start = max(0, end - TAIL_BYTES)
        chunk = read(start, end - start).rstrip(b"\0")
        if chunk:
            last = chunk if len(chunk) >= 2 or start == 0 else read(start - 1, 1) + chunk  # FF of FF D9 before it
            if last.endswith(EOI):
                return
            break
        end = start
    raise JpegError("truncated (no end-of-image marker)")


def inspect_bytes(data: bytes) -> JpegInfo:
    """Check a JPEG held in memory; raise :class:`JpegError`."""
    def read(pos: int, n: int) -> bytes:
        return data[pos:pos + n]

    width, height = _frame_size(read, len(data))
    _complete(read, len(data))
    return JpegInfo(width, height, len(data))


def inspect_fd(fd: int, size: int) -> JpegInfo:
    """Check the JPEG open as ``fd`` (``size`` bytes long) with a read of its head and one of its tail."""
    head = os.pread(fd, min(HEAD_BYTES, size), 0)

    def read(pos: int, n: int) -> bytes:
        if pos + n <= len(head) or len(head) == size:
            return head[pos:pos + n]
        return os.pread(fd, n, pos)

    width, height = _frame_size(read, size)
    _complete(read, size)
    return JpegInfo(width, height, size)
