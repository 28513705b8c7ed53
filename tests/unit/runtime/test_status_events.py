"""Status writer (no-op skip, optimistic locking, conflict retry, merge-patch diff) and Event recorder
(posting, count bump on repeats, never failing the caller) over the in-memory fake API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controller.runtime.client import ApiError
from controller.runtime.clock import FakeClock
from controller.runtime.events import EventRecorder, involved_object
from controller.runtime.resources import EVENTS, Resource
from controller.runtime.status import StatusWriter, merge_patch
from tests.unit.runtime.fakes import FakeApi, apply_merge_patch

pytestmark = pytest.mark.timeout(10)

THINGS = Resource(group="example.com", version="v1", plural="things", kind="Thing")


def thing(api: FakeApi) -> dict[str, Any]:
    return api.put(
        THINGS, {"metadata": {"name": "t", "namespace": "ns"}, "spec": {}, "status": {"a": 1, "b": [1]}}
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"a": 1}, {"a": 2}),
        ({"a": 1, "b": 2}, {"a": 1}),
        ({"c": {"x": 1, "y": 2}}, {"c": {"x": 1}}),
        ({"l": [1, 2]}, {"l": [2]}),
        ({}, {"conditions": [{"type": "Ready"}]}),
    ],
)
def test_merge_patch_turns_old_into_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert apply_merge_patch(old, merge_patch(old, new)) == new


async def test_update_writes_the_mutated_status() -> None:
    api = FakeApi()
    obj = thing(api)
    written = await StatusWriter(api.client).update(THINGS, obj, lambda s: {**s, "a": 2})
    assert written is not None and written["status"] == {"a": 2, "b": [1]}
    assert obj["status"] == {"a": 1, "b": [1]}, "the cached object must not be mutated"


async def test_noop_update_is_skipped() -> None:
    api = FakeApi()
    obj = thing(api)
    api.calls.clear()

    def same(status: dict[str, Any]) -> None:
        status["a"] = 1  # mutated in place, but equal

    assert await StatusWriter(api.client).update(THINGS, obj, same) is None
    assert api.calls == []


async def test_conflict_is_retried_on_a_fresh_read() -> None:
    api = FakeApi()
    stale = thing(api)
    api.put(THINGS, {**stale, "status": {"a": 1, "b": [1], "other": "writer"}})  # someone else wrote first
    seen: list[dict[str, Any]] = []

    def bump(status: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(status))
        return {**status, "a": 5}

    written = await StatusWriter(api.client).update(THINGS, stale, bump)
    assert written is not None
    assert written["status"] == {"a": 5, "b": [1], "other": "writer"}, "the other writer's field survives"
    assert len(seen) == 2 and "other" in seen[1]


async def test_persistent_conflict_gives_up() -> None:
    api = FakeApi()
    obj = thing(api)
    api.fail("patch", ApiError(status=409, reason="Conflict"), times=10)
    with pytest.raises(ApiError):
        await StatusWriter(api.client).update(THINGS, obj, lambda s: {**s, "a": 9})


def events_of(api: FakeApi) -> list[dict[str, Any]]:
    return [o for (plural, _, _), o in api.objects.items() if plural == EVENTS.plural]


async def test_event_is_posted_with_involved_object() -> None:
    api = FakeApi()
    obj = thing(api)
    recorder = EventRecorder(api.client, component="ctrl", host="h")
    recorder.warning(obj, "BackendNotFound", "backend b is missing")
    await recorder.flush()
    [event] = events_of(api)
    assert event["involvedObject"] == involved_object(obj)
    assert event["involvedObject"]["uid"] == "uid-t"
    assert event["metadata"]["namespace"] == "ns"
    assert (event["type"], event["reason"], event["count"]) == ("Warning", "BackendNotFound", 1)
    assert event["source"] == {"component": "ctrl", "host": "h"}
    assert event["firstTimestamp"].endswith("Z")
    await recorder.close()


async def test_repeated_event_bumps_count() -> None:
    api = FakeApi()
    obj = thing(api)
    recorder = EventRecorder(api.client, component="ctrl")
    for _ in range(3):
        recorder.normal(obj, "Synced", "ok")
    recorder.normal(obj, "Synced", "different message")
    await recorder.flush()
    events = events_of(api)
    assert sorted(e["count"] for e in events) == [1, 3]
    await recorder.close()


async def test_expired_event_is_posted_again() -> None:
    api = FakeApi()
    obj = thing(api)
    recorder = EventRecorder(api.client, component="ctrl")
    recorder.normal(obj, "Synced", "ok")
    await recorder.flush()
    [event] = events_of(api)
    api.remove(EVENTS, event["metadata"]["name"], "ns")  # the API server's 1 h TTL
    recorder.normal(obj, "Synced", "ok")
    await recorder.flush()
    [again] = events_of(api)
    assert again["count"] == 1
    await recorder.close()


async def test_failed_post_never_raises() -> None:
    api = FakeApi()
    obj = thing(api)
    recorder = EventRecorder(api.client, component="ctrl")
    api.fail("create", ApiError(status=403, reason="Forbidden"))
    recorder.normal(obj, "Synced", "ok")
    await recorder.flush()
    assert events_of(api) == []
    recorder.normal(obj, "Synced", "ok")  # the recorder still works afterwards
    await recorder.flush()
    assert len(events_of(api)) == 1
    await recorder.close()


async def test_event_type_is_validated() -> None:
    recorder = EventRecorder(FakeApi().client, component="ctrl")
    with pytest.raises(ValueError):
        recorder.event({}, type="Error", reason="X", message="")
    await asyncio.sleep(0)


async def test_spam_filter_caps_events_per_object() -> None:
    api = FakeApi()
    obj = thing(api)
    other = api.put(THINGS, {"metadata": {"name": "u", "namespace": "ns", "uid": "uid-u"}, "spec": {}})
    clock = FakeClock()
    recorder = EventRecorder(api.client, component="ctrl", clock=clock)
    for i in range(30):
        recorder.normal(obj, "Looping", f"attempt {i}")
    recorder.normal(other, "Synced", "another object has its own bucket")
    await recorder.flush()
    assert len(events_of(api)) == 26 and recorder.dropped == 5
    clock.step(300)  # one token back
    recorder.normal(obj, "Looping", "attempt 30")
    recorder.normal(obj, "Looping", "attempt 31")
    await recorder.flush()
    assert len(events_of(api)) == 27 and recorder.dropped == 6
    await recorder.close()
