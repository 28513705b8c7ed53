"""A controller against the real API server: it sees create, update and delete, for a namespaced CRD, a
cluster-scoped CRD and a core kind, and map-func handlers enqueue the keys of other kinds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controller.runtime import (
    CONFIGMAPS,
    Controller,
    EnqueueRequestsFromMapFunc,
    Informer,
    KubeClient,
    Request,
    Result,
)
from tests.integration.runtime.conftest import CLUSTER_WIDGETS, WIDGETS, eventually, widget

pytestmark = pytest.mark.timeout(90)


@contextlib.asynccontextmanager
async def running(*runnables: Any) -> AsyncIterator[None]:
    """Run informers' and controllers' loops for the duration of the block."""
    tasks = [asyncio.create_task(r.run() if isinstance(r, Informer) else r.start()) for r in runnables]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, Exception):
                raise r


class Recorder:
    """A reconciler that records what it saw in the cache for each request."""

    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self.seen: list[tuple[str, Any]] = []

    async def reconcile(self, req: Request) -> Result | None:
        obj = self.informer.store.get(req.key)
        self.seen.append((req.key, None if obj is None else obj.get("spec")))
        return None

    def last(self, key: str) -> Any:
        return next((spec for k, spec in reversed(self.seen) if k == key), "never reconciled")


async def test_controller_sees_create_update_delete(kube: KubeClient, namespace: str) -> None:
    informer = Informer(client=kube, resource=WIDGETS, namespace=namespace)
    rec = Recorder(informer)
    ctrl = Controller(name="widgets", reconcile=rec.reconcile)
    ctrl.watch(informer)
    key = f"{namespace}/w1"
    async with running(informer, ctrl):
        assert await informer.wait_for_sync(within=30)
        await kube.create(WIDGETS, widget("w1", namespace, size=1))
        await eventually(lambda: rec.last(key) == {"size": 1}, what="create reconciled")
        await kube.patch(WIDGETS, name="w1", namespace=namespace, body={"spec": {"size": 2}})
        await eventually(lambda: rec.last(key) == {"size": 2}, what="update reconciled")
        await kube.delete(WIDGETS, name="w1", namespace=namespace)
        await eventually(lambda: rec.last(key) is None, what="delete reconciled (object gone from cache)")


async def test_cluster_scoped_kind(kube: KubeClient, namespace: str) -> None:
    name = f"cw-{namespace}"
    informer = Informer(client=kube, resource=CLUSTER_WIDGETS)
    rec = Recorder(informer)
    ctrl = Controller(name="clusterwidgets", reconcile=rec.reconcile)
    ctrl.watch(informer)
    async with running(informer, ctrl):
        obj = {"apiVersion": CLUSTER_WIDGETS.api_version, "kind": "ClusterWidget", "metadata": {"name": name}}
        await kube.create(CLUSTER_WIDGETS, {**obj, "spec": {"a": 1}})
        await eventually(lambda: rec.last(name) == {"a": 1}, what="cluster-scoped create")
        assert Request(namespace="", name=name).key == name
        await kube.delete(CLUSTER_WIDGETS, name=name)
        await eventually(lambda: rec.last(name) is None, what="cluster-scoped delete")


async def test_map_func_enqueues_referencing_objects(kube: KubeClient, namespace: str) -> None:
    """A ConfigMap change reconciles the Widgets whose spec names it, found through a cache index."""
    widgets = Informer(client=kube, resource=WIDGETS, namespace=namespace)
    widgets.add_indexer("configMap", lambda o: [o.get("spec", {}).get("configMap", "")])
    configmaps = Informer(client=kube, resource=CONFIGMAPS, namespace=namespace)
    reconciled: list[str] = []

    async def reconcile(req: Request) -> None:
        reconciled.append(req.key)

    def widgets_for(cm: dict[str, Any]) -> list[Request]:
        return [Request.for_object(w) for w in widgets.store.by_index("configMap", cm["metadata"]["name"])]

    ctrl = Controller(name="widgets-by-cm", reconcile=reconcile)
    ctrl.watch(widgets)
    ctrl.watch(configmaps, EnqueueRequestsFromMapFunc(widgets_for))
    async with running(widgets, configmaps, ctrl):
        await kube.create(WIDGETS, widget("uses-a", namespace, configMap="cm-a"))
        await kube.create(WIDGETS, widget("uses-b", namespace, configMap="cm-b"))
        await eventually(lambda: len(widgets.store.list()) == 2, what="widgets cached")
        await eventually(lambda: len(reconciled) >= 2, what="widgets reconciled once")
        reconciled.clear()
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-a"}, "data": {"k": "v"}}
        await kube.create(CONFIGMAPS, cm, namespace=namespace)
        await eventually(lambda: f"{namespace}/uses-a" in reconciled, what="configmap maps to its widget")
        await asyncio.sleep(0.5)
        assert f"{namespace}/uses-b" not in reconciled
