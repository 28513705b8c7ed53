"""Event handlers and predicates: which keys an informer notification enqueues (c-r ``pkg/handler``).

An ``EventHandler`` turns one notification into ``Request`` keys added to a queue; a ``Predicate`` filters
notifications first. ``EnqueueRequestsFromMapFunc`` maps an object of another kind to the keys it affects (on
update it maps **both** the old and the new object, so a key that stops being referenced is reconciled too).
Tombstones are unwrapped before handlers and predicates see a delete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar, Protocol

from controller.runtime.cache import Object
from controller.runtime.reconcile import Request


class Enqueuer(Protocol):
    """Anything keys can be added to (a ``WorkQueue[Request]``)."""

    def add(self, item: Request) -> None: ...


class EventHandler(Protocol):
    """Maps notifications to keys. Must be quick and must not block."""

    def create(self, obj: Object, queue: Enqueuer) -> None: ...

    def update(self, old: Object, new: Object, queue: Enqueuer) -> None: ...

    def delete(self, obj: Object, queue: Enqueuer) -> None: ...


class Predicate(Protocol):
    """Decides whether a notification reaches the handler."""

    def create(self, obj: Object) -> bool: ...

    def update(self, old: Object, new: Object) -> bool: ...

    def delete(self, obj: Object) -> bool: ...


class EnqueueRequestForObject:
    """Enqueue the key of the object itself."""

    def create(self, obj: Object, queue: Enqueuer) -> None:
        queue.add(Request.for_object(obj))

    def update(self, old: Object, new: Object, queue: Enqueuer) -> None:
        queue.add(Request.for_object(new or old))

    def delete(self, obj: Object, queue: Enqueuer) -> None:
        queue.add(Request.for_object(obj))


MapFunc = Callable[[Object], Iterable[Request]]


class EnqueueRequestsFromMapFunc:
    """Enqueue the keys ``map_func`` returns; on update, the union of the keys of the old and new object."""

    def __init__(self, map_func: MapFunc) -> None:
        self._map = map_func

    def create(self, obj: Object, queue: Enqueuer) -> None:
        for req in self._map(obj):
            queue.add(req)

    def update(self, old: Object, new: Object, queue: Enqueuer) -> None:
        for req in {*self._map(old), *self._map(new)}:
            queue.add(req)

    def delete(self, obj: Object, queue: Enqueuer) -> None:
        for req in self._map(obj):
            queue.add(req)


def owner_requests(
    obj: Object, *, owner_api_group: str, owner_kind: str, controller_only: bool = True
) -> list[Request]:
    """Keys of the owners of ``obj`` of the given kind (``ownerReferences``; owners share its namespace)."""
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    out = []
    for ref in meta.get("ownerReferences") or []:
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        if ref.get("kind") != owner_kind or group != owner_api_group:
            continue
        if controller_only and not ref.get("controller"):
            continue
        out.append(Request(namespace=namespace, name=str(ref.get("name", ""))))
    return out


class EnqueueRequestForOwner(EnqueueRequestsFromMapFunc):
    """Enqueue the owner (by ``ownerReferences``; with ``controller: true`` only, by default)."""

    def __init__(self, *, owner_api_group: str, owner_kind: str, controller_only: bool = True) -> None:
        super().__init__(
            lambda obj: owner_requests(
                obj, owner_api_group=owner_api_group, owner_kind=owner_kind, controller_only=controller_only
            )
        )


class _MetadataChangedPredicate:
    """Pass every create and delete, and the updates whose ``metadata.<FIELD>`` changed."""

    FIELD: ClassVar[str]

    def create(self, obj: Object) -> bool:
        return True

    def update(self, old: Object, new: Object) -> bool:
        return (old.get("metadata") or {}).get(self.FIELD) != (new.get("metadata") or {}).get(self.FIELD)

    def delete(self, obj: Object) -> bool:
        return True


class GenerationChangedPredicate(_MetadataChangedPredicate):
    """Pass updates whose ``metadata.generation`` changed: drops status-only updates and resyncs.

    Beware: a status someone else overwrote is then never repaired, and Secrets/ConfigMaps have no generation.
    """

    FIELD = "generation"


class ResourceVersionChangedPredicate(_MetadataChangedPredicate):
    """Pass updates whose ``resourceVersion`` changed: drops resyncs only."""

    FIELD = "resourceVersion"
