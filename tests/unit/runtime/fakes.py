"""An in-memory stand-in for ``KubeClient``, for unit tests only (integration tests use the real API server).

It keeps objects per (plural, namespace, name), a global resourceVersion counter and an event log, so that
list, watch (from a resourceVersion, with 410 below the compaction point), get, create, replace (optimistic
locking) and merge-patch behave like the API server's. ``fail(method, exc)`` makes the next call raise.
"""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from collections.abc import AsyncGenerator
from typing import Any, cast

from controller.runtime.client import ApiError, KubeClient
from controller.runtime.resources import Resource

Key = tuple[str, str, str]


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = apply_merge_patch(out.get(k), v)
    return out


class FakeApi:
    """Objects in memory with API-server semantics that the runtime relies on."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.rv = 100
        self.log: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, plural, type, object)
        self.compacted = 0
        self.calls: list[tuple[str, str]] = []
        self._failures: dict[str, list[BaseException]] = defaultdict(list)
        self._changed = asyncio.Event()
        self.watch_kwargs: list[dict[str, Any]] = []
        self.list_kwargs: list[dict[str, Any]] = []

    # -- test controls ---

    def fail(self, method: str, exc: BaseException, *, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` raise ``exc``."""
        self._failures[method].extend([exc] * times)

    def compact(self) -> None:
        """Forget the event log: watches from an older resourceVersion get 410."""
        self.compacted = self.rv
        self.log.clear()

    def _check(self, method: str, resource: Resource) -> None:
        self.calls.append((method, resource.plural))
        if self._failures[method]:
            raise self._failures[method].pop(0)

    # -- verbs ---

    def _key(self, resource: Resource, namespace: str | None, name: str) -> Key:
        return (resource.plural, namespace or "" if resource.namespaced else "", name)

    def _commit(self, resource: Resource, key: Key, obj: dict[str, Any] | None, etype: str) -> dict[str, Any]:
        self.rv += 1
        if obj is None:
            gone = self.objects.pop(key)
            gone = copy.deepcopy(gone)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self.log.append((self.rv, resource.plural, etype, gone))
            self._changed.set()
            return gone
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        self.objects[key] = obj
        self.log.append((self.rv, resource.plural, etype, copy.deepcopy(obj)))
        self._changed.set()
        return copy.deepcopy(obj)

    def put(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or overwrite without checks (test setup)."""
        meta = obj["metadata"]
        key = self._key(resource, meta.get("namespace"), meta["name"])
        etype = "MODIFIED" if key in self.objects else "ADDED"
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("uid", f"uid-{meta['name']}")
        obj["metadata"].setdefault("generation", 1)
        return self._commit(resource, key, obj, etype)

    def remove(self, resource: Resource, name: str, namespace: str | None = None) -> None:
        """Delete without checks (test setup)."""
        self._commit(resource, self._key(resource, namespace, name), None, "DELETED")

    async def get(self, resource: Resource, *, name: str, namespace: str | None = None) -> dict[str, Any]:
        self._check("get", resource)
        obj = self.objects.get(self._key(resource, namespace, name))
        if obj is None:
            raise ApiError(status=404, reason="NotFound", message=f"{name} not found")
        return copy.deepcopy(obj)

    async def list(
        self, resource: Resource, *, namespace: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        self.list_kwargs.append(kwargs)
        self._check("list", resource)
        items = [
            copy.deepcopy(o)
            for (plural, ns, _name), o in sorted(self.objects.items())
            if plural == resource.plural and (namespace is None or ns == namespace)
        ]
        for item in items:  # lists carry no apiVersion/kind per item
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return {"metadata": {"resourceVersion": str(self.rv)}, "items": items}

    async def create(
        self, resource: Resource, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        self._check("create", resource)
        meta = obj["metadata"]
        key = self._key(resource, namespace or meta.get("namespace"), meta["name"])
        if key in self.objects:
            raise ApiError(status=409, reason="AlreadyExists", message="exists")
        obj = copy.deepcopy(obj)
        obj["metadata"]["namespace"] = key[1] or None
        if not key[1]:
            obj["metadata"].pop("namespace")
        obj["metadata"].setdefault("uid", f"uid-{meta['name']}")
        obj["metadata"].setdefault("generation", 1)
        return self._commit(resource, key, obj, "ADDED")

    async def replace(
        self, resource: Resource, obj: dict[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        self._check("replace", resource)
        meta = obj["metadata"]
        key = self._key(resource, meta.get("namespace"), meta["name"])
        current = self.objects.get(key)
        if current is None:
            raise ApiError(status=404, reason="NotFound", message="not found")
        if meta.get("resourceVersion") and meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise ApiError(status=409, reason="Conflict", message="the object has been modified")
        return self._commit(resource, key, obj, "MODIFIED")

    async def patch(
        self,
        resource: Resource,
        *,
        name: str,
        namespace: str | None = None,
        body: Any,
        subresource: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        self._check("patch", resource)
        key = self._key(resource, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise ApiError(status=404, reason="NotFound", message="not found")
        want_rv = (body.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != current["metadata"]["resourceVersion"]:
            raise ApiError(status=409, reason="Conflict", message="the object has been modified")
        if subresource == "status":
            body = {"status": body.get("status")} if "status" in body else {}
        return self._commit(resource, key, apply_merge_patch(current, body), "MODIFIED")

    async def delete(self, resource: Resource, *, name: str, namespace: str | None = None) -> dict[str, Any]:
        self._check("delete", resource)
        key = self._key(resource, namespace, name)
        if key not in self.objects:
            raise ApiError(status=404, reason="NotFound", message="not found")
        return self._commit(resource, key, None, "DELETED")

    async def watch(
        self, resource: Resource, *, namespace: str | None = None, resource_version: str, **kwargs: Any
    ) -> AsyncGenerator[dict[str, Any], None]:
        self._check("watch", resource)
        self.watch_kwargs.append({"resource_version": resource_version, **kwargs})
        since = int(resource_version or 0)
        if since < self.compacted:
            yield {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
            return
        while True:
            for rv, plural, etype, obj in list(self.log):
                if rv <= since or plural != resource.plural:
                    continue
                if namespace is not None and obj["metadata"].get("namespace") != namespace:
                    continue
                since = rv
                yield {"type": etype, "object": copy.deepcopy(obj)}
            if self._failures["watch-stream"]:
                raise self._failures["watch-stream"].pop(0)
            self._changed.clear()
            await self._changed.wait()

    @property
    def client(self) -> KubeClient:
        """This fake, typed as the ``KubeClient`` it stands in for."""
        return cast(KubeClient, self)
