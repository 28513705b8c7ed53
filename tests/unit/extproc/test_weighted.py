from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.weighted import WeightedTable


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=20), st.integers())
def test_only_positive_weights_are_drawn_unless_all_are_zero(weights: list[int], seed: int) -> None:
    table = WeightedTable(items=list(range(len(weights))), weights=weights)
    rng = random.Random(seed)
    for _ in range(20):
        i = table.pick(rng=rng)
        assert weights[i] > 0 or sum(weights) == 0


def test_draws_follow_the_weights() -> None:
    table = WeightedTable(items=["a", "b", "c"], weights=[1, 0, 3])
    rng = random.Random(7)
    n = 20000
    got = Counter(table.pick(rng=rng) for _ in range(n))
    assert got["b"] == 0
    assert abs(got["c"] / n - 0.75) < 0.02


def test_all_zero_weights_draw_uniformly() -> None:
    table = WeightedTable(items=["a", "b"], weights=[0, 0])
    rng = random.Random(1)
    got = Counter(table.pick(rng=rng) for _ in range(4000))
    assert abs(got["a"] / 4000 - 0.5) < 0.05


def test_rejects_negative_weights_and_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        WeightedTable(items=["a"], weights=[-1])
    with pytest.raises(ValueError):
        WeightedTable(items=["a", "b"], weights=[1])


def test_empty_table_raises_index_error() -> None:
    with pytest.raises(IndexError):
        WeightedTable[str](items=[], weights=[]).pick(rng=random.Random(0))
