"""KubeClient on the wire, against an in-process HTTP server that speaks the list/watch protocol: watch lines,
ERROR events, HTTP errors parsed from Status bodies, and the inactivity timeout on a silent watch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration

from controller.runtime.client import ApiError, KubeClient, is_gone, is_not_found
from controller.runtime.metrics import Metrics
from controller.runtime.resources import CONFIGMAPS

pytestmark = pytest.mark.timeout(10)


class Server:
    def __init__(self) -> None:
        self.requests: list[web.Request] = []
        self.watch_lines: list[dict[str, Any]] = []
        self.stall = False
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        if request.query.get("watch") == "true":
            resp = web.StreamResponse()
            await resp.prepare(request)
            for line in self.watch_lines:
                await resp.write(json.dumps(line).encode() + b"\n")
            if self.stall:
                await self.release.wait()
            return resp
        if request.match_info.get("name") == "missing":
            body = {
                "kind": "Status",
                "code": 404,
                "reason": "NotFound",
                "message": 'configmaps "missing" not found',
            }
            return web.json_response(body, status=404)
        if "name" not in request.match_info:  # a list
            return web.json_response({"kind": "ConfigMapList", "metadata": {}, "items": []})
        return web.json_response({"kind": "ConfigMap", "metadata": {"name": request.match_info["name"]}})


@pytest.fixture
async def served() -> AsyncIterator[tuple[Server, KubeClient]]:
    server = Server()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/configmaps", server.handle)
    app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with ApiClient(Configuration(host=f"http://127.0.0.1:{port}")) as api:
        yield server, KubeClient(api, metrics=Metrics())
    server.release.set()
    await runner.cleanup()


async def test_get_and_not_found(served: tuple[Server, KubeClient]) -> None:
    _, kube = served
    assert (await kube.get(CONFIGMAPS, name="x", namespace="ns"))["metadata"]["name"] == "x"
    with pytest.raises(ApiError) as err:
        await kube.get(CONFIGMAPS, name="missing", namespace="ns")
    assert is_not_found(err.value) and err.value.reason == "NotFound"
    metrics = kube._metrics
    assert metrics is not None
    host = kube._host
    assert host.startswith("127.0.0.1:")
    count = metrics.registry.get_sample_value
    assert count("rest_client_requests_total", {"code": "200", "method": "GET", "host": host}) == 1
    assert count("rest_client_requests_total", {"code": "404", "method": "GET", "host": host}) == 1
    assert count("rest_client_request_duration_seconds_count", {"verb": "GET", "host": host}) == 2


async def test_watch_streams_events_with_bookmarks_requested(served: tuple[Server, KubeClient]) -> None:
    server, kube = served
    server.watch_lines = [
        {"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "2"}}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "3"}}},
        {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}},
    ]
    events = [
        e
        async for e in kube.watch(
            CONFIGMAPS, namespace="ns", resource_version="1", timeout_seconds=300, inactivity_timeout=5
        )
    ]
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK", "ERROR"]
    assert is_gone(ApiError.from_status(events[2]["object"]))
    query = server.requests[0].query
    assert query["watch"] == "true" and query["allowWatchBookmarks"] == "true"
    assert query["resourceVersion"] == "1" and query["timeoutSeconds"] == "300"


async def test_silent_watch_times_out(served: tuple[Server, KubeClient]) -> None:
    server, kube = served
    server.watch_lines = [{"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "2"}}}]
    server.stall = True
    seen = []
    with pytest.raises(TimeoutError):
        async for e in kube.watch(
            CONFIGMAPS, namespace="ns", resource_version="1", timeout_seconds=300, inactivity_timeout=0.2
        ):
            seen.append(e)
    assert len(seen) == 1


async def test_metadata_only_list_and_watch_ask_for_partial_object_metadata(
    served: tuple[Server, KubeClient],
) -> None:
    server, kube = served
    await kube.list(CONFIGMAPS, namespace="ns")
    await kube.list(CONFIGMAPS, namespace="ns", metadata_only=True)
    _ = [
        e
        async for e in kube.watch(
            CONFIGMAPS,
            namespace="ns",
            resource_version="1",
            timeout_seconds=300,
            inactivity_timeout=5,
            metadata_only=True,
        )
    ]
    accepts = [r.headers["Accept"] for r in server.requests]
    assert accepts == [
        "application/json",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
    ]
