"""Rank groups, rank stability and paired comparisons from replicate vectors on the same patient resamples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polypbench.evaluate import Note, NoteKind, Stat, compare, lookup, score
from polypbench.evaluate.policy import ClassSupport, judge
from polypbench.evaluate.ranking import (
    Replicates,
    compare_pair,
    compare_replicates,
    holm,
    rank_distribution,
    rank_groups,
    replicate_ranks,
    significance_map,
    stack,
)

from .helpers import wide_polyp_level

KEY = "polyp/triclass/pooled/macro_f1"


def entries() -> tuple[np.ndarray, np.ndarray]:
    """Four entries on 1000 shared resamples: A clearly best, B and C indistinguishable, D clearly worst."""
    rng = np.random.default_rng(0)
    common = rng.normal(0.0, 0.05, 1000)  # the resample's difficulty, shared by every entry (paired)
    noise = rng.normal(0.0, 0.01, (4, 1000))
    points = np.array([0.90, 0.80, 0.799, 0.60])
    return points, points[:, None] + common[None, :] + noise


def as_replicates(points: np.ndarray, reps: np.ndarray, n_patients: int = 30) -> list[Replicates]:
    """The entries as stored on the board: each with 30 leave-one-patient-out values near its value."""
    jack = points[:, None] + np.random.default_rng(2).normal(0, 0.001, (len(points), n_patients))
    return [Replicates(KEY, float(p), r, j, np.zeros(n_patients, dtype=np.int64), "same")
            for p, r, j in zip(points, reps, jack, strict=True)]


def test_entries_not_significantly_worse_than_another_share_its_rank() -> None:
    points, reps = entries()
    groups = rank_groups(as_replicates(points, reps))
    assert groups.order == [0, 1, 2, 3]
    assert groups.rank == [1, 2, 2, 4] and groups.group == [0, 1, 1, 2]  # competition ranking: 1, 2, 2, 4
    p_third = groups.p_vs_above[2]
    assert groups.p_vs_above[0] is None and groups.p_vs_above[1] == pytest.approx(0.0, abs=1e-6)
    assert p_third is not None and p_third > 0.05
    # lower is better (an error): the order and the groups turn around
    flipped = rank_groups(as_replicates(points, reps), higher_is_better=False)
    assert flipped.order == [3, 2, 1, 0] and flipped.rank[3] == 1 and flipped.rank[2] == flipped.rank[1] == 2


def test_an_undefined_entry_is_unranked_and_last() -> None:
    points, reps = entries()
    points[1] = np.nan
    groups = rank_groups(as_replicates(points, reps))
    assert groups.order[-1] == 1 and groups.rank[1] is None and groups.group[1] is None
    assert groups.rank[2] == 2  # B left out of the family: C still behind A only


def test_identical_entries_always_share_a_rank() -> None:
    base = np.random.default_rng(1).normal(0.7, 0.05, 500)
    better, entry = as_replicates(np.array([0.9, 0.7]), np.stack([base + 0.2, base]))
    assert rank_groups([entry, entry]).rank == [1, 1]
    diff = compare_replicates(entry, entry)
    assert diff.value == 0.0 and diff.p_value == 1.0 and diff.ci95 == (0.0, 0.0)
    # two identical entries below a clearly better one: separated from it together, never from each other
    assert rank_groups([better, entry, entry]).rank == [1, 2, 2]


def test_holm_adjusts_the_family_of_all_pairs() -> None:
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03, np.nan])), [0.04, 0.09, 0.09, 1.0])
    # one pair at p = 0.03: separated alone, not among six pairs whose other tests find nothing
    rng = np.random.default_rng(3)
    shared = rng.normal(0, 0.05, 1000)
    pts = np.array([0.80, 0.78])
    two = as_replicates(pts, pts[:, None] + shared + rng.normal(0, 0.006, (2, 1000)))
    p = compare_replicates(*two).p_value
    assert p is not None and 0.05 / 6 < p < 0.05, p
    assert rank_groups(two).rank == [1, 2]
    null = as_replicates(np.array([0.79, 0.79]), 0.79 + shared + rng.normal(0, 0.02, (2, 1000)))
    four = [two[0], two[1], *null]
    assert rank_groups(four).rank == [1, 1, 1, 1]


def test_pairing_is_what_makes_a_small_difference_significant() -> None:
    rng = np.random.default_rng(2)
    shared = rng.normal(size=1000)  # the resample's difficulty, common to both entries: what pairing removes
    a = 0.80 + 0.05 * shared + 0.005 * rng.normal(size=1000)
    b = 0.78 + 0.05 * shared + 0.005 * rng.normal(size=1000)
    paired = as_replicates(np.array([0.80, 0.78]), np.stack([a, b]))
    assert rank_groups(paired).rank == [1, 2]
    unpaired = as_replicates(np.array([0.80, 0.78]), np.stack([a, np.random.default_rng(1).permutation(b)]))
    assert rank_groups(unpaired).rank == [1, 1]  # the same values on other resamples


def test_rank_distribution() -> None:
    points, reps = entries()
    stability = rank_distribution(points, reps)
    np.testing.assert_allclose(stability.probability.sum(axis=1), 1.0)
    assert stability.probability[0, 0] == 1.0 and stability.probability[3, 3] == 1.0
    assert 0.2 < stability.probability[1, 1] < 0.8 and stability.probability[1, 1] + stability.probability[1, 2] == 1
    assert list(stability.median[[0, 3]]) == [1.0, 4.0] and list(stability.ci95[1]) == [2, 3]
    assert 0.8 < stability.kendall_tau < 1.0
    separated = rank_distribution(np.array([2.0, 1.0]), np.array([[2.0, 2.1], [1.0, 0.9]]))
    assert separated.kendall_tau == 1.0
    np.testing.assert_array_equal(replicate_ranks(np.array([[0.5], [np.nan], [0.5], [0.9]]))[:, 0], [2, 4, 2, 1])


def test_pairwise_comparison_and_significance_map() -> None:
    points, reps = entries()
    stored = as_replicates(points, reps)
    strata = np.zeros(30, dtype=int)
    jack = np.stack([e.jackknife for e in stored])
    ab = compare_pair(points[0], points[1], reps[0], reps[1], jack[0], jack[1], strata)
    assert ab.value == pytest.approx(0.1) and ab.p_greater == 1.0 and ab.p_value is not None and ab.p_value < 1e-6
    assert ab.ci95 is not None and 0 < ab.ci95[0] < 0.1 < ab.ci95[1]
    few = compare_pair(points[0], points[1], reps[0], reps[1], jack[0, :3], jack[1, :3], strata[:3])
    assert few.ci95 is None and few.ci_reason == Note(NoteKind.PATIENTS, patients=3) and few.p_value is None
    sig = significance_map(stored)
    assert sig[0, 1] and sig[0, 3] and not sig[1, 2] and not sig[2, 1] and not sig.diagonal().any()


def test_a_paired_result_resting_on_a_one_patient_class_is_withheld_and_never_separates() -> None:
    """The scorer's class-support rule reaches paired results: when either entry's own interval is withheld (all its
    large polyps from one patient), so is the difference, and rank groups cannot separate on it."""
    points, reps = entries()
    stored = as_replicates(points, reps)
    one_patient = judge(30, (ClassSupport("large", 1, 1),), 0, 1000)
    assert one_patient.ci_reason == Note(NoteKind.CLASS_PATIENTS, "large", polyps=1, patients=1)
    withheld = Stat(0.90, None, ci_reason=one_patient.ci_reason, n_polyps=40, n_patients=30)
    given = Stat(0.80, (0.7, 0.9), flags=(Note(NoteKind.CLASS_POLYPS, "small", polyps=3),), n_polyps=40,
                 n_patients=30)
    diff = compare_replicates(stored[0], stored[1], sides=(withheld, given))
    assert diff.value == pytest.approx(0.1) and diff.ci95 is None and diff.p_value is None
    assert diff.ci_reason == one_patient.ci_reason
    flagged = compare_replicates(stored[0], stored[1], sides=(given, given))
    assert flagged.ci95 is not None and Note(NoteKind.CLASS_POLYPS, "small", polyps=3) in flagged.flags
    assert rank_groups(stored[:2]).rank == [1, 2]
    assert rank_groups(stored[:2], stats=[withheld, given]).rank == [1, 1]


def test_mean_size_error_differences_need_15_patients() -> None:
    rng = np.random.default_rng(4)
    reps = 1.0 + rng.normal(0, 0.1, (2, 500))
    strata = np.zeros(10, dtype=int)
    jack = 1.0 + rng.normal(0, 0.01, (2, 10))
    mae = compare_pair(1.0, 2.0, reps[0], reps[1] + 1, jack[0], jack[1] + 1, strata, metric="mae_mm")
    assert mae.ci95 is None and mae.ci_reason == Note(NoteKind.PATIENTS, patients=10)
    f1 = compare_pair(1.0, 2.0, reps[0], reps[1] + 1, jack[0], jack[1] + 1, strata, metric="macro_f1")
    assert f1.ci95 is not None and Note(NoteKind.PATIENTS, patients=10) in f1.flags


def test_evaluate_compare_slash_compare_and_rank_groups_share_one_statistic(wide_manifest: Path) -> None:
    """``evaluate --compare`` (scoring.compare), the leaderboard's /compare (compare_replicates on stored
    replicates, with each entry's own Stat) and its rank groups give the same difference and the same verdict."""
    a, b = wide_polyp_level(0.5), wide_polyp_level(3.0)
    keys = [KEY, "polyp/triclass/pooled/accuracy", "polyp/size/pooled/median_ae_mm"]
    kept = [score(x, wide_manifest, n_bootstrap=200, seed=3, keep_replicates=keys) for x in (a, b)]
    cli = compare(a, b, wide_manifest, n_bootstrap=200, seed=3).comparison
    assert cli is not None
    separated = []
    for key in keys:
        sides = [r.stat(key) for r in kept]
        board = compare_replicates(kept[0].replicates(key), kept[1].replicates(key), sides=sides)
        assert lookup(cli, key) == board, key
        groups = rank_groups([r.replicates(key) for r in kept], stats=sides)
        apart = groups.rank[0] != groups.rank[1]
        assert apart == (board.p_value is not None and board.p_value < 0.05), key
        separated.append(apart)
    assert True in separated  # the offsets differ by 2.5 mm: some metric tells them apart


