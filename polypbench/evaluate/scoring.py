"""``score`` and ``compare``: validate, aggregate, bootstrap and assemble the :class:`Result`.

The pure function that the trainer, the CLI and the leaderboard all call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from polypbench.evaluate import metrics
from polypbench.evaluate.aggregate import AGGREGATION, VIEWS, Units, class_source, frame_units, per_polyp, polyp_units
from polypbench.evaluate.bootstrap import CI_LEVEL, MedianSearch, Stat, per_patient_sums, resample_counts, summarize
from polypbench.evaluate.keys import SIZE_TASK, group_key, metric_key
from polypbench.evaluate.result import Result
from polypbench.evaluate.truth import ManifestLike, Truth, load_truth
from polypbench.evaluate.validate import ValidPredictions, read_predictions, validate_predictions
from polypbench.sizes import TASKS, size_class, triclass_to_task

log = logging.getLogger(__name__)

Predictions: TypeAlias = pd.DataFrame | str | Path
Samples: TypeAlias = dict[str, Any]
"""view -> {"tasks": {task: {group: {metric: array (1+R, ...)}}}, "size": {group: {metric: array}} | None,
"confusion": {task: {group: (K, K) array}}}."""


def _groups(truth: Truth) -> list[tuple[str, np.ndarray]]:
    """(name, patient mask) for each dataset, then ``pooled``."""
    strata = truth.patients["stratum"].to_numpy()
    groups = [(ds, strata == i) for i, ds in enumerate(truth.datasets)]
    return groups + [("pooled", np.ones(len(strata), dtype=bool))]


@dataclass(frozen=True)
class _PatientStats:
    """Sufficient statistics of one level (polyp or frame) per patient, and per group the sorted size errors."""

    confusion: np.ndarray
    size_sums: np.ndarray | None
    medians: dict[str, MedianSearch] | None


def _patient_stats(units: Units, n_patients: int, groups: list[tuple[str, np.ndarray]]) -> _PatientStats:
    """Per-patient triclass confusion cells (P, 9), size-error sums (P, 3: weight, |error|, error) and medians."""
    cell = units.patient * 9 + units.true_class3.astype(np.int64) * 3 + units.pred_class3.astype(np.int64)
    confusion = np.bincount(cell, weights=units.weight, minlength=n_patients * 9).reshape(n_patients, 9)
    if units.pred_size is None:
        return _PatientStats(confusion, None, None)
    err = units.pred_size - units.true_size
    abs_err = np.abs(err)
    sums = np.stack([per_patient_sums(units.patient, units.weight, n_patients),
                     per_patient_sums(units.patient, units.weight * abs_err, n_patients),
                     per_patient_sums(units.patient, units.weight * err, n_patients)], axis=1)
    order = np.argsort(abs_err)  # ties need no order: equal values give the same median
    values, patient, weight = abs_err[order], units.patient[order], units.weight[order]
    medians = {}
    for name, mask in groups:
        sel = mask[patient]
        if sel.all():
            medians[name] = MedianSearch.build(values, patient, weight, n_patients, presorted=True)
        else:
            medians[name] = MedianSearch.build(values[sel], patient[sel], weight[sel], n_patients, presorted=True)
    return _PatientStats(confusion, sums, medians)


def _task_maps() -> dict[str, np.ndarray]:
    """Per task, the (3, K) 0/1 matrix mapping triclass labels to the task's labels (from sizes.triclass_to_task)."""
    return {task: np.eye(len(classes))[triclass_to_task(np.arange(3), task)] for task, classes in TASKS.items()}


