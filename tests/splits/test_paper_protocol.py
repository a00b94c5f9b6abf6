"""The paper's per-object protocol is the seed code's fold of every object, whatever the order or the alias."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.model_selection import StratifiedKFold

from polypbench import catalog
from polypbench.cli import main
from polypbench.errors import PolypbenchError
from polypbench.manifest import Manifest
from polypbench.prepare import prepare
from polypbench.splits import paper_folds, paper_split, row_folds, select
from polypbench.splits.paper import generate_paper_split, paper_split_file, read_paper_split

REPO = Path(__file__).resolve().parents[2]


def _seed_procedure(shuffle_parts: int) -> dict[tuple[str, str], int]:
    """The seed's recipe, written out independently: per-frame rows from CSV parts (REAL-Colon ids as strings,
    SUN case numbers as integers, parts in any order), one representative row per object by groupby-first, the
    D/S/L labels as strings, StratifiedKFold(6, shuffle=True, random_state=1)."""
    lesions = catalog.read_real_colon_lesions()
    cases = catalog.read_sun_cases()
    rng = np.random.default_rng(shuffle_parts)
    real = pd.DataFrame({"unique_id": np.repeat(lesions["unique_object_id"].astype(str).to_numpy(), 3),
                         "gt": np.repeat(lesions["size [mm]"].to_numpy(), 3)})
    sun = pd.DataFrame({"unique_id": np.repeat(cases["case_id"].astype(int).to_numpy(), 2),
                        "gt": np.repeat(cases["size_mm"].to_numpy(), 2)})
    parts = [real.iloc[:200], sun, real.iloc[200:]]
    frames = pd.concat([parts[i] for i in rng.permutation(len(parts))], ignore_index=True)
    frames["gt_group"] = ["Dim" if g <= 5.0 else "Small" if g < 10.0 else "Large" for g in frames["gt"]]
    representative = frames.groupby("unique_id").first()
    fold_of = {}
    cv = StratifiedKFold(n_splits=6, shuffle=True, random_state=1)
    for k, (_, test) in enumerate(cv.split(representative, representative["gt_group"])):
        for uid in representative.index[test]:
            key = ("sun", f"case{uid}") if isinstance(uid, (int, np.integer)) else ("real-colon", str(uid))
            fold_of[key] = k
    return fold_of


def test_the_committed_folds_are_the_seed_codes_for_all_232_objects() -> None:
    committed = read_paper_split()
    assert len(committed) == 232
    expected = _seed_procedure(shuffle_parts=0)
    assert expected == _seed_procedure(shuffle_parts=1)  # the order of the CSV parts never mattered
    got = {(d, p): int(f) for d, p, f in committed.itertuples(index=False)}
    assert got == expected
    assert committed.equals(generate_paper_split())
    assert paper_split_file().read_bytes() == (REPO / "split_manifests" / "paper" / "v1.csv").read_bytes()
    counts = pd.crosstab(committed["fold"], committed["dataset"]).sum(axis=1)
    assert counts.tolist() == [39, 39, 39, 39, 38, 38]


@pytest.mark.slow
def test_manifest_order_and_alias_do_not_change_a_fold(prepared, tmp_path: Path) -> None:
    folds = paper_folds([prepared["real-colon"].out, prepared["sun"].out])
    assert len(folds) == 232 and folds["polyp_id"].is_unique
    assert folds.equals(paper_folds([prepared["sun"].out, prepared["real-colon"].out]))
    committed = read_paper_split().assign(polyp_id=lambda d: d["dataset"] + "/" + d["polyp"])
    assert dict(zip(folds["polyp_id"], folds["paper_fold"], strict=True)) == dict(
        zip(committed["polyp_id"], committed["fold"], strict=True))
    prepare("misawa", prepared["sun"].raw, tmp_path / "misawa", workers=1)
    for alias in (tmp_path / "misawa", prepared["sun-seg"].out):
        other = paper_folds([alias, prepared["real-colon"].out])
        key = other["polyp_id"].str.split("/", n=1).str[1]
        assert dict(zip(key, other["paper_fold"], strict=True)) == dict(
            zip(folds["polyp_id"].str.split("/", n=1).str[1], folds["paper_fold"], strict=True))
    split = paper_split(folds["paper_fold"], test_fold=5)
    assert set(folds.loc[split == "test", "paper_fold"]) == {5}
    assert set(folds.loc[split == "validation", "paper_fold"]) == {0}
    out = tmp_path / "folds.csv"
    result = CliRunner().invoke(main, ["splits", "paper", str(prepared["sun"].out), str(prepared["real-colon"].out),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["paper_fold"].tolist() == folds["paper_fold"].tolist()


def test_select_reads_the_papers_folds_and_the_manifest_only_its_own_split(prepared) -> None:
    """``splits.select`` owns the protocols: ``paper`` test fold k, validation k + 1 mod 6, train the other four
    (frames and polyps alike); ``public`` is the manifest's own columns, which is all ``Manifest.select`` reads."""
    manifest = Manifest.open(prepared["real-colon"].out)
    polyps = manifest.polyps.assign(paper=row_folds(manifest, "polyps"))
    for k in (0, 5):
        expected = {"test": {k}, "validation": {(k + 1) % 6}, "train": set(range(6)) - {k, (k + 1) % 6}}
        for split, folds in expected.items():
            ids = set(polyps.loc[polyps["paper"].isin(folds), "polyp_id"])
            assert set(select(manifest, split, k, table="polyps", protocol="paper")["polyp_id"]) == ids
            frames = select(manifest, split, k, protocol="paper")
            assert set(frames["polyp_id"]) == ids and len(frames) == manifest.frames["polyp_id"].isin(ids).sum()
    assert select(manifest, "all", 3, protocol="paper").equals(manifest.select("all"))
    assert select(manifest, "validation", 2).equals(manifest.select("validation", 2))
    for bad in ({"fold": None, "protocol": "paper"}, {"fold": 6, "protocol": "paper"}, {"fold": 0, "protocol": "x"}):
        with pytest.raises(PolypbenchError):
            select(manifest, "test", **bad)
    with pytest.raises(TypeError):
        manifest.select("test", 0, protocol="paper")  # type: ignore[call-arg]
