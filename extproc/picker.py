"""Endpoint pickers for InferencePools: the interface, and the uniform draw over the pool's endpoints.

The interface carries what a metrics-aware picker needs (pool, model and its criticality, target model,
request headers, size and parsed body) and lets it refuse a request with a status (429 with a
``retry-after`` to shed load, 503 when nothing can serve). The load-aware picker is ``extproc.loadaware``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from extproc.snapshot import Pool, PoolEndpoint, PoolModel


@dataclass(frozen=True, slots=True, kw_only=True)
class PickRequest:
    """What an endpoint picker may base its choice on."""

    pool: Pool
    model: PoolModel
    target_model: str
    headers: Mapping[str, str]
    body_size: int
    document: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The parsed JSON body (read-only use)."""


class PickRefusedError(Exception):
    """The picker declines to serve the request; the client gets ``status`` with ``message`` (and a
    ``retry-after`` header when ``retry_after`` is set)."""

    def __init__(self, *, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class EndpointPicker(Protocol):
    """Chooses one endpoint of ``request.pool`` for a request, or raises PickRefusedError. Must not block."""

    def pick(self, request: PickRequest) -> PoolEndpoint: ...


class RandomPicker:
    """Uniform random choice over the pool's endpoints; refuses with 503 when the pool has none."""

    __slots__ = ("_rng",)

    def __init__(self, *, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, request: PickRequest) -> PoolEndpoint:
        endpoints = request.pool.endpoints
        if not endpoints:
            raise PickRefusedError(status=503, message=f"InferencePool {request.pool.name} has no endpoints")
        return endpoints[self._rng.randrange(len(endpoints))]
