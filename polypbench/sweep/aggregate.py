"""The results of a grid, two ways side by side, per model, per dataset and pooled.

- **The paper's way**: every run's test predictions scored per FRAME (the paper's unit), then the mean and standard
  deviation of each metric over the runs (the folds, times the seeds).
- **Ours**: one prediction file per model scored per POLYP with 95% patient-bootstrap intervals, and in clinical terms
  (:data:`CLINICAL`: the surveillance interval per patient, sizes within 20%). On the paper
  protocol it is the out-of-fold file (each polyp predicted by the run that held it out: the test folds of the
  first seed together cover every polyp once); on the public split, the first seed's test predictions.

Written as ``results.md``, ``results.csv`` and ``results.json`` in the sweep folder. A grid on the public split also
writes one leaderboard entry per model (``entries/reference-<model>.json``, the format that
``polypbench leaderboard export`` writes and ``render`` reads; copy them into ``leaderboard/entries/``). The paper
protocol's out-of-fold files cover every polyp, not the public test split, so they make no board entry.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polypbench import schema
from polypbench.evaluate import format_stat, lookup, metric_key, score
from polypbench.evaluate.format import digits
from polypbench.fileio import atomic_write, atomic_write_json, file_sha256
from polypbench.sweep.grid import Grid, RunSpec, model_label
from polypbench.sweep.run import PREDICTIONS, Outcome

log = logging.getLogger(__name__)

METRICS = {("triclass", "macro_f1"): "triclass F1", ("triclass", "balanced_accuracy"): "triclass bal. acc.",
           ("binary10", "macro_f1"): "<10 vs >=10 mm F1", ("size", "mae_mm"): "MAE mm"}
"""(task, metric) -> column label: the paper's headline F1s (macro), balanced accuracy and the size error."""
CLINICAL = {("patient", "surveillance", "usmstf2020_agreement"): "USMSTF interval agreement",
            ("patient", "surveillance", "usmstf2020_later"): "USMSTF interval later",
            ("polyp", "size", "within_20pct"): "size within 20%"}
"""(view, task, metric) -> column label: clinical terms (docs/scoring.md), ours only (per patient or per polyp,
with intervals; the paper reports none of them)."""
OOF_FILE = "oof_predictions.parquet"


@dataclass
class ModelResult:
    """One model of a grid: per-run values (paper's way) and the pooled result (ours)."""

    model: str
    runs: int
    finished: int
    per_run: dict[str, list[float]] = field(default_factory=dict)
    """metric key (frame view) -> the finished runs' values."""
    pooled: dict[str, dict[str, Any]] = field(default_factory=dict)
    """metric key (polyp view) -> the Stat's JSON form."""
    predictions: str | None = None
    note: str | None = None


def _mean_std(values: Sequence[float], metric: str) -> str:
    """``0.712 ± 0.041 (n=6)``: mean and sample standard deviation over the runs where the metric is defined."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "-"
    n = digits(metric)
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return f"{np.mean(finite):.{n}f} ± {std:.{n}f} (n={len(finite)})"


def _gather(grid: Grid, specs: Sequence[RunSpec], finished: set[str], model: str) -> tuple[pd.DataFrame | None, str]:
    """The prediction file scored "ours": the out-of-fold file (paper protocol) or the first seed's test file."""
    mine = [s for s in specs if model_label(s.config) == model]
    seed = min(s.seed for s in mine)
    first = [s for s in mine if s.seed == seed]
    missing = [s.label for s in first if str(s.run_dir) not in finished]
    if missing:
        return None, f"incomplete: {', '.join(missing)} not finished"
    frames = [pd.read_parquet(s.run_dir / PREDICTIONS) for s in first]
    what = f"out-of-fold, seed {seed}" if grid.protocol == "paper" else f"test split, seed {seed}"
    return pd.concat(frames, ignore_index=True), what


