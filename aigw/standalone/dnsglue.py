"""The controller's DNS resolver, for ``aigw run`` (one private event loop, one cache)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from controller.dns import DnsResolver
from controller.translate import DnsAnswer


class SyncResolver:
    """Calls ``DnsResolver.resolve_all`` on a private event loop; the resolver's cache (TTLs, last known
    answers kept on failure) lives as long as this object."""

    def __init__(self, *, nameserver: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._resolver = DnsResolver(nameserver=nameserver)

    def __call__(self, names: Sequence[str]) -> Mapping[str, DnsAnswer]:
        return self._loop.run_until_complete(self._resolver.resolve_all(names))

    def close(self) -> None:
        self._loop.close()
