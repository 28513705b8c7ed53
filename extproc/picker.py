"""Endpoint pickers for InferencePools. The default draws uniformly from the pool's precomputed endpoints.

The interface carries what a metrics-aware picker needs (pool, model and its criticality, target model,
request
headers and size) and lets it refuse a request with a status (429 to shed load, 503 when nothing can serve).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from extproc.snapshot import Pool, PoolEndpoint, PoolModel


@dataclass(frozen=True, slots=True, kw_only=True)
class PickRequest:
    """What an endpoint picker may base its choice on."""

    pool: Pool
    model: PoolModel
    target_model: str
    headers: Mapping[str, str]
    body_size: int


class PickRefusedError(Exception):
    """The picker declines to serve the request; the client gets ``status`` with ``message``."""

    def __init__(self, *, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
