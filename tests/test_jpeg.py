"""The JPEG completeness check: sizes from the header, and no truncated file passes, without decoding."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from polypbench.jpeg import JpegError, inspect_bytes, inspect_fd


def jpeg(width: int = 24, height: int = 16, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (120, 40, 30)).save(buf, "JPEG", **save)
    return buf.getvalue()


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"quality": 5}, {"exif": b"Exif\0\0" + bytes(9000)}])
def test_size_comes_from_the_header(tmp_path: Path, options: dict) -> None:
    data = jpeg(37, 21, **options)
    assert inspect_bytes(data).width == 37 and inspect_bytes(data).height == 21
    path = tmp_path / "f.jpg"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        info = inspect_fd(fd, len(data))  # large EXIF: the SOF lies past the first read
    finally:
        os.close(fd)
    assert (info.width, info.height, info.size) == (37, 21, len(data))


def test_every_truncation_is_refused() -> None:
    data = jpeg()
    for n in range(len(data)):
        with pytest.raises(JpegError):
            inspect_bytes(data[:n])


@pytest.mark.parametrize("padding", [64, 511, 512, 4096, 100_000])
def test_zero_padding_after_the_end_marker_is_accepted(tmp_path: Path, padding: int) -> None:
    """Writers (and block-aligned copies) pad a complete JPEG with zeros: every reader decodes it, so must we,
    however long the padding (the end marker was once looked for in the last 512 bytes only)."""
    data = jpeg() + bytes(padding)
    assert inspect_bytes(data).width == 24
    path = tmp_path / "padded.jpg"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert inspect_fd(fd, len(data)).height == 16
    finally:
        os.close(fd)
    Image.open(path).load()  # and it does decode


@pytest.mark.parametrize("padding", [0, 10, 4096, 100_000])
def test_a_truncated_jpeg_is_refused_whatever_zeros_follow(tmp_path: Path, padding: int) -> None:
    """A cut download padded with zeros (a preallocated file) still has no end marker before its zeros."""
    data = jpeg(64, 48, quality=95)[:-300] + bytes(padding)
    with pytest.raises(JpegError, match="truncated"):
        inspect_bytes(data)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(JpegError, match="truncated"):
            inspect_fd(fd, len(data))
    finally:
        os.close(fd)


@pytest.mark.parametrize("data, reason", [(b"", "empty"), (b"GIF89a" + bytes(30), "not a JPEG"),
                                          (b"\xff\xd8\xff\xda\x00\x02" + bytes(10) + b"\xff\xd9", "no frame header")])
def test_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(JpegError, match=reason):
        inspect_bytes(data)
