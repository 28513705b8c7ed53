"""An immutable weighted choice table: pick by weight in O(log n), all-zero weights meaning uniform."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class WeightedTable(Generic[T]):
    """Items with non-negative integer weights. ``pick`` draws one with probability weight / total.

    Items of weight 0 are never drawn, unless every weight is 0, in which case the draw is uniform.
    """

    __slots__ = ("_cumulative", "_items", "_total")

    def __init__(self, *, items: Sequence[T], weights: Sequence[int]) -> None:
        if len(items) != len(weights):
            raise ValueError("items and weights differ in length")
        if any(w < 0 for w in weights):
            raise ValueError("weights must not be negative")
        if sum(weights) == 0:
            weights = [1] * len(items)
        kept = [(i, w) for i, w in zip(items, weights, strict=True) if w > 0]
        self._items: tuple[T, ...] = tuple(i for i, _ in kept)
        self._cumulative: tuple[int, ...] = tuple(itertools.accumulate(w for _, w in kept))
        self._total = self._cumulative[-1] if self._cumulative else 0

    @property
    def items(self) -> tuple[T, ...]:
        """The drawable items (weight > 0), in input order."""
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    def pick(self, *, rng: random.Random) -> T:
        """One item drawn by weight. Raises IndexError when the table is empty."""
        if len(self._items) == 1:
            return self._items[0]
        if not self._items:
            raise IndexError("empty weighted table")
        r = rng.randrange(self._total)
        return self._items[bisect.bisect_right(self._cumulative, r)]
