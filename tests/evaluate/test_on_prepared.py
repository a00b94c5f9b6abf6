"""Scoring on manifests written by the real `polypbench prepare` (synthetic dumps), not a hand-made fixture."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polypbench import score
from polypbench.evaluate import SubmissionError
from polypbench.manifest import Manifest
from tests.helpers import DATASETS


def frame_predictions(out, noise_mm: float, seed: int = 0) -> pd.DataFrame:
    rows = Manifest.open(out).select("test")
    rng = np.random.default_rng(seed)
    size = np.clip(rows["size_mm"].to_numpy() + rng.normal(0, noise_mm, len(rows)), 0.1, None)
    return pd.DataFrame({"polyp_id": rows["polyp_id"], "frame_index": rows["frame_index"], "size_mm": size})


@pytest.mark.parametrize("name", DATASETS)
def test_perfect_predictions_score_perfectly(prepared, name: str) -> None:
    out = prepared[name].out
    result = score(frame_predictions(out, 0.0), out, n_bootstrap=50)
    test_polyps = Manifest.open(out).select("test", table="polyps")
    assert result.stat("polyp/triclass/pooled/accuracy").value == 1.0
    assert result.stat("polyp/binary10/pooled/accuracy").value == 1.0
    assert result.stat("polyp/size/pooled/mae_mm").value == pytest.approx(0.0, abs=1e-6)
    assert result.counts["pooled"]["n_polyps"] == len(test_polyps)
    assert result.counts["pooled"]["n_patients"] == test_polyps["patient_id"].nunique()


def test_noise_lowers_the_score_and_pooling_over_datasets_works(prepared) -> None:
    outs = [prepared["real-colon"].out, prepared["sun"].out]
    preds = pd.concat([frame_predictions(o, 4.0, seed=1) for o in outs], ignore_index=True)
    result = score(preds, outs, n_bootstrap=50)
    acc = result.stat("polyp/triclass/pooled/accuracy")
    assert acc.value < 1.0 and acc.ci95[0] <= acc.value <= acc.ci95[1]
    assert {"real-colon", "sun", "pooled"} <= set(result.datasets)
    assert result.manifests == [Manifest.open(o).provenance() for o in outs]  # the one provenance record


def test_a_prediction_file_missing_test_rows_is_refused(prepared) -> None:
    out = prepared["sun"].out
    with pytest.raises(SubmissionError, match="have no prediction"):
        score(frame_predictions(out, 0.0).iloc[1:], out, n_bootstrap=10)


def test_frame_numbers_outside_int32_are_refused_not_folded(prepared) -> None:
    out = prepared["sun"].out
    preds = frame_predictions(out, 0.0)
    preds["frame_index"] = preds["frame_index"].astype("int64")
    preds.loc[0, "frame_index"] += 2**32  # would alias the same frame in a 32-bit key
    with pytest.raises(SubmissionError, match="frame number outside"):
        score(preds, out, n_bootstrap=10)


def test_weighted_median_ties_at_half_despite_rounding() -> None:
    from polypbench.evaluate.bootstrap import MedianSearch

    # patients with 1, 1 and 3 frames (frame weights 1, 1, 1/3), the third drawn twice: weights 1, 1, 2/3, 2/3, 2/3
    # total 4, and the cumulative weight reaches exactly half at the 2nd value, so the median is (1 + 2) / 2;
    # floating point makes the total 4 + 1 ulp, which picked 1.0 before ties were compared with a tolerance
    values = np.arange(5, dtype=float)
    patient = np.array([0, 1, 2, 2, 2])
    weight = np.array([1.0, 1.0, 1 / 3, 1 / 3, 1 / 3])
    got = MedianSearch.build(values, patient, weight, 3).median(np.array([[1.0, 1.0, 2.0]]))
    assert got[0] == 1.5


def test_cli_writes_json_and_report_into_new_folders(prepared, tmp_path) -> None:
    from click.testing import CliRunner

    from polypbench.cli import main

    out = prepared["sun"].out
    preds = tmp_path / "preds.csv"
    frame_predictions(out, 1.0).to_csv(preds, index=False)
    target = tmp_path / "new" / "dir"
    result = CliRunner().invoke(main, ["evaluate", str(preds), "--manifest", str(out), "--bootstrap", "20",
                                       "--json", str(target / "r.json"), "--report", str(target / "r.html")])
    assert result.exit_code == 0, result.output
    assert "n frames" in result.output and (target / "r.json").is_file() and (target / "r.html").is_file()


def test_the_real_colon_public_test_split_shows_support_flags_and_withheld_intervals(prepared, tmp_path) -> None:
    """8 patients with polyps, 21 polyps, ONE large polyp: no honest interval rests on that polyp, the others are
    flagged, and the JSON, the terminal and the report say so alike (issue #12)."""
    import json

    from click.testing import CliRunner

    from polypbench.cli import main
    from polypbench.evaluate import format_stat, lookup
    from polypbench.evaluate.format import FLAG, LEGEND

    out = prepared["real-colon"].out
    preds = tmp_path / "preds.csv"
    frame_predictions(out, 2.0).to_csv(preds, index=False)
    res = CliRunner().invoke(main, ["evaluate", str(preds), "--manifest", str(out), "--bootstrap", "400",
                                    "--json", str(tmp_path / "r.json"), "--report", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["counts"]["real-colon"]["n_polyps"] == 21 and doc["counts"]["real-colon"]["n_patients"] == 8
    m = doc["metrics"]
    ba = m["polyp/triclass/real-colon/balanced_accuracy"]
    assert ba["value"] is not None and ba["ci95"] is None and ba["ci_reason"] == "large: 1 polyp"
    assert ba["verdict"] == {"ci_reason": {"kind": "class_patients", "class": "large", "polyps": 1, "patients": 1}}
    assert ba["class_polyps"] == [17, 3, 1] and (ba["n_polyps"], ba["n_patients"]) == (21, 8)
    assert ba["undefined_replicates"] > 0  # resamples without the large polyp, counted
    large = m["polyp/triclass/real-colon/sensitivity/large"]
    assert large["ci95"] is None and large["ci_reason"] == "large: 1 polyp" and large["n_polyps"] == 1
    assert m["polyp/binary10/real-colon/balanced_accuracy"]["ci_reason"] == ">=10 mm: 1 polyp"
    acc = m["polyp/triclass/real-colon/accuracy"]
    assert acc["ci95"] is not None and acc["flags"] == ["8 patients"]
    small = m["polyp/triclass/real-colon/sensitivity/small"]
    assert "small: 3 polyps" in small["flags"] and small["n_polyps"] == 3
    shown = {key: format_stat(lookup(doc, key), key) for key in ("polyp/triclass/real-colon/balanced_accuracy",
                                                       "polyp/triclass/real-colon/accuracy",
                                                       "polyp/size/real-colon/mae_mm")}
    assert shown["polyp/triclass/real-colon/balanced_accuracy"].endswith("(no CI: large: 1 polyp)")
    assert shown["polyp/triclass/real-colon/accuracy"].endswith(FLAG)
    page, md = (tmp_path / "r.html").read_text(), (tmp_path / "r.md").read_text()
    for text in shown.values():
        assert text in res.output and f"<td>{text}</td>" in page and f"| {text} |" in md, text
    assert "polyp/triclass/real-colon/accuracy: 8 patients" in res.output  # why, under the terminal table
    assert LEGEND in res.output and LEGEND in page and LEGEND in md
    assert "<td>polyp/triclass/real-colon/sensitivity/small</td>" in page  # the report's flagged-intervals table
    assert "<td>1 / 1</td>" in page  # per-class support: the one large polyp of one patient
    # clinical terms (issue #22): surveillance intervals from the manifest's histology, and Bland-Altman
    surveillance = doc["clinical"]["surveillance"]["patients"]["real-colon"]
    assert surveillance["assumed_histology"] == 0 and surveillance["usmstf2020"]["scored"] == 8
    for key in ("patient/surveillance/real-colon/usmstf2020_later", "patient/surveillance/pooled/esge2020_agreement",
                "polyp/size/real-colon/loa_lower_mm", "polyp/size/real-colon/cross_up_10mm"):
        assert m[key]["value"] is not None, key
    for text in ("USMSTF 2020", "ESGE 2020", "later (unsafe)", "LoA lower (mm)"):
        assert text in res.output and text in page and text in md, text


def test_one_patient_gives_no_interval(tmp_path) -> None:
    from polypbench.evaluate import Note, NoteKind
    from polypbench.evaluate.format import format_stat

    from .helpers import write_manifest

    root = write_manifest(tmp_path / "one", "real-colon", [("real-colon/A_1", "A", 3.0, "test", 2),
                                                          ("real-colon/A_2", "A", 7.0, "test", 2)])
    result = score(pd.DataFrame({"polyp_id": ["real-colon/A_1", "real-colon/A_2"], "size_mm": [3.5, 4.0]}), root,
                   n_bootstrap=100)
    mae = result.stat("polyp/size/pooled/mae_mm")
    assert mae.ci95 is None and mae.ci_reason == Note(NoteKind.PATIENTS, patients=1)
    assert format_stat(mae, "mae_mm") == "1.75 (no CI: 1 patient)"
    assert "1.75 (no CI: 1 patient)" in result.summary_table()
