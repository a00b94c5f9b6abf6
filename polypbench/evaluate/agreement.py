"""Measurement agreement of predicted and true sizes, per polyp (docs/scoring.md, "Measurement agreement").

- Bland-Altman (Bland & Altman, Lancet 1986;327:307-310): the bias, mean(predicted - true), and the 95% limits of
  agreement bias -+ 1.96 SD of the differences (:func:`bland_altman`; the scorer's ``bias_mm`` is the same bias).
  Polyps of one patient are not independent: the limits are computed over polyps, and their intervals come from the
  patient bootstrap, which keeps a patient's polyps together.
- The share of polyps measured within +-1 mm and within 20% of the true size (the clinical papers' "relative
  accuracy").
- Crossing the decision thresholds of :mod:`polypbench.sizes` (5 mm: diminutive; 10 mm: large), each direction as
  a rate over the polyps on the true side: ``cross_up_10mm`` = of the polyps truly < 10 mm, the share predicted
  >= 10 mm; ``cross_down_10mm`` = of those truly >= 10 mm, the share predicted < 10 mm; ``cross_up_5mm`` /
  ``cross_down_5mm`` the same at <= 5 mm vs > 5 mm.

Every metric is a function of per-patient sums (:func:`patient_sums`), so the scorer gets all bootstrap replicates
and leave-one-patient-out values from one matrix product (:func:`from_sums`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from polypbench.sizes import CLASS_SCHEMES, size_class2, size_class_binary5

LOA_Z = 1.96
"""The limits of agreement are bias -+ LOA_Z * SD (Bland & Altman's 95% limits)."""
WITHIN_MM = 1.0
WITHIN_SHARE = 0.2
_TOL = 1e-9
"""Differences within this of a bound count as inside (sizes are float32 in the manifest)."""

AGREEMENT_METRICS = ("loa_lower_mm", "loa_upper_mm", "within_1mm", "within_20pct", "cross_up_5mm",
                     "cross_down_5mm", "cross_up_10mm", "cross_down_10mm")
"""Metric names under task ``size`` (besides :data:`polypbench.evaluate.metrics.SIZE_METRICS`), per polyp."""
CROSSINGS = {
    # metric: (task whose classes it crosses, the true class of its denominator)
    "cross_up_5mm": ("binary5", 0), "cross_down_5mm": ("binary5", 1),
    "cross_up_10mm": ("binary10", 0), "cross_down_10mm": ("binary10", 1),
}
"""The crossing rates: the class of polyps (by true size) each is a rate over."""
RATES = ("within_1mm", "within_20pct", *CROSSINGS)
"""The metrics that are shares (0 to 1)."""
UNDEFINED = {
    "loa_lower_mm": "fewer than 2 polyps", "loa_upper_mm": "fewer than 2 polyps", "within_1mm": "no polyps",
    "within_20pct": "no polyps",
    **{m: f"no polyps truly {CLASS_SCHEMES[task][k]}" for m, (task, k) in CROSSINGS.items()},
}
"""Why each metric can be undefined."""


DEFINITION = (
    "per polyp, predicted minus true size: Bland-Altman bias (bias_mm) and 95% limits of agreement "
    f"(loa_lower_mm, loa_upper_mm: bias -+ {LOA_Z} SD of the differences, over polyps); within_1mm, within_20pct: "
    "share of polyps within +-1 mm and within 20% of the true size; cross_up_5mm / cross_up_10mm: of the polyps "
    "truly <= 5 mm / < 10 mm, the share predicted across the threshold; cross_down_5mm / cross_down_10mm: of those "
    "truly > 5 mm / >= 10 mm, the share predicted below it. See docs/scoring.md")
"""What the metrics mean, written into the result's JSON."""


class BlandAltman(NamedTuple):
    """Bias (mean predicted - true) and the 95% limits of agreement, in mm; ``sd`` of the differences, ``n``
    pairs. NaN where undefined (no pairs; limits: fewer than 2)."""

    bias: float
    lower: float
    upper: float
    sd: float
    n: int


def bland_altman(pred_mm: npt.ArrayLike, true_mm: npt.ArrayLike) -> BlandAltman:
    """Bland-Altman statistics of paired sizes (e.g. the report's per-polyp predicted and true sizes)."""
    d = np.asarray(pred_mm, dtype=np.float64) - np.asarray(true_mm, dtype=np.float64)
    n = int(d.size)
    bias = float(d.mean()) if n else float("nan")
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    return BlandAltman(bias, bias - LOA_Z * sd, bias + LOA_Z * sd, sd, n)


_COLUMNS = ("n", "d", "d2", "within_1mm", "within_20pct", *[f"{m}:{side}" for m in CROSSINGS for side in ("of", "hit")])


def patient_sums(patient: np.ndarray, true_mm: np.ndarray, pred_mm: np.ndarray, n_patients: int) -> np.ndarray:
    """(P, C) per-patient sums: polyps, differences, squared differences, polyps within +-1 mm and within 20%,
    and per crossing rate the polyps of its true class and those of them predicted across."""
    true_mm = np.asarray(true_mm, dtype=np.float64)
    pred_mm = np.asarray(pred_mm, dtype=np.float64)
    d = pred_mm - true_mm
    cols = [np.ones_like(d), d, d * d, np.abs(d) <= WITHIN_MM + _TOL,
            np.abs(d) <= WITHIN_SHARE * true_mm + _TOL]
    classes = {"binary5": (size_class_binary5(true_mm), size_class_binary5(pred_mm)),
               "binary10": (size_class2(true_mm), size_class2(pred_mm))}
    for task, k in CROSSINGS.values():
        t, p = classes[task]
        cols += [t == k, (t == k) & (p != k)]
    values = np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1)
    return np.stack([np.bincount(patient, weights=values[:, j], minlength=n_patients)
                     for j in range(values.shape[1])], axis=1)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def from_sums(s: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of :data:`AGREEMENT_METRICS` from summed columns of :func:`patient_sums` (..., C)."""
    c = {name: s[..., j] for j, name in enumerate(_COLUMNS)}
    n, d, d2 = c["n"], c["d"], c["d2"]
    bias = _div(d, n)
    var = _div(d2 - d * np.nan_to_num(bias), n - 1)
    sd = np.sqrt(np.maximum(var, 0.0))
    out = {"loa_lower_mm": bias - LOA_Z * sd, "loa_upper_mm": bias + LOA_Z * sd,
           "within_1mm": _div(c["within_1mm"], n), "within_20pct": _div(c["within_20pct"], n)}
    for m in CROSSINGS:
        out[m] = _div(c[f"{m}:hit"], c[f"{m}:of"])
    return out


def support(s: np.ndarray) -> dict[str, tuple[int, int]]:
    """Per metric, the (polyps, patients) of its denominator, from the per-patient sums (P, C)."""
    col = {name: s[:, j] for j, name in enumerate(_COLUMNS)}
    out = {}
    for m in AGREEMENT_METRICS:
        den = col[f"{m}:of"] if m in CROSSINGS else col["n"]
        out[m] = (int(round(den.sum())), int((den > 0).sum()))
    return out
