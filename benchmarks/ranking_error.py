"""Type-I error and power of the leaderboard's rank groups, and coverage of paired differences, on clustered data.

The population of ``benchmarks/ci_coverage.py`` (patients with 1-4 polyps, log-normal true sizes, a patient-level
error shared by the patient's polyps), now with several models predicting the SAME polyps: model m's log prediction
is ``log true + bias_m + u_m(patient) + e_m(polyp)``, and two models' patient errors (and polyp errors) are
correlated with ``RHO`` (models fail on the same hard polyps), so that their comparison is paired as on the board.

Each simulated test set is scored the scorer's way (per-patient confusion cells and size sums, a (1 + R + P, P)
count matrix of patient resamples plus the leave-one-patient-out rows), each model's own Stat gets the scorer's
verdict (``polypbench.evaluate.policy.judge`` with its class supports), and the entries are compared with the
library's own functions: :func:`polypbench.evaluate.ranking.compare_pair` (what ``evaluate --compare`` and
``/compare`` show) and :func:`polypbench.evaluate.ranking.rank_groups` (the board).

Reported:
1. **type-I error**: two EQUAL models (same quality, ``fair``), and four equal models: the share of test sets in which
   rank groups give them different ranks (board primary metric: per-polyp triclass macro F1), with the old rule
   (sort, then a one-sided paired test at 5% against the entry just above) beside it;
2. **power**: a model against worse ones (polyp-level error sd raised): the share of test sets in which rank groups
   put the better model strictly ahead, with the population gap in macro F1;
3. **paired-difference coverage**: share of test sets whose 95% interval of the difference (macro F1, balanced
   accuracy, MAE, bias) contains the population difference, among those given an interval.

Usage: python benchmarks/ranking_error.py [--sims 1000] [--replicates 1000] [--quick] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ci_coverage import LOG_MEDIAN, LOG_SD, MAX_POLYPS, TO_BINARY10, Effect, count_rows, population_values  # noqa: E402

from polypbench.evaluate import metrics  # noqa: E402
from polypbench.evaluate.policy import ClassSupport, judge  # noqa: E402
from polypbench.evaluate.ranking import Replicates, compare_pair, rank_groups  # noqa: E402
from polypbench.evaluate.stat import Stat  # noqa: E402
from polypbench.sizes import CLASS_SCHEMES, DIMINUTIVE_MAX_MM, LARGE_MIN_MM  # noqa: E402

PATIENTS = (10, 20, 40, 150)
RHO = 0.5
"""Correlation of two models' errors (patient-level and polyp-level)."""
BASE = Effect("fair", 0.25, 0.20)
"""The model every comparison starts from (ci_coverage's ``fair``)."""
WORSE = (Effect("s_polyp 0.30", 0.25, 0.30), Effect("s_polyp 0.40", 0.25, 0.40), Effect("s_polyp 0.55", 0.25, 0.55))
"""Worse models for the power table (more polyp-level error)."""
PAIRED = ("triclass/macro_f1", "triclass/balanced_accuracy", "size/mae_mm", "size/bias_mm")
"""The metrics whose paired differences' coverage is measured (task/metric)."""
PRIMARY = "triclass/macro_f1"