def aggregate(grid: Grid, specs: Sequence[RunSpec], outcomes: Sequence[Outcome], out: Path, *,
              n_bootstrap: int = 2000, seed: int = 0) -> list[ModelResult]:
    """Score every finished run and every model's pooled file; write the tables and entries into ``out``."""
    finished = {o.run_dir for o in outcomes if o.status in ("done", "skipped")}
    results = []
    for config in grid.configs:
        model = model_label(config)
        mine = [s for s in specs if model_label(s.config) == model]
        res = ModelResult(model, len(mine), sum(str(s.run_dir) in finished for s in mine))
        for spec in mine:
            if str(spec.run_dir) not in finished:
                continue
            run = score(spec.run_dir / PREDICTIONS, list(spec.manifests), split="test", fold=spec.fold,
                        protocol=spec.protocol, n_bootstrap=0, seed=seed)
            for dataset in run.datasets:
                for task, metric in METRICS:
                    key = metric_key("frame", task, dataset, metric)
                    stat = run.stat(key) if key in run.metrics else None
                    res.per_run.setdefault(key, []).append(math.nan if stat is None or stat.value is None
                                                          else float(stat.value))
        frame, what = _gather(grid, specs, finished, model)
        if frame is None:
            res.note = what
        else:
            path = out / "models" / model / OOF_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, index=False)
            split = "all" if grid.protocol == "paper" else "test"
            pooled = score(frame, list(mine[0].manifests), split=split, protocol="public", n_bootstrap=n_bootstrap,
                           seed=seed, name=f"{model} ({what})")
            pooled.to_json(path.with_name("result.json"))
            res.predictions, res.note = str(path), what
            for dataset in pooled.datasets:
                keys = [("polyp", task, metric) for task, metric in METRICS] + list(CLINICAL)
                for view, task, metric in keys:
                    key = metric_key(view, task, dataset, metric)
                    if key in pooled.metrics:
                        res.pooled[key] = pooled.metrics[key].to_dict()
        results.append(res)
    write_tables(grid, results, out)
    if grid.protocol == "public":
        write_entries(grid, results, specs, out / "entries", n_bootstrap=n_bootstrap, seed=seed)
    return results


def _sha256(path: Path) -> str | None:
    return file_sha256(path) if path.is_file() else None


