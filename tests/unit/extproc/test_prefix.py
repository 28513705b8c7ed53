"""Prompt-prefix blocks and the approximate LRU index of which endpoint served them."""

from __future__ import annotations

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
