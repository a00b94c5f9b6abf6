"""The annotation XML reader: the fast path agrees with the safe parser, and unsafe or broken XML is refused."""

from __future__ import annotations

import pytest

from polypbench.prepare import voc

DOC = (
    "<annotation><version_fmt>1.0</version_fmt><folder>002-001_frames</folder><filename>002-001_18185.jpg</filename>"
    "<source><database>cosmoimd</database><release>v1.0_20230228</release></source>"
    "<size><width>1352</width><height>1080</height><depth>3</depth></size>{objects}</annotation>\n"
)
OBJ = ("<object><name>lesion</name><unique_id>{uid}</unique_id><box_id>1</box_id><bndbox>"
       "<xmin>{x0}</xmin><xmax>{x1}</xmax><ymin>{y0}</ymin><ymax>{y1}</ymax></bndbox></object>")


def doc(*boxes: tuple[str, object, object, object, object]) -> bytes:
    objs = "".join(OBJ.format(uid=u, x0=a, y0=b, x1=c, y1=d) for u, a, b, c, d in boxes)
    return DOC.format(objects=objs).encode()


@pytest.mark.parametrize("boxes", [(), (("002-001_1", 540, 852, 1196, 1070),),
                                   (("002-001_1", 1, 2, 3, 4), ("002-001_2", "10.0", "20.4", "30.6", 40))])
def test_fast_path_agrees_with_the_safe_parser(boxes: tuple) -> None:
    data = doc(*boxes)
    fast = voc._fast(data)
    assert fast is not None and fast == voc._safe(data) == voc._exact(data)
    assert [b.unique_id for b in fast.boxes] == [b[0] for b in boxes]
    assert (fast.width, fast.height) == (1352, 1080)


def test_coordinates_map_to_xyxy_despite_the_xmin_xmax_ymin_ymax_order() -> None:
    (box,) = voc.parse_voc(doc(("001-001_1", 10, 20, 30, 40))).boxes
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == (10, 20, 30, 40)


def test_negative_frames_are_recognised_without_parsing() -> None:
    assert voc.is_negative(doc())
    assert not voc.is_negative(doc(("a", 1, 2, 3, 4)))


def test_a_byte_order_mark_keeps_the_fast_path() -> None:
    """A BOM before the document (an editor's save) is neither a parse error nor a slow path."""
    bom = b"\xef\xbb\xbf"
    assert voc.is_negative(bom + doc())
    boxes = (("002-001_1", 540, 852, 1196, 1070),)
    assert voc._exact(bom + doc(*boxes)) == voc._safe(bom + doc(*boxes)) == voc._safe(doc(*boxes))
    assert not voc.is_negative(doc()[:-20])  # truncated: must go to the parser, not be counted as negative
    other = doc().replace(b"<size>", b"<segmented>0</segmented><owner><name>x</name></owner><size>")
    assert voc.is_negative(other) and voc._safe(other).boxes == ()  # another layout, provably without a box


POSITIVE = doc(("001-001_1", 10, 20, 30, 40))


@pytest.mark.parametrize("damaged", [
    POSITIVE.replace(b"<object>", b"<obxect>"),  # still ends in </annotation>
    POSITIVE.replace(b"<object><name>lesion</name>", b"\0garbage\0"),
    POSITIVE.replace(b"</bndbox>", b""),
    POSITIVE.replace(b"<object>", b"<objects>"),
    POSITIVE.replace(b"<object>", b"<!-- --><object>"),
    POSITIVE.replace(b"<size>", b"<wrap><object>").replace(b"</size>", b"</object></wrap>"),
    POSITIVE[: len(POSITIVE) // 2] + b"</annotation>",
])
def test_a_damaged_positive_never_passes_as_negative(damaged: bytes) -> None:
    assert not voc.is_negative(damaged)


def test_comments_and_other_layouts_fall_back_to_the_safe_parser() -> None:
    data = doc(("001-001_1", 10, 20, 30, 40)).replace(b"<object>", b"<!-- c --><object>")
    assert voc._fast(data) is None
    assert voc.parse_voc(data).boxes[0].xmax == 30


@pytest.mark.parametrize(
    "data, message",
    [
        (doc(("a", 1, 2, 3, 4))[:-30], "malformed XML"),
        (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><annotation>&lol;</annotation>', "unsafe XML"),
        (doc(("a", 1, 2, 3, 4)).replace(b"<xmin>1</xmin>", b""), "missing <bndbox/xmin>"),
        (doc(("a", "one", 2, 3, 4)), r"<bndbox/xmin>: 'one' is not a number"),
        (doc(("a", "inf", 2, 3, 4)), r"<bndbox/xmin>: inf is not finite"),
        (doc(("a", 1, 2, "1e400", 4)), r"<bndbox/xmax>: inf is not finite"),
        (doc(("a", 1, 2, 3, 2**31)), r"<bndbox/ymax>: 2147483648 is out of range"),
        (doc(("a", 1, 2, 3, 4)).replace(b"<object>", b"<object>stray", 1), "stray text"),
        (b"<voc></voc>", "root element"),
    ],
)
def test_bad_documents_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises((voc.VocError, voc.BadValue), match=message):
        voc.parse_voc(data)
