"""An informer: list, then watch, keeping a ``Store`` current and telling handlers what changed.

The loop follows client-go's reflector (``tools/cache/reflector.go``):

- LIST (``resourceVersion=0`` the first time) and swap the store's content in one step; WATCH from the list's
  resourceVersion with bookmarks and a server timeout drawn from [300, 600] s. A normal close re-watches from
  the last resourceVersion seen, without a relist.
- **410 Gone** (an ERROR event or an HTTP 410): relist from the last resourceVersion; if that is 410 too,
  relist from ``""`` (a quorum read). Objects that vanished meanwhile are delivered as deletes of a
  ``DeletedFinalStateUnknown`` tombstone carrying the last known object.
- Connection errors, 429 and 5xx: back off (800 ms doubling to 30 s, jittered) and watch again from the same
  resourceVersion. A watch that ends within 1 s having delivered nothing counts as an error too. Any other
  error (other 4xx, an undecodable line) backs off and relists: the informer task never dies of an error.
- **Inactivity timeout** (70 s): the API server sends a bookmark about every minute, so a silent watch is
  dead; it is replaced (kubernetes_asyncio issue #360: watches can get stuck).

The store is updated **before** handlers are called; each handler gets notifications one at a time, in order.
Handlers run on the informer's task and must be quick and must not block (they only enqueue keys). A handler
added late first receives an add for every cached object. ``has_synced`` turns true once the first list has
been delivered. An optional resync re-delivers ``on_update(obj, obj)`` for every cached object to handlers
that asked for it. An optional ``transform`` rewrites each freshly decoded object before it is stored, e.g.
``strip_managed_fields`` (it may change the object it gets).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from controller.runtime.backoff import Backoff
from controller.runtime.cache import IndexFunc, Object, Store
from controller.runtime.client import ApiError, KubeClient, is_gone
from controller.runtime.clock import Clock, RealClock
from controller.runtime.resources import Resource, object_key

log = logging.getLogger(__name__)

INACTIVITY_TIMEOUT = 70.0
WATCH_TIMEOUT_RANGE = (300, 600)
VERY_SHORT_WATCH = 1.0


@dataclass(frozen=True, slots=True)
class DeletedFinalStateUnknown:
    """A delete seen only on relist (the watch missed the DELETED event); ``obj`` is the last known one."""

    key: str
    obj: Object


def unwrap_tombstone(obj: Object | DeletedFinalStateUnknown) -> Object:
    """The object itself, whether or not it came as a tombstone."""
    return obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj


class ResourceEventHandler(Protocol):
    """Receives the informer's notifications. Must be quick: enqueue keys, nothing more."""

    def on_add(self, obj: Object, *, is_in_initial_list: bool) -> None:
        """An object appeared (or was in the first list, when ``is_in_initial_list``)."""

    def on_update(self, old: Object, new: Object) -> None:
        """An object changed; ``old is new`` (same resourceVersion) for a resync."""

    def on_delete(self, obj: Object | DeletedFinalStateUnknown) -> None:
        """An object disappeared; its last known state, possibly as a tombstone."""


class FuncHandler:
    """A ``ResourceEventHandler`` from plain functions; missing ones ignore the notification."""

    def __init__(
        self,
        *,
        on_add: Callable[[Object], None] | None = None,
        on_update: Callable[[Object, Object], None] | None = None,
        on_delete: Callable[[Object | DeletedFinalStateUnknown], None] | None = None,
    ) -> None:
        self._add = on_add
        self._update = on_update
        self._delete = on_delete

    def on_add(self, obj: Object, *, is_in_initial_list: bool) -> None:
        if self._add is not None:
            self._add(obj)

    def on_update(self, old: Object, new: Object) -> None:
        if self._update is not None:
            self._update(old, new)

    def on_delete(self, obj: Object | DeletedFinalStateUnknown) -> None:
        if self._delete is not None:
            self._delete(obj)


@dataclass(slots=True)
class _Registration:
    handler: ResourceEventHandler
    resync: bool


def strip_managed_fields(obj: Object) -> Object:
    """A ``transform`` that drops ``metadata.managedFields`` (c-r's ``TransformStripManagedFields``).

    Server-side-apply bookkeeping is often the largest part of an object and reconcilers never read it.
    """
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return obj


