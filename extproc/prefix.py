"""Prompt-prefix affinity: which endpoint recently served which leading blocks of a prompt.

A prompt (the JSON of chat ``messages``, or the completion ``prompt``) is cut into fixed-size blocks of
characters; block ``i``'s hash covers the target model and every character before the end of block ``i``
(a running CRC-32, one C call per block), so equal hashes mean an equal prefix, almost surely. The index maps
a block hash to the endpoints that served a prompt with that prefix, keeps at most ``capacity`` hashes and
drops the least recently used. It is approximate by design: a model server's own cache may have evicted a
block we still list, which costs one slower prefill, never a wrong answer.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
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


def block_hashes(*, model: str, prompt: bytes, block_chars: int, max_blocks: int) -> list[int]:
    """Chained hashes of the prompt's complete leading blocks (a partial last block is not cached by
    servers either, so it is left out)."""
    crc = zlib.crc32
    h = crc(model.encode())
    out: list[int] = []
    append = out.append
    end = min(len(prompt) // block_chars, max_blocks) * block_chars
    for i in range(0, end, block_chars):  # bytes slices: cheaper than memoryview slices for small blocks
        h = crc(prompt[i : i + block_chars], h)
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
        alive = set(first)
        counts: dict[str, int] = {}
        i = 1
        for i in range(1, len(hashes)):
            s = index.get(hashes[i])
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
        index = self._index
        for h in reversed(hashes):
            s = index.get(h)
            if s is None:
                index[h] = {address}
            else:
                s.add(address)
                index.move_to_end(h)
        while len(index) > self._capacity:
            index.popitem(last=False)

    def forget(self, keep: set[str]) -> None:
        """Drop endpoints not in ``keep`` (they left the pool)."""
        for h in list(self._index):
            s = self._index[h]
            s &= keep
            if not s:
                del self._index[h]
