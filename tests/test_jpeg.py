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


def test_zero_padding_after_the_end_marker_is_accepted() -> None:
    assert inspect_bytes(jpeg() + bytes(64)).width == 24


@pytest.mark.parametrize("data, reason", [(b"", "empty"), (b"GIF89a" + bytes(30), "not a JPEG"),
                                          (b"\xff\xd8\xff\xda\x00\x02" + bytes(10) + b"\xff\xd9", "no frame header")])
def test_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(JpegError, match=reason):
        inspect_bytes(data)
