"""score() end to end on a tiny manifest: aggregation rules, hand-computed values, views, datasets, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import polypbench
from polypbench.evaluate import (
    RESULT_SCHEMA_VERSION,
    Note,
    NoteKind,
    compare,
    lookup,
    parse_key,
    score,
    validate_predictions,
)
from polypbench.evaluate.aggregate import per_polyp
from polypbench.evaluate.truth import load_truth

from .helpers import HAND_CM, SMALL, SUN, TEST, frames, polyp_level, wide_polyp_level, write_manifest


def test_score_is_exported_lazily() -> None:
    assert polypbench.score is score


def test_hand_computed_polyp_level_result(small_manifest: Path) -> None:
    result = score(polyp_level(), small_manifest, n_bootstrap=50, seed=1)
    assert result.predictions["class_source"] == "class3" and list(result.views) == ["polyp", "patient"]
    np.testing.assert_array_equal(result.confusion_matrices["polyp/triclass/pooled"], HAND_CM)
    assert result.stat("polyp/triclass/pooled/accuracy").value == pytest.approx(4 / 6)
    assert result.stat("polyp/triclass/pooled/specificity/large").value == pytest.approx(3 / 4)
    assert result.stat("polyp/triclass/pooled/precision/large").value == pytest.approx(2 / 3)
    assert result.stat("polyp/triclass/pooled/macro_f1").value == pytest.approx((2 / 3 + 1 / 2 + 4 / 5) / 3)
    # binary10: true (0,0,1,0,0,1), predicted (0,1,1,0,0,1): one false positive
    assert result.stat("polyp/binary10/pooled/accuracy").value == pytest.approx(5 / 6)
    assert result.stat("polyp/binary10/pooled/specificity/ge10mm").value == pytest.approx(3 / 4)
    assert result.stat("polyp/binary10/pooled/sensitivity/ge10mm").value == pytest.approx(1.0)
    # every predicted size is 1 mm too large
    for metric in ("mae_mm", "median_ae_mm", "bias_mm"):
        assert result.stat(f"polyp/size/pooled/{metric}").value == pytest.approx(1.0)
    assert result.counts["pooled"] == {"n_polyps": 6, "n_patients": 3, "n_frames": 14}


def test_frame_predictions_are_aggregated_per_polyp(small_manifest: Path) -> None:
    n = sum(s[4] for s in TEST)
    size = np.full(n, 1.0)
    size[2:5] = [5.0, 9.0, 100.0]                  # A_2: median 9, not the mean 38
    class3 = np.zeros(n, dtype=int)
    class3[0:2] = [1, 0]                           # A_1: tie 1-1 goes to the smaller class (0)
    class3[10:14] = [2, 1, 2, 1]                   # C_2: tie goes to 1
    probs = np.tile([1.0, 0.0, 0.0], (n, 1))
    probs[5:7] = [[0.6, 0.3, 0.1], [0.0, 0.1, 0.9]]  # B_1: mean (0.3, 0.2, 0.5): large
    df = frames(size_mm=size, class3=class3, p0=probs[:, 0], p1=probs[:, 1], p2=probs[:, 2])
    truth = load_truth(small_manifest)
    valid = validate_predictions(df.sample(frac=1.0, random_state=0), truth)  # row order does not matter
    sizes, labels = per_polyp(valid, truth)
    by_id = dict(zip(truth.polyps["polyp_id"], zip(sizes, labels, strict=True), strict=True))
    assert by_id["real-colon/A_2"][0] == 9.0
    assert by_id["real-colon/A_1"][1] == 0 and by_id["real-colon/C_2"][1] == 1
    probs_only = validate_predictions(df.drop(columns=["class3"]), truth)
    assert dict(zip(truth.polyps["polyp_id"], per_polyp(probs_only, truth)[1], strict=True))["real-colon/B_1"] == 2
    size_only = validate_predictions(df[["polyp_id", "frame_index", "size_mm"]], truth)
    size_only_labels = dict(zip(truth.polyps["polyp_id"], per_polyp(size_only, truth)[1], strict=True))
    assert size_only_labels["real-colon/A_2"] == 1  # 9 mm: small


def test_frame_views_and_their_weights(small_manifest: Path) -> None:
    truth_class = np.concatenate([[int(s > 5) + int(s >= 10)] * n for _, _, s, _, n in TEST])
    pred = truth_class.copy()
    pred[:2] = 2                                   # patient A's two A_1 frames wrong
    result = score(frames(class3=pred), small_manifest, n_bootstrap=0)
    assert list(result.views) == ["polyp", "frame", "frame_patient", "patient"]
    assert result.stat("frame/triclass/pooled/accuracy").value == pytest.approx(12 / 14)
    # patient-weighted: A has 5 frames, 2 wrong (3/5 right); B and C all right: (3/5 + 1 + 1) / 3
    assert result.stat("frame_patient/triclass/pooled/accuracy").value == pytest.approx((0.6 + 2) / 3)
    cm = result.confusion_matrices["frame_patient/triclass/pooled"]
    assert cm.sum() == pytest.approx(3.0)          # one unit of weight per patient
    assert result.stat("polyp/triclass/pooled/accuracy").value == pytest.approx(5 / 6)
    assert result.stat("polyp/triclass/pooled/accuracy").ci95 is None  # no replicates, no CI
    assert all(isinstance(d, str) and d for d in result.views.values())  # each view says what its numbers mean


def test_per_dataset_and_pooled(small_manifest: Path, sun_manifest: Path) -> None:
    ids = [s[0] for s in SMALL + SUN if s[3] == "test"]
    sizes = [s[2] for s in SMALL + SUN if s[3] == "test"]
    result = score(pd.DataFrame({"polyp_id": ids, "size_mm": sizes}), [small_manifest, sun_manifest], n_bootstrap=20)
    assert list(result.counts) == ["real-colon", "sun", "pooled"]
    assert result.counts["sun"] == {"n_polyps": 4, "n_patients": 4, "n_frames": 8}
    assert [m["dataset"] for m in result.manifests] == ["real-colon", "sun"]
    for ds in ("real-colon", "sun", "pooled"):
        assert result.stat(f"polyp/triclass/{ds}/accuracy").value == 1.0
        assert result.stat(f"polyp/size/{ds}/mae_mm").value == 0.0


def test_undefined_metrics_are_null_with_a_reason(tmp_path: Path) -> None:
    root = write_manifest(tmp_path / "m", "real-colon", [("real-colon/A_1", "A", 3.0, "test", 1),
                                                          ("real-colon/B_1", "B", 7.0, "test", 1)])
    df = pd.DataFrame({"polyp_id": ["real-colon/A_1", "real-colon/B_1"], "class3": [0, 0]})
    result = score(df, root, n_bootstrap=30)
    sens = result.stat("polyp/triclass/pooled/sensitivity/large")
    assert sens.value is None and sens.reason and sens.ci95 is None and sens.undefined_replicates == 30
    assert result.stat("polyp/triclass/pooled/macro_f1").value is None
    assert result.stat("polyp/triclass/pooled/accuracy").value == 0.5
    doc = json.loads(result.to_json())
    entry = doc["metrics"]["polyp/triclass/pooled/macro_f1"]
    assert entry["value"] is None and "absent" in entry["reason"]
    assert lookup(doc, "polyp/triclass/pooled/sensitivity/large") == sens  # the JSON reads back the same Stat
    # some replicates draw only patient A: small is then absent, and those replicates are counted, not zeroed
    small = result.stat("polyp/triclass/pooled/sensitivity/small")
    assert small.value == 0.0 and 0 < small.undefined_replicates < 30


def test_json_layout(small_manifest: Path, tmp_path: Path) -> None:
    result = score(frames(size_mm=np.arange(14.0)), small_manifest, n_bootstrap=40)
    path = tmp_path / "r.json"
    result.to_json(path)
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == RESULT_SCHEMA_VERSION
    assert doc["manifests"][0]["split_version"] == "v1" and doc["manifests"][0]["split_sha256"] == "real-colon-hash"
    assert doc["bootstrap"]["replicates"] == 40 and doc["bootstrap"]["unit"] == "patient"
    assert "median" in doc["aggregation"]["size_mm"]
    assert set(doc["views"]) == {"polyp", "frame", "frame_patient", "patient"}
    metrics = doc["metrics"]
    entry = metrics["frame/binary5/real-colon/macro_f1"]
    assert set(entry) >= {"value", "ci95", "n_polyps", "n_patients"} and entry["n_polyps"] == 6
    assert entry["ci95"] is None and entry["ci_reason"] == "3 patients"  # too few patients: no honest interval
    assert {k for k in metrics if k.startswith("frame/binary5/real-colon/specificity/")} == {
        "frame/binary5/real-colon/specificity/le5mm", "frame/binary5/real-colon/specificity/gt5mm"}
    assert doc["classes"]["binary5"] == {"le5mm": "<=5 mm", "gt5mm": ">5 mm"}
    assert metrics["polyp/size/pooled/median_ae_mm"]["value"] is not None
    assert "polyp/triclass/pooled/kappa_quadratic" in metrics
    assert "polyp/binary10/pooled/kappa_quadratic" not in metrics  # kappa is for the ordinal triclass task only
    assert len(doc["confusion_matrices"]["frame/triclass/real-colon"]) == 3
    assert all(len(parse_key(k)) == 5 for k in metrics)  # every key splits into its parts (cls None or a slug)
    # every number of the JSON reads back exactly as the Result holds it
    assert all(lookup(doc, k) == v for k, v in result.metrics.items()) and len(metrics) == len(result.metrics)


def test_deterministic_for_a_seed(small_manifest: Path) -> None:
    df = frames(size_mm=np.linspace(1, 20, 14), p0=[0.5] * 14, p1=[0.25] * 14, p2=[0.25] * 14)
    a = score(df, small_manifest, n_bootstrap=200, seed=3).to_json()
    assert a == score(df.iloc[::-1], small_manifest, n_bootstrap=200, seed=3).to_json()
    assert a != score(df, small_manifest, n_bootstrap=200, seed=4).to_json()


def test_paired_comparison_uses_the_same_resamples(wide_manifest: Path) -> None:
    a, b = wide_polyp_level(), wide_polyp_level(3.0)
    a["class3"] = b["class3"] = [0, 2, 0, 1, 0, 2, 1, 2, 1, 0, 1, 2, 0, 1, 2, 0]  # the same decisions
    result = compare(a, b, wide_manifest, n_bootstrap=100, name="a", other_name="b")
    median = lookup(result.comparison, "polyp/size/pooled/median_ae_mm")
    assert median.value == pytest.approx(-2.0) and median.ci95 == pytest.approx((-2.0, -2.0))  # paired: no noise
    mae = lookup(result.comparison, "polyp/size/pooled/mae_mm")  # 8 patients: too few for a mean size error's CI
    assert mae.value == pytest.approx(-2.0) and mae.ci95 is None
    assert mae.ci_reason == Note(NoteKind.PATIENTS, patients=8)
    same = lookup(result.comparison, "polyp/triclass/pooled/macro_f1")
    assert same.value == 0.0 and same.ci95 == (0.0, 0.0) and same.p_greater == 0.5  # ties count half
    assert mae.p_greater == 0.0  # a's error is smaller in every replicate
    assert result.comparison["other"]["name"] == "b"
    assert "minus" in result.summary_table()


def test_a_cross_validation_fold_is_scored_and_other_rows_refused(small_manifest: Path) -> None:
    from polypbench.evaluate import SubmissionError

    result = score(pd.DataFrame({"polyp_id": ["real-colon/D_1"], "size_mm": [6.5]}), small_manifest,
                   split="validation", fold=0, n_bootstrap=5)
    assert result.split == "validation (fold 0)" and result.stat("polyp/size/pooled/mae_mm").value == 0.5
    with pytest.raises(SubmissionError, match="from the test split"):
        score(pd.DataFrame({"polyp_id": ["real-colon/D_1", "real-colon/A_1"], "size_mm": [6.5, 3.0]}),
              small_manifest, split="validation", fold=0)


def test_probability_mean_ties_go_to_the_smaller_class_whatever_the_summation_order(small_manifest: Path) -> None:
    # A_2 has three frames; p0 and p1 have the same mean mathematically (1.07 / 3), but summed in row order
    # 0.3 + 0.3 + 0.47 = 1.0699999999999998 < 0.47 + 0.3 + 0.3 = 1.07: a plain argmax picked class 1
    p0, p1, p2 = [0.3, 0.3, 0.47], [0.47, 0.3, 0.3], [0.23, 0.4, 0.23]
    assert np.bincount([0, 0, 0], weights=p0)[0] < np.bincount([0, 0, 0], weights=p1)[0]  # the trap is real
    n = sum(s[4] for s in TEST)
    probs = np.tile([0.0, 0.0, 1.0], (n, 1))
    probs[2:5] = np.column_stack([p0, p1, p2])  # rows 2-4: A_2's frames
    df = frames(p0=probs[:, 0], p1=probs[:, 1], p2=probs[:, 2])
    truth = load_truth(small_manifest)
    for order in (df, df.iloc[::-1]):
        labels = dict(zip(truth.polyps["polyp_id"], per_polyp(validate_predictions(order, truth), truth)[1],
                          strict=True))
        assert labels["real-colon/A_2"] == 0
    frame_tie = frames(p0=[0.4] * n, p1=[0.4] * n, p2=[0.2] * n)
    assert set(per_polyp(validate_predictions(frame_tie, truth), truth)[1]) == {0}
