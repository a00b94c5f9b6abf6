"""``score`` and ``compare``: validate, aggregate, bootstrap and assemble the :class:`Result`.

The pure function that the trainer, the CLI and the leaderboard all call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from polypbench.evaluate.aggregate import (
    AGGREGATION,
    VIEWS,
    Units,
    class_source,
    decide_class3,
    frame_units,
    group_mean,
    per_polyp,
    polyp_units,
)
from polypbench.evaluate.agreement import AGREEMENT_METRICS, CROSSINGS, RATES, patient_sums
from polypbench.evaluate.agreement import DEFINITION as AGREEMENT_DEFINITION
from polypbench.evaluate.agreement import UNDEFINED as AGREEMENT_UNDEFINED
from polypbench.evaluate.agreement import from_sums as agreement_from_sums
from polypbench.evaluate.agreement import support as agreement_support
from polypbench.evaluate.bootstrap import (
    Design,
    MedianSearch,
    count_matrix,
    metric_interval,
    per_patient_sums,
    summarize,
)
from polypbench.evaluate.intervals import CI_LEVEL, ratio_se, widen_at_bounds
from polypbench.evaluate.keys import SIZE_TASK, SURVEILLANCE_TASK, group_key, metric_key, parse_key
from polypbench.evaluate.metrics import COMPONENTS, UNDEFINED, classification, kappas, size_errors
from polypbench.evaluate.metrics import support as metric_support
from polypbench.evaluate.policy import ClassSupport
from polypbench.evaluate.ranking import Replicates, compare_pair, resamples_fingerprint
from polypbench.evaluate.result import Result
from polypbench.evaluate.stat import Stat
from polypbench.evaluate.surveillance import ASSUMED, ASSUMPTION, GUIDELINES, OUTCOMES, Kind, assign, kind_of, outcomes
from polypbench.evaluate.truth import ManifestLike, Truth, load_truth
from polypbench.evaluate.validate import ValidPredictions, max_rows, read_bounded, validate_predictions
from polypbench.sizes import CLASS_SCHEMES, size_class, size_class2, triclass_to_task

log = logging.getLogger(__name__)

Predictions: TypeAlias = pd.DataFrame | str | Path
Samples: TypeAlias = dict[str, Any]
"""view -> {"tasks": {task: {group: {metric: array (1+R+P, ...)}}}, "size": {group: {metric: array}} | None,
"size_se": {group: {metric: array}} | None, "confusion": {task: {group: (K, K) array}},
"support": {task: {group: {"polyps"|"patients": metrics.support dict}}},
"agreement": {group: (metrics, support)} (polyp view, with sizes), "surveillance": {group: (metrics, support)} and
"clinical" (the patient view: the surveillance's description and counts)}."""
KeepReplicates: TypeAlias = Collection[str] | bool
INTERVAL_METHOD = (
    f"{CI_LEVEL:g}% expanded BCa interval over the replicates where the metric is defined (bias-corrected "
    "and accelerated, acceleration from the leave-one-patient-out jackknife, normal quantile expanded to "
    "sqrt(n/(n-H)) t(n-H) for n patients in H datasets), widened by Wilson's bound for class rates observed at 0 or "
    "1; MAE and bias: bootstrap-t (studentized, linearization standard errors) with the same small-sample "
    "expansion; see docs/scoring.md")


@dataclass(frozen=True)
class _Group:
    """A dataset (or ``pooled``): its patients and how its intervals are computed."""

    name: str
    mask: np.ndarray
    design: Design


def _groups(truth: Truth, n_replicates: int) -> list[_Group]:
    """Each dataset, then ``pooled``."""
    strata = truth.patients["stratum"].to_numpy()
    masks = [(ds, strata == i) for i, ds in enumerate(truth.datasets)]
    masks.append(("pooled", np.ones(len(strata), dtype=bool)))
    return [_Group(name, mask, Design(n_replicates, np.flatnonzero(mask), strata[mask])) for name, mask in masks]


@dataclass(frozen=True)
class _PatientStats:
    """Sufficient statistics of one level (polyp or frame): per patient the triclass confusion cells and the size
    sums (weight, |error|, error), per polyp its units' confusion cells (the support), per group sorted errors."""

    confusion: np.ndarray
    polyp_confusion: np.ndarray
    polyp_patient: np.ndarray
    size_sums: np.ndarray | None
    medians: dict[str, MedianSearch] | None


def _patient_stats(units: Units, truth: Truth, groups: list[_Group]) -> _PatientStats:
    """Per-patient triclass confusion cells (P, 9), size-error sums (P, 3: weight, |error|, error) and medians."""
    n_patients, n_polyps = truth.n_patients, truth.n_polyps
    cell = units.true_class3.astype(np.int64) * 3 + units.pred_class3.astype(np.int64)
    confusion = np.bincount(units.patient * 9 + cell, weights=units.weight, minlength=n_patients * 9)
    polyp_confusion = np.bincount(units.polyp * 9 + cell, minlength=n_polyps * 9).reshape(n_polyps, 9)
    base = (confusion.reshape(n_patients, 9), polyp_confusion, truth.polyp_patient)
    if units.pred_size is None:
        return _PatientStats(*base, None, None)
    err = units.pred_size - units.true_size
    abs_err = np.abs(err)
    sums = np.stack([per_patient_sums(units.patient, units.weight, n_patients),
                     per_patient_sums(units.patient, units.weight * abs_err, n_patients),
                     per_patient_sums(units.patient, units.weight * err, n_patients)], axis=1)
    order = np.argsort(abs_err)  # ties need no order: equal values give the same median
    values, patient, weight = abs_err[order], units.patient[order], units.weight[order]
    medians = {}
    for g in groups:
        sel = g.mask[patient]
        if sel.all():
            medians[g.name] = MedianSearch.build(values, patient, weight, n_patients, presorted=True)
        else:
            medians[g.name] = MedianSearch.build(values[sel], patient[sel], weight[sel], n_patients, presorted=True)
    return _PatientStats(*base, sums, medians)


def _task_maps() -> dict[str, np.ndarray]:
    """Per task, the (3, K) 0/1 matrix mapping triclass labels to the task's labels (from sizes.triclass_to_task)."""
    return {task: np.eye(len(classes))[triclass_to_task(np.arange(3), task)] for task, classes in CLASS_SCHEMES.items()}


def _to_task(cm3: np.ndarray, m: np.ndarray) -> np.ndarray:
    return cm3 if m.shape[1] == 3 else np.einsum("ik,...ij,jl->...kl", m, cm3, m)


def _size_se(counts: np.ndarray, sums: np.ndarray, mask: np.ndarray, strata: np.ndarray) -> dict[str, np.ndarray]:
    """Per row, the linearization standard errors of MAE (sum |e| / sum w) and bias (sum e / sum w)."""
    idx = np.flatnonzero(mask)
    w, a, e = sums[idx, 0], sums[idx, 1], sums[idx, 2]
    cols = np.stack([a * a, a * w, w * w, e * e, e * w, a, e, w], axis=1)
    per_stratum = [counts[:, idx[strata == s]] @ cols[strata == s] for s in np.unique(strata)]
    m = np.stack(per_stratum, axis=1)  # (rows, H, 8)
    n_h = np.array([(strata == s).sum() for s in np.unique(strata)], dtype=np.float64)
    total_w = m[..., 7].sum(axis=1)
    mae = ratio_se(m[..., 5].sum(axis=1), total_w, m[..., 0:3], m[..., [5, 7]], n_h)
    bias = ratio_se(m[..., 6].sum(axis=1), total_w, m[..., [3, 4, 2]], m[..., [6, 7]], n_h)
    return {"mae_mm": mae, "bias_mm": bias}


def _view_samples(stats: _PatientStats, counts: np.ndarray, groups: list[_Group],
                  scale: np.ndarray | None = None) -> Samples:
    """Every metric of one view for the observed data (row 0), every replicate and every leave-one-out row.

    ``counts`` (1 + R + P, P) are the patient multiplicities; ``scale`` (P,) weighs each patient's statistics (1 /
    its number of frames in the patient-weighted frame view). The binary tasks' confusion matrices are sums of
    triclass cells.
    """
    out: Samples = {"tasks": {}, "confusion": {}, "support": {}, "size": None, "size_se": None}
    weighted = counts if scale is None else counts * scale[None, :]
    maps = _task_maps()
    for g in groups:
        mask = g.mask
        cm3 = (weighted[:, mask] @ stats.confusion[mask]).reshape(-1, 3, 3)
        polyps = stats.polyp_confusion[mask[stats.polyp_patient]].reshape(-1, 3, 3)
        patients = stats.confusion[mask].reshape(-1, 3, 3)
        for task, m in maps.items():
            cm = _to_task(cm3, m)
            values = classification(cm)
            if task == "triclass":
                values.update(kappas(cm))
            out["tasks"].setdefault(task, {})[g.name] = values
            out["confusion"].setdefault(task, {})[g.name] = cm[0]
            out["support"].setdefault(task, {})[g.name] = {"polyps": metric_support(_to_task(polyps, m)),
                                                           "patients": metric_support(_to_task(patients, m))}
    if stats.size_sums is not None and stats.medians is not None:
        out["size"], out["size_se"] = {}, {}
        sums = stats.size_sums if scale is None else stats.size_sums * scale[:, None]
        for g in groups:
            s = weighted[:, g.mask] @ stats.size_sums[g.mask]
            out["size"][g.name] = size_errors(s[:, 0], s[:, 1], s[:, 2], stats.medians[g.name].median(weighted))
            out["size_se"][g.name] = _size_se(counts, sums, g.mask, g.design.strata)
    return out


def _agreement_samples(truth: Truth, size: np.ndarray, counts: np.ndarray, groups: list[_Group]) -> dict[str, Any]:
    """Per group, the measurement-agreement metrics of every row of ``counts`` and their support
    (:mod:`polypbench.evaluate.agreement`)."""
    sums = patient_sums(truth.polyp_patient, truth.polyp_size, size, truth.n_patients)
    return {g.name: (agreement_from_sums(counts[:, g.mask] @ sums[g.mask]), agreement_support(sums[g.mask]))
            for g in groups}


SURVEILLANCE_DEFINITION = (
    "per patient, the follow-up interval a guideline assigns from the number, histology and size (< 10 mm or "
    ">= 10 mm) of the patient's polyps in this split, once from the true sizes and once from the predicted ones "
    "(same polyps, same histology); the shortest interval of the rows that match. agreement: same interval; later: "
    "the predicted interval is longer (the patient would come back too late); earlier: shorter. Shares of the scored "
    "patients. A patient has only the polyps its dataset annotated. See docs/scoring.md")


def _surveillance_samples(truth: Truth, size: np.ndarray | None, class3: np.ndarray, counts: np.ndarray,
                          groups: list[_Group]) -> Samples:
    """The patient view: per group each guideline's agreement, later and earlier shares (every row of ``counts``)
    with their support, and the description of what was assumed and counted (``clinical``)."""
    n_patients, patient = truth.n_patients, truth.polyp_patient
    found = [kind_of(h) for h in truth.polyps["histology"]]
    kinds: list[Kind] = [ASSUMED if k is None else k for k in found]
    assumed = np.bincount(patient, weights=[k is None for k in found], minlength=n_patients) > 0
    pred_large = size_class2(size).astype(bool) if size is not None else np.asarray(class3) == 2
    polyps = np.bincount(patient, minlength=n_patients).astype(np.float64)
    values: dict[str, dict[str, np.ndarray]] = {g.name: {} for g in groups}
    support: dict[str, dict[str, tuple[int, int]]] = {g.name: {} for g in groups}
    counted: dict[str, dict[str, Any]] = {g.name: {"patients": int(g.mask.sum()),
                                                   "assumed_histology": int((assumed & g.mask).sum())}
                                          for g in groups}
    for gl in GUIDELINES:
        a = assign(gl, patient, kinds, truth.polyp_size, pred_large, n_patients)
        per = outcomes(a)
        for g in groups:
            m = g.mask
            scored = counts[:, m] @ per["scored"][m]
            sup = (int((polyps * per["scored"])[m].sum()), int(per["scored"][m].sum()))
            for o in OUTCOMES:
                name = f"{gl.key}_{o}"
                values[g.name][name] = np.divide(counts[:, m] @ per[o][m], scored,
                                                 out=np.full(len(counts), np.nan), where=scored > 0)
                support[g.name][name] = sup
            counted[g.name][gl.key] = {"scored": sup[1], "not_scored": int(m.sum()) - sup[1],
                                       "size_sensitive": int((a.size_sensitive & a.scored & m).sum())}
    clinical = {
        "definition": SURVEILLANCE_DEFINITION,
        "predicted_from": "size_mm (per-polyp median)" if size is not None else
                          "the triclass decision (large = >= 10 mm): no size_mm given",
        "histology_assumption": ASSUMPTION,
        "guidelines": {gl.key: {"title": gl.title, "citation": gl.citation,
                                "rows": [{"finding": r.finding, "interval": r.interval.label} for r in gl.rows]}
                       for gl in GUIDELINES},
        "not_applied": "piecemeal resection of lesions >= 20 mm (the datasets do not record how a polyp was "
                       "resected)",
        "not_scored": "patients with a cancer (outside both tables) or whom no row covers",
        "patients": counted,
    }
    return {"tasks": {}, "confusion": {}, "support": {}, "size": None, "size_se": None,
            "surveillance": {g.name: (values[g.name], support[g.name]) for g in groups}, "clinical": clinical}


def _rate_interval(samples: np.ndarray, design: Design, n_items: int) -> np.ndarray:
    """The expanded BCa interval of a share, widened by Wilson's bound when it is observed at 0 or 1."""
    ci = metric_interval("", samples, design)
    if design.n_replicates == 0:
        return ci
    point = samples[0]
    return widen_at_bounds(point, ci, point[None], np.ones(1), np.array([n_items]), design.z)


def _agreement_stats(view: str, g: _Group, samples: Samples) -> dict[str, tuple[Stat, np.ndarray]]:
    values, support = samples["agreement"][g.name]
    out = {}
    for name in AGREEMENT_METRICS:
        arr = values[name]
        n_pol, n_pat = support[name]
        classes: tuple[ClassSupport, ...] = ()
        if name in CROSSINGS:
            task, k = CROSSINGS[name]
            classes = (ClassSupport(f"truly {CLASS_SCHEMES[task][k]}", n_pol, n_pat),)
        ci = _rate_interval(arr, g.design, n_pat) if name in RATES else metric_interval(name, arr, g.design)
        stat = summarize(arr, AGREEMENT_UNDEFINED[name], g.design, ci=ci, classes=classes, n_polyps=n_pol,
                         n_patients=n_pat)
        out[metric_key(view, SIZE_TASK, g.name, name)] = (stat, arr)
    return out


def _surveillance_stats(view: str, g: _Group, samples: Samples) -> dict[str, tuple[Stat, np.ndarray]]:
    values, support = samples["surveillance"][g.name]
    out = {}
    for name, arr in values.items():
        n_pol, n_pat = support[name]
        stat = summarize(arr, "no patient scored (every one outside the guideline's table)", g.design,
                         ci=_rate_interval(arr, g.design, n_pat), n_polyps=n_pol, n_patients=n_pat)
        out[metric_key(view, SURVEILLANCE_TASK, g.name, name)] = (stat, arr)
    return out


def _class_supports(name: str, classes: Sequence[str], support: dict[str, dict[str, np.ndarray]]
                    ) -> list[tuple[ClassSupport, ...]]:
    """Per class (per-class metrics) or once (others): the classes the metric rests on, for the policy."""
    pol, pat = support["polyps"], support["patients"]

    def one(metric: str, k: int, label: str) -> ClassSupport:
        return ClassSupport(label, int(pol[metric][k]), int(pat[metric][k]))

    labels = {"sensitivity": "{}", "specificity": "not {}", "precision": "predicted {}", "f1": "{}"}
    if name in labels:
        return [(one(name, k, labels[name].format(c)),) for k, c in enumerate(classes)]
    if name in ("balanced_accuracy", "macro_f1"):
        comp = COMPONENTS[name]
        return [tuple(one(comp, k, c) for k, c in enumerate(classes))]
    return [()]


def _task_stats(view: str, task: str, g: _Group, samples: Samples) -> dict[str, tuple[Stat, np.ndarray]]:
    """Stats of one (view, task, group) by metric key, each with its sample column: summary metrics first."""
    values = samples["tasks"][task][g.name]
    support = samples["support"][task][g.name]
    cm = samples["confusion"][task][g.name]
    classes = CLASS_SCHEMES[task]
    out: dict[str, tuple[Stat, np.ndarray]] = {}
    for name, arr in sorted(values.items(), key=lambda item: item[1].ndim):  # stable: metric order kept
        ci = metric_interval(name, arr, g.design, values=values, confusion=cm, patients=support["patients"])
        per_class = _class_supports(name, classes, support)
        sup = support["polyps"], support["patients"]
        for j, cls_support in enumerate(per_class):
            col = arr[:, j] if arr.ndim == 2 else arr
            if arr.ndim == 2:
                key = metric_key(view, task, g.name, name, classes[j])
                n_pol, n_pat = int(sup[0][name][j]), int(sup[1][name][j])
            else:
                key = metric_key(view, task, g.name, name)
                n_pol, n_pat = int(sup[0]["all"]), int(sup[1]["all"])
            class_polyps = (tuple(int(c.polyps) for c in cls_support) if name in ("balanced_accuracy", "macro_f1")
                            else None)
            stat = summarize(col, UNDEFINED[name], g.design, ci=ci[:, j] if arr.ndim == 2 else ci,
                             classes=cls_support, n_polyps=n_pol, n_patients=n_pat, class_polyps=class_polyps)
            out[key] = (stat, col)
    return out


def _size_stats(view: str, g: _Group, samples: Samples) -> dict[str, tuple[Stat, np.ndarray]]:
    values, se = samples["size"][g.name], samples["size_se"][g.name]
    sup = samples["support"]["triclass"][g.name]
    out = {}
    for name, arr in values.items():
        ci = metric_interval(name, arr, g.design, se=se.get(name))
        stat = summarize(arr, UNDEFINED[name], g.design, ci=ci, n_polyps=int(sup["polyps"]["all"]),
                         n_patients=int(sup["patients"]["all"]), metric=name)
        out[metric_key(view, SIZE_TASK, g.name, name)] = (stat, arr)
    return out


def _view_stats(view: str, samples: Samples, groups: list[_Group]) -> dict[str, tuple[Stat, np.ndarray]]:
    """Every metric of one view, keyed ``view/task/dataset/metric[/class]``; size errors under task ``size``."""
    out: dict[str, tuple[Stat, np.ndarray]] = {}
    for task in samples["tasks"]:
        for g in groups:
            out.update(_task_stats(view, task, g, samples))
    if samples["size"] is not None:
        for g in groups:
            out.update(_size_stats(view, g, samples))
    for g in groups:
        if samples.get("agreement"):
            out.update(_agreement_stats(view, g, samples))
        if samples.get("surveillance"):
            out.update(_surveillance_stats(view, g, samples))
    return out


def _confusion_matrices(view: str, samples: Samples) -> dict[str, np.ndarray]:
    return {group_key(view, task, name): cm for task, groups in samples["confusion"].items()
            for name, cm in groups.items()}


def _difference_stats(a: dict[str, tuple[Stat, np.ndarray]], b: dict[str, tuple[Stat, np.ndarray]],
                      groups: list[_Group]) -> dict[str, Stat]:
    """Per metric present in both: :func:`~polypbench.evaluate.ranking.compare_pair` of the two files' samples (the
    statistic the leaderboard's ``/compare`` and rank groups use), under the rule applied to both files' own Stats."""
    designs = {g.name: g.design for g in groups}
    out = {}
    for key, (stat_a, col_a) in a.items():
        if key not in b:
            continue
        stat_b, col_b = b[key]
        design = designs[key.split("/")[2]]
        if design.n_replicates == 0:
            value = col_a[0] - col_b[0]
            out[key] = Stat(None if np.isnan(value) else float(value), None,
                            reason="undefined for either file" if np.isnan(value) else None,
                            n_polyps=min(stat_a.n_polyps or 0, stat_b.n_polyps or 0),
                            n_patients=min(stat_a.n_patients or 0, stat_b.n_patients or 0))
            continue
        point_a, reps_a, jack_a = design.split(col_a)
        point_b, reps_b, jack_b = design.split(col_b)
        out[key] = compare_pair(float(point_a), float(point_b), reps_a, reps_b, jack_a, jack_b, design.strata,
                                sides=(stat_a, stat_b), metric=parse_key(key).metric)
    return out


def _counts_table(truth: Truth) -> dict[str, dict[str, int]]:
    polyps = truth.polyps
    frames_per_polyp = np.bincount(truth.frame_polyp, minlength=len(polyps))
    out = {}
    for name in [*truth.datasets, "pooled"]:
        sel = (polyps["dataset"] == name).to_numpy() if name != "pooled" else np.ones(len(polyps), dtype=bool)
        out[name] = {"n_polyps": int(sel.sum()), "n_patients": int(polyps.loc[sel, "patient"].nunique()),
                     "n_frames": int(frames_per_polyp[sel].sum())}
    return out


def _polyp_table(pred: ValidPredictions, truth: Truth) -> pd.DataFrame:
    """One row per polyp: truth, the aggregated prediction and, with probabilities, their per-polyp means
    (``pred_p0..2``, what a reliability diagram reads)."""
    size, class3 = per_polyp(pred, truth)
    table = truth.polyps[["polyp_id", "dataset", "patient_id", "size_mm"]].copy()
    table["size_class3"] = size_class(table["size_mm"].to_numpy(np.float64), "triclass")
    table["pred_size_mm"] = size if size is not None else np.nan
    table["pred_class3"] = class3
    if pred.probs is not None:
        probs = pred.probs if pred.level == "polyp" else group_mean(truth.frame_polyp, pred.probs, truth.n_polyps)
        for k in range(probs.shape[1]):
            table[f"pred_p{k}"] = probs[:, k]
    return table


def _frame_table(pred: ValidPredictions, truth: Truth) -> pd.DataFrame | None:
    """One row per frame of a frame-level file (None for a polyp-level one): its keys, predicted size and class,
    for the spread of a polyp's frame predictions in the report's gallery."""
    if pred.level != "frame":
        return None
    table = pd.DataFrame({"polyp_id": truth.polyps["polyp_id"].to_numpy()[truth.frame_polyp],
                          "frame_index": truth.frame_index})
    table["pred_size_mm"] = pred.size_mm if pred.size_mm is not None else np.nan
    table["pred_class3"] = decide_class3(pred.size_mm, pred.probs, pred.class3)
    return table


def _prepare(predictions: Predictions, truth: Truth, name: str | None) -> ValidPredictions:
    if isinstance(predictions, (str, Path)):
        name = name or str(predictions)
        predictions = read_bounded(predictions, name, max_rows(truth.n_frames))  # bounded before it is read
    return validate_predictions(predictions, truth, name=name or "predictions")


def _run(pred: ValidPredictions, truth: Truth, counts: np.ndarray, groups: list[_Group]) -> dict[str, Samples]:
    """Samples of every view. The patient-weighted frame view reuses the frame statistics: a patient's frames all
    weigh 1 / (its frame count), so scaling its column of ``counts`` by that is the same weighting."""
    out = {"polyp": _view_samples(_patient_stats(polyp_units(pred, truth), truth, groups), counts, groups)}
    size, class3 = per_polyp(pred, truth)
    if size is not None:
        out["polyp"]["agreement"] = _agreement_samples(truth, size, counts, groups)
    if pred.level == "frame":
        units = frame_units(pred, truth)
        stats = _patient_stats(units, truth, groups)
        out["frame"] = _view_samples(stats, counts, groups)
        frames_per_patient = np.bincount(units.patient, minlength=truth.n_patients).astype(np.float64)
        out["frame_patient"] = _view_samples(stats, counts, groups, scale=1.0 / frames_per_patient)
    out["patient"] = _surveillance_samples(truth, size, class3, counts, groups)
    return out


def _kept(stats: dict[str, tuple[Stat, np.ndarray]], keep: KeepReplicates, groups: list[_Group],
          fingerprint: str) -> dict[str, Replicates]:
    if keep is False or groups[0].design.n_replicates == 0:
        return {}
    wanted = stats.keys() if keep is True else [k for k in keep if k in stats]
    designs = {g.name: g.design for g in groups}
    out = {}
    for key in wanted:
        design = designs[key.split("/")[2]]
        point, reps, jack = design.split(stats[key][1])
        out[key] = Replicates(key, float(point), reps.copy(), jack.copy(), design.strata.copy(), fingerprint)
    return out


def _clinical(samples: dict[str, Samples]) -> dict[str, Any]:
    """The JSON's ``clinical`` section: what the surveillance intervals assumed and counted, and what the
    measurement-agreement metrics mean."""
    out: dict[str, Any] = {"surveillance": samples["patient"]["clinical"]}
    if samples["polyp"].get("agreement"):
        out["agreement"] = AGREEMENT_DEFINITION
    return out


def _result(pred: ValidPredictions, truth: Truth, samples: dict[str, Samples], groups: list[_Group], seed: int,
            keep: KeepReplicates, fingerprint: str) -> tuple[Result, dict[str, tuple[Stat, np.ndarray]]]:
    n_bootstrap = groups[0].design.n_replicates
    stats = {k: v for view, s in samples.items() for k, v in _view_stats(view, s, groups).items()}
    result = Result(
        predictions={"name": pred.name, "level": pred.level, "rows": pred.n_rows, "columns": pred.columns,
                     "class_source": class_source(pred)},
        split=truth.split_label,
        manifests=list(truth.manifests),
        aggregation=dict(AGGREGATION),
        bootstrap={"replicates": n_bootstrap, "seed": seed, "unit": "patient", "stratified_by": "dataset",
                   "ci": INTERVAL_METHOD, "rng": "numpy.random.default_rng(seed).multinomial per dataset",
                   "resamples": fingerprint},
        counts=_counts_table(truth),
        views={view: VIEWS[view] for view in samples},
        metrics={k: stat for k, (stat, _) in stats.items()},
        confusion_matrices={k: v for view, s in samples.items() for k, v in _confusion_matrices(view, s).items()},
        polyp_table=_polyp_table(pred, truth),
        clinical=_clinical(samples),
        frame_table=_frame_table(pred, truth),
        kept_replicates=_kept(stats, keep, groups, fingerprint),
    )
    return result, stats


def _setup(truth: Truth, n_bootstrap: int, seed: int) -> tuple[np.ndarray, list[_Group], str]:
    strata = truth.patients["stratum"].to_numpy()
    counts = count_matrix(strata, n_bootstrap, seed)
    return counts, _groups(truth, n_bootstrap), resamples_fingerprint(counts[1:1 + n_bootstrap])


def score(
    predictions: Predictions,
    manifest: ManifestLike | Truth | Sequence[ManifestLike],
    *,
    split: str = "test",
    fold: int | None = None,
    protocol: str = "public",
    n_bootstrap: int = 2000,
    seed: int = 0,
    name: str | None = None,
    keep_replicates: KeepReplicates = (),
) -> Result:
    """Score predictions (a DataFrame, or a Parquet/CSV path) against ``split`` (or ``all``) of one or more prepared
    manifests (with ``fold`` k and ``protocol``, as :func:`polypbench.splits.select` defines them:
    cross-validation fold k of the public split, or test fold k of the paper's protocol).

    ``keep_replicates``: metric keys (or True: every key) whose replicate vectors the result keeps, read with
    :meth:`Result.replicates` (what a leaderboard stores to rank entries, :mod:`polypbench.evaluate.ranking`).
    Raises :class:`~polypbench.evaluate.SubmissionError` listing every problem of an invalid file.
    """
    start = time.perf_counter()
    truth = load_truth(manifest, split, fold, protocol)
    pred = _prepare(predictions, truth, name)
    counts, groups, fingerprint = _setup(truth, n_bootstrap, seed)
    result, _ = _result(pred, truth, _run(pred, truth, counts, groups), groups, seed, keep_replicates, fingerprint)
    log.info("scored %s in %.2f s", pred.name, time.perf_counter() - start)
    return result


def compare(
    predictions: Predictions,
    other: Predictions,
    manifest: ManifestLike | Truth | Sequence[ManifestLike],
    *,
    split: str = "test",
    fold: int | None = None,
    protocol: str = "public",
    n_bootstrap: int = 2000,
    seed: int = 0,
    name: str | None = None,
    other_name: str | None = None,
) -> Result:
    """Score ``predictions`` and add a paired comparison with ``other``: per metric the other file's own numbers,
    the difference (this minus other) with its interval and P(this > other), all on the same patient resamples.
    Views missing from either side are left out of the differences."""
    truth = load_truth(manifest, split, fold, protocol)
    pred_a = _prepare(predictions, truth, name)
    pred_b = _prepare(other, truth, other_name)
    counts, groups, fingerprint = _setup(truth, n_bootstrap, seed)
    result, stats_a = _result(pred_a, truth, _run(pred_a, truth, counts, groups), groups, seed, (), fingerprint)
    other_result, stats_b = _result(pred_b, truth, _run(pred_b, truth, counts, groups), groups, seed, (), fingerprint)
    result.comparison = {
        "other": {**other_result.predictions},
        "definition": "this file minus the other, per replicate on the same patient resamples; interval: value +- "
                      "t(df) SE, SE the larger of the jackknife and bootstrap standard errors, df adjusted for the "
                      "kurtosis of the patients' influence values; withheld where either file's own interval is; "
                      "p_value: the two-sided test of no difference the interval inverts (the leaderboard's rank "
                      "groups, Holm-corrected); p_greater = P(this > other) over those replicates, "
                      "ties counted half",
        "metrics": _difference_stats(stats_a, stats_b, groups),
        "other_metrics": other_result.metrics,
        "other_confusion_matrices": other_result.confusion_matrices,
    }
    return result
