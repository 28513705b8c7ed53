"""Informer behaviour over the in-memory fake API: list then watch, handlers, bookmarks, 410 relist with
tombstones, reconnects without relist, late handlers and resync."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controller.runtime.backoff import Backoff
from controller.runtime.cache import Object
from controller.runtime.client import ApiError
from controller.runtime.informer import DeletedFinalStateUnknown, Informer, strip_managed_fields
from controller.runtime.resources import CONFIGMAPS
from tests.unit.runtime.fakes import FakeApi

pytestmark = pytest.mark.timeout(5)


def cm(name: str, value: str = "0", namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "data": {"v": value}}


class Log:
    """A handler that records notifications, and what the store held when each arrived."""

    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self.events: list[tuple[str, Any]] = []

    def on_add(self, obj: Object, *, is_in_initial_list: bool) -> None:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        assert self.informer.store.get(key) is obj, "store must be updated before handlers run"
        self.events.append(("add-initial" if is_in_initial_list else "add", obj["metadata"]["name"]))

    def on_update(self, old: Object, new: Object) -> None:
        self.events.append(("update", (new["metadata"]["name"], old["data"]["v"], new["data"]["v"])))

    def on_delete(self, obj: Object | DeletedFinalStateUnknown) -> None:
        if isinstance(obj, DeletedFinalStateUnknown):
            self.events.append(("tombstone", obj.key))
        else:
            self.events.append(("delete", obj["metadata"]["name"]))


async def until(check: Any, steps: int = 400) -> None:
    for _ in range(steps):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def started(api: FakeApi) -> AsyncIterator[tuple[Informer, Log]]:
    informer = Informer(client=api.client, resource=CONFIGMAPS, backoff=Backoff(initial=0.001, cap=0.01))
    log = Log(informer)
    informer.add_handler(log)
    task = asyncio.create_task(informer.run())
    yield informer, log
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_list_then_watch_from_list_resource_version(api: FakeApi) -> None:
    api.put(CONFIGMAPS, cm("a"))
    api.put(CONFIGMAPS, cm("b"))
    informer = Informer(client=api.client, resource=CONFIGMAPS)
    log = Log(informer)
    informer.add_handler(log)
    assert not informer.has_synced
    task = asyncio.create_task(informer.run())
    assert await informer.wait_for_sync(within=1)
    assert log.events == [("add-initial", "a"), ("add-initial", "b")]
    await until(lambda: api.watch_kwargs)
    assert api.watch_kwargs[0]["resource_version"] == str(api.rv)
    assert 300 <= api.watch_kwargs[0]["timeout_seconds"] <= 600
    assert informer.store.get("ns/a") is not None
    assert informer.store.get("ns/a")["kind"] == "ConfigMap"  # type: ignore[index]  # restored on list items
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_watch_events_reach_handlers_in_order(api: FakeApi, started: tuple[Informer, Log]) -> None:
    informer, log = started
    await informer.wait_for_sync(within=1)
    api.put(CONFIGMAPS, cm("a", "1"))
    api.put(CONFIGMAPS, cm("a", "2"))
    api.remove(CONFIGMAPS, "a", "ns")
    await until(lambda: len(log.events) == 3)
    assert log.events == [("add", "a"), ("update", ("a", "1", "2")), ("delete", "a")]
    assert informer.store.get("ns/a") is None
    assert informer.last_sync_resource_version == str(api.rv)


async def test_reader_keeps_the_object_it_read(api: FakeApi, started: tuple[Informer, Log]) -> None:
    """Whole objects are replaced, never mutated: a reader's reference stays consistent."""
    informer, _ = started
    api.put(CONFIGMAPS, cm("a", "1"))
    await until(lambda: informer.store.get("ns/a") is not None)
    held = informer.store.get("ns/a")
    api.put(CONFIGMAPS, cm("a", "2"))
    await until(lambda: informer.store.get("ns/a")["data"]["v"] == "2")  # type: ignore[index]
    assert held is not None and held["data"] == {"v": "1"}


async def test_bookmark_advances_resource_version_without_handlers(api: FakeApi) -> None:
    informer = Informer(client=api.client, resource=CONFIGMAPS)
    log = Log(informer)
    informer.add_handler(log)
    informer._handle_event({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "555"}}})
    assert informer.last_sync_resource_version == "555"
    assert log.events == []


async def test_watch_error_410_relists_and_emits_tombstones(
    api: FakeApi, started: tuple[Informer, Log]
) -> None:
    informer, log = started
    api.put(CONFIGMAPS, cm("stays"))
    api.put(CONFIGMAPS, cm("changes", "1"))
    api.put(CONFIGMAPS, cm("vanishes"))
    await until(lambda: len(informer.store) == 3)
    log.events.clear()
    # The watch breaks and misses everything: the changes are compacted away before it comes back.
    api.fail("watch-stream", ConnectionResetError("gone"))
    api.put(CONFIGMAPS, cm("changes", "2"))
    api.remove(CONFIGMAPS, "vanishes", "ns")
    api.compact()
    await until(lambda: informer.relists == 2)
    await until(lambda: ("tombstone", "ns/vanishes") in log.events)
    assert ("update", ("changes", "1", "2")) in log.events
    assert not any(e[0] == "update" and e[1][0] == "stays" for e in log.events), "unchanged: no update"
    assert sorted(informer.store.keys()) == ["ns/changes", "ns/stays"]


