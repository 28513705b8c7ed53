"""The informer across API server restarts and etcd compaction, against the real kube-apiserver and etcd.

A change is written straight into etcd while the API server is down (the only way to change anything then).
When the API server comes back its watch cache starts at a newer etcd revision than the informer's last
resourceVersion, and etcd is compacted, so resuming the watch fails with 410 Gone: the informer must relist
and deliver what changed, losing nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from typing import Any

import pytest

from controller.runtime import (
    CONFIGMAPS,
    Backoff,
    Controller,
    DeletedFinalStateUnknown,
    FuncHandler,
    Informer,
    KubeClient,
    Request,
    unwrap_tombstone,
)
from tests.integration.runtime.conftest import WIDGETS, eventually, widget
from tests.realparts.controlplane import ControlPlane

pytestmark = pytest.mark.timeout(240)


def etcd_call(cp: ControlPlane, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        cp.etcd_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def etcd_get(cp: ControlPlane, key: str) -> bytes:
    kvs = etcd_call(cp, "/v3/kv/range", {"key": base64.b64encode(key.encode()).decode()}).get("kvs") or []
    assert kvs, f"no etcd key {key}"
    return base64.b64decode(kvs[0]["value"])


def etcd_put(cp: ControlPlane, key: str, value: bytes) -> None:
    etcd_call(
        cp,
        "/v3/kv/put",
        {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value).decode()},
    )


def fast_backoff() -> Backoff:
    return Backoff(initial=0.2, cap=2.0)


async def test_change_made_while_apiserver_stopped_is_reconciled(
    kube: KubeClient, namespace: str, widget_crds: ControlPlane
) -> None:
    cp = widget_crds
    informer = Informer(client=kube, resource=WIDGETS, namespace=namespace, backoff=fast_backoff())
    seen: dict[str, Any] = {}

    async def reconcile(req: Request) -> None:
        obj = informer.store.get(req.key)
        seen[req.key] = None if obj is None else obj["spec"]

    ctrl = Controller(name="restart", reconcile=reconcile)
    ctrl.watch(informer)
    key = f"{namespace}/w1"
    tasks = [asyncio.create_task(informer.run()), asyncio.create_task(ctrl.start())]
    try:
        await kube.create(WIDGETS, widget("w1", namespace, size=1))
        await eventually(lambda: seen.get(key) == {"size": 1}, what="initial reconcile")
        assert informer.relists == 1

        await asyncio.to_thread(cp.stop_apiserver)
        # CRD objects are stored as JSON: change the spec in etcd itself while no API server runs.
        etcd_key = f"/registry/{WIDGETS.group}/{WIDGETS.plural}/{namespace}/w1"
        stored = json.loads(etcd_get(cp, etcd_key))
        stored["spec"] = {"size": 2}
        etcd_put(cp, etcd_key, json.dumps(stored).encode())
        await asyncio.to_thread(cp.start_apiserver)

        await eventually(
            lambda: seen.get(key) == {"size": 2}, within=60, what="change reconciled after restart"
        )
        assert informer.relists >= 2, "the watch should have expired (410) and the informer relisted"
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_relist_after_compaction_loses_no_update(
    kube: KubeClient, namespace: str, widget_crds: ControlPlane
) -> None:
    cp = widget_crds
    informer = Informer(client=kube, resource=CONFIGMAPS, namespace=namespace, backoff=fast_backoff())
    latest: dict[str, dict[str, str] | None] = {}
    tombstones: list[str] = []

    def on_delete(obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        if isinstance(obj, DeletedFinalStateUnknown):
            tombstones.append(obj.key)
        latest[unwrap_tombstone(obj)["metadata"]["name"]] = None

    informer.add_handler(
        FuncHandler(
            on_add=lambda o: latest.__setitem__(o["metadata"]["name"], o.get("data")),
            on_update=lambda _, o: latest.__setitem__(o["metadata"]["name"], o.get("data")),
            on_delete=on_delete,
        )
    )

    def cm(name: str, value: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}

    task = asyncio.create_task(informer.run())
    try:
        for i in range(10):
            await kube.create(CONFIGMAPS, cm(f"cm-{i}", "0"), namespace=namespace)
        await eventually(lambda: len(latest) == 10, what="10 configmaps cached")
        watch_rv = informer.last_sync_resource_version

        await asyncio.to_thread(cp.stop_apiserver)
        # Advance etcd's revision past the informer's resourceVersion, then compact everything before it.
        etcd_put(cp, "/runtime-test/bump", b"x")
        revision = cp.compact_etcd()
        assert revision > int(watch_rv)
        await asyncio.to_thread(cp.start_apiserver)

        # Changes right after the restart, while the informer is still reconnecting.
        for i in range(8):
            await kube.patch(CONFIGMAPS, name=f"cm-{i}", namespace=namespace, body={"data": {"v": "1"}})
        for i in (8, 9):
            await kube.delete(CONFIGMAPS, name=f"cm-{i}", namespace=namespace)
        await kube.create(CONFIGMAPS, cm("cm-new", "1"), namespace=namespace)

        want = {f"cm-{i}": {"v": "1"} for i in range(8)} | {"cm-8": None, "cm-9": None, "cm-new": {"v": "1"}}
        await eventually(lambda: latest == want, within=60, what=f"handlers saw every change: {latest}")
        listed = await kube.list(CONFIGMAPS, namespace=namespace)
        api_rvs = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listed["items"]}
        cache_rvs = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in informer.store.list()}
        assert cache_rvs == api_rvs
        assert informer.relists >= 2, "resuming the watch from a compacted revision must 410 and relist"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
