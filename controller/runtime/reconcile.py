"""What a reconciler receives and returns (controller-runtime's ``pkg/reconcile``).

A ``Request`` only names an object; the reconciler reads the current state from the cache (level-triggered: a
missed event costs latency, never correctness). It returns a ``Result``, or ``None`` for "done", or raises:
any exception is retried with the rate limiter's backoff, except ``TerminalError``, which is not retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from controller.runtime.resources import split_key


@dataclass(frozen=True, slots=True, order=True)
class Request:
    """The key of the object to reconcile; ``namespace`` is ``""`` for a cluster-scoped object."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def key(self) -> str:
        """The cache key (``ns/name`` or ``name``)."""
        return str(self)

    @classmethod
    def for_object(cls, obj: dict[str, Any]) -> Request:
        """The request naming ``obj``."""
        meta = obj.get("metadata") or {}
        return cls(namespace=str(meta.get("namespace") or ""), name=str(meta.get("name", "")))

    @classmethod
    def from_key(cls, key: str) -> Request:
        """The request for a cache key."""
        namespace, name = split_key(key)
        return cls(namespace=namespace, name=name)


@dataclass(frozen=True, slots=True)
class Result:
    """When to come back.

    ``requeue_after > 0``: reconcile again after that many seconds (the failure history is forgotten).
    ``requeue`` (deprecated in controller-runtime): come back after the rate limiter's delay.
    """

    requeue_after: float = 0.0
    requeue: bool = False


class TerminalError(Exception):
    """An error that retrying cannot fix (invalid spec, ...): counted and logged, never requeued.

    The object is reconciled again only when an event names it.
    """


Reconciler = Callable[[Request], Awaitable[Result | None]]
"""``async def reconcile(request: Request) -> Result | None``."""