async def test_second_410_lists_from_etcd(api: FakeApi, started: tuple[Informer, Log]) -> None:
    informer, _ = started
    await informer.wait_for_sync(within=1)
    api.fail("list", ApiError(status=410, reason="Expired"))
    api.fail("watch-stream", ConnectionResetError("gone"))
    api.put(CONFIGMAPS, cm("x"))
    api.compact()
    await until(lambda: informer.relists == 2)
    assert informer.store.get("ns/x") is not None
    rvs = [kw["resource_version"] for kw in api.list_kwargs]
    assert rvs[0] == "0"  # first list: from the watch cache
    assert rvs[1] == str(api.compacted - 1)  # after the watch's 410: at the last resourceVersion seen
    assert rvs[2] is None  # that list 410'd too: a quorum read


async def test_connection_error_rewatches_same_resource_version_without_relist(
    api: FakeApi, started: tuple[Informer, Log]
) -> None:
    informer, log = started
    await informer.wait_for_sync(within=1)
    api.put(CONFIGMAPS, cm("a"))
    await until(lambda: log.events)
    rv = informer.last_sync_resource_version
    api.fail("watch", OSError("connection refused"), times=3)
    api.fail("watch-stream", TimeoutError())  # the inactivity timeout fires
    api.put(CONFIGMAPS, cm("a", "1"))
    await until(lambda: len(api.watch_kwargs) >= 2)
    api.put(CONFIGMAPS, cm("b"))
    await until(lambda: ("add", "b") in log.events)
    assert informer.relists == 1
    assert api.watch_kwargs[1]["resource_version"] == str(int(rv) + 1)
    assert ("update", ("a", "0", "1")) in log.events


async def test_late_handler_gets_synthetic_adds(api: FakeApi, started: tuple[Informer, Log]) -> None:
    informer, _ = started
    api.put(CONFIGMAPS, cm("a"))
    await until(lambda: len(informer.store) == 1)
    late = Log(informer)
    informer.add_handler(late)
    assert late.events == [("add-initial", "a")]


async def test_failing_handler_does_not_starve_others(api: FakeApi) -> None:
    informer = Informer(client=api.client, resource=CONFIGMAPS)

    class Boom(Log):
        def on_add(self, obj: Object, *, is_in_initial_list: bool) -> None:
            raise RuntimeError("boom")

    informer.add_handler(Boom(informer))
    log = Log(informer)
    informer.add_handler(log)
    informer._handle_event({"type": "ADDED", "object": {**cm("a"), "metadata": {**cm("a")["metadata"]}}})
    assert log.events == [("add", "a")]


async def test_resync_redelivers_to_resync_handlers_only(api: FakeApi) -> None:
    api.put(CONFIGMAPS, cm("a"))
    informer = Informer(client=api.client, resource=CONFIGMAPS, resync_period=1.0)
    plain, resyncing = Log(informer), Log(informer)
    informer.add_handler(plain)
    informer.add_handler(resyncing, resync=True)
    task = asyncio.create_task(informer.run())
    await informer.wait_for_sync(within=1)
    await until(lambda: any(e[0] == "update" for e in resyncing.events), steps=400)
    assert ("update", ("a", "0", "0")) in resyncing.events
    assert all(e[0] != "update" for e in plain.events)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_run_twice_is_an_error(api: FakeApi, started: tuple[Informer, Log]) -> None:
    informer, _ = started
    await informer.wait_for_sync(within=1)
    with pytest.raises(RuntimeError):
        await informer.run()


def test_resync_period_below_one_second_is_refused(api: FakeApi) -> None:
    with pytest.raises(ValueError):
        Informer(client=api.client, resource=CONFIGMAPS, resync_period=0.5)


async def test_transform_applies_to_listed_and_watched_objects(api: FakeApi) -> None:
    api.put(CONFIGMAPS, {**cm("a"), "metadata": {**cm("a")["metadata"], "managedFields": [{"manager": "x"}]}})
    informer = Informer(client=api.client, resource=CONFIGMAPS, transform=strip_managed_fields)
    task = asyncio.create_task(informer.run())
    await informer.wait_for_sync(within=1)
    assert "managedFields" not in informer.store.get("ns/a")["metadata"]  # type: ignore[index]
    api.put(CONFIGMAPS, {**cm("b"), "metadata": {**cm("b")["metadata"], "managedFields": [{"manager": "x"}]}})
    await until(lambda: informer.store.get("ns/b") is not None)
    assert "managedFields" not in informer.store.get("ns/b")["metadata"]  # type: ignore[index]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
