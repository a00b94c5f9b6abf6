"""Coverage of the scorer's 95% intervals on clustered data: the old percentile interval vs the expanded BCa one.

The simulation of issues #12 and #22. A population of patients, each with 1-4 polyps (uniform); true sizes log-normal
(median 5 mm, log-sd 0.6: about 50% diminutive, 38% small, 12% large); a predicted size is
``true * exp(u_patient + e_polyp + bias)`` with a patient-level error u ~ N(0, s_u^2) shared by the patient's polyps and
a polyp-level error e ~ N(0, s_e^2); classes come from the predicted size (``polypbench.sizes``). Several effect
sizes (model qualities, below) and 10 / 15 / 20 / 40 / 150 patients per test set. Each simulated test set is scored the
scorer's way: per-patient sufficient statistics, a (1 + R, P) count matrix of stratified patient resamples plus
the P leave-one-patient-out rows, the library's metrics (``polypbench.evaluate.metrics``), its intervals
(``polypbench.evaluate.intervals``) and its no-honest-interval rule (``polypbench.evaluate.policy``).

The population value of each metric is exact (numerical integration, not simulation): polyp-level metrics are
ratios of sums over patients, whose limit is the per-polyp expectation, e.g. the population confusion matrix
P(true class i, predicted class j), MAE = E[true size] E|exp(u + e + bias) - 1| and bias = E[true size]
(exp(bias + s^2 / 2) - 1).

Reported per (effect, patients, metric): how often the point value is defined, how often an interval is given
(the rest: the point is undefined, or the rule withholds the interval), and among test sets with an interval the
share that contains the population value, with its Monte Carlo standard error sqrt(c (1 - c) / N).

Usage: python benchmarks/ci_coverage.py [--sims 1000] [--replicates 2000] [--quick] [--ablation] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import special

from polypbench.evaluate import intervals, metrics
from polypbench.evaluate.bootstrap import Design, bca, metric_interval
from polypbench.evaluate.policy import ClassSupport, judge
from polypbench.sizes import CLASS_SCHEMES, DIMINUTIVE_MAX_MM, LARGE_MIN_MM

LOG_MEDIAN, LOG_SD = math.log(5.0), 0.6
"""True sizes: log-normal."""
MAX_POLYPS = 4
"""Polyps per patient: uniform on 1..4 (the issue's simulation)."""


@dataclass(frozen=True)
class Effect:
    """A model quality: patient-level and polyp-level log-error sd, and a log bias."""

    name: str
    s_patient: float
    s_polyp: float
    bias: float = 0.0


EFFECTS = (
    Effect("good", 0.10, 0.10),
    Effect("fair", 0.25, 0.20),
    Effect("poor", 0.40, 0.30, 0.10),
)
PATIENTS = (10, 15, 20, 40, 150)
METRICS = ("triclass/balanced_accuracy", "triclass/macro_f1", "triclass/accuracy", "size/mae_mm", "size/bias_mm",
           "binary10/balanced_accuracy")
"""The metrics the coverage goal is about (task/metric)."""
TO_BINARY10 = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


def population_values(effect: Effect) -> dict[str, float]:
    """Exact population values by numerical integration over the log true size."""
    x = np.linspace(LOG_MEDIAN - 9 * LOG_SD, LOG_MEDIAN + 9 * LOG_SD, 40001)
    dens = np.exp(-0.5 * ((x - LOG_MEDIAN) / LOG_SD) ** 2)
    dens /= np.trapezoid(dens, x)
    s = math.hypot(effect.s_patient, effect.s_polyp)
    lo, hi = math.log(DIMINUTIVE_MAX_MM), math.log(LARGE_MIN_MM)
    true_class = (x > lo).astype(int) + (x >= hi).astype(int)
    # P(predicted class j | log true size x): the log prediction is x + bias + N(0, s^2)
    c1 = special.ndtr((lo - x - effect.bias) / s)
    c2 = special.ndtr((hi - x - effect.bias) / s)
    pred = np.stack([c1, c2 - c1, 1.0 - c2])
    cm = np.array([[np.trapezoid(np.where(true_class == i, dens * pred[j], 0.0), x) for j in range(3)]
                   for i in range(3)])
    tri = metrics.classification(cm)
    bin10 = metrics.classification(TO_BINARY10.T @ cm @ TO_BINARY10)
    e = np.linspace(-12 * s, 12 * s, 40001)
    abs_rel = np.trapezoid(np.abs(np.exp(e + effect.bias) - 1.0) * np.exp(-0.5 * (e / s) ** 2), e) / (
        s * math.sqrt(2 * math.pi))
    mean_size = math.exp(LOG_MEDIAN + LOG_SD**2 / 2)
    bias = mean_size * (math.exp(effect.bias + s**2 / 2) - 1.0)
    return {"size/bias_mm": bias,
            "triclass/balanced_accuracy": float(tri["balanced_accuracy"]), "triclass/macro_f1": float(tri["macro_f1"]),
            "triclass/accuracy": float(tri["accuracy"]), "size/mae_mm": mean_size * abs_rel,
            "binary10/balanced_accuracy": float(bin10["balanced_accuracy"])}


def simulate_stats(rng: np.random.Generator, effect: Effect, n_sets: int, n_patients: int) -> tuple[np.ndarray, ...]:
    """Per test set and patient: triclass confusion cells (D, P, 9) and size sums (D, P, 3: polyps, |error|,
    error)."""
    per_patient = rng.integers(1, MAX_POLYPS + 1, (n_sets, n_patients))
    patient = np.repeat(np.arange(n_sets * n_patients), per_patient.ravel())
    n = len(patient)
    log_true = rng.normal(LOG_MEDIAN, LOG_SD, n)
    u = rng.normal(0.0, effect.s_patient, n_sets * n_patients)[patient]
    log_pred = log_true + u + rng.normal(0.0, effect.s_polyp, n) + effect.bias
    true, pred = np.exp(log_true), np.exp(log_pred)
    t3 = (true > DIMINUTIVE_MAX_MM).astype(int) + (true >= LARGE_MIN_MM)
    p3 = (pred > DIMINUTIVE_MAX_MM).astype(int) + (pred >= LARGE_MIN_MM)
    size = n_sets * n_patients
    cells = np.bincount(patient * 9 + t3 * 3 + p3, minlength=size * 9).reshape(n_sets, n_patients, 9)
    sums = np.stack([per_patient.ravel().astype(float), np.bincount(patient, np.abs(pred - true), size),
                     np.bincount(patient, pred - true, size)], axis=1)
    return cells.astype(np.float64), sums.reshape(n_sets, n_patients, 3)


def count_rows(rng: np.random.Generator, n_sets: int, n_patients: int, n_replicates: int) -> np.ndarray:
    """(D, 1 + R + P, P): the observed row, R patient resamples (uniform draws with replacement, i.e. the
    multinomial of ``resample_counts``), then the leave-one-patient-out rows: the scorer's ``count_matrix``."""
    draws = rng.integers(0, n_patients, (n_sets * n_replicates, n_patients))
    offset = np.arange(n_sets * n_replicates)[:, None] * n_patients
    reps = np.bincount((draws + offset).ravel(), minlength=n_sets * n_replicates * n_patients)
    reps = reps.reshape(n_sets, n_replicates, n_patients).astype(np.float64)
    ones = np.ones((n_sets, 1, n_patients))
    jack = np.broadcast_to(intervals.jackknife_counts(n_patients), (n_sets, n_patients, n_patients))
    return np.concatenate([ones, reps, jack], axis=1)


@dataclass
class Scored:
    """One batch of D test sets scored the scorer's way: per metric its samples (rows, D), the scorer's interval
    (2, D) and, per test set, the classes it rests on (for the rule)."""

    samples: dict[str, np.ndarray]
    new: dict[str, np.ndarray]
    classes: dict[str, list[tuple[ClassSupport, ...]]]
    plain_t: dict[str, np.ndarray]
    """The size errors' bootstrap-t without the small-sample expansion (the ablation)."""


def _classes(task: str, polyps: np.ndarray, patients: np.ndarray) -> list[tuple[ClassSupport, ...]]:
    """Per test set, the classes a class mean rests on from its polyps and patients per class (D, K): the scorer's
    ``_class_supports``."""
    names = CLASS_SCHEMES[task]
    return [tuple(ClassSupport(c, int(polyps[i, k]), int(patients[i, k])) for k, c in enumerate(names))
            for i in range(len(polyps))]


def score_batch(counts: np.ndarray, cells: np.ndarray, sums: np.ndarray, n_replicates: int) -> Scored:
    """Every metric of METRICS for every row of every test set, with the scorer's interval (``metric_interval``)."""
    d, _, n = counts.shape
    design = Design(n_replicates, np.arange(n), np.zeros(n, dtype=np.int64))
    cm3 = np.einsum("drp,dpk->drk", counts, cells).reshape(d, -1, 3, 3)
    patient_cm3 = cells.reshape(d, n, 3, 3)
    samples: dict[str, np.ndarray] = {}
    new: dict[str, np.ndarray] = {}
    classes: dict[str, list[tuple[ClassSupport, ...]]] = {}
    plain_t: dict[str, np.ndarray] = {}
    none: list[tuple[ClassSupport, ...]] = [()] * d
    for task, m in (("triclass", np.eye(3)), ("binary10", TO_BINARY10)):
        cm = np.einsum("ik,drij,jl->drkl", m, cm3, m)
        values = {k: np.moveaxis(v, 1, 0) for k, v in metrics.classification(cm).items()}  # rows first
        patients = metrics.support(np.einsum("ik,dpij,jl->dpkl", m, patient_cm3, m))
        observed = cm[:, 0]
        true, pred = observed.sum(-1), observed.sum(-2)
        polyps = {"sensitivity": true, "f1": true + pred - np.diagonal(observed, axis1=-2, axis2=-1)}
        for name in ("balanced_accuracy", "macro_f1", "accuracy"):
            key = f"{task}/{name}"
            if key not in METRICS:
                continue
            samples[key] = values[name]
            new[key] = metric_interval(name, values[name], design, values=values, confusion=observed,
                                       patients=patients)
            comp = metrics.COMPONENTS.get(name)
            classes[key] = _classes(task, polyps[comp], patients[comp]) if comp else none
    w = sums[..., 0]
    for name, col in (("mae_mm", 1), ("bias_mm", 2)):
        a = sums[..., col]
        cols = np.stack([a * a, a * w, w * w, a, w], axis=-1)  # per patient: a^2, aw, w^2, a, w (one stratum)
        mom = np.einsum("drp,dpk->drk", counts, cols)
        se = intervals.ratio_se(mom[..., 3], mom[..., 4], mom[..., None, 0:3], mom[..., None, 3:5], np.array([n]))
        value = (mom[..., 3] / mom[..., 4]).T
        samples[f"size/{name}"] = value
        new[f"size/{name}"] = metric_interval(name, value, design, se=se.T)
        plain_t[f"size/{name}"] = intervals.studentized_interval(value[0], value[1:1 + n_replicates], se.T[0],
                                                                 se.T[1:1 + n_replicates])
        classes[f"size/{name}"] = none
    return Scored(samples, new, classes, plain_t)


@dataclass
class Tally:
    """Counts over simulated test sets for one (effect, patients, metric)."""

    sets: int = 0
    old_given: int = 0
    old_covered: int = 0
    new_given: int = 0
    new_covered: int = 0
    new_flagged: int = 0
    bca_given: int = 0
    bca_covered: int = 0

    @staticmethod
    def rate(covered: int, given: int) -> tuple[float, float]:
        if not given:
            return math.nan, math.nan
        c = covered / given
        return c, math.sqrt(c * (1 - c) / given)


def run_cell(rng: np.random.Generator, effect: Effect, n_patients: int, n_sets: int, n_replicates: int,
             truth: dict[str, float], batch: int, ablation: bool = False) -> dict[str, Tally]:
    tallies = {k: Tally() for k in METRICS}
    done = 0
    while done < n_sets:
        d = min(batch, n_sets - done)
        done += d
        cells, sums = simulate_stats(rng, effect, d, n_patients)
        scored = score_batch(count_rows(rng, d, n_patients, n_replicates), cells, sums, n_replicates)
        for key in METRICS:
            arr, ci = scored.samples[key], scored.new[key]
            point, reps = arr[0], arr[1:1 + n_replicates]
            old = intervals.percentile_interval(reps)
            design = Design(n_replicates, np.arange(n_patients), np.zeros(n_patients, dtype=np.int64))
            if not ablation:
                plain = np.full_like(old, np.nan)
            elif key in scored.plain_t:  # the size errors: the bootstrap-t without the expansion
                plain = scored.plain_t[key]
            else:  # the expanded BCa interval without Wilson's widening
                plain = bca(arr, design)
            undefined = np.isnan(reps).sum(axis=0)
            t, v = tallies[key], truth[key]
            t.sets += d
            for i in range(d):
                if np.isnan(point[i]):
                    continue
                if not np.isnan(old[:, i]).any():  # the old scorer: any defined replicate gave an interval
                    t.old_given += 1
                    t.old_covered += int(old[0, i] <= v <= old[1, i])
                verdict = judge(n_patients, scored.classes[key][i], int(undefined[i]), n_replicates,
                                metric=key.split("/")[1])
                if verdict.ci_reason is None and not np.isnan(ci[:, i]).any():
                    t.new_given += 1
                    t.new_covered += int(ci[0, i] <= v <= ci[1, i])
                    t.new_flagged += int(bool(verdict.flags))
                if verdict.ci_reason is None and not np.isnan(plain[:, i]).any():
                    t.bca_given += 1
                    t.bca_covered += int(plain[0, i] <= v <= plain[1, i])
    return tallies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", type=int, default=1000, help="simulated test sets per effect and patient count")
    ap.add_argument("--replicates", type=int, default=2000, help="bootstrap replicates per test set")
    ap.add_argument("--quick", action="store_true", help="200 test sets, 1000 replicates (about 10x faster)")
    ap.add_argument("--ablation", action="store_true",
                    help="also the interval without its last correction: the expanded BCa interval without "
                         "Wilson's widening; for MAE and bias the bootstrap-t without the small-sample expansion")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sims, reps = (200, 1000) if args.quick else (args.sims, args.replicates)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    print(f"{sims} simulated test sets per cell, {reps} replicates each. Coverage of the 95% interval among the test "
          "sets given one (Monte Carlo SE); old: the percentile interval, given whenever the value is defined; new: "
          "the scorer's interval and rule; given: share of test sets with an interval; flagged: share of those "
          "shown with a dagger.\n")
    extra = " ablation |" if args.ablation else ""
    print("| effect | metric (population value) | patients | old: coverage | new: coverage | new: given | "
          "new: flagged |" + extra)
    print("|---|---|---:|---:|---:|---:|---:|" + ("---:|" if args.ablation else ""))
    for effect in EFFECTS:
        truth = population_values(effect)
        results = {}
        for n in PATIENTS:
            batch = max(1, int(4e7 // ((1 + reps + n) * n * 8)))
            results[n] = run_cell(rng, effect, n, sims, reps, truth, batch, args.ablation)
        for key in METRICS:
            for n in PATIENTS:
                t = results[n][key]
                oc, ose = Tally.rate(t.old_covered, t.old_given)
                nc, nse = Tally.rate(t.new_covered, t.new_given)
                line = (f"| {effect.name} | {key} ({truth[key]:.3f}) | {n} | {oc:.3f} ({ose:.3f}) "
                        f"| {nc:.3f} ({nse:.3f}) | {t.new_given / t.sets:.0%} "
                        f"| {t.new_flagged / max(t.new_given, 1):.0%} |")
                if args.ablation:
                    bc, bse = Tally.rate(t.bca_covered, t.bca_given)
                    line += f" {bc:.3f} ({bse:.3f}) |"
                print(line)
    print(f"\n{time.perf_counter() - start:.0f} s; effects: "
          + "; ".join(f"{e.name}: s_patient {e.s_patient}, s_polyp {e.s_polyp}, log bias {e.bias}" for e in EFFECTS))


if __name__ == "__main__":
    main()
