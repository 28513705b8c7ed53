"""FetchedObjects: full copies of the referenced Secrets only, fetched again only when the metadata moved."""

from __future__ import annotations

from typing import Any

from controller.gateway.fetched import FetchedObjects
from controller.runtime import SECRETS, ApiError, KubeClient, Resource, Store


def meta(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}}


class FakeClient:
    """GETs answer from ``objects``; every call is recorded."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    async def get(self, resource: Resource, *, name: str, namespace: str | None = None) -> dict[str, Any]:
        key = f"{namespace}/{name}"
        self.calls.append(key)
        if key not in self.objects:
            raise ApiError(status=404, reason="NotFound")
        return dict(self.objects[key])


def fetched() -> tuple[FetchedObjects, Store, FakeClient]:
    index, api = Store(), FakeClient()
    client: Any = api
    kube: KubeClient = client
    return FetchedObjects(client=kube, resource=SECRETS, index=index), index, api


def full(name: str, rv: str, value: str) -> dict[str, Any]:
    obj = meta(name, rv)
    obj["metadata"]["managedFields"] = [{"manager": "x"}]
    obj["data"] = {"k": value}
    return obj


async def test_only_named_objects_are_fetched_and_only_when_their_version_moved() -> None:
    cache, index, api = fetched()
    for name in ("a", "b"):
        index.upsert(meta(name, "1"))
        api.objects[f"ns/{name}"] = full(name, "1", f"{name}-1")
    assert cache.get("ns/a") is None  # never fetched
    assert await cache.refresh(["ns/a"]) is True
    assert api.calls == ["ns/a"]  # b, which nobody named, is never read
    got = cache.get("ns/a")
    assert got is not None and got["data"] == {"k": "a-1"} and "managedFields" not in got["metadata"]
    assert await cache.refresh(["ns/a"]) is False and api.calls == ["ns/a"]  # same version: no GET

    index.upsert(meta("a", "2"))
    api.objects["ns/a"] = full("a", "2", "a-2")
    assert await cache.refresh(["ns/a"]) is True
    got = cache.get("ns/a")
    assert got is not None and got["data"] == {"k": "a-2"}


async def test_deleted_objects_are_dropped_and_missing_ones_not_fetched() -> None:
    cache, index, api = fetched()
    index.upsert(meta("a", "1"))
    api.objects["ns/a"] = full("a", "1", "x")
    await cache.refresh(["ns/a"])
    index.delete("ns/a")
    assert cache.get("ns/a") is None  # gone from the metadata: gone
    assert await cache.refresh(["ns/a", "ns/never"]) is True
    assert len(cache) == 0 and api.calls == ["ns/a"]
    # known to the metadata, gone by the time of the GET
    index.upsert(meta("c", "1"))
    assert await cache.refresh(["ns/c"]) is False and cache.get("ns/c") is None


async def test_version_moves_with_every_change_whoever_refreshed() -> None:
    # A reader that took its snapshot before another reader's refresh fetched a new copy finds nothing to do
    # in its own refresh: the version tells it that its snapshot is stale (Caches.fresh_snapshot).
    cache, index, api = fetched()
    index.upsert(meta("a", "1"))
    api.objects["ns/a"] = full("a", "1", "a-1")
    await cache.refresh(["ns/a"])
    seen = cache.version
    index.upsert(meta("a", "2"))
    api.objects["ns/a"] = full("a", "2", "a-2")
    assert await cache.refresh(["ns/a"]) is True  # the other reader
    assert await cache.refresh(["ns/a"]) is False and cache.version == seen + 1  # ours: stale all the same
    assert await cache.refresh(["ns/a"]) is False and cache.version == seen + 1  # no change, no bump
    index.delete("ns/a")
    assert await cache.refresh([]) is True and cache.version == seen + 2  # a copy dropped