def _rv(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


class Informer:
    """Keeps ``store`` in step with one ``Resource`` (one namespace, or all) and notifies handlers."""

    def __init__(
        self,
        *,
        client: KubeClient,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_period: float | None = None,
        inactivity_timeout: float = INACTIVITY_TIMEOUT,
        watch_timeout_range: tuple[int, int] = WATCH_TIMEOUT_RANGE,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        transform: Callable[[Object], Object] | None = None,
        metadata_only: bool = False,
    ) -> None:
        if resync_period is not None and resync_period < 1.0:
            raise ValueError("resync_period must be at least 1 s")
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.store = Store()
        self._resync_period = resync_period
        self._inactivity_timeout = inactivity_timeout
        self._watch_timeout_range = watch_timeout_range
        self._clock = clock or RealClock()
        self._backoff = backoff or Backoff(clock=self._clock)
        self.transform = transform
        """Applied to each decoded object before it is stored (None: objects are stored as received)."""
        self.metadata_only = metadata_only
        """List and watch ``PartialObjectMetadata``: the store holds each object's ``metadata`` only (with
        ``apiVersion``/``kind`` of the resource), e.g. to follow every Secret without holding its data; a
        data change still changes ``resourceVersion``."""
        self._handlers: list[_Registration] = []
        self._synced = asyncio.Event()
        self._last_sync_rv = ""
        self._started = False
        self.relists = 0
        """Lists made so far (1 after the first sync); tests and benchmarks read it."""

    def __repr__(self) -> str:
        return f"Informer({self.resource}, namespace={self.namespace!r})"

    # -- public -----

    @property
    def has_synced(self) -> bool:
        """True once the first list has been stored and delivered to the handlers."""
        return self._synced.is_set()

    async def wait_for_sync(self, *, within: float | None = None) -> bool:
        """Wait until ``has_synced``; False if ``within`` seconds passed first."""
        try:
            async with asyncio.timeout(within):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    @property
    def last_sync_resource_version(self) -> str:
        """The resourceVersion the next watch starts from."""
        return self._last_sync_rv

    def add_handler(self, handler: ResourceEventHandler, *, resync: bool = False) -> None:
        """Subscribe ``handler``; it first gets an add for each cached object. ``resync``: receive resyncs."""
        self._handlers.append(_Registration(handler, resync))
        for obj in self.store.list():
            self._deliver(handler, "add", obj, obj, initial=True)

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Add an index to the store (see ``Store.add_indexer``)."""
        self.store.add_indexer(name, func)

    async def run(self) -> None:
        """List and watch until cancelled. Runs at most once."""
        if self._started:
            raise RuntimeError(f"{self!r} already started")
        self._started = True
        resync_task = None
        if self._resync_period is not None:
            resync_task = asyncio.create_task(
                self._resync_loop(self._resync_period), name=f"resync-{self.resource}"
            )
        try:
            await self._list_and_watch_forever()
        finally:
            if resync_task is not None:
                resync_task.cancel()

    # -- list and watch -----

    async def _list_and_watch_forever(self) -> None:
        need_list = True
        list_rv = "0"
        while True:
            try:
                if need_list:
                    await self._list(list_rv)
                    need_list = False
                await self._watch()
                continue
            except ApiError as e:
                if is_gone(e):
                    # The watch (or a list at lastSyncRV) is too old: relist. A second 410: read etcd.
                    log.info("[%s] resourceVersion %s expired; relisting", self.resource, self._last_sync_rv)
                    list_rv = "" if need_list else self._last_sync_rv
                    need_list = True
                    continue
                log.warning("[%s] list/watch failed: %s", self.resource, e)
                if need_list:
                    list_rv = self._last_sync_rv or "0"
                elif e.status != 429 and e.status < 500:
                    # Not transient (e.g. 403): relist once the error clears, as client-go does.
                    need_list, list_rv = True, self._last_sync_rv
            except (aiohttp.ClientError, OSError, TimeoutError, _VeryShortWatch) as e:
                log.warning("[%s] watch ended with error: %s", self.resource, e or type(e).__name__)
            except Exception:
                # Anything else (a garbled line, a bug in a transform): never let the informer die.
                log.exception("[%s] list/watch failed unexpectedly; relisting", self.resource)
                need_list, list_rv = True, self._last_sync_rv or "0"
            await self._clock.sleep(self._backoff.next_delay())

    async def _list(self, resource_version: str) -> None:
        resp = await self.client.list(
            self.resource,
            namespace=self.namespace,
            resource_version=resource_version or None,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            metadata_only=self.metadata_only,
        )
        kind = self.resource.kind
        items: list[Object] = []
        for item in resp.get("items") or []:
            # List items carry no apiVersion/kind (metadata-only ones: PartialObjectMetadata's): put the
            # resource's, so all cached objects look alike.
            item["apiVersion"], item["kind"] = self.resource.api_version, kind
            items.append(item if self.transform is None else self.transform(item))
        self._replace(items)
        self._last_sync_rv = str(resp.get("metadata", {}).get("resourceVersion", ""))
        self.relists += 1
        self._synced.set()

    def _replace(self, items: list[Object]) -> None:
        initial = not self._synced.is_set()
        old_items = {object_key(o): o for o in self.store.list()}
        self.store.replace(items)
        for obj in items:
            old = old_items.pop(object_key(obj), None)
            if old is None:
                self._notify("add", obj, obj, initial=initial)
            else:
                # An unchanged object on relist is a resync (client-go's Replaced delta with equal RVs).
                self._notify("update", old, obj, resync_only=_rv(old) == _rv(obj))
        for key, gone in old_items.items():
            tombstone = DeletedFinalStateUnknown(key=key, obj=gone)
            self._notify("delete", gone, tombstone)

    async def _watch(self) -> None:
        started = self._clock.now()
        events = 0
        timeout_seconds = random.randint(*self._watch_timeout_range)
        stream = self.client.watch(
            self.resource,
            namespace=self.namespace,
            resource_version=self._last_sync_rv,
            timeout_seconds=timeout_seconds,
            inactivity_timeout=self._inactivity_timeout,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            metadata_only=self.metadata_only,
        )
        try:
            async for event in stream:
                events += 1
                self._handle_event(event)
        finally:
            await stream.aclose()
        if events == 0 and self._clock.now() - started < VERY_SHORT_WATCH:
            raise _VeryShortWatch("very short watch: ended in under 1 s with no events")

    def _handle_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            raise ApiError.from_status(obj)
        rv = _rv(obj)
        if kind == "BOOKMARK":
            if rv:
                self._last_sync_rv = rv
            return
        if self.metadata_only and kind in ("ADDED", "MODIFIED", "DELETED"):
            obj["apiVersion"], obj["kind"] = self.resource.api_version, self.resource.kind
        if self.transform is not None and kind in ("ADDED", "MODIFIED", "DELETED"):
            obj = self.transform(obj)
        if kind in ("ADDED", "MODIFIED"):
            old = self.store.upsert(obj)
            if old is None:
                self._notify("add", obj, obj)
            else:
                self._notify("update", old, obj)
        elif kind == "DELETED":
            self.store.delete(object_key(obj))
            self._notify("delete", obj, obj)
        else:
            log.warning("[%s] unknown watch event type %r", self.resource, kind)
            return
        if rv:
            self._last_sync_rv = rv

    # -- resync -----

    async def _resync_loop(self, period: float) -> None:
        await self._synced.wait()
        while True:
            await self._clock.sleep(period)
            for obj in self.store.list():
                self._notify("update", obj, obj, resync_only=True)

    # -- delivery -----

    def _notify(
        self,
        what: str,
        old: Object,
        new: Object | DeletedFinalStateUnknown,
        *,
        initial: bool = False,
        resync_only: bool = False,
    ) -> None:
        for reg in self._handlers:
            if resync_only and not reg.resync:
                continue
            self._deliver(reg.handler, what, old, new, initial=initial)

    def _deliver(
        self,
        handler: ResourceEventHandler,
        what: str,
        old: Object,
        new: Object | DeletedFinalStateUnknown,
        *,
        initial: bool,
    ) -> None:
        """``add``: ``new`` appeared; ``update``: ``old`` became ``new``; ``delete``: ``new`` is gone."""
        try:
            if what == "delete":
                handler.on_delete(new)
            elif isinstance(new, DeletedFinalStateUnknown):
                raise TypeError("only deletes carry tombstones")
            elif what == "add":
                handler.on_add(new, is_in_initial_list=initial)
            else:
                handler.on_update(old, new)
        except Exception:
            # One faulty handler must not stop the informer or starve the other handlers.
            log.exception("[%s] event handler %r failed", self.resource, handler)


class _VeryShortWatch(Exception):
    """client-go's ``VeryShortWatchError``: treated like a connection error (back off, no relist)."""
