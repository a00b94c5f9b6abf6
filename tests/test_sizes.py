"""The clinical size thresholds, pinned at and around their boundaries (sizes.py is their one owner)."""

from __future__ import annotations

import numpy as np
import pytest

from polypbench import sizes

BOUNDARIES = [  # size_mm, triclass, binary10 (<10 vs >=10), binary5 (<=5 vs >5)
    (0.0, 0, 0, 0),
    (4.9999, 0, 0, 0),
    (5.0, 0, 0, 0),  # diminutive is <= 5 mm
    (5.0001, 1, 0, 1),
    (9.9999, 1, 0, 1),
    (10.0, 2, 1, 1),  # large is >= 10 mm
    (10.0001, 2, 1, 1),
    (25.0, 2, 1, 1),
]


@pytest.mark.parametrize(("size", "tri", "bin10", "bin5"), BOUNDARIES)
def test_boundaries(size: float, tri: int, bin10: int, bin5: int) -> None:
    assert sizes.size_class3([size]).tolist() == [tri]
    assert sizes.size_class2([size]).tolist() == [bin10]
    assert sizes.size_class_binary5([size]).tolist() == [bin5]
    assert [sizes.size_class([size], t)[0] for t in ("triclass", "binary10", "binary5")] == [tri, bin10, bin5]
    for task, expected in (("triclass", tri), ("binary10", bin10), ("binary5", bin5)):
        assert sizes.triclass_to_task([tri], task).tolist() == [expected]


def test_thresholds_are_the_clinical_convention() -> None:
    assert (sizes.DIMINUTIVE_MAX_MM, sizes.LARGE_MIN_MM) == (5.0, 10.0)
    assert sizes.size_class3(np.array([5.0, 10.0], dtype=np.float32)).dtype == np.int8


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5])
def test_nan_infinite_and_negative_sizes_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite, non-negative"):
        sizes.size_class3([3.0, bad])


def test_unknown_task_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="triclass, binary10, binary5"):
        sizes.size_class([3.0], "quad")
