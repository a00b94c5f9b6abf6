"""Benchmark `polypbench.score` (and `polypbench evaluate`'s path) against a naive pandas implementation.

Writes two prepared manifests with the real schema (REAL-Colon-like: 132 test polyps of 33 patients; SUN-like: 100
test polyps of 100 cases), 3,000,000 test frame rows in all, and a frame-level prediction file (size_mm and p0-p2)
for every one of them; then measures, in one run:

- polypbench: `score(path, manifests, n_bootstrap=2000)` end to end (read both manifests, read and validate the
  predictions, aggregate, 2000 patient-bootstrap replicates of every metric, view, task and dataset), with a
  breakdown of its stages;
- naive: per replicate, resample patients with pandas, merge the frames of the drawn patients, groupby-apply per
  polyp, and call scikit-learn for every metric (the same metrics, views, tasks and datasets). It is timed on
  a few replicates and EXTRAPOLATED to 2000 (linear: each replicate costs the same).

Usage: python benchmarks/evaluate_bench.py [--frames 3000000] [--replicates 2000] [--naive-replicates 3 (0: skip)]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn import metrics as skm

from polypbench import schema
from polypbench.evaluate import read_predictions, score, validate_predictions
from polypbench.evaluate.truth import load_truth
from polypbench.sizes import CLASS_SCHEMES, size_class, triclass_to_task

DATASETS = {"real-colon": (132, 33), "sun": (100, 100)}
"""dataset -> (test polyps, test patients)."""


def write_manifests(root: Path, n_frames: int, seed: int = 0) -> tuple[list[Path], pd.DataFrame]:
    """Write one manifest per dataset; return their paths and the test frame keys with truth and patient."""
    rng = np.random.default_rng(seed)
    n_polyps = sum(p for p, _ in DATASETS.values())
    share = rng.lognormal(0.0, 0.8, n_polyps)
    per_polyp = np.maximum(1, np.floor(share / share.sum() * n_frames)).astype(np.int64)
    per_polyp[0] += n_frames - per_polyp.sum()
    paths, keys, start = [], [], 0
    for dataset, (n_pol, n_pat) in DATASETS.items():
        counts = per_polyp[start:start + n_pol]
        start += n_pol
        polyp_ids = np.array([f"{dataset}/p{i:03d}" for i in range(n_pol)], dtype=object)
        patients = np.array([f"pt{i % n_pat:03d}" for i in range(n_pol)], dtype=object)
        sizes = rng.gamma(2.0, 3.0, n_pol).round(1).astype(np.float32)
        polyp_of = np.repeat(np.arange(n_pol), counts)
        frame_index = (np.arange(len(polyp_of)) - np.repeat(np.cumsum(counts) - counts, counts)).astype(np.int32)
        n = len(polyp_of)
        meta = schema.parquet_metadata({
            schema.META_POLYPBENCH_VERSION: "0.1.0", schema.META_SCHEMA_VERSION: schema.SCHEMA_VERSION,
            schema.META_DATASET: dataset, schema.META_SPLIT_VERSION: "v1", schema.META_SPLIT_HASH: "bench"})
        c3 = size_class(sizes, "triclass")
        i32 = pa.array(np.zeros(n, dtype=np.int32))
        frames = pa.table({
            "dataset": pa.array([dataset] * n), "patient_id": pa.array(patients[polyp_of]),
            "video_id": pa.array(patients[polyp_of]), "polyp_id": pa.array(polyp_ids[polyp_of]),
            "frame_index": pa.array(frame_index), "frame_path": pa.array(["f.jpg"] * n),
            "width": i32, "height": i32, "xmin": i32, "ymin": i32, "xmax": i32, "ymax": i32,
            "size_mm": pa.array(sizes[polyp_of]), "size_class3": pa.array(c3[polyp_of]),
            "size_class2": pa.array(size_class(sizes, "binary10")[polyp_of]), "split": pa.array(["test"] * n),
            "fold": pa.array(np.full(n, -1, dtype=np.int8)), "histology": pa.nulls(n, pa.string()),
            "site": pa.nulls(n, pa.string()), "endoscope": pa.nulls(n, pa.string()),
        }, schema=schema.FRAMES.with_metadata(meta))
        out = root / dataset
        out.mkdir(parents=True)
        pq.write_table(frames, out / schema.FRAMES_FILE)
        polyps = pa.table({
            "polyp_id": pa.array(polyp_ids), "dataset": pa.array([dataset] * n_pol), "patient_id": pa.array(patients),
            "video_id": pa.array(patients), "size_mm": pa.array(sizes), "size_class3": pa.array(c3),
            "size_class2": pa.array(size_class(sizes, "binary10")), "split": pa.array(["test"] * n_pol),
            "fold": pa.array(np.full(n_pol, -1, dtype=np.int8)), "n_frames": pa.array(counts.astype(np.int32)),
            "histology": pa.nulls(n_pol, pa.string()), "site": pa.nulls(n_pol, pa.string()),
            "endoscope": pa.nulls(n_pol, pa.string()),
        }, schema=schema.POLYPS.with_metadata(meta))
        pq.write_table(polyps, out / schema.POLYPS_FILE)
        paths.append(out)
        keys.append(pd.DataFrame({"polyp_id": polyp_ids[polyp_of], "frame_index": frame_index, "dataset": dataset,
                                  "patient": dataset + "/" + patients[polyp_of], "true_size": sizes[polyp_of]}))
    return paths, pd.concat(keys, ignore_index=True)


def make_predictions(keys: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(keys)
    probs = rng.dirichlet([2.0, 2.0, 2.0], n)
    return pd.DataFrame({
        "polyp_id": keys["polyp_id"].astype("category"), "frame_index": keys["frame_index"],
        "size_mm": np.abs(keys["true_size"].to_numpy(np.float64) + rng.normal(0.0, 2.0, n)),
        "p0": probs[:, 0], "p1": probs[:, 1], "p2": probs[:, 2],
    })


# -- the naive implementation (groupby-apply per replicate, scikit-learn metrics) -------------------------------

def _naive_metrics(y_true: np.ndarray, y_pred: np.ndarray, k: int, weight: np.ndarray | None) -> dict[str, object]:
    lab = list(range(k))
    out: dict[str, object] = {
        "macro_f1": skm.f1_score(y_true, y_pred, labels=lab, average="macro", sample_weight=weight),
        "weighted_f1": skm.f1_score(y_true, y_pred, labels=lab, average="weighted", sample_weight=weight),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred, sample_weight=weight),
        "accuracy": skm.accuracy_score(y_true, y_pred, sample_weight=weight),
        "sensitivity": skm.recall_score(y_true, y_pred, labels=lab, average=None, sample_weight=weight),
        "precision": skm.precision_score(y_true, y_pred, labels=lab, average=None, sample_weight=weight),
    }
    mcm = skm.multilabel_confusion_matrix(y_true, y_pred, labels=lab, sample_weight=weight)
    out["specificity"] = mcm[:, 0, 0] / (mcm[:, 0, 0] + mcm[:, 0, 1])
    if k == 3:
        out["kappa_quadratic"] = skm.cohen_kappa_score(y_true, y_pred, labels=lab, weights="quadratic",
                                                       sample_weight=weight)
        out["kappa_linear"] = skm.cohen_kappa_score(y_true, y_pred, labels=lab, weights="linear", sample_weight=weight)
    return out


def _naive_view(df: pd.DataFrame, size_col: str, weight: np.ndarray | None) -> dict[str, object]:
    out: dict[str, object] = {}
    true3 = size_class(df["true_size"].to_numpy(np.float64), "triclass")
    pred3 = np.argmax(df[["p0", "p1", "p2"]].to_numpy(), axis=1)
    groups = [(ds, (df["dataset"] == ds).to_numpy()) for ds in DATASETS] + [("pooled", np.ones(len(df), bool))]
    for name, mask in groups:
        w = None if weight is None else weight[mask]
        for task, classes in CLASS_SCHEMES.items():
            t, p = triclass_to_task(true3[mask], task), triclass_to_task(pred3[mask], task)
            out[f"{name}/{task}"] = _naive_metrics(t, p, len(classes), w)
        err = df[size_col].to_numpy()[mask] - df["true_size"].to_numpy()[mask]
        out[f"{name}/size"] = (np.average(np.abs(err), weights=w), np.median(np.abs(err)), np.average(err, weights=w))
    return out


def naive_replicate(frames: pd.DataFrame, rng: np.random.Generator) -> dict[str, object]:
    """One bootstrap replicate the straightforward pandas way."""
    draws = []
    for ds in DATASETS:
        patients = frames.loc[frames["dataset"] == ds, "patient"].unique()
        draws.append(pd.DataFrame({"patient": rng.choice(patients, len(patients), replace=True)}))
    drawn = pd.concat(draws, ignore_index=True).rename_axis("draw").reset_index()
    rep = drawn.merge(frames, on="patient")
    polyps = rep.groupby(["draw", "polyp_id"], observed=True).apply(
        lambda g: pd.Series({"size_mm": g["size_mm"].median(), "p0": g["p0"].mean(), "p1": g["p1"].mean(),
                             "p2": g["p2"].mean(), "true_size": g["true_size"].iloc[0],
                             "dataset": g["dataset"].iloc[0]}),
        include_groups=False,
    ).reset_index()
    per_patient = rep.groupby("draw")["draw"].transform("size").to_numpy(np.float64)
    return {"polyp": _naive_view(polyps, "size_mm", None), "frame": _naive_view(rep, "size_mm", None),
            "frame_patient": _naive_view(rep, "size_mm", 1.0 / per_patient)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=3_000_000)
    ap.add_argument("--replicates", type=int, default=2000)
    ap.add_argument("--naive-replicates", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        manifests, keys = write_manifests(root, args.frames)
        preds = make_predictions(keys)
        pred_path = root / "predictions.parquet"
        preds.to_parquet(pred_path, index=False)
        print(f"setup: {len(keys):,} frame rows, {keys['polyp_id'].nunique()} polyps, "
              f"{keys['patient'].nunique()} patients ({time.perf_counter() - t0:.1f} s, not timed below)")

        totals = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            score(pred_path, manifests, n_bootstrap=args.replicates, seed=0)
            totals.append(time.perf_counter() - t)
        stages = {}
        t = time.perf_counter()
        truth = load_truth(manifests)
        stages["read manifests (truth)"] = time.perf_counter() - t
        t = time.perf_counter()
        df = read_predictions(pred_path)
        stages["read predictions"] = time.perf_counter() - t
        t = time.perf_counter()
        validate_predictions(df, truth)
        stages["validate"] = time.perf_counter() - t
        t = time.perf_counter()
        score(df, truth, n_bootstrap=0)
        stages["score, no replicates (validate + aggregate + point metrics)"] = time.perf_counter() - t
        t = time.perf_counter()
        score(df, truth, n_bootstrap=args.replicates)
        stages[f"score, {args.replicates} replicates (same, from memory)"] = time.perf_counter() - t

        frames = keys.assign(size_mm=preds["size_mm"].to_numpy(), p0=preds["p0"].to_numpy(),
                             p1=preds["p1"].to_numpy(), p2=preds["p2"].to_numpy())
        frames["polyp_id"] = frames["polyp_id"].astype("category")
        rng = np.random.default_rng(0)
        naive_times: list[float] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn's zero-division warnings
            for _ in range(args.naive_replicates):
                t = time.perf_counter()
                naive_replicate(frames, rng)
                naive_times.append(time.perf_counter() - t)
    best = min(totals)
    print(f"polypbench score (end to end, from the Parquet file), {args.replicates} replicates: "
          f"min {best:.2f} s, median {statistics.median(totals):.2f} s over {args.repeat} runs")
    for name, sec in stages.items():
        print(f"  {name}: {sec:.2f} s")
    if not naive_times:  # --naive-replicates 0: the scorer only
        return
    per_rep = statistics.mean(naive_times)
    naive_total = per_rep * args.replicates
    print(f"naive pandas: {per_rep:.2f} s per replicate (mean of {args.naive_replicates} timed), "
          f"EXTRAPOLATED to {args.replicates} replicates: {naive_total:,.0f} s ({naive_total / 3600:.1f} h)")
    print(f"ratio naive / polypbench: {naive_total / best:,.0f}x")


if __name__ == "__main__":
    main()