def test_replicates_from_a_score_rank_and_compare(wide_manifest: Path) -> None:
    key, median = "polyp/size/pooled/mae_mm", "polyp/size/pooled/median_ae_mm"
    kept = [score(wide_polyp_level(off), wide_manifest, n_bootstrap=300, seed=7, keep_replicates=[key, median])
            for off in (0.5, 1.0, 4.0)]
    reps = [r.replicates(key) for r in kept]
    assert reps[0].value == pytest.approx(0.5) and len(reps[0].replicates) == 300 and len(reps[0].jackknife) == 8
    assert reps[0].resamples == kept[1].bootstrap["resamples"]  # the fingerprint is also in the JSON
    back = Replicates.from_dict(json.loads(json.dumps(reps[2].to_dict())))
    assert back.key == key and back.value == reps[2].value and np.array_equal(back.replicates, reps[2].replicates)
    stack(reps)
    medians = [r.replicates(median) for r in kept]
    assert rank_groups(medians, higher_is_better=False).rank == [1, 2, 3]  # every error constant: separated
    # MAE of 8 patients: no honest interval (fewer than 15 patients), so no paired one and no separation
    assert rank_groups(reps, higher_is_better=False).rank == [1, 1, 1]
    diff = compare_replicates(reps[0], reps[2])
    assert diff.value == pytest.approx(-3.5) and diff.p_greater == 0.0
    assert diff.ci95 is None and diff.ci_reason == Note(NoteKind.PATIENTS, patients=8)
    with pytest.raises(KeyError, match="replicates not kept"):
        kept[0].replicates("polyp/size/pooled/bias_mm")
    other_seed = score(wide_polyp_level(), wide_manifest, n_bootstrap=300, seed=8, keep_replicates=[key])
    with pytest.raises(ValueError, match="same resamples"):
        stack([reps[0], other_seed.replicates(key)])
    every = score(wide_polyp_level(), wide_manifest, n_bootstrap=20, keep_replicates=True)
    assert set(every.kept_replicates) == set(every.metrics)
