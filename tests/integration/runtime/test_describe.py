"""A reconciler run by a Manager writes a condition (status subresource) and an Event; ``kubectl describe``
shows both. A second reconcile keeps ``lastTransitionTime`` and bumps the Event's count (no second Event)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest

from controller.runtime import (
    TRUE,
    KubeClient,
    Manager,
    Request,
    find_status_condition,
    new_condition,
    set_status_condition,
)
from tests.integration.runtime.conftest import WIDGETS, eventually, widget
from tests.realparts.controlplane import ControlPlane

pytestmark = pytest.mark.timeout(120)


async def test_condition_and_event_show_in_kubectl_describe(
    kube: KubeClient, namespace: str, widget_crds: ControlPlane
) -> None:
    mgr = Manager(api_client=kube.api_client, health_port=None)
    widgets = mgr.informer(WIDGETS, namespace=namespace)
    events = mgr.event_recorder("widget-controller")
    reconciles = 0

    async def reconcile(req: Request) -> None:
        nonlocal reconciles
        obj = widgets.store.get(req.key)
        if obj is None:
            return
        generation = obj["metadata"]["generation"]

        def mark_ready(status: dict[str, object]) -> None:
            conditions = status.setdefault("conditions", [])
            assert isinstance(conditions, list)
            set_status_condition(
                conditions,
                new_condition(
                    type="Ready",
                    status=TRUE,
                    reason="Reconciled",
                    message=f"size is {obj['spec'].get('size')}",
                    observed_generation=generation,
                ),
            )
            status["observedGeneration"] = generation

        written = await mgr.status.update(WIDGETS, obj, mark_ready)
        if written is not None:
            events.normal(obj, "Reconciled", "the widget is ready")
        reconciles += 1

    ctrl = mgr.new_controller(name="widget", reconcile=reconcile)
    ctrl.watch(widgets)
    run = asyncio.create_task(mgr.run())
    try:

        def ready_says(message: str) -> Callable[[], Awaitable[bool]]:
            """Whether w1's Ready condition carries ``message`` (false while it has none)."""

            async def check() -> bool:
                obj = await kube.get(WIDGETS, name="w1", namespace=namespace)
                cond = find_status_condition(obj.get("status", {}).get("conditions", []), "Ready")
                return cond is not None and cond["message"] == message

            return check

        await kube.create(WIDGETS, widget("w1", namespace, size=1))
        await eventually(ready_says("size is 1"), what="Ready condition written")
        await events.flush()
        first = await kube.get(WIDGETS, name="w1", namespace=namespace)
        first_ltt = first["status"]["conditions"][0]["lastTransitionTime"]

        out = widget_crds.kubectl("describe", "widget", "w1", "-n", namespace).stdout
        status_part, events_part = out.split("Status:", 1)[1].split("Events:", 1)
        for field in ("Last Transition Time", "Message", "Observed Generation", "Reason", "Status", "Type"):
            assert re.search(rf"^\s+{field}:", status_part, re.M), out
        assert re.search(r"^\s+Type:\s+Ready$", status_part, re.M), out
        assert re.search(r"^\s+Reason:\s+Reconciled$", status_part, re.M), out
        assert re.search(r"^\s+Message:\s+size is 1$", status_part, re.M), out
        row = r"^\s+Normal\s+Reconciled\s+\S+\s+widget-controller\s+the widget is ready$"
        assert re.search(row, events_part, re.M), out

        # A spec change: the condition's message changes, its status does not, so lastTransitionTime stays.
        await asyncio.sleep(1.1)  # so that a wrongly moved timestamp would differ at second precision
        await kube.patch(WIDGETS, name="w1", namespace=namespace, body={"spec": {"size": 2}})
        await eventually(ready_says("size is 2"), what="condition updated")
        await events.flush()
        second = await kube.get(WIDGETS, name="w1", namespace=namespace)
        assert second["status"]["conditions"][0]["lastTransitionTime"] == first_ltt
        assert second["status"]["observedGeneration"] == 2
        assert second["status"]["conditions"][0]["observedGeneration"] == 2
        out = widget_crds.kubectl("describe", "widget", "w1", "-n", namespace).stdout
        assert "(x2 over" in out.split("Events:", 1)[1], out  # one Event, count 2
        listed = widget_crds.kubectl("get", "events", "-n", namespace, "-o", "name").stdout.split()
        assert len(listed) == 1, listed
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
