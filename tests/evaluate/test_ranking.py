"""Rank groups, rank stability and paired comparisons from replicate vectors on the same patient resamples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polypbench.evaluate import Note, NoteKind, score
from polypbench.evaluate.ranking import (
    Replicates,
    compare_pair,
    compare_replicates,
    p_not_better,
    rank_distribution,
    rank_groups,
    replicate_ranks,
    significance_map,
    stack,
)

from .helpers import wide_polyp_level


def entries() -> tuple[np.ndarray, np.ndarray]:
    """Four entries on 1000 shared resamples: A clearly best, B and C indistinguishable, D clearly worst."""
    rng = np.random.default_rng(0)
    common = rng.normal(0.0, 0.05, 1000)  # the resample's difficulty, shared by every entry (paired)
    noise = rng.normal(0.0, 0.01, (4, 1000))
    points = np.array([0.90, 0.80, 0.799, 0.60])
    return points, points[:, None] + common[None, :] + noise


def test_entries_not_significantly_worse_than_the_one_above_share_its_rank() -> None:
    points, reps = entries()
    groups = rank_groups(points, reps)
    assert groups.order == [0, 1, 2, 3]
    assert groups.rank == [1, 2, 2, 4] and groups.group == [0, 1, 1, 2]  # competition ranking: 1, 2, 2, 4
    p_third = groups.p_vs_above[2]
    assert groups.p_vs_above[0] is None and groups.p_vs_above[1] == 0.0 and p_third is not None and p_third > 0.05
    # lower is better (an error): the order and the groups turn around
    flipped = rank_groups(points, reps, higher_is_better=False)
    assert flipped.order == [3, 2, 1, 0] and flipped.rank[3] == 1 and flipped.rank[2] == flipped.rank[1] == 2


def test_an_undefined_entry_is_unranked_and_last() -> None:
    points, reps = entries()
    points[1] = np.nan
    groups = rank_groups(points, reps)
    assert groups.order[-1] == 1 and groups.rank[1] is None and groups.group[1] is None


def test_identical_entries_tie_and_a_shift_is_significant() -> None:
    base = np.random.default_rng(1).normal(0.7, 0.05, 500)
    assert p_not_better(base, base) == 1.0  # ties count against "better"
    assert p_not_better(base + 0.001, base) == 0.0
    assert p_not_better(np.full(3, np.nan), base[:3]) == 1.0
    assert rank_groups(np.array([0.7, 0.7]), np.stack([base, base])).rank == [1, 1]


def test_pairing_is_what_makes_a_small_difference_significant() -> None:
    rng = np.random.default_rng(2)
    shared = rng.normal(size=1000)  # the resample's difficulty, common to both entries: what pairing removes
    a = 0.80 + 0.05 * shared + 0.005 * rng.normal(size=1000)
    b = 0.78 + 0.05 * shared + 0.005 * rng.normal(size=1000)
    assert p_not_better(a, b) < 0.05
    assert p_not_better(a, np.random.default_rng(1).permutation(b)) > 0.05  # the same values on other resamples
    half = b.copy()
    half[::2] = np.nan  # only the replicates where both are defined count
    assert p_not_better(a, half) == p_not_better(a[1::2], b[1::2])


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
    strata = np.zeros(30, dtype=int)
    jack = np.tile(points[:, None], (1, 30)) + np.random.default_rng(2).normal(0, 0.001, (4, 30))
    ab = compare_pair(points[0], points[1], reps[0], reps[1], jack[0], jack[1], strata)
    assert ab.value == pytest.approx(0.1) and ab.p_greater == 1.0
    assert ab.ci95 is not None and 0 < ab.ci95[0] < 0.1 < ab.ci95[1]
    same = compare_pair(0.5, 0.5, reps[1], reps[1], jack[1], jack[1], strata)
    assert same.value == 0.0 and same.ci95 == (0.0, 0.0) and same.p_greater == 0.5
    few = compare_pair(points[0], points[1], reps[0], reps[1], jack[0, :3], jack[1, :3], strata[:3])
    assert few.ci95 is None and few.ci_reason == Note(NoteKind.PATIENTS, patients=3)
    sig = significance_map(points, reps)
    assert sig[0, 1] and sig[0, 3] and not sig[1, 2] and not sig[2, 1] and not sig.diagonal().any()


def test_replicates_from_a_score_rank_and_compare(wide_manifest: Path) -> None:
    key = "polyp/size/pooled/mae_mm"
    kept = [score(wide_polyp_level(off), wide_manifest, n_bootstrap=300, seed=7, keep_replicates=[key])
            for off in (0.5, 1.0, 4.0)]
    reps = [r.replicates(key) for r in kept]
    assert reps[0].value == pytest.approx(0.5) and len(reps[0].replicates) == 300 and len(reps[0].jackknife) == 8
    assert reps[0].resamples == kept[1].bootstrap["resamples"]  # the fingerprint is also in the JSON
    back = Replicates.from_dict(json.loads(json.dumps(reps[2].to_dict())))
    assert back.key == key and back.value == reps[2].value and np.array_equal(back.replicates, reps[2].replicates)
    points, matrix = stack(reps)
    assert rank_groups(points, matrix, higher_is_better=False).rank == [1, 2, 3]  # every error constant: separated
    diff = compare_replicates(reps[0], reps[2])
    assert diff.value == pytest.approx(-3.5) and diff.p_greater == 0.0
    with pytest.raises(KeyError, match="replicates not kept"):
        kept[0].replicates("polyp/size/pooled/bias_mm")
    other_seed = score(wide_polyp_level(), wide_manifest, n_bootstrap=300, seed=8, keep_replicates=[key])
    with pytest.raises(ValueError, match="same resamples"):
        stack([reps[0], other_seed.replicates(key)])
    every = score(wide_polyp_level(), wide_manifest, n_bootstrap=20, keep_replicates=True)
    assert set(every.kept_replicates) == set(every.metrics)
