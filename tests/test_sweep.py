"""`polypbench sweep` runs a tiny grid end to end: local and through submitit, resumable, failures reported, the
results table the paper's way and ours, out-of-fold predictions covering every polyp once."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from polypbench.cli import main
from polypbench.leaderboard.board import md_text
from polypbench.manifest import Manifest
from polypbench.splits.paper import fold_of

TINY = ["epochs=1", "img_size=32", "n_bootstrap=0", "frames_per_polyp_per_epoch=1", "batch_size=64"]


def _grid(path: Path, protocol: str, configs: list[str], folds: list[int | None], seeds: list[int]) -> Path:
    doc = {"name": "tiny", "protocol": protocol, "configs": configs, "folds": folds, "seeds": seeds, "set": TINY}
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


@pytest.mark.e2e
@pytest.mark.process  # two worker processes
def test_paper_grid_runs_resumes_and_reports_failures(prepared, tmp_path: Path) -> None:
    sun = prepared["sun"].out
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: tiny-hag\ntask: triclass\nmodel_kwargs: {gate_init: bogus}\n")  # fails inside fit
    grid = _grid(tmp_path / "grid.yaml", "paper", ["demo", str(broken)], [0, 1, 2, 3, 4, 5], [0])
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(grid), "--manifest", str(sun), "--out", str(out),
                                       "--bootstrap", "50", "--parallel", "2"])  # two worker processes
    assert result.exit_code == 0, result.output
    assert "12 runs: 6 trained, 0 already done, 6 failed" in result.output
    assert result.output.count("  failed: broken fold") == 6  # the summary; the progress lines said it too
    assert "unknown gate_init 'bogus'" in result.output
    failed = json.loads((out / "runs" / "broken" / "fold3-seed0" / "failed.json").read_text())
    assert "Traceback" not in failed["error"] and failed["error"]

    oof = pd.read_parquet(out / "models" / "demo" / "oof_predictions.parquet")
    frames = Manifest.open(sun).frames
    assert sorted(zip(oof["polyp_id"], oof["frame_index"], strict=True)) == sorted(
        zip(frames["polyp_id"], frames["frame_index"], strict=True))  # every frame once, out of fold
    for k in range(6):
        run = pd.read_parquet(out / "runs" / "demo" / f"fold{k}-seed0" / "test_predictions.parquet")
        keys = run["polyp_id"].str.split("/", n=1).str[1].unique().tolist()
        assert set(fold_of("sun", keys)) == {k}  # each run predicted exactly its held-out fold

    table = pd.read_csv(out / "results.csv")
    demo = table[table["model"] == "demo"].set_index("dataset")
    assert demo.loc["pooled", "runs"] == "6/6" and "(n=6)" in demo.loc["pooled", "triclass F1 (paper)"]
    assert demo.loc["pooled", "triclass F1 (ours)"].count("[") == 1  # a value with its interval
    assert table[table["model"] == "broken"]["ours: predictions"].str.startswith("incomplete").all()
    assert "(paper)" in (out / "results.md").read_text()

    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs" / "demo").rglob("done.json")}
    again = CliRunner().invoke(main, ["sweep", str(grid), "--manifest", str(sun), "--out", str(out),
                                      "--bootstrap", "50"])
    assert again.exit_code == 0, again.output
    assert "12 runs: 0 trained, 6 already done, 6 failed" in again.output
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "runs" / "demo").rglob("done.json")}


@pytest.mark.e2e
@pytest.mark.process  # submitit's local executor: a job process
def test_submitit_local_runs_the_slurm_code_path(prepared, tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    grid = _grid(tmp_path / "grid.yaml", "public", ["demo"], [None], [0])
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(grid), "--manifest", str(prepared["sun"].out), "--out", str(out),
                                       "--launcher", "submitit-local", "--bootstrap", "50", "--time", "10"])
    assert result.exit_code == 0, result.output
    assert "1 runs: 1 trained" in result.output
    assert list((out / "jobs").glob("*_submitted.pkl")), "submitit wrote its job files"
    assert (out / "runs" / "demo" / "default-seed0" / "done.json").is_file()
    assert (out / "models" / "demo" / "result.json").is_file()
    entry = json.loads((out / "entries" / "reference-demo.json").read_text())  # the public grid's board entry
    assert entry["track"] == "public" and {"sun", "pooled"} <= set(entry["results"])
    assert entry["checkpoint_sha256"] and entry["split_hashes"]["sun"]
    rendered = CliRunner().invoke(main, ["leaderboard", "render", "--out", str(out)])
    assert rendered.exit_code == 0, rendered.output
    assert md_text("polypbench reference: demo") in (out / "README.md").read_text()  # as the board escapes it


def test_bad_grid_files_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: paper\nconfigs: [demo]\nfolds: [null]\n")
    result = CliRunner().invoke(main, ["sweep", str(bad), "--manifest", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "paper protocol needs a test fold" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(main, ["sweep", "nope", "--manifest", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "one of: paper, public" in result.output


def test_a_run_config_takes_the_manifest_paths_as_values(tmp_path: Path) -> None:
    """The grid's manifests, fold, seed and protocol are typed values, never override text: a path with a comma is
    one path."""
    from polypbench.sweep import load_grid

    spec = load_grid("paper").runs(tmp_path, ("prepared/a,b", "c"), ("epochs=1",))[0]
    cfg = spec.train_config()
    assert cfg.prepared == ["prepared/a,b", "c"]
    assert (cfg.fold, cfg.protocol, cfg.seed, cfg.epochs) == (spec.fold, "paper", spec.seed, 1)


def test_the_results_table_shows_the_clinical_terms_ours_only(tmp_path: Path) -> None:
    from polypbench.evaluate import score
    from polypbench.sweep.aggregate import CLINICAL, ModelResult, table_rows
    from tests.evaluate.helpers import WIDE, wide_polyp_level, write_manifest

    result = score(wide_polyp_level(1.5), write_manifest(tmp_path / "real-colon", "real-colon", WIDE),
                   n_bootstrap=50)
    res = ModelResult("m", 1, 1, pooled={k: s.to_dict() for k, s in result.metrics.items()})
    row = table_rows([res]).set_index("dataset").loc["pooled"]
    assert row["USMSTF interval agreement (ours)"].startswith("1.000 [")  # a value with its interval
    assert row["USMSTF interval later (ours)"].startswith("0.000 [")
    assert row["size within 20% (ours)"].startswith("0.438 [")
    assert len(CLINICAL) == 3 and not any(c.startswith("USMSTF") and "(paper)" in c for c in row.index)
