"""Every refusal of the validator: one line per problem, naming column, rows and expectation, all at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polypbench.errors import PolypbenchError
from polypbench.evaluate import SubmissionError, read_predictions, score, validate_predictions

from .helpers import frame_predictions


def problems(df: pd.DataFrame, manifest: Path) -> list[str]:
    with pytest.raises(SubmissionError) as info:
        validate_predictions(df, manifest, name="preds.csv")
    assert str(info.value) == "\n".join(info.value.problems)
    assert isinstance(info.value, PolypbenchError)
    return info.value.problems


def one(df: pd.DataFrame, manifest: Path, *needles: str) -> str:
    found = problems(df, manifest)
    assert len(found) == 1, found
    for needle in needles:
        assert needle in found[0], found[0]
    assert found[0].startswith("preds.csv: ") and "; expected " in found[0] and "\n" not in found[0]
    return found[0]


def test_a_valid_file_passes(small_manifest: Path) -> None:
    valid = validate_predictions(frame_predictions(), small_manifest)
    assert valid.level == "frame" and valid.n_rows == 14 and valid.probs is not None and valid.class3 is None


def test_missing_key_column(small_manifest: Path) -> None:
    one(frame_predictions().drop(columns="polyp_id"), small_manifest, "missing key column 'polyp_id'")


def test_no_prediction_column(small_manifest: Path) -> None:
    one(frame_predictions()[["polyp_id", "frame_index"]], small_manifest, "no prediction column")


def test_incomplete_probability_columns(small_manifest: Path) -> None:
    one(frame_predictions().drop(columns="p2"), small_manifest, "missing column(s) p2")


def test_unknown_polyp_id(small_manifest: Path) -> None:
    df = frame_predictions()
    df.loc[3, "polyp_id"] = "real-colon/Z_9"
    found = problems(df, small_manifest)
    assert any("unknown polyp id(s) 'real-colon/Z_9'" in p and "row 4" in p for p in found)
    assert any("have no prediction" in p for p in found)  # the frame it replaced is now missing


def test_rows_from_another_split(small_manifest: Path) -> None:
    df = pd.concat([frame_predictions(), pd.DataFrame([{"polyp_id": "real-colon/D_1", "frame_index": 100,
                                                        "size_mm": 6.0, "p0": 0.2, "p1": 0.3, "p2": 0.5}])])
    one(df, small_manifest, "polyp_id", "from the train split", "row 15", "only rows of the test split")


def test_unknown_frame(small_manifest: Path) -> None:
    df = pd.concat([frame_predictions(), pd.DataFrame([{"polyp_id": "real-colon/A_1", "frame_index": 999,
                                                        "size_mm": 3.0, "p0": 0.2, "p1": 0.3, "p2": 0.5}])])
    one(df, small_manifest, "frame_index", "row 15", "not a frame of the test split")


def test_duplicate_keys(small_manifest: Path) -> None:
    df = frame_predictions()
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    one(df, small_manifest, "duplicate key", "rows 1, 15", "one row per frame")


def test_missing_rows(small_manifest: Path) -> None:
    line = one(frame_predictions().iloc[2:], small_manifest, "2 of 14 test frames have no prediction",
               "(real-colon/A_1, 100)", "complete coverage")
    assert "(real-colon/A_1, 101)" in line


def test_missing_polyp_level_rows(small_manifest: Path) -> None:
    df = pd.DataFrame({"polyp_id": ["real-colon/A_1", "real-colon/A_2"], "size_mm": [3.0, 7.0]})
    one(df, small_manifest, "4 of 6 test polyps have no prediction", "'real-colon/B_1'")


@pytest.mark.parametrize("bad, needle", [(np.nan, "missing or non-finite"), (np.inf, "missing or non-finite"),
                                         (-1.0, "negative size")])
def test_bad_sizes(small_manifest: Path, bad: float, needle: str) -> None:
    df = frame_predictions()
    df.loc[5, "size_mm"] = bad
    one(df, small_manifest, "size_mm", needle, "row 6")


def test_probability_outside_unit_interval(small_manifest: Path) -> None:
    df = frame_predictions()
    df.loc[0, ["p0", "p1", "p2"]] = [-0.5, 0.5, 1.0]
    found = problems(df, small_manifest)
    assert any(p.startswith("preds.csv: p0: row 1: value outside [0, 1]") for p in found), found


def test_probabilities_not_summing_to_one(small_manifest: Path) -> None:
    df = frame_predictions()
    df.loc[[1, 2], "p2"] = 0.6
    df.loc[3, "p2"] = 0.5009  # within 1e-3: accepted
    one(df, small_manifest, "p0+p1+p2", "rows 2, 3", "do not sum to 1", "within 0.001")


@pytest.mark.parametrize("column, values, needle", [
    ("size_mm", "big", "size_mm: type"),
    ("p1", "x", "p1: type"),
    ("frame_index", 1.5, "frame_index: type float64"),
    ("polyp_id", 7, "polyp_id: type"),
    ("class3", 1.0, "class3: type float64"),
])
def test_wrong_types(small_manifest: Path, column: str, values: object, needle: str) -> None:
    df = frame_predictions()
    df[column] = values
    assert any(needle in p for p in problems(df, small_manifest))


def test_class_labels_out_of_range(small_manifest: Path) -> None:
    df = frame_predictions()
    df["class3"] = 1
    df.loc[4, "class3"] = 3
    one(df, small_manifest, "class3", "row 5", "label not in {0, 1, 2}")


def test_empty_file(small_manifest: Path) -> None:
    one(frame_predictions().iloc[:0], small_manifest, "empty file")


def test_every_problem_is_listed_at_once(small_manifest: Path) -> None:
    df = frame_predictions()
    df.loc[0, "size_mm"] = -2.0
    df.loc[1, "p0"] = 0.9
    df.loc[2, "polyp_id"] = "real-colon/nope"
    df = pd.concat([df, df.iloc[[5]]], ignore_index=True)
    found = problems(df, small_manifest)
    for needle in ("negative size", "do not sum to 1", "unknown polyp id", "duplicate key", "have no prediction"):
        assert sum(needle in p for p in found) == 1, (needle, found)


def test_many_bad_rows_make_one_line_with_a_count(small_manifest: Path) -> None:
    df = frame_predictions()
    df["size_mm"] = np.nan
    line = one(df, small_manifest, "in 14 row(s)", "rows 1, 2, 3, 4, 5 (and 9 more)")
    assert "1.0" not in line


def test_nothing_is_scored_from_a_partially_valid_file(small_manifest: Path) -> None:
    df = frame_predictions()
    df.loc[0, "size_mm"] = np.nan
    with pytest.raises(SubmissionError):
        score(df, small_manifest, n_bootstrap=10)


# -- files ------------------------------------------------------------------------------------------------------

def file_problem(path: Path) -> str:
    with pytest.raises(SubmissionError) as info:
        read_predictions(path)
    assert len(info.value.problems) == 1
    return info.value.problems[0]


def test_csv_and_parquet_are_read_with_the_same_result(small_manifest: Path, tmp_path: Path) -> None:
    df = frame_predictions()
    df.to_csv(tmp_path / "p.csv", index=False)
    df.to_parquet(tmp_path / "p.parquet")
    a = validate_predictions(read_predictions(tmp_path / "p.csv"), small_manifest)
    b = validate_predictions(read_predictions(tmp_path / "p.parquet"), small_manifest)
    np.testing.assert_array_equal(a.size_mm, b.size_mm)
    np.testing.assert_array_equal(a.probs, b.probs)


def test_not_parquet_or_csv(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text("{}")
    assert "is not Parquet/CSV" in file_problem(tmp_path / "p.json")
    (tmp_path / "p.parquet").write_text("polyp_id,size_mm\n")
    assert "not a readable Parquet file" in file_problem(tmp_path / "p.parquet")


def test_empty_files(small_manifest: Path, tmp_path: Path) -> None:
    (tmp_path / "zero.csv").write_bytes(b"")
    assert "empty file" in file_problem(tmp_path / "zero.csv")
    (tmp_path / "header.csv").write_text("polyp_id,frame_index,size_mm\n")
    one(read_predictions(tmp_path / "header.csv"), small_manifest, "empty file")


def test_csv_with_a_blank_frame_index_is_refused(small_manifest: Path, tmp_path: Path) -> None:
    df = frame_predictions()
    df["frame_index"] = df["frame_index"].astype(object)
    df.loc[2, "frame_index"] = None
    df.to_csv(tmp_path / "p.csv", index=False)
    assert any("frame_index" in p for p in problems(read_predictions(tmp_path / "p.csv"), small_manifest))


def test_key_lookup_in_unsorted_tables() -> None:
    from polypbench.evaluate.validate import _lookup

    table = np.array([50, 10, 40, 20], dtype=np.int64)
    np.testing.assert_array_equal(_lookup(table, np.array([20, 50, 30, 10, 99])), [3, 0, -1, 1, -1])
    np.testing.assert_array_equal(_lookup(np.sort(table), np.array([40, 5])), [2, -1])
    np.testing.assert_array_equal(_lookup(table, table.copy()), [0, 1, 2, 3])


def test_frame_rows_without_frame_index_hint_at_the_missing_column(small_manifest: Path) -> None:
    df = frame_predictions().drop(columns="frame_index")
    found = problems(df, small_manifest)
    assert any("duplicate key" in p and "need a frame_index column" in p for p in found), found