def _view_samples(stats: _PatientStats, counts: np.ndarray, groups: list[tuple[str, np.ndarray]]) -> Samples:
    """Every metric of one view for the observed data (row 0) and every replicate (rows 1..).

    ``counts`` (1 + R, P) weighs each patient's statistics: the resampled patient multiplicities, divided by the
    patient's number of frames for the patient-weighted frame view. The binary tasks' confusion matrices are sums
    of triclass cells.
    """
    out: Samples = {"tasks": {}, "confusion": {}, "size": None}
    maps = _task_maps()
    for name, mask in groups:
        cm3 = (counts[:, mask] @ stats.confusion[mask]).reshape(-1, 3, 3)
        for task, m in maps.items():
            cm = cm3 if task == "triclass" else np.einsum("ik,rij,jl->rkl", m, cm3, m)
            values = metrics.classification(cm)
            if task == "triclass":
                values.update(metrics.kappas(cm))
            out["tasks"].setdefault(task, {})[name] = values
            out["confusion"].setdefault(task, {})[name] = cm[0]
    if stats.size_sums is not None and stats.medians is not None:
        out["size"] = {}
        for name, mask in groups:
            s = counts[:, mask] @ stats.size_sums[mask]
            out["size"][name] = metrics.size_errors(s[:, 0], s[:, 1], s[:, 2], stats.medians[name].median(counts))
    return out


def _stats(view: str, task: str, group: str, values: dict[str, np.ndarray], classes: Sequence[str]) -> dict[str, Stat]:
    """Stats of one (view, task, group) by metric key: summary metrics first, then per-class metrics."""
    out: dict[str, Stat] = {}
    for name, arr in sorted(values.items(), key=lambda item: item[1].ndim):  # stable: metric order kept
        reason = metrics.UNDEFINED[name]
        if arr.ndim == 2:
            for j, c in enumerate(classes):
                out[metric_key(view, task, group, name, c)] = summarize(arr[:, j], reason)
        else:
            out[metric_key(view, task, group, name)] = summarize(arr, reason)
    return out


def _view_metrics(view: str, samples: Samples) -> dict[str, Stat]:
    """Every metric of one view, keyed ``view/task/dataset/metric[/class]``; size errors under task ``size``."""
    out: dict[str, Stat] = {}
    for task, groups in samples["tasks"].items():
        for name, values in groups.items():
            out.update(_stats(view, task, name, values, TASKS[task]))
    for name, values in (samples["size"] or {}).items():
        out.update(_stats(view, SIZE_TASK, name, values, ()))
    return out


def _confusion_matrices(view: str, samples: Samples) -> dict[str, np.ndarray]:
    return {group_key(view, task, name): cm for task, groups in samples["confusion"].items()
            for name, cm in groups.items()}


def _difference(a: Samples, b: Samples) -> Samples:
    """Per-replicate difference a - b of every metric present in both (NaN where either is undefined)."""
    out: Samples = {"tasks": {}, "confusion": {}, "size": None}
    for task, groups in a["tasks"].items():
        out["tasks"][task] = {g: {m: v - b["tasks"][task][g][m] for m, v in vals.items()} for g, vals in groups.items()}
    if a["size"] is not None and b["size"] is not None:
        out["size"] = {g: {m: v - b["size"][g][m] for m, v in vals.items()} for g, vals in a["size"].items()}
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
    size, class3 = per_polyp(pred, truth)
    table = truth.polyps[["polyp_id", "dataset", "patient_id", "size_mm"]].copy()
    table["size_class3"] = size_class(table["size_mm"].to_numpy(np.float64), "triclass")
    table["pred_size_mm"] = size if size is not None else np.nan
    table["pred_class3"] = class3
    return table


def _prepare(predictions: Predictions, truth: Truth, name: str | None) -> ValidPredictions:
    if isinstance(predictions, (str, Path)):
        name = name or str(predictions)
        predictions = read_predictions(predictions)
    return validate_predictions(predictions, truth, name=name or "predictions")


