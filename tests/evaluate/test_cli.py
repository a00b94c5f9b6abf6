"""`polypbench evaluate`: table on stdout, JSON and reports written, refusals as Error lines with a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from polypbench.cli import main

from .helpers import PolypSpec, frame_predictions, polyp_level, write_manifest

ONE_LARGE: list[PolypSpec] = [
    (f"real-colon/P{p}_{i}", f"P{p}", size, "test", 1)
    for p, sizes in enumerate([(12.0, 3.0), (4.0, 7.0), (2.0, 6.0), (3.0, 8.0), (4.5, 6.5), (2.5, 9.0)])
    for i, size in enumerate(sizes)
]
"""Six patients; the one large polyp belongs to P0: no honest interval for metrics resting on the large class."""


def test_evaluate_writes_table_json_and_reports(small_manifest: Path, tmp_path: Path) -> None:
    preds = tmp_path / "preds.parquet"
    frame_predictions().to_parquet(preds)
    out = tmp_path / "out"
    out.mkdir()
    res = CliRunner().invoke(main, ["evaluate", str(preds), "--manifest", str(small_manifest), "--bootstrap", "50",
                                    "--json", str(out / "r.json"), "--report", str(out / "r.html")])
    assert res.exit_code == 0, res.output
    assert "Per polyp (HEADLINE" in res.output and "Per frame" in res.output and "macro F1" in res.output
    doc = json.loads((out / "r.json").read_text())
    assert doc["bootstrap"]["replicates"] == 50 and doc["predictions"]["level"] == "frame"
    page = (out / "r.html").read_text()
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page and "confusion matrix" in page
    assert "<script" not in page and "http" not in page.split("base64,")[0]  # self-contained
    assert (out / "r.png").stat().st_size > 1000
    md = (out / "r.md").read_text()
    assert "| dataset |" in md and "](r.png)" in md


def test_evaluate_compare(small_manifest: Path, tmp_path: Path) -> None:
    polyp_level().to_csv(tmp_path / "a.csv", index=False)
    b = polyp_level()
    b["size_mm"] += 1.0
    b.to_csv(tmp_path / "b.csv", index=False)
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "a.csv"), "--manifest", str(small_manifest),
                                    "--compare", str(tmp_path / "b.csv"), "--bootstrap", "20",
                                    "--json", str(tmp_path / "c.json")])
    assert res.exit_code == 0, res.output
    assert "this - other" in res.output and "P(this > other)" in res.output
    doc = json.loads((tmp_path / "c.json").read_text())
    bias = doc["comparison"]["metrics"]["polyp/size/pooled/bias_mm"]
    assert bias["value"] == -1.0 and bias["p_greater"] == 0.0  # a's bias is lower in every replicate
    assert doc["comparison"]["other_metrics"]["polyp/size/pooled/bias_mm"]["value"] == 2.0  # b's own number


def test_evaluate_compare_withholds_a_difference_resting_on_a_one_patient_class(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "one-large" / "real-colon", "real-colon", ONE_LARGE)
    for name, offset in (("a", 0.4), ("b", 2.6)):
        pd.DataFrame({"polyp_id": [p[0] for p in ONE_LARGE],
                      "size_mm": [p[2] + offset for p in ONE_LARGE]}).to_csv(tmp_path / f"{name}.csv", index=False)
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "a.csv"), "--manifest", str(manifest),
                                    "--compare", str(tmp_path / "b.csv"), "--bootstrap", "30",
                                    "--json", str(tmp_path / "c.json")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "c.json").read_text())
    key = "polyp/triclass/pooled/macro_f1"
    own = doc["metrics"][key]
    diff = doc["comparison"]["metrics"][key]
    assert own["ci95"] is None and own["verdict"]["ci_reason"]["kind"] == "class_patients"
    assert diff["value"] is not None and diff["ci95"] is None and "p_value" not in diff
    assert diff["verdict"]["ci_reason"] == own["verdict"]["ci_reason"]  # the same reason as the file's own number
    accuracy = doc["comparison"]["metrics"]["polyp/triclass/pooled/accuracy"]  # rests on no class: given
    assert accuracy["ci95"] is not None and "p_value" in accuracy


def test_evaluate_refuses_with_every_problem_and_exits_non_zero(small_manifest: Path, tmp_path: Path) -> None:
    df = frame_predictions()
    df.loc[0, "size_mm"] = float("nan")
    df.loc[1, "p1"] = 0.9
    df.to_csv(tmp_path / "bad.csv", index=False)
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "bad.csv"), "--manifest", str(small_manifest)])
    assert res.exit_code != 0
    assert res.output.startswith("Error: ")
    assert "size_mm: row 1: missing or non-finite" in res.output and "do not sum to 1" in res.output
    assert "macro F1" not in res.output  # nothing scored


def test_evaluate_refuses_other_file_types(small_manifest: Path, tmp_path: Path) -> None:
    (tmp_path / "p.xlsx").write_bytes(b"PK\x03\x04")
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "p.xlsx"), "--manifest", str(small_manifest)])
    assert res.exit_code == 1 and "not Parquet/CSV" in res.output


def test_evaluate_help_has_an_example() -> None:
    res = CliRunner().invoke(main, ["evaluate", "--help"])
    assert res.exit_code == 0 and "Example:" in res.output and "--compare" in res.output


def test_polyp_level_csv_is_accepted(small_manifest: Path, tmp_path: Path) -> None:
    pd.DataFrame({"polyp_id": ["real-colon/A_1", "real-colon/A_2", "real-colon/B_1", "real-colon/B_2",
                               "real-colon/C_1", "real-colon/C_2"],
                  "p0": [1.0, 0, 0, 1, 0, 0], "p1": [0.0, 1, 0, 0, 1, 0], "p2": [0.0, 0, 1, 0, 0, 1]}
                 ).to_csv(tmp_path / "p.csv", index=False)
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "p.csv"), "--manifest", str(small_manifest),
                                    "--bootstrap", "10"])
    assert res.exit_code == 0, res.output
    assert "1.000 (no CI: 3 patients)" in res.output  # three patients: no honest interval, and it says so


def test_evaluate_refuses_a_parquet_bomb_from_its_metadata(small_manifest: Path, tmp_path: Path) -> None:
    """A small file declaring far more rows than the manifests have frames: refused before a data page is read,
    by the same bound the leaderboard applies (the issue's 400 KB file of 30 M rows once peaked at 7.1 GB)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 200_000
    bomb = pa.table({"polyp_id": pa.array(["sun/case1"] * n).dictionary_encode(),
                     "frame_index": np.zeros(n, np.int64), "size_mm": np.zeros(n)})
    path = tmp_path / "bomb.parquet"
    pq.write_table(bomb, path, compression="zstd")
    assert path.stat().st_size < 50_000
    res = CliRunner().invoke(main, ["evaluate", str(path), "--manifest", str(small_manifest), "--bootstrap", "0"])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith(f"Error: {path}: declares {n} rows; "
                                                                          "expected at most"), res.output