def write_entries(grid: Grid, results: Sequence[ModelResult], specs: Sequence[RunSpec], folder: Path, *,
                  n_bootstrap: int, seed: int) -> list[Path]:
    """One leaderboard entry per model with a pooled file: scored as the public board scores a submission (each
    dataset and pooled, the one scorer), with its config, checkpoint hash and split hashes."""
    from polypbench.leaderboard.columns import Track
    from polypbench.leaderboard.scoring import score_public
    from polypbench.leaderboard.tracks import PublicTrack
    from polypbench.manifest import Manifest

    done = [r for r in results if r.predictions]
    if not done:
        return []
    manifests = list(specs[0].manifests)
    track = PublicTrack(manifests)
    opened = [Manifest.open(m) for m in manifests]
    hashes = {m.dataset: m.metadata.get(schema.META_SPLIT_HASH) for m in opened}
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, res in enumerate(done, start=1):
        assert res.predictions is not None
        first = min((s for s in specs if model_label(s.config) == res.model), key=lambda s: s.seed)
        frame = pd.read_parquet(res.predictions)
        scored = score_public(frame, track, name=res.model, n_bootstrap=n_bootstrap, seed=seed)
        config = first.run_dir / "config.yaml"
        entry = {
            "id": -i, "team": f"polypbench reference: {res.model}", "track": Track.PUBLIC.value,
            "method": f"{res.model} ({grid.name} grid, {res.note})", "paper_url": None, "code_url": None,
            "filename": Path(res.predictions).name,
            "declaration": "a polypbench reference run (`polypbench sweep`): trained and selected on the train and "
                           "validation splits only; the test labels scored it once",
            "config": config.read_text() if config.is_file() else None,
            "checkpoint_sha256": _sha256(first.run_dir / "best.pt"), "file_sha256": _sha256(Path(res.predictions)),
            "split_hashes": hashes, "verified": None, "verification": None,
            "submitted": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "rank": None,
            "results": {scope: s.result for scope, s in scored.items()},
        }
        path = folder / f"reference-{res.model}.json"
        atomic_write(path, json.dumps(entry, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


def table_rows(results: Sequence[ModelResult]) -> pd.DataFrame:
    """One row per (model, dataset): each metric the paper's way and ours."""
    rows = []
    for res in results:
        datasets = list(dict.fromkeys(k.split("/")[2] for k in [*res.per_run, *res.pooled]))
        for dataset in datasets or ["pooled"]:
            row: dict[str, Any] = {"model": res.model, "dataset": dataset, "runs": f"{res.finished}/{res.runs}"}
            for (task, metric), label in METRICS.items():
                per_run = res.per_run.get(metric_key("frame", task, dataset, metric), [])
                row[f"{label} (paper)"] = _mean_std(per_run, metric)
                stat = lookup(res.pooled, metric_key("polyp", task, dataset, metric))  # from its JSON form
                row[f"{label} (ours)"] = format_stat(stat, metric)
            for (view, task, metric), label in CLINICAL.items():
                clinical = lookup(res.pooled, metric_key(view, task, dataset, metric))
                row[f"{label} (ours)"] = format_stat(clinical, metric)
            row["ours: predictions"] = res.note or ""
            rows.append(row)
    return pd.DataFrame(rows)


def write_tables(grid: Grid, results: Sequence[ModelResult], out: Path) -> list[Path]:
    """``results.md``, ``results.csv`` and ``results.json`` in ``out``."""
    table = table_rows(results)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, json_path = out / "results.csv", out / "results.md", out / "results.json"
    atomic_write(csv_path, table.to_csv(index=False))
    head = [f"# Grid `{grid.name}` on the {grid.protocol} protocol", "",
            "(paper): the paper's way: each run's test predictions scored per frame, mean ± sd over the runs (n: the "
            "runs where the metric is defined). (ours): one prediction file per model scored per polyp with its "
            "95% patient-bootstrap interval († flags an interval resting on little data; see docs/scoring.md). "
            "F1 is macro F1. USMSTF interval agreement / later: per patient, the surveillance interval (USMSTF 2020) "
            "from the predicted sizes equals / is longer than the one from the true sizes; size within 20%: per "
            "polyp (docs/scoring.md, \"Clinical terms\").", ""]
    cells = [list(table.columns), *table.astype(str).to_numpy().tolist()] if len(table) else [["(no runs)"]]
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in cells]
    lines.insert(1, "|" + "---|" * len(cells[0]))
    atomic_write(md_path, "\n".join([*head, *lines]) + "\n")
    atomic_write_json(json_path, {"grid": grid.name, "protocol": grid.protocol,
                                  "models": [res.__dict__ for res in results]})
    return [md_path, csv_path, json_path]


def summary(results: Sequence[ModelResult]) -> str:
    """A short text for the terminal."""
    return table_rows(results).to_string(index=False)


def load_outcomes(specs: Sequence[RunSpec]) -> list[Outcome]:
    """The outcome recorded in every run folder (for aggregating without launching)."""
    from polypbench.sweep.run import FAILED, is_done

    out = []
    for s in specs:
        if is_done(s):
            out.append(Outcome(s.label, str(s.run_dir), "skipped"))
        elif (s.run_dir / FAILED).is_file():
            out.append(Outcome(s.label, str(s.run_dir), "failed", error=json.loads((s.run_dir / FAILED).read_text())
                               .get("error")))
        else:
            out.append(Outcome(s.label, str(s.run_dir), "missing"))
    return out
