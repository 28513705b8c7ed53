"""Prompt-prefix blocks and the approximate LRU index of which endpoint served them."""

from __future__ import annotations

import random
from collections import OrderedDict

from extproc.prefix import PrefixIndex, block_hashes, prompt_bytes


def _hashes(prompt: bytes, model: str = "m") -> list[int]:
    return block_hashes(model=model, prompt=prompt, block_chars=4, max_blocks=100)


def test_block_hashes_depend_on_everything_before_them() -> None:
    a = _hashes(b"aaaabbbbcccc")
    b = _hashes(b"aaaabbbbdddd")
    c = _hashes(b"xaaabbbbcccc")
    assert a[:2] == b[:2] and a[2] != b[2]
    assert all(x != y for x, y in zip(a, c, strict=True))  # a different first block changes every hash
    assert _hashes(b"aaaabbbbcccc", model="other") != a
    assert len(_hashes(b"aaaabbbbcc")) == 2  # a partial block is not hashed
    assert len(block_hashes(model="m", prompt=b"a" * 100, block_chars=4, max_blocks=3)) == 3


def test_block_hashes_depend_on_block_order() -> None:
    a, b = _hashes(b"aaaabbbb"), _hashes(b"bbbbaaaa")
    assert a[0] != b[0] and a[1] != b[1]
    assert _hashes(b"aaaaaaaa")[0] != _hashes(b"aaaaaaaa")[1]  # position is part of a block's hash


def test_prompt_bytes_for_chat_completion_and_embeddings() -> None:
    assert prompt_bytes({"messages": [{"role": "user", "content": "hi"}]}).startswith(b'[{"role"')
    assert prompt_bytes({"prompt": "hello"}) == b"hello"
    assert prompt_bytes({"input": "x"}) == b"x"
    assert prompt_bytes({}) == b""


def test_matches_count_leading_blocks_per_endpoint() -> None:
    idx = PrefixIndex(capacity=100)
    idx.record(_hashes(b"aaaabbbbcccc"), "e1")
    idx.record(_hashes(b"aaaabbbbdddd"), "e2")
    idx.record(_hashes(b"aaaa"), "e3")
    assert idx.matches(_hashes(b"aaaabbbbcccceeee")) == {"e1": 3, "e2": 2, "e3": 1}
    assert idx.matches(_hashes(b"zzzzbbbbcccc")) == {}
    assert idx.matches([]) == {}


def test_least_recently_used_hashes_go_first() -> None:
    idx = PrefixIndex(capacity=4)
    idx.record(_hashes(b"aaaabbbb"), "e1")
    idx.record(_hashes(b"ccccdddd"), "e2")
    idx.record(_hashes(b"aaaabbbb"), "e1")  # refreshed: now the most recent
    idx.record(_hashes(b"eeee"), "e3")
    assert len(idx) == 4
    assert idx.matches(_hashes(b"ccccdddd")) == {"e2": 1}  # the oldest chain lost its tail, not its head
    assert idx.matches(_hashes(b"aaaabbbb")) == {"e1": 2}
    idx.record(_hashes(b"ffff"), "e4")
    assert idx.matches(_hashes(b"ccccdddd")) == {}
    idx.forget({"e3"})
    assert idx.matches(_hashes(b"aaaabbbb")) == {}
    assert idx.matches(_hashes(b"eeee")) == {"e3": 1}


class _WalkIndex:
    """The index as first written: LRU by touch, and matches by walking every block (the reference)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.index: OrderedDict[int, set[str]] = OrderedDict()

    def record(self, hashes: list[int], address: str) -> None:
        for h in reversed(hashes):
            self.index.setdefault(h, set()).add(address)
            self.index.move_to_end(h)
        while len(self.index) > self.capacity:
            self.index.popitem(last=False)

    def forget(self, keep: set[str]) -> None:
        for h in list(self.index):
            self.index[h] &= keep
            if not self.index[h]:
                del self.index[h]

    def matches(self, hashes: list[int]) -> dict[str, int]:
        counts: dict[str, int] = {}
        alive = set(self.index.get(hashes[0], ())) if hashes else set()
        for a in alive:
            n = 0
            while n < len(hashes) and a in self.index.get(hashes[n], ()):
                n += 1
            counts[a] = n
        return counts


def test_matches_equal_a_walk_over_every_block_after_any_history() -> None:
    """The index bisects for the leading run of known blocks and trusts nested endpoint sets; whatever
    was recorded, evicted or forgotten before, its answers are the plain walk's."""
    rng = random.Random(7)
    words = [b"aaaa", b"bbbb", b"cccc", b"dddd"]
    endpoints = ["e1", "e2", "e3", "e4"]
    for capacity in (3, 8, 40):
        idx, ref = PrefixIndex(capacity=capacity), _WalkIndex(capacity)
        for _ in range(3000):
            prompt = b"".join(rng.choice(words[: rng.randint(1, 4)]) for _ in range(rng.randint(0, 9)))
            hashes = _hashes(prompt)
            assert idx.matches(hashes) == ref.matches(hashes)
            op = rng.random()
            if op < 0.6:
                e = rng.choice(endpoints)
                idx.record(hashes, e)
                ref.record(hashes, e)
            elif op < 0.62:
                keep = set(rng.sample(endpoints, 3))
                idx.forget(keep)
                ref.forget(keep)
            assert len(idx) == len(ref.index)
