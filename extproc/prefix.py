"""Prompt-prefix affinity: which endpoint recently served which leading blocks of a prompt.

A prompt (the JSON of chat ``messages``, or the completion ``prompt``) is cut into fixed-size blocks of
characters; block ``i``'s hash covers the target model and every character before the end of block ``i``
(each block hashed alone by Python's keyed hash of bytes, then chained: ``h[i] = hash((h[i-1], block i))``),
so equal hashes mean an equal prefix, almost surely (64-bit; the key is random per process, and the index
lives in one process). The index maps a block hash to the endpoints that served a prompt with that prefix,
keeps at most ``capacity`` hashes and drops the least recently used. It is approximate by design: a model
server's own cache may have evicted a block we still list, which costs one slower prefill, never a wrong
answer.

Invariant (what makes lookups cheap): a chain's earlier blocks are always at least as recent as its later
ones (every prompt holding block ``k`` holds blocks ``0..k-1``, and ``record`` touches them after it), so
eviction takes a chain's tail first and the hashes present form a leading run; and an endpoint listed for
block ``k`` is listed for every block before it (``record`` adds it to all of them, ``forget`` removes it
from all of them): the endpoint sets along a chain are nested.
"""

from __future__ import annotations

import functools
import struct
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

import orjson


def prompt_bytes(document: Mapping[str, Any]) -> bytes:
    """The part of an OpenAI request body that a model server's prefix cache sees first."""
    messages = document.get("messages")
    if messages is not None:
        return orjson.dumps(messages)
    prompt = document.get("prompt")
    if isinstance(prompt, str):
        return prompt.encode()
    if prompt is not None:
        return orjson.dumps(prompt)
    inp = document.get("input")
    if isinstance(inp, str):
        return inp.encode()
    return orjson.dumps(inp) if inp is not None else b""


@functools.lru_cache(maxsize=256)
def _splitter(block_chars: int, blocks: int) -> struct.Struct:
    """Cuts the first ``blocks`` blocks of ``block_chars`` bytes into separate bytes objects in one call."""
    return struct.Struct(f"{block_chars}s" * blocks)


def block_hashes(*, model: str, prompt: bytes, block_chars: int, max_blocks: int) -> list[int]:
    """Chained hashes of the prompt's complete leading blocks (a partial last block is not cached by
    servers either, so it is left out)."""
    blocks = min(len(prompt) // block_chars, max_blocks)
    if not blocks:
        return []
    h = hash(model)
    out: list[int] = []
    append = out.append
    # one C call cuts the blocks, map hashes each; the loop only chains (a CRC per block cost 1.6x this)
    for b in map(hash, _splitter(block_chars, blocks).unpack_from(prompt)):
        h = hash((h, b))
        append(h)
    return out


class PrefixIndex:
    """Block hash -> endpoints that served it, least recently used dropped beyond ``capacity`` hashes."""

    __slots__ = ("_capacity", "_index")

    def __init__(self, *, capacity: int) -> None:
        self._capacity = capacity
        self._index: OrderedDict[int, set[str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._index)

    def matches(self, hashes: list[int]) -> dict[str, int]:
        """For each endpoint that served this prompt's first block: how many leading blocks in a row it
        served. Endpoints that served none are absent."""
        index = self._index
        if not hashes:
            return {}
        first = index.get(hashes[0])
        if not first:
            return {}
        # the hashes present form a leading run (module invariant): bisect for its length
        lo, hi = 1, len(hashes)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if hashes[mid - 1] in index:
                lo = mid
            else:
                hi = mid - 1
        if first <= index[hashes[lo - 1]]:  # nested sets: every endpoint of the first block served all
            return dict.fromkeys(first, lo)
        # otherwise (or were the invariant ever broken) the plain walk: stop where an endpoint drops out
        alive = set(first)
        counts: dict[str, int] = {}
        get = index.get
        i = 1
        for i in range(1, len(hashes)):
            s = get(hashes[i])
            if s is None:
                break
            if not alive <= s:
                for a in alive - s:
                    counts[a] = i
                alive &= s
                if not alive:
                    break
        else:
            i = len(hashes)
        for a in alive:
            counts[a] = i
        return counts

    def record(self, hashes: list[int], address: str) -> None:
        """``address`` served a prompt with these blocks: remember them as its most recent. The first block
        is touched last, so it is evicted last: a chain loses its tail before its head, and a shorter match
        survives where a longer one was dropped."""
        if not hashes:
            return
        index = self._index
        get, move = index.get, index.move_to_end
        last = get(hashes[-1])
        if last is not None and address in last:
            # it served this whole chain (nested sets: it is listed for every block), so only the recency
            # changes: one C-level pass. A hole (never, save a hash collision) falls through to the walk.
            try:
                deque(map(move, reversed(hashes)), maxlen=0)
            except KeyError:
                pass
            else:
                return
        for h in reversed(hashes):
            s = get(h)
            if s is None:
                index[h] = {address}
            else:
                s.add(address)
                move(h)
        while len(index) > self._capacity:
            index.popitem(last=False)

    def forget(self, keep: set[str]) -> None:
        """Drop endpoints not in ``keep`` (they left the pool)."""
        for h in list(self._index):
            s = self._index[h]
            s &= keep
            if not s:
                del self._index[h]
