"""Safe, fast reading of REAL-Colon's VOC-like annotation XML.

Real REAL-Colon has 2.76 M annotation files, 87% without any box, so parsing speed decides how long
``prepare`` takes. The fast path is a byte-level grammar of the canonical layout, matched against the WHOLE
document: leaf elements with plain text, containers of such leaves (``<source>``, ``<size>``) and ``<object>``
blocks of known shape. A document it matches holds no ``<!`` (DOCTYPE, ENTITY, comment, CDATA) and no ``&``, so
nothing is ever expanded or fetched. Only a document that matches the grammar without any ``<object>`` is counted
as a negative frame unparsed (:func:`is_negative`): a damaged file, even one still ending in ``</annotation>``,
never passes as negative. Anything the grammar does not match goes to ``defusedxml`` (DTDs and entities
forbidden), which reads it or reports why it cannot. Both paths return the same result on every canonical
document (tested). Numbers are range-checked (:func:`polypbench.prepare.inputs.parse_int`) before use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from polypbench.prepare.inputs import INT32_MAX, BadValue, parse_int

_NAME = rb"[A-Za-z_][A-Za-z0-9_.-]*"
_PROLOG = rb"(?:\xef\xbb\xbf)?\s*(?:<\?xml[^<>]*\?>\s*)?"
"""An optional UTF-8 byte order mark, then an optional XML declaration."""


def _leaf(group: str, exclude: bytes) -> bytes:
    """A leaf element with plain text and any name but the excluded ones: ``<folder>002-001_frames</folder>``."""
    name = group.encode()
    return rb"<(?!(?:" + exclude + rb")>)(?P<" + name + rb">" + _NAME + rb")>[^<>&]*</(?P=" + name + rb")>"


def _container(group: str, leaf: str, exclude: bytes) -> bytes:
    """A container of leaves: ``<size><width>1352</width>...</size>``."""
    return (rb"<(?!(?:" + exclude + rb")>)(?P<" + group.encode() + rb">" + _NAME + rb")>(?:\s*" + _leaf(leaf, exclude)
            + rb")*\s*</(?P=" + group.encode() + rb")>")


_NUM = rb"\s*-?\d{1,10}(?:\.\d{0,6})?\s*"
_COORD = rb"<(?P<c>xmin|xmax|ymin|ymax)>" + _NUM + rb"</(?P=c)>"
_OBJECT = (rb"<object>(?:\s*(?:" + _leaf("o", rb"object|bndbox") + rb"|<bndbox>(?:\s*" + _COORD + rb")*\s*</bndbox>))*"
           rb"\s*</object>")
_TOP = _leaf("t", rb"object|annotation") + rb"|" + _container("k", "l", rb"object|annotation")
_NEGATIVE = re.compile(_PROLOG + rb"<annotation>(?:\s*(?:" + _TOP + rb"))*\s*</annotation>\s*")
_CANONICAL = re.compile(_PROLOG + rb"<annotation>(?:\s*(?:" + _TOP + rb"|" + _OBJECT + rb"))*\s*</annotation>\s*")

_BLOCK = re.compile(rb"<object>(.*?)</object>", re.S)

# The exact canonical layout (formats.md 1.3), tried first: one linear match, no alternation or backreference.
_T = rb"[^<>&]*"
_EXACT_HEAD = (_PROLOG + rb"<annotation>\s*<version_fmt>" + _T + rb"</version_fmt>\s*<folder>" + _T + rb"</folder>\s*"
               rb"<filename>" + _T + rb"</filename>\s*<source>\s*<database>" + _T + rb"</database>\s*<release>" + _T
               + rb"</release>\s*</source>\s*<size>\s*<width>(" + _NUM + rb")</width>\s*<height>(" + _NUM
               + rb")</height>\s*<depth>" + _T + rb"</depth>\s*</size>")
_EXACT_OBJECT = (rb"<object>\s*<name>" + _T + rb"</name>\s*<unique_id>\s*(" + _T + rb"?)\s*</unique_id>\s*<box_id>" + _T
                 + rb"</box_id>\s*<bndbox>\s*<xmin>(" + _NUM + rb")</xmin>\s*<xmax>(" + _NUM + rb")</xmax>\s*<ymin>("
                 + _NUM + rb")</ymin>\s*<ymax>(" + _NUM + rb")</ymax>\s*</bndbox>\s*</object>")
_EXACT_NEGATIVE = re.compile(_EXACT_HEAD + rb"\s*</annotation>\s*")
_EXACT = re.compile(_EXACT_HEAD + rb"((?:\s*" + _EXACT_OBJECT + rb")*)\s*</annotation>\s*")
_EXACT_OBJECTS = re.compile(_EXACT_OBJECT)


def _tag(name: bytes, value: bytes = rb"\s*([^<]*?)\s*") -> re.Pattern[bytes]:
    return re.compile(rb"<" + name + rb">" + value + rb"</" + name + rb">")


_UID, _WIDTH, _HEIGHT = _tag(b"unique_id"), _tag(b"width", rb"(" + _NUM + rb")"), _tag(b"height", rb"(" + _NUM + rb")")
_COORDS = tuple(_tag(name, rb"(" + _NUM + rb")") for name in (b"xmin", b"ymin", b"xmax", b"ymax"))
_SIZE_FIELDS = ("size/width", "size/height")
_BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


class VocError(ValueError):
    """The document is malformed, unsafe, or lacks a required element (message says which)."""


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


def is_negative(data: bytes) -> bool:
    """True only for a document provably without any box: it matches the canonical grammar with no ``<object>``."""
    if _EXACT_NEGATIVE.fullmatch(data) is not None:
        return True
    return b"<object" not in data and _NEGATIVE.fullmatch(data) is not None


def _exact(data: bytes) -> VocAnnotation | None:
    """The exact canonical layout, read with one match; None for anything else."""
    match = _EXACT.fullmatch(data)
    if match is None:
        return None
    w, h = int(round(float(match.group(1)))), int(round(float(match.group(2))))
    if not (0 < w <= INT32_MAX and 0 < h <= INT32_MAX):
        return None
    boxes = []
    for obj in _EXACT_OBJECTS.finditer(data, match.start(3), match.end(3)):
        uid, x0, x1, y0, y1 = obj.groups()
        try:
            text = uid.decode()
        except UnicodeDecodeError:
            raise VocError("<unique_id> is not valid UTF-8 text") from None
        xmin, xmax, ymin, ymax = (int(round(float(v))) for v in (x0, x1, y0, y1))
        if not all(-INT32_MAX <= v <= INT32_MAX for v in (xmin, ymin, xmax, ymax)):
            return None
        boxes.append(VocBox(text, xmin, ymin, xmax, ymax))
    return VocAnnotation(w, h, tuple(boxes))


def _fast(data: bytes) -> VocAnnotation | None:
    """The canonical layout read with regular expressions; None for anything else (the safe parser decides)."""
    if _CANONICAL.fullmatch(data) is None:
        return None
    width, height = _WIDTH.findall(data), _HEIGHT.findall(data)
    if len(width) != 1 or len(height) != 1:
        return None
    w, h = int(round(float(width[0]))), int(round(float(height[0])))
    if not (0 < w <= INT32_MAX and 0 < h <= INT32_MAX):
        return None
    boxes = []
    for block in _BLOCK.findall(data):
        uid = _UID.findall(block)
        coords = [p.findall(block) for p in _COORDS]
        if len(uid) != 1 or any(len(c) != 1 for c in coords):
            return None
        try:
            text = uid[0].decode()
        except UnicodeDecodeError:
            raise VocError("<unique_id> is not valid UTF-8 text") from None
        xmin, ymin, xmax, ymax = (int(round(float(c[0]))) for c in coords)
        if not all(-INT32_MAX <= v <= INT32_MAX for v in (xmin, ymin, xmax, ymax)):
            return None
        boxes.append(VocBox(text, xmin, ymin, xmax, ymax))
    return VocAnnotation(w, h, tuple(boxes))


def _text(node: Element, path: str) -> str:
    found = node.find(path)
    if found is None or found.text is None or not found.text.strip():
        raise VocError(f"missing <{path}>")
    return found.text.strip()


def _no_stray_text(node: Element) -> None:
    if (node.text or "").strip() or any((child.tail or "").strip() for child in node):
        raise VocError(f"stray text inside <{node.tag}> (a damaged file?)")


def _safe(data: bytes) -> VocAnnotation:
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise VocError(f"unsafe XML ({type(exc).__name__})") from None
    except ParseError as exc:
        raise VocError(f"malformed XML ({exc})") from None
    if root.tag != "annotation":
        raise VocError(f"root element <{root.tag}>, not <annotation>")
    _no_stray_text(root)
    width, height = (parse_int(_text(root, f), f"<{f}>", minimum=1) for f in _SIZE_FIELDS)
    boxes = []
    for obj in root.findall("object"):
        _no_stray_text(obj)
        uid = _text(obj, "unique_id")
        coords = (parse_int(_text(obj, f"bndbox/{c}"), f"<bndbox/{c}>") for c in _BOX_FIELDS)
        boxes.append(VocBox(uid, *coords))
    return VocAnnotation(width, height, tuple(boxes))


def parse_voc(data: bytes) -> VocAnnotation:
    """Parse one annotation document; raise :class:`VocError` (malformed, unsafe, incomplete) or
    :class:`~polypbench.prepare.inputs.BadValue` (a number that is not usable, naming its element)."""
    return _exact(data) or _fast(data) or _safe(data)


__all__ = ["BadValue", "VocAnnotation", "VocBox", "VocError", "is_negative", "parse_voc"]