def simulate(rng: np.random.Generator, effects: list[Effect], n_sets: int, n_patients: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per model, test set and patient: triclass confusion cells (M, D, P, 9) and size sums (M, D, P, 3: polyps,
    |error|, error); every model predicts the same polyps, errors correlated with :data:`RHO`."""
    per_patient = rng.integers(1, MAX_POLYPS + 1, (n_sets, n_patients))
    patient = np.repeat(np.arange(n_sets * n_patients), per_patient.ravel())
    n, size = len(patient), n_sets * n_patients
    log_true = rng.normal(LOG_MEDIAN, LOG_SD, n)
    shared_u, shared_e = rng.normal(size=size), rng.normal(size=n)
    true = np.exp(log_true)
    t3 = (true > DIMINUTIVE_MAX_MM).astype(int) + (true >= LARGE_MIN_MM)
    cells, sums = [], []
    a, b = math.sqrt(RHO), math.sqrt(1.0 - RHO)
    for eff in effects:
        u = eff.s_patient * (a * shared_u + b * rng.normal(size=size))[patient]
        e = eff.s_polyp * (a * shared_e + b * rng.normal(size=n))
        pred = np.exp(log_true + u + e + eff.bias)
        p3 = (pred > DIMINUTIVE_MAX_MM).astype(int) + (pred >= LARGE_MIN_MM)
        cells.append(np.bincount(patient * 9 + t3 * 3 + p3, minlength=size * 9).reshape(n_sets, n_patients, 9))
        sums.append(np.stack([per_patient.ravel().astype(float), np.bincount(patient, np.abs(pred - true), size),
                              np.bincount(patient, pred - true, size)], axis=1).reshape(n_sets, n_patients, 3))
    return np.stack(cells).astype(np.float64), np.stack(sums)


@dataclass
class Scored:
    """One model on D test sets: per metric its samples (rows 1 + R + P, D) and each test set's own Stat verdict."""

    samples: dict[str, np.ndarray]
    sides: dict[str, list[Stat]]


def score(counts: np.ndarray, cells: np.ndarray, sums: np.ndarray, n_replicates: int) -> Scored:
    """The metrics of :data:`PAIRED` for every row of every test set, and each test set's verdict of the rule."""
    d, _, n = counts.shape
    cm3 = np.einsum("drp,dpk->drk", counts, cells).reshape(d, -1, 3, 3)
    patient_cm3 = cells.reshape(d, n, 3, 3)
    samples: dict[str, np.ndarray] = {}
    sides: dict[str, list[Stat]] = {}
    for task, m in (("triclass", np.eye(3)), ("binary10", TO_BINARY10)):
        cm = np.einsum("ik,drij,jl->drkl", m, cm3, m)
        values = {k: np.moveaxis(v, 1, 0) for k, v in metrics.classification(cm).items()}
        patients = metrics.support(np.einsum("ik,dpij,jl->dpkl", m, patient_cm3, m))
        observed = cm[:, 0]
        true, pred = observed.sum(-1), observed.sum(-2)
        polyps = {"sensitivity": true, "f1": true + pred - np.diagonal(observed, axis1=-2, axis2=-1)}
        for name in ("macro_f1", "balanced_accuracy"):
            key = f"{task}/{name}"
            if key not in PAIRED:
                continue
            comp = metrics.COMPONENTS[name]
            samples[key] = values[name]
            undefined = np.isnan(values[name][1:1 + n_replicates]).sum(axis=0)
            sides[key] = []
            for i in range(d):
                classes = tuple(ClassSupport(c, int(polyps[comp][i, k]), int(patients[comp][i, k]))
                                for k, c in enumerate(CLASS_SCHEMES[task]))
                verdict = judge(n, classes, int(undefined[i]), n_replicates, metric=name)
                sides[key].append(Stat(float(values[name][0, i]), None, ci_reason=verdict.ci_reason,
                                       flags=verdict.flags))
    s = np.einsum("drp,dpk->drk", counts, sums)
    for name, col in (("mae_mm", 1), ("bias_mm", 2)):
        value = (s[..., col] / s[..., 0]).T
        samples[f"size/{name}"] = value
        verdict = judge(n, (), 0, n_replicates, metric=name)
        sides[f"size/{name}"] = [Stat(float(v), None, ci_reason=verdict.ci_reason, flags=verdict.flags)
                                 for v in value[0]]
    return Scored(samples, sides)


def old_separated(a: np.ndarray, b: np.ndarray, point_a: float, point_b: float) -> bool:
    """The rule before issue #22: sort by value, then a one-sided paired test at 5% of the upper entry against the
    lower (fewer than 5% of the replicates with the lower at least as good)."""
    if np.isnan(point_a) or np.isnan(point_b):
        return False
    hi, lo = (a, b) if point_a >= point_b else (b, a)
    d = hi - lo
    d = d[~np.isnan(d)]
    return bool(len(d)) and float((d <= 1e-12).mean()) < 0.05


def entries_of(scored: list[Scored], key: str, i: int, n_replicates: int, n: int) -> list[Replicates]:
    """The models' :class:`Replicates` of ``key`` on test set ``i`` (one stratum)."""
    out = []
    for sc in scored:
        col = sc.samples[key][:, i]
        out.append(Replicates(key if "/" not in key else f"polyp/{key.split('/')[0]}/pooled/{key.split('/')[1]}",
                              float(col[0]), col[1:1 + n_replicates], col[1 + n_replicates:], np.zeros(n, int), "sim"))
    return out


def run(rng: np.random.Generator, effects: list[Effect], n_patients: int, n_sets: int, n_replicates: int,
        batch: int) -> tuple[np.ndarray, np.ndarray, dict[str, list[tuple[int, int]]]]:
    """Per test set: the board's ranks of every model (D, M) on the primary metric (None as 0), the old rule's split
    of models 0 and 1 (D,), and per metric of :data:`PAIRED` the (given, covered) of model 0 minus model 1."""
    truth = [population_values(e) for e in effects[:2]]
    ranks: list[list[int]] = []
    old: list[bool] = []
    cover: dict[str, list[tuple[int, int]]] = {k: [] for k in PAIRED}
    done = 0
    while done < n_sets:
        d = min(batch, n_sets - done)
        done += d
        cells, sums = simulate(rng, effects, d, n_patients)
        counts = count_rows(rng, d, n_patients, n_replicates)
        scored = [score(counts, cells[m], sums[m], n_replicates) for m in range(len(effects))]
        for i in range(d):
            entries = entries_of(scored, PRIMARY, i, n_replicates, n_patients)
            groups = rank_groups(entries, stats=[sc.sides[PRIMARY][i] for sc in scored])
            ranks.append([r or 0 for r in groups.rank])
            old.append(old_separated(entries[0].replicates, entries[1].replicates, entries[0].value,
                                     entries[1].value))
            for key in PAIRED:
                a, b = entries_of(scored[:2], key, i, n_replicates, n_patients)
                diff = compare_pair(a.value, b.value, a.replicates, b.replicates, a.jackknife, b.jackknife,
                                    a.strata, sides=(scored[0].sides[key][i], scored[1].sides[key][i]),
                                    metric=key.split("/")[1])
                target = truth[0][key] - truth[1][key]
                given = diff.ci95 is not None
                covered = given and diff.ci95[0] <= target <= diff.ci95[1]  # type: ignore[index]
                cover[key].append((int(given), int(covered)))
    return np.array(ranks), np.array(old), cover


def rate(k: int, n: int) -> str:
    if not n:
        return "-"
    p = k / n
    return f"{p:.3f} ({math.sqrt(p * (1 - p) / n):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", type=int, default=1000, help="simulated test sets per configuration and size")
    ap.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates (the board's default)")
    ap.add_argument("--quick", action="store_true", help="200 test sets, 500 replicates")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sims, reps = (200, 500) if args.quick else (args.sims, args.replicates)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    base = population_values(BASE)[PRIMARY]
    print(f"{sims} simulated test sets per cell, {reps} replicates; models' errors correlated {RHO}; base model "
          f"{BASE.name} (macro F1 {base:.3f}). Rates with their Monte Carlo SE.\n")
    print("Type-I error: equal models given different ranks (per-polyp triclass macro F1)\n")
    print("| patients | 2 equal: rank groups | 2 equal: old rule | 4 equal: rank groups (any split) |")
    print("|---:|---:|---:|---:|")
    coverage: dict[str, dict[int, list[tuple[int, int]]]] = {}
    for n in PATIENTS:
        batch = max(1, int(2e7 // ((1 + reps + n) * n * 8)))
        ranks, old, cover = run(rng, [BASE, BASE], n, sims, reps, batch)
        four, _, _ = run(rng, [BASE] * 4, n, sims, reps, batch)
        split2 = int((ranks[:, 0] != ranks[:, 1]).sum())
        split4 = int(sum(len(set(r)) > 1 for r in four))
        print(f"| {n} | {rate(split2, sims)} | {rate(int(old.sum()), sims)} | {rate(split4, sims)} |")
        for key, pairs in cover.items():
            coverage.setdefault(f"{key} (equal models)", {})[n] = pairs
    print("\nPower: the base model ranked strictly ahead of a worse one (2 entries)\n")
    gaps = [base - population_values(w)[PRIMARY] for w in WORSE]
    print("| patients | " + " | ".join(f"gap {g:.3f} ({w.name})" for g, w in zip(gaps, WORSE, strict=True)) + " |")
    print("|---:|" + "---:|" * len(WORSE))
    for n in PATIENTS:
        batch = max(1, int(2e7 // ((1 + reps + n) * n * 8)))
        cells = []
        for w in WORSE:
            ranks, _, cover = run(rng, [BASE, w], n, sims, reps, batch)
            cells.append(rate(int((ranks[:, 0] < ranks[:, 1]).sum()), sims))
            for key, pairs in cover.items():
                coverage.setdefault(f"{key} ({BASE.name} vs {w.name})", {})[n] = pairs
        print(f"| {n} | " + " | ".join(cells) + " |")
    print("\nCoverage of the paired difference's 95% interval (given: share of test sets with an interval)\n")
    print("| difference | " + " | ".join(f"{n} patients" for n in PATIENTS) + " |")
    print("|---|" + "---:|" * len(PATIENTS))
    for label, per_n in coverage.items():
        cells = []
        for n in PATIENTS:
            given = sum(g for g, _ in per_n[n])
            covered = sum(c for _, c in per_n[n])
            cells.append(f"{rate(covered, given)}, given {given / len(per_n[n]):.0%}" if given else "withheld")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
