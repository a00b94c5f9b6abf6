"""Clinical scoring: every row of the surveillance rule tables on hand-made patients, the measurement-agreement
metrics against hand computations, and both end to end through the scorer on a manifest with histology."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from polypbench import schema
from polypbench.evaluate import score
from polypbench.evaluate.agreement import AGREEMENT_METRICS, bland_altman, from_sums, patient_sums
from polypbench.evaluate.bootstrap import resample_counts
from polypbench.evaluate.surveillance import (
    ESGE_2020,
    GUIDELINES,
    HISTOLOGY,
    USMSTF_2020,
    Guideline,
    Kind,
    assign,
    kind_of,
    outcomes,
)

from .helpers import write_manifest

AD, VIL, HGD, SSL, SSLD, TSA, HP, NON = (Kind.ADENOMA, Kind.ADENOMA_VILLOUS, Kind.ADENOMA_HGD, Kind.SSL,
                                         Kind.SSL_DYSPLASIA, Kind.TSA, Kind.HP, Kind.NON_NEOPLASTIC)

ROWS: list[tuple[Guideline, str, list[tuple[Kind, float]], str]] = [
    # (guideline, the row that must decide, the patient's polyps (kind, size mm), the interval)
    (USMSTF_2020, "normal colonoscopy (no adenoma or serrated polyp)", [(NON, 6.0)], "10 y"),
    (USMSTF_2020, "1-2 tubular adenomas < 10 mm", [(AD, 4.0), (AD, 9.9)], "7-10 y"),
    (USMSTF_2020, "3-4 tubular adenomas < 10 mm", [(AD, 3.0)] * 3 + [(HP, 4.0)], "3-5 y"),
    (USMSTF_2020, "5-10 tubular adenomas < 10 mm", [(AD, 3.0)] * 5, "3 y"),
    (USMSTF_2020, "adenoma >= 10 mm", [(AD, 10.0)], "3 y"),
    (USMSTF_2020, "adenoma with tubulovillous or villous histology", [(VIL, 6.0)], "3 y"),
    (USMSTF_2020, "adenoma with high-grade dysplasia", [(HGD, 6.0)], "3 y"),
    (USMSTF_2020, "> 10 adenomas", [(AD, 3.0)] * 11, "1 y"),
    (USMSTF_2020, "<= 20 hyperplastic polyps < 10 mm (rectosigmoid or proximal)", [(HP, 4.0), (NON, 12.0)],
     "10 y"),
    (USMSTF_2020, "hyperplastic polyp >= 10 mm", [(HP, 12.0), (HP, 3.0)], "3-5 y"),
    (USMSTF_2020, "1-2 sessile serrated lesions < 10 mm", [(SSL, 6.0), (AD, 5.0)], "5-10 y"),
    (USMSTF_2020, "3-4 sessile serrated lesions < 10 mm", [(SSL, 6.0)] * 4, "3-5 y"),
    (USMSTF_2020, "5-10 sessile serrated lesions < 10 mm", [(SSL, 6.0)] * 5, "3 y"),
    (USMSTF_2020, "sessile serrated lesion >= 10 mm", [(SSL, 15.0)], "3 y"),
    (USMSTF_2020, "sessile serrated lesion with dysplasia", [(SSLD, 5.0)], "3 y"),
    (USMSTF_2020, "traditional serrated adenoma", [(TSA, 5.0)], "3 y"),
    (ESGE_2020, "no adenoma or serrated polyp: screening (10 y)", [(NON, 12.0)], "10 y"),
    (ESGE_2020, "1-4 adenomas < 10 mm with low-grade dysplasia, irrespective of villous components: back to "
                "screening (10 y)", [(AD, 5.0), (VIL, 9.0), (AD, 2.0), (AD, 3.0)], "10 y"),
    (ESGE_2020, "serrated polyps < 10 mm without dysplasia: back to screening (10 y)", [(HP, 9.0), (SSL, 4.0)],
     "10 y"),
    (ESGE_2020, "adenoma >= 10 mm", [(AD, 10.0)], "3 y"),
    (ESGE_2020, "adenoma with high-grade dysplasia", [(HGD, 4.0)], "3 y"),
    (ESGE_2020, ">= 5 adenomas", [(AD, 4.0)] * 5, "3 y"),
    (ESGE_2020, "serrated polyp >= 10 mm", [(HP, 10.0)], "3 y"),
    (ESGE_2020, "serrated polyp with dysplasia", [(TSA, 4.0)], "3 y"),
]


def test_every_rule_row_has_a_test_case() -> None:
    assert {(g.key, r.finding) for g in GUIDELINES for r in g.rows} == {(g.key, f) for g, f, _, _ in ROWS}


@pytest.mark.parametrize("guideline, finding, polyps, interval", ROWS,
                         ids=[f"{g.key}: {f[:40]}" for g, f, _, _ in ROWS])
def test_each_rule_row_decides_its_patient(guideline: Guideline, finding: str, polyps: list[tuple[Kind, float]],
                                           interval: str) -> None:
    kinds = [k for k, _ in polyps]
    rule = guideline.assign(kinds, [size >= 10.0 for _, size in polyps])
    assert rule is not None and rule.finding == finding and rule.interval.label == interval


def _label(guideline: Guideline, kinds: list[Kind], large: list[bool]) -> str | None:
    rule = guideline.assign(kinds, large)
    return None if rule is None else rule.interval.label


def test_the_shortest_row_wins_and_cancer_or_no_row_is_not_scored() -> None:
    assert _label(USMSTF_2020, [AD, SSL], [False, False]) == "5-10 y"
    assert _label(USMSTF_2020, [AD, SSL, HP], [False, False, True]) == "3-5 y"
    assert _label(USMSTF_2020, [AD, Kind.CANCER], [True, False]) is None
    assert _label(USMSTF_2020, [HP] * 21, [False] * 21) is None  # more than 20 small hyperplastic polyps: no row
    assert _label(ESGE_2020, [VIL], [False]) == "10 y"  # villous: low risk in ESGE 2020


def test_histology_vocabulary_of_the_datasets() -> None:
    real_colon = {"AD": AD, "HP": HP, "SSL": SSL, "TSA": TSA, "NO POLYP": NON, "OTHER": NON}
    sun = {"Low-grade adenoma": AD, "High-grade adenoma": HGD, "Hyperplastic polyp": HP,
           "Sessile serrated lesion": SSL, "Traditional serrated adenoma": TSA, "Invasive cancer (T1b)": Kind.CANCER}
    for text, kind in {**real_colon, **sun}.items():
        assert kind_of(text) is kind and kind_of(f"  {text.upper()} ") is kind
    assert kind_of(None) is None and kind_of(float("nan")) is None and kind_of("mystery") is None
    assert all(key == " ".join(key.lower().split()) for key in HISTOLOGY)


def test_assign_per_patient_marks_later_earlier_and_size_sensitive() -> None:
    patient = np.array([0, 0, 1, 2, 3])
    kinds = [AD, AD, AD, Kind.CANCER, NON]
    true = np.array([4.0, 12.0, 8.0, 5.0, 5.0])
    pred_large = np.array([False, False, True, True, True])
    a = assign(USMSTF_2020, patient, kinds, true, pred_large, 4)
    got = outcomes(a)
    assert got["later"].tolist() == [1, 0, 0, 0] and got["earlier"].tolist() == [0, 1, 0, 0]
    assert got["scored"].tolist() == [1, 1, 0, 1] and got["agreement"].tolist() == [0, 0, 0, 1]
    assert a.size_sensitive.tolist() == [True, True, False, False]


# -- measurement agreement ----------------------------------------------------------------------------------------
TRUE = np.array([4.0, 6.0, 9.0, 12.0, 5.0])
PRED = np.array([6.0, 4.0, 10.0, 9.0, 5.0])


def test_bland_altman_by_hand() -> None:
    ba = bland_altman([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 2.0, 5.0])
    sd = np.sqrt(2.75 / 3)
    assert ba.bias == pytest.approx(0.25) and ba.sd == pytest.approx(sd) and ba.n == 4
    assert (ba.lower, ba.upper) == pytest.approx((0.25 - 1.96 * sd, 0.25 + 1.96 * sd))
    assert np.isnan(bland_altman([1.0], [2.0]).lower)


def test_agreement_shares_and_crossings_by_hand() -> None:
    sums = patient_sums(np.array([0, 0, 1, 1, 2]), TRUE, PRED, 3)
    got = {k: float(v) for k, v in from_sums(sums.sum(axis=0)).items()}
    ba = bland_altman(PRED, TRUE)
    assert (got["loa_lower_mm"], got["loa_upper_mm"]) == pytest.approx((ba.lower, ba.upper))
    assert got["within_1mm"] == pytest.approx(2 / 5) and got["within_20pct"] == pytest.approx(2 / 5)
    assert got["cross_up_5mm"] == pytest.approx(1 / 2) and got["cross_down_5mm"] == pytest.approx(1 / 3)
    assert got["cross_up_10mm"] == pytest.approx(1 / 4) and got["cross_down_10mm"] == 1.0


def test_agreement_replicates_equal_a_naive_recomputation() -> None:
    rng = np.random.default_rng(3)
    patient = rng.integers(0, 6, 20)
    true, pred = rng.uniform(1, 20, 20), rng.uniform(1, 20, 20)
    counts = resample_counts(np.zeros(6, dtype=int), 5, seed=1)
    reps = from_sums(counts @ patient_sums(patient, true, pred, 6))
    for r, row in enumerate(counts):
        idx = np.concatenate([np.repeat(np.flatnonzero(patient == p), int(c)) for p, c in enumerate(row)])
        ba = bland_altman(pred[idx], true[idx])
        assert reps["loa_upper_mm"][r] == pytest.approx(ba.upper)
        assert reps["within_20pct"][r] == pytest.approx(np.mean(np.abs(pred[idx] - true[idx]) <= 0.2 * true[idx]))


# -- end to end ---------------------------------------------------------------------------------------------------
PATIENTS = [  # (patient, histology, true size, predicted size)
    ("A", "AD", 8.0, 11.0),  # 7-10 y -> 3 y: earlier
    ("B", "AD", 12.0, 9.0),  # 3 y -> 7-10 y: later
    ("C", "HP", 5.0, 6.0),  # agree
    ("D", "Invasive cancer (T1b)", 15.0, 4.0),  # not scored
    ("E", None, 4.0, 4.5),  # histology assumed (adenoma): agree
    ("F", "SSL", 9.0, 10.0),  # 5-10 y -> 3 y: earlier
]


def _with_histology(root: Path) -> Path:
    write_manifest(root, "real-colon", [(f"real-colon/{p}_1", p, t, "test", 2) for p, _, t, _ in PATIENTS])
    path = root / schema.POLYPS_FILE
    table = pq.read_table(path)
    column = table.schema.get_field_index("histology")
    table = table.set_column(column, table.schema.field(column), [[h for _, h, _, _ in PATIENTS]])
    pq.write_table(table, path)
    return root


def test_score_reports_surveillance_and_agreement_from_the_manifest_histology(tmp_path: Path) -> None:
    root = _with_histology(tmp_path / "real-colon")
    preds = pd.DataFrame({"polyp_id": [f"real-colon/{p}_1" for p, *_ in PATIENTS],
                          "size_mm": [s for *_, s in PATIENTS]})
    result = score(preds, root, n_bootstrap=200)
    for g in GUIDELINES:
        stats = {o: result.stat(f"patient/surveillance/pooled/{g.key}_{o}") for o in ("agreement", "later", "earlier")}
        assert {o: s.value for o, s in stats.items()} == pytest.approx({"agreement": 0.4, "later": 0.2, "earlier": 0.4})
        assert all(s.n_patients == 5 and s.ci95 is not None and s.ci95[0] <= s.value <= s.ci95[1]
                   for s in stats.values())
    info = result.to_dict()["clinical"]["surveillance"]
    assert info["patients"]["pooled"]["assumed_histology"] == 1
    assert info["patients"]["pooled"]["usmstf2020"] == {"scored": 5, "not_scored": 1, "size_sensitive": 5}
    ba = bland_altman([s for *_, s in PATIENTS], [t for _, _, t, _ in PATIENTS])
    assert result.stat("polyp/size/pooled/bias_mm").value == pytest.approx(ba.bias)
    assert result.stat("polyp/size/pooled/loa_lower_mm").value == pytest.approx(ba.lower)
    assert result.stat("polyp/size/real-colon/cross_up_10mm").value == pytest.approx(2 / 4)  # A and F
    assert result.stat("polyp/size/real-colon/cross_down_10mm").value == 1.0  # B and D
    assert {f"polyp/size/pooled/{m}" for m in AGREEMENT_METRICS} <= set(result.metrics)
    text = result.summary_table()
    assert "USMSTF 2020" in text and "later (unsafe)" in text and "LoA lower (mm)" in text
    assert "histology assumed for 1 of 6 patients" in text


def test_class_only_predictions_get_intervals_from_the_class_decision(tmp_path: Path) -> None:
    root = _with_histology(tmp_path / "real-colon")
    labels = [2 if s >= 10 else 1 for *_, s in PATIENTS]
    result = score(pd.DataFrame({"polyp_id": [f"real-colon/{p}_1" for p, *_ in PATIENTS], "class3": labels}),
                   root, n_bootstrap=0)
    assert result.stat("patient/surveillance/pooled/usmstf2020_later").value == pytest.approx(0.2)
    assert "polyp/size/pooled/loa_lower_mm" not in result.metrics  # no sizes: no measurement agreement
    assert "triclass decision" in result.to_dict()["clinical"]["surveillance"]["predicted_from"]
