"""Is a file a complete JPEG, and how big is it? Answered from its markers, without decoding the image.

A complete JPEG starts with the start-of-image marker (``FF D8``), carries a frame header (SOF) before its first
scan, and ends with the end-of-image marker (``FF D9``; zero bytes after it, a padding some writers add, are
allowed). Inside the entropy-coded data ``FF`` is always followed by ``00`` or a restart marker, so a truncated
file cannot end in ``FF D9`` by chance. Width and height come from the SOF segment. Reading costs two small reads
(the head and the tail), whatever the file's size. Used by ``prepare`` (SUN frames) and ``polypbench verify``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

SOI, EOI = b"\xff\xd8", b"\xff\xd9"
HEAD_BYTES = 4096
"""Bytes read first: the markers up to the SOF fit in them unless large metadata (EXIF, ICC) precedes it."""
TAIL_BYTES = 512
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


def _complete(tail: bytes) -> None:
    if not tail.rstrip(b"\0").endswith(EOI):
        raise JpegError("truncated (no end-of-image marker)")


def inspect_bytes(data: bytes) -> JpegInfo:
    """Check a JPEG held in memory; raise :class:`JpegError`."""
    width, height = _frame_size(lambda pos, n: data[pos:pos + n], len(data))
    _complete(data[-TAIL_BYTES:])
    return JpegInfo(width, height, len(data))


def inspect_fd(fd: int, size: int) -> JpegInfo:
    """Check the JPEG open as ``fd`` (``size`` bytes long) with a read of its head and one of its tail."""
    head = os.pread(fd, min(HEAD_BYTES, size), 0)

    def read(pos: int, n: int) -> bytes:
        if pos + n <= len(head) or len(head) == size:
            return head[pos:pos + n]
        return os.pread(fd, n, pos)

    width, height = _frame_size(read, size)
    _complete(head[-TAIL_BYTES:] if len(head) == size else os.pread(fd, TAIL_BYTES, max(0, size - TAIL_BYTES)))
    return JpegInfo(width, height, size)