def _run(pred: ValidPredictions, truth: Truth, counts: np.ndarray) -> dict[str, Samples]:
    """Samples of every view. The patient-weighted frame view reuses the frame statistics: a patient's frames all
    weigh 1 / (its frame count), so scaling its column of ``counts`` by that is the same weighting."""
    groups = _groups(truth)
    out = {"polyp": _view_samples(_patient_stats(polyp_units(pred, truth), truth.n_patients, groups), counts, groups)}
    if pred.level == "frame":
        units = frame_units(pred, truth)
        stats = _patient_stats(units, truth.n_patients, groups)
        out["frame"] = _view_samples(stats, counts, groups)
        frames_per_patient = np.bincount(units.patient, minlength=truth.n_patients).astype(np.float64)
        out["frame_patient"] = _view_samples(stats, counts / frames_per_patient[None, :], groups)
    return out


def _result(pred: ValidPredictions, truth: Truth, samples: dict[str, Samples], n_bootstrap: int, seed: int) -> Result:
    return Result(
        predictions={"name": pred.name, "level": pred.level, "rows": pred.n_rows, "columns": pred.columns,
                     "class_source": class_source(pred)},
        split=truth.split_label,
        manifests=list(truth.manifests),
        aggregation=dict(AGGREGATION),
        bootstrap={"replicates": n_bootstrap, "seed": seed, "unit": "patient", "stratified_by": "dataset",
                   "ci": f"{CI_LEVEL:g}% percentile interval over the replicates where the metric is defined",
                   "rng": "numpy.random.default_rng(seed).multinomial per dataset"},
        counts=_counts_table(truth),
        views={view: VIEWS[view] for view in samples},
        metrics={k: v for view, s in samples.items() for k, v in _view_metrics(view, s).items()},
        confusion_matrices={k: v for view, s in samples.items() for k, v in _confusion_matrices(view, s).items()},
        polyp_table=_polyp_table(pred, truth),
    )


def score(
    predictions: Predictions,
    manifest: ManifestLike | Truth | Sequence[ManifestLike],
    *,
    split: str = "test",
    fold: int | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
    name: str | None = None,
) -> Result:
    """Score predictions (a DataFrame, or a Parquet/CSV path) against ``split`` of one or more prepared manifests
    (with ``fold`` k: cross-validation fold k, as :meth:`polypbench.manifest.Manifest.select` defines it).

    Raises :class:`~polypbench.evaluate.SubmissionError` listing every problem of an invalid file.
    """
    start = time.perf_counter()
    truth = load_truth(manifest, split, fold)
    pred = _prepare(predictions, truth, name)
    counts = resample_counts(truth.patients["stratum"].to_numpy(), n_bootstrap, seed)
    result = _result(pred, truth, _run(pred, truth, counts), n_bootstrap, seed)
    log.info("scored %s in %.2f s", pred.name, time.perf_counter() - start)
    return result


def compare(
    predictions: Predictions,
    other: Predictions,
    manifest: ManifestLike | Truth | Sequence[ManifestLike],
    *,
    split: str = "test",
    fold: int | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
    name: str | None = None,
    other_name: str | None = None,
) -> Result:
    """Score ``predictions`` and add a paired comparison with ``other``: per metric the difference (this minus
    other) and its CI, both computed on the same patient resamples. Views missing from either side are left out."""
    truth = load_truth(manifest, split, fold)
    pred_a = _prepare(predictions, truth, name)
    pred_b = _prepare(other, truth, other_name)
    counts = resample_counts(truth.patients["stratum"].to_numpy(), n_bootstrap, seed)
    samples_a, samples_b = _run(pred_a, truth, counts), _run(pred_b, truth, counts)
    result = _result(pred_a, truth, samples_a, n_bootstrap, seed)
    diff = {k: v for view in samples_a if view in samples_b
            for k, v in _view_metrics(view, _difference(samples_a[view], samples_b[view])).items()}
    other_result = _result(pred_b, truth, samples_b, n_bootstrap, seed)
    result.comparison = {
        "other": {**other_result.predictions},
        "definition": "this file minus the other, per replicate on the same patient resamples; CI over replicates "
                      "where both are defined",
        "metrics": diff,
        "other_metrics": other_result.metrics,
        "other_confusion_matrices": other_result.confusion_matrices,
    }
    return result

