"""Rank groups, rank stability and paired comparisons on constructed replicates (the board's interface)."""

from __future__ import annotations

import numpy as np
import pytest

from polypbench.leaderboard.ranking import compare_pair, p_not_better, paired_difference, rank_distribution, rank_groups

R = 1000


@pytest.fixture
def reps() -> np.ndarray:
    """Four entries on shared resamples: A and B nearly tied, C clearly worse, D undefined in half the replicates."""
    rng = np.random.default_rng(0)
    shared = rng.normal(size=R)  # the resample's difficulty, common to every entry: that is what pairing removes
    a = 0.80 + 0.05 * shared + 0.005 * rng.normal(size=R)
    b = 0.795 + 0.05 * shared + 0.005 * rng.normal(size=R)
    c = 0.70 + 0.05 * shared + 0.005 * rng.normal(size=R)
    d = c.copy()
    d[::2] = np.nan
    return np.stack([c, a, d, b])


def test_entries_not_significantly_worse_than_their_group_leader_share_its_rank(reps) -> None:
    assert rank_groups([0.70, 0.80, 0.70, 0.795], reps) == [3, 1, 3, 1]
    # lower is better: the order reverses; undefined points rank last on their own
    assert rank_groups([0.70, 0.80, None, 0.795], reps, higher_is_better=False) == [1, 2, 4, 2]
    assert rank_groups([], np.zeros((0, R))) == []


def test_pairing_is_what_makes_a_small_difference_significant(reps) -> None:
    rng = np.random.default_rng(2)
    shared = rng.normal(size=R)
    a = 0.80 + 0.05 * shared + 0.005 * rng.normal(size=R)
    b = 0.78 + 0.05 * shared + 0.005 * rng.normal(size=R)
    assert p_not_better(a, b) < 0.05
    assert p_not_better(reps[1], reps[3]) > 0.05  # the fixture's A and B: within the noise, hence one group
    unpaired = np.random.default_rng(1).permutation(b)  # the same values on other resamples
    assert p_not_better(a, unpaired) > 0.05
    assert len(paired_difference(reps[1], reps[2])) == R // 2  # only replicates where both are defined
    assert p_not_better(a, a) == 1.0  # never better than itself
    with pytest.raises(ValueError, match="paired vectors"):
        paired_difference(a, a[:10])


def test_rank_distribution_rows_are_distributions(reps) -> None:
    dist = rank_distribution(reps[[1, 3, 0]])
    assert dist.shape == (3, 3) and np.allclose(dist.sum(axis=1), 1)
    assert dist[2, 2] == 1.0  # C is always third
    assert dist[0, 0] > 0.5 and dist[0, 0] + dist[1, 0] == pytest.approx(1.0)
    tied = rank_distribution(np.ones((2, 5)))
    assert (tied[:, 0] == 1).all()  # ties share the lower rank


def test_compare_pair_gives_the_difference_its_interval_and_p_better(reps) -> None:
    c = compare_pair(0.80, reps[1], 0.70, reps[0])
    assert c.difference == pytest.approx(0.10) and c.n == R and c.p_a_better == 1.0
    assert c.ci95 is not None and 0.08 < c.ci95[0] < 0.1 < c.ci95[1] < 0.12
    mm = compare_pair(1.0, reps[1], 2.0, reps[0], higher_is_better=False)  # errors: lower is better
    assert mm.p_a_better == 0.0
    empty = compare_pair(None, np.array([]), 0.5, np.array([]))
    assert empty.difference is None and empty.ci95 is None and empty.p_a_better is None and empty.n == 0
