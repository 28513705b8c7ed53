"""An Event recorder: core/v1 Events about objects, so that ``kubectl describe`` lists them.

``recorder.event(obj, type=..., reason=..., message=...)`` never blocks and never fails the caller: events are
queued (at most ``MAX_PENDING``; more are dropped, as client-go's broadcaster does) and posted by a background
task. Like client-go's ``EventCorrelator``, a repeat of the same (object, type, reason, message) within the
process bumps ``count`` and ``lastTimestamp`` of the Event already posted instead of creating another one.
Like its ``EventSourceObjectSpamFilter``, each object gets a token bucket (burst 25, one token per 5 minutes):
a reconciler stuck in a loop cannot flood etcd with Events about one object; the excess is dropped.
A failed post is logged and forgotten: an Event must never fail a reconcile, nor cause Events of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from controller.runtime.cache import Object
from controller.runtime.client import KubeClient, is_not_found
from controller.runtime.clock import Clock, RealClock
from controller.runtime.conditions import format_time
from controller.runtime.resources import EVENTS

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"
MAX_PENDING = 1000
MAX_MESSAGE = 1024
CORRELATION_CACHE = 4096
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0


@dataclass(slots=True)
class _Posted:
    namespace: str
    name: str
    count: int


def involved_object(obj: Object) -> dict[str, Any]:
    """The ``involvedObject`` reference to ``obj`` (with uid, which ``kubectl describe`` matches on)."""
    meta = obj.get("metadata") or {}
    ref = {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """Posts Events for one component (the ``From`` column of ``kubectl describe``)."""

    def __init__(
        self, client: KubeClient, *, component: str, host: str | None = None, clock: Clock | None = None
    ) -> None:
        self._client = client
        self._clock = clock or RealClock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # object -> (tokens, at)
        self._component = component
        self._host = host or socket.gethostname()
        self._pending: asyncio.Queue[tuple[Object, str, str, str]] = asyncio.Queue(maxsize=MAX_PENDING)
        self._posted: OrderedDict[tuple[str, ...], _Posted] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        """Events dropped: the queue was full, or the object's spam bucket was empty."""

    def event(self, obj: Object, *, type: str, reason: str, message: str) -> None:
        """Queue an Event about ``obj``. ``type`` is ``Normal`` or ``Warning``; ``reason`` is CamelCase."""
        if type not in (NORMAL, WARNING):
            raise ValueError(f"event type must be Normal or Warning, not {type!r}")
        if not self._take_token(obj):
            self.dropped += 1
            return
        try:
            self._pending.put_nowait((obj, type, reason, message))
        except asyncio.QueueFull:
            self.dropped += 1
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._drain(), name=f"events-{self._component}"
            )

    def _take_token(self, obj: Object) -> bool:
        ref = involved_object(obj)
        key = ref.get("uid") or f"{ref.get('kind')}/{ref.get('namespace')}/{ref.get('name')}"
        now = self._clock.now()
        tokens, at = self._buckets.pop(key, (float(SPAM_BURST), now))
        tokens = min(float(SPAM_BURST), tokens + (now - at) / SPAM_REFILL_SECONDS)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > CORRELATION_CACHE:
            self._buckets.popitem(last=False)
        return allowed

    def normal(self, obj: Object, reason: str, message: str) -> None:
        """Queue a Normal Event."""
        self.event(obj, type=NORMAL, reason=reason, message=message)

    def warning(self, obj: Object, reason: str, message: str) -> None:
        """Queue a Warning Event."""
        self.event(obj, type=WARNING, reason=reason, message=message)

    async def flush(self) -> None:
        """Wait until every queued Event has been posted (or has failed)."""
        await self._pending.join()

    async def close(self) -> None:
        """Stop the background task; queued Events that were not posted yet are dropped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _drain(self) -> None:
        while True:
            obj, etype, reason, message = await self._pending.get()
            try:
                await self.publish(obj, type=etype, reason=reason, message=message)
            finally:
                self._pending.task_done()

    async def publish(self, obj: Object, *, type: str, reason: str, message: str) -> None:
        """Post (or bump) the Event now. Never raises, except ``CancelledError``."""
        message = message[:MAX_MESSAGE]
        ref = involved_object(obj)
        namespace = ref.get("namespace") or "default"
        key = (ref.get("uid") or f"{ref['kind']}/{namespace}/{ref['name']}", type, reason, message)
        now = format_time()
        try:
            posted = self._posted.get(key)
            if posted is not None:
                try:
                    await self._client.patch(
                        EVENTS,
                        name=posted.name,
                        namespace=posted.namespace,
                        body={"count": posted.count + 1, "lastTimestamp": now},
                    )
                    posted.count += 1
                    self._posted.move_to_end(key)
                    return
                except Exception as e:
                    if not is_not_found(e):
                        raise
                    # The Event expired (1 h TTL by default): post a new one.
            name = f"{ref['name']}.{time.time_ns():x}"
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": ref,
                "type": type,
                "reason": reason,
                "message": message,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": self._component, "host": self._host},
                "reportingComponent": self._component,
                "reportingInstance": self._host,
            }
            await self._client.create(EVENTS, body, namespace=namespace)
            self._posted[key] = _Posted(namespace=namespace, name=name, count=1)
            while len(self._posted) > CORRELATION_CACHE:
                self._posted.popitem(last=False)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning(
                "could not post event %s %s on %s/%s: %s", type, reason, namespace, ref.get("name"), e
            )
