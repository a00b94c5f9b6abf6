"""Safe, fast reading of REAL-Colon's VOC-like annotation XML.

Real REAL-Colon has 2.76 M annotation files, 87% without any box, so parsing speed decides how long
``prepare`` takes. The fast path reads the canonical layout with byte-level regular expressions; it never
expands entities, resolves DTDs or touches the network, because it only accepts documents with no ``<!``
(DOCTYPE, ENTITY, comments, CDATA) and no ``&``. Anything it does not fully recognise goes to
``defusedxml`` (DTDs and entities forbidden), which either reads it or reports it as malformed. Both paths
return the same result on every canonical document (tested).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

_OBJECT = re.compile(rb"<object>(.*?)</object>", re.S)
_NUM = rb"\s*(-?\d+(?:\.\d*)?)\s*"


def _tag(name: bytes, value: bytes = rb"\s*([^<]*?)\s*") -> re.Pattern[bytes]:
    return re.compile(rb"<" + name + rb">" + value + rb"</" + name + rb">")


_UID, _WIDTH, _HEIGHT = _tag(b"unique_id"), _tag(b"width", _NUM), _tag(b"height", _NUM)
_COORDS = tuple(_tag(name, _NUM) for name in (b"xmin", b"ymin", b"xmax", b"ymax"))
_END = b"</annotation>"


class VocError(ValueError):
    """The document is malformed, unsafe, or lacks a required field (message says which)."""


@dataclass(frozen=True)
class VocBox:
    unique_id: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int


@dataclass(frozen=True)
class VocAnnotation:
    width: int
    height: int
    boxes: tuple[VocBox, ...]


def _int(text: str | bytes) -> int:
    return int(round(float(text)))


def is_negative(data: bytes) -> bool:
    """True for a canonical, well-terminated document without any <object> (most REAL-Colon frames)."""
    return b"<object" not in data and b"<!" not in data and b"&" not in data and data.rstrip().endswith(_END)


def _fast(data: bytes) -> VocAnnotation | None:
    if b"<!" in data or b"&" in data or not data.rstrip().endswith(_END):
        return None
    width, height = _WIDTH.findall(data), _HEIGHT.findall(data)
    if len(width) != 1 or len(height) != 1:
        return None
    blocks = _OBJECT.findall(data)
    if not (len(blocks) == data.count(b"<object>") == data.count(b"</object>")):
        return None
    boxes = []
    for block in blocks:
        uid = _UID.findall(block)
        coords = [p.findall(block) for p in _COORDS]
        if len(uid) != 1 or any(len(c) != 1 for c in coords):
            return None
        xmin, ymin, xmax, ymax = (_int(c[0]) for c in coords)
        boxes.append(VocBox(uid[0].decode(), xmin, ymin, xmax, ymax))
    return VocAnnotation(_int(width[0]), _int(height[0]), tuple(boxes))


def _text(node: Element, path: str) -> str:
    found = node.find(path)
    if found is None or found.text is None or not found.text.strip():
        raise VocError(f"missing <{path}>")
    return found.text.strip()


def _safe(data: bytes) -> VocAnnotation:
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise VocError(f"unsafe XML ({type(exc).__name__})") from None
    except ParseError as exc:
        raise VocError(f"malformed XML ({exc})") from None
    if root.tag != "annotation":
        raise VocError(f"root element <{root.tag}>, not <annotation>")
    try:
        boxes = tuple(
            VocBox(
                _text(obj, "unique_id"),
                *(_int(_text(obj, f"bndbox/{c}")) for c in ("xmin", "ymin", "xmax", "ymax")),
            )
            for obj in root.findall("object")
        )
        return VocAnnotation(_int(_text(root, "size/width")), _int(_text(root, "size/height")), boxes)
    except ValueError as exc:
        if isinstance(exc, VocError):
            raise
        raise VocError(f"non-numeric value ({exc})") from None


def parse_voc(data: bytes) -> VocAnnotation:
    """Parse one annotation document; raise :class:`VocError` with a one-line reason."""
    return _fast(data) or _safe(data)
