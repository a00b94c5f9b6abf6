"""Property: whatever happens to one annotation file, prepare follows the policy.

Random edits (truncation, inserted, overwritten, deleted or repeated bytes, numbers swapped for ``inf``, ``NaN``,
``1e400``, values past int32, negatives) of a REAL-Colon XML, a SUN txt or a SUN-SEG json. Then prepare never
raises, reports only known kinds (never ``internal``), names the damaged file in every problem it causes, keeps
every row that came from another file, and ``--strict`` stops exactly at the first problem that skipped input.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polypbench.errors import PolypbenchError
from polypbench.prepare import prepare
from polypbench.prepare.problems import FIXES, KINDS
from tests.helpers import replace_file
from tests.prepare.helpers import KEY, Small

NUMBERS = [b"inf", b"-inf", b"NaN", b"1e400", b"-1", b"99999999999", b"2147483648", b"0", b"", b"1.5", b"0x10",
           b"\xff\xfe", b"Infinity", b"-99999"]
EDITS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("overwrite"), st.floats(0, 1), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 40)),
    st.tuples(st.just("repeat"), st.floats(0, 1), st.integers(1, 80)),
    st.tuples(st.just("number"), st.integers(0, 30), st.sampled_from(NUMBERS)),
)


def mutate(data: bytes, edits: list[tuple]) -> bytes:
    for edit in edits:
        kind, where = edit[0], edit[1]
        at = int(where * len(data)) if isinstance(where, float) else where
        if kind == "truncate":
            data = data[:at]
        elif kind == "insert":
            data = data[:at] + edit[2] + data[at:]
        elif kind == "overwrite":
            data = data[:at] + edit[2] + data[at + len(edit[2]):]
        elif kind == "delete":
            data = data[:at] + data[at + edit[2]:]
        elif kind == "repeat":
            data = data[:at] + data[at:at + edit[2]] + data[at:]
        else:
            numbers = list(re.finditer(rb"-?\d+", data))
            if numbers:
                m = numbers[at % len(numbers)]
                data = data[:m.start()] + edit[2] + data[m.end():]
    return data


def target(base: Small) -> tuple[Path, str]:
    """The file to damage and the prefix of the frame paths whose rows come from it."""
    raw = base.raw
    if base.dataset == "real-colon":
        path = next(p for p in sorted((raw / "001-001_annotations").glob("*.xml")) if b"<object>" in p.read_bytes())
        return path, f"001-001_frames/{path.stem}.jpg"
    if base.dataset == "sun":
        return raw / "SUN-Positive" / "annotation_txt" / "case1.txt", "SUN-Positive/case1/"
    return raw / "TrainDataset" / "Detection" / "bbox_annotation.json", "TrainDataset/"


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["real-colon", "sun", "sun-seg"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(EDITS, min_size=1, max_size=3))
def test_a_damaged_annotation_follows_the_policy(small: dict[str, Small], dataset: str, edits: list[tuple]) -> None:
    base = small[dataset]
    path, rows_from_it = target(base)
    original = path.read_bytes()
    replace_file(path, mutate(original, edits))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            report = prepare(dataset, base.raw, Path(tmp) / "out", workers=1)
            frames = pd.read_parquet(Path(tmp) / "out" / "frames.parquet")
            problems = json.loads((Path(tmp) / "out" / "prepare_report.json").read_text())["all_problems"]
            try:
                prepare(dataset, base.raw, Path(tmp) / "strict", workers=1, strict=True)
                stopped = None
            except PolypbenchError as exc:
                stopped = str(exc)
    finally:
        replace_file(path, original)
    assert set(report.problems) <= set(KINDS) and "internal" not in report.problems, report.problems
    assert set(base.problems) <= {"lesion_without_frames"}  # so every other problem comes from the damage
    named = path.relative_to(base.raw).as_posix()
    for problem in problems:
        if problem["kind"] != "lesion_without_frames":
            assert named in problem["message"] and "\n" not in problem["message"], problem
    others = base.frames[~base.frames["frame_path"].str.startswith(rows_from_it)]
    kept = others.merge(frames, on=[*KEY, "frame_path"], how="left", indicator=True)
    assert (kept["_merge"] == "both").all(), "a row from an undamaged file was lost"
    skips = [p["message"] for p in problems if p["kind"] not in FIXES]
    assert stopped == (skips[0] if skips else None)
