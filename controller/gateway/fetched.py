"""Full copies of the Secrets and Services the builders read, fetched by name; every other one is known by its
metadata only.

A cluster holds many Secrets the controller never reads (Helm keeps every release in one, up to 1 MiB each)
and many Services. Informers that cached them whole made the controller's memory grow with the cluster, not
with its routes. Instead a metadata-only informer follows every object of the kind (its ``resourceVersion``
changes whenever its data does, so events still arrive), and this cache holds full copies only of the objects
a reconcile asked for: ``refresh`` GETs those whose cached copy is missing or older than the metadata, and
drops copies of objects that are gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from api.objects import Obj
from controller.runtime import KubeClient, Resource, Store, is_not_found

log = logging.getLogger(__name__)


def _rv(obj: Obj | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


class FetchedObjects:
    """A read-only ``Store``-like view (``get``, ``in``) of full objects of one ``resource``, over ``index``,
    the store of a metadata-only informer of that resource."""

    def __init__(self, *, client: KubeClient, resource: Resource, index: Store) -> None:
        self.client = client
        self.resource = resource
        self.index = index
        self._full: dict[str, Obj] = {}
        self._lock = asyncio.Lock()
        self.fetches = 0
        """GETs made so far (tests and benchmarks read it)."""
        self.version = 0
        """Bumped whenever a full copy changes (or goes): a snapshot taken before a bump may hold stale
        copies, even when the caller's own ``refresh`` found nothing to do (a concurrent one did it)."""

    def get(self, key: str) -> Obj | None:
        """The full object, as of the last ``refresh`` that named it; None when it does not exist (or was
        never fetched)."""
        if key not in self.index:
            return None
        return self._full.get(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        return len(self._full)

    async def refresh(self, keys: Iterable[str]) -> bool:
        """Bring the full copies of ``keys`` (``namespace/name``) up to date with the metadata; whether any
        copy changed. Objects the metadata does not know are dropped, not fetched."""
        changed = False
        async with self._lock:
            for key in dict.fromkeys(keys):
                meta = self.index.get(key)
                have = self._full.get(key)
                if meta is None:
                    changed |= self._full.pop(key, None) is not None
                    continue
                if have is not None and _rv(have) == _rv(meta):
                    continue
                namespace, _, name = key.partition("/")
                try:
                    obj = await self.client.get(self.resource, name=name, namespace=namespace)
                except Exception as e:
                    if not is_not_found(e):
                        raise
                    changed |= self._full.pop(key, None) is not None
                    continue
                self.fetches += 1
                obj.setdefault("apiVersion", self.resource.api_version)
                obj.setdefault("kind", self.resource.kind)
                meta_fields = obj.get("metadata") or {}
                meta_fields.pop("managedFields", None)
                self._full[key] = obj
                changed = True
            for key in [k for k in self._full if k not in self.index]:
                del self._full[key]
                changed = True
            if changed:
                self.version += 1
        return changed
