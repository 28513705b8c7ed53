"""The KV cache as a pool of fixed-size blocks, with vLLM-style automatic prefix caching.

A request holds blocks for its prompt and generated tokens. Once a prompt's full blocks are computed they are
registered under a chained hash (``h_i = H(h_{i-1} || tokens of block i)``, seeded by the model or
adapter), so a later request whose prompt starts with the same tokens reuses them instead of prefilling
again. Released blocks that carry a hash stay cached (and reusable) until a new allocation needs them: the
least recently released one is evicted first. Blocks of one request are released tail first, so a shared
prefix outlives its suffixes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence


def block_hashes(tokens: Sequence[str], *, block_size: int, salt: str) -> list[bytes]:
    """The chained hashes of ``tokens``' full blocks; a partial last block has none. Stable across
    processes."""
    out: list[bytes] = []
    prev = hashlib.blake2b(salt.encode(), digest_size=16).digest()
    for start in range(0, len(tokens) - block_size + 1, block_size):
        h = hashlib.blake2b(prev, digest_size=16)
        h.update("\x1f".join(tokens[start : start + block_size]).encode())
        prev = h.digest()
        out.append(prev)
    return out


class BlockPool:
    """``num_blocks`` KV blocks: reference-counted while in use, then free (plain, or cached under a hash)."""

    __slots__ = (
        "_by_hash",
        "_free_cached",
        "_free_plain",
        "_hash_of",
        "_prefix_caching",
        "_ref",
        "num_blocks",
        "used",
    )

    def __init__(self, *, num_blocks: int, prefix_caching: bool) -> None:
        self.num_blocks = num_blocks
        self.used = 0
        self._prefix_caching = prefix_caching
        self._ref = [0] * num_blocks
        self._hash_of: list[bytes | None] = [None] * num_blocks
        self._by_hash: dict[bytes, int] = {}
        self._free_plain = list(range(num_blocks - 1, -1, -1))  # a stack: block 0 is handed out first
        self._free_cached: OrderedDict[int, None] = OrderedDict()  # least recently released first

    @property
    def free(self) -> int:
        """Blocks not referenced by any request (cached ones included: they can be evicted)."""
        return len(self._free_plain) + len(self._free_cached)

    @property
    def cached(self) -> int:
        """Blocks that hold a registered prefix block, in use or not."""
        return len(self._by_hash)

    def match_prefix(self, hashes: Sequence[bytes]) -> list[int]:
        """The blocks holding the longest cached run of ``hashes`` from the start."""
        out: list[int] = []
        if not self._prefix_caching:
            return out
        for h in hashes:
            block = self._by_hash.get(h)
            if block is None:
                break
            out.append(block)
        return out

    def can_allocate(self, *, matched: Sequence[int], new: int, keep_free: int = 0) -> bool:
        """Whether ``matched`` can be taken and ``new`` fresh blocks allocated, leaving ``keep_free`` free."""
        revived = sum(1 for b in matched if self._ref[b] == 0)
        return self.free - revived - new >= keep_free

    def allocate(self, *, matched: Sequence[int], new: int) -> list[int]:
        """Take the ``matched`` blocks and ``new`` fresh ones (evicting cached blocks as needed), in order."""
        if not self.can_allocate(matched=matched, new=new):
            raise RuntimeError(f"KV cache cannot hold {new} more blocks ({self.free} free)")
        out: list[int] = []
        for b in matched:
            if self._ref[b] == 0:
                del self._free_cached[b]
                self.used += 1
            self._ref[b] += 1
            out.append(b)
        for _ in range(new):
            if self._free_plain:
                b = self._free_plain.pop()
            else:
                b, _ = self._free_cached.popitem(last=False)
                stale = self._hash_of[b]
                assert stale is not None
                del self._by_hash[stale]
                self._hash_of[b] = None
            self._ref[b] = 1
            self.used += 1
            out.append(b)
        return out

    def register(self, *, block: int, block_hash: bytes) -> None:
        """Record that ``block`` now holds the prefix block ``block_hash`` (first holder wins)."""
        if self._prefix_caching and self._hash_of[block] is None and block_hash not in self._by_hash:
            self._hash_of[block] = block_hash
            self._by_hash[block_hash] = block

    def release(self, blocks: Sequence[int]) -> None:
        """Drop one reference to each block, tail first; unreferenced blocks become free (cached if
        hashed)."""
        for b in reversed(blocks):
            self._ref[b] -= 1
            if self._ref[b] < 0:
                raise RuntimeError(f"KV block {b} released twice")
            if self._ref[b] == 0:
                self.used -= 1
                if self._hash_of[b] is not None:
                    self._free_cached[b] = None
                else:
                    self._free_plain.append(b)
