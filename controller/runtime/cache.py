"""The informer's store: the last known version of each object, with indexes.

Objects are the raw camelCase dicts the API server sent. The store **replaces** whole dicts and never mutates
a stored one, so a reader holding an object never sees it half-updated. In return, **callers must not mutate
the objects they read** (copy first, e.g. ``copy.deepcopy``, or parse them into a model).

Indexes map an object to a list of string values (``IndexFunc``); ``by_index(name, value)`` returns the
objects with that value. The ``namespace`` index is always present. Example: an index ``"backendRefs"`` that
maps an AIGatewayRoute to ``["ns/backend-a", "ns/backend-b"]`` answers "which routes reference backend X".
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from typing import Any

from controller.runtime.resources import object_key

Object = dict[str, Any]
IndexFunc = Callable[[Object], Iterable[str]]

NAMESPACE_INDEX = "namespace"


def namespace_index(obj: Object) -> list[str]:
    """The object's namespace (``""`` for a cluster-scoped object)."""
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


class Store:
    """Objects by ``object_key``, plus named indexes kept in step with every change."""

    def __init__(self) -> None:
        self._items: dict[str, Object] = {}
        self._indexers: dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index}
        # index name -> value -> keys
        self._indices: dict[str, dict[str, set[str]]] = {NAMESPACE_INDEX: {}}

    # -- reads -----

    def get(self, key: str) -> Object | None:
        """The object with ``key`` (``ns/name`` or ``name``), or None. Do not mutate it."""
        return self._items.get(key)

    def get_by_name(self, name: str, namespace: str | None = None) -> Object | None:
        """The object named ``name`` in ``namespace`` (None or ``""`` for cluster-scoped)."""
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str | None = None) -> builtins.list[Object]:
        """Every object, or those of one namespace. Do not mutate them."""
        if namespace is None:
            return list(self._items.values())
        return self.by_index(NAMESPACE_INDEX, namespace)

    def keys(self) -> builtins.list[str]:
        """Every key."""
        return list(self._items)

    def by_index(self, index: str, value: str) -> builtins.list[Object]:
        """Objects whose ``index`` function returned ``value``. Raises ``KeyError`` for an unknown index."""
        keys = self._indices[index].get(value, ())
        return [self._items[k] for k in sorted(keys)]

    def index_keys(self, index: str, value: str) -> builtins.list[str]:
        """Keys of the objects whose ``index`` function returned ``value``."""
        return sorted(self._indices[index].get(value, ()))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    # -- indexes -----

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Register an index; existing objects are indexed at once. Re-registering a name is an error."""
        if name in self._indexers:
            raise ValueError(f"index {name!r} already exists")
        self._indexers[name] = func
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, key, obj)

    # -- writes (the informer's) -----

    def upsert(self, obj: Object) -> Object | None:
        """Store ``obj`` under its key; return the object it replaced, if any."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._indexers:
            self._index_one(name, key, obj)
        return old

    def delete(self, key: str) -> Object | None:
        """Remove ``key``; return the last known object, if any."""
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objs: Iterable[Object]) -> None:
        """Swap the whole content for ``objs`` in one step (the list of a relist)."""
        self._items = {object_key(o): o for o in objs}
        self._indices = {name: {} for name in self._indexers}
        for key, obj in self._items.items():
            for name in self._indexers:
                self._index_one(name, key, obj)

    def _index_one(self, name: str, key: str, obj: Object) -> None:
        index = self._indices[name]
        for value in set(self._indexers[name](obj)):
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Object) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in set(func(obj)):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
