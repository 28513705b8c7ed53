"""Status rules on the real API server: InferencePool ``status.parent`` follows the Gateways that reach the
pool, ``lastTransitionTime`` moves only with the status, the InferenceModel CRD's placeholder goes."""

from __future__ import annotations

import asyncio

from controller.gateway import kinds
from tests.integration.controller.conftest import Aigw, eventually, gateway_yaml
from tests.integration.controller.manifests import backend, docs, model, pool, route, service


async def parents(aigw: Aigw, name: str) -> list[str]:
    obj = await aigw.get(kinds.INFERENCEPOOLS, name)
    assert obj is not None
    return sorted(p["parentRef"]["name"] for p in (obj.get("status") or {}).get("parent") or [])


async def test_pool_parents_follow_the_routes(aigw: Aigw) -> None:
    ns = aigw.ns
    aigw.dns.set_records({f"m.{ns}.svc.cluster.local": ["10.8.0.1"]})
    await aigw.apply(docs(
        gateway_yaml("g1"), gateway_yaml("g2"), service("m"), backend("m", labels={"app": "m"}),
        service("s"), backend("b", service="s"), pool("p", {"app": "m"}), model("mod", "llama", "p"),
        route("r1", "g1", pool="p"), route("r2", "g2", pool="p"),
    ))  # fmt: skip

    async def both() -> bool:
        return await parents(aigw, "p") == ["g1", "g2"]

    await eventually(both)
    for i in range(2):
        await aigw.wait_condition(kinds.INFERENCEPOOLS, "p", "Accepted", "True", parent=i)
        await aigw.wait_condition(kinds.INFERENCEPOOLS, "p", "ResolvedRefs", "True", parent=i)
    before = await aigw.condition(kinds.INFERENCEPOOLS, "p", "Accepted", parent=0)
    assert before is not None

    # r2 stops using the pool: only g1 reaches it (g1's own reconcile is not triggered by r2)
    await aigw.apply(route("r2", "g2", "b"))

    async def only_g1() -> bool:
        return await parents(aigw, "p") == ["g1"]

    await eventually(only_g1)
    after = await aigw.condition(kinds.INFERENCEPOOLS, "p", "Accepted", parent=0)
    assert after is not None and after["lastTransitionTime"] == before["lastTransitionTime"]

    # the model's CRD default (type Ready, reason Pending) is replaced by our Accepted
    obj = await aigw.get(kinds.INFERENCEMODELS, "mod")
    assert obj is not None
    assert [c["type"] for c in obj["status"]["conditions"]] == ["Accepted"]

    # the last route goes: the pool has no parent left
    await aigw.delete("aigatewayroute", "r1")

    async def none() -> bool:
        return await parents(aigw, "p") == []

    await eventually(none)


async def test_last_transition_time_moves_only_with_the_status(aigw: Aigw) -> None:
    await aigw.apply(docs(gateway_yaml("gw"), service("s"), backend("b", service="s"), route("r", "gw", "b")))
    first = await aigw.wait_condition(kinds.AIGATEWAYROUTES, "r", "ResolvedRefs", "True")
    await asyncio.sleep(1.1)  # timestamps have second precision
    await aigw.apply(route("r", "gw", "b", header=("x-ai-eg-model", "m")))  # generation 2, still resolved

    async def regenerated() -> dict[str, object]:
        c = await aigw.condition(kinds.AIGATEWAYROUTES, "r", "ResolvedRefs")
        assert c is not None and c["observedGeneration"] == 2, c
        return c

    second = await eventually(regenerated)
    assert second["lastTransitionTime"] == first["lastTransitionTime"]
    await aigw.apply(route("r", "gw", "missing"))
    third = await aigw.wait_condition(kinds.AIGATEWAYROUTES, "r", "ResolvedRefs", "False", "BackendNotFound")
    assert third["lastTransitionTime"] != first["lastTransitionTime"]
    assert third["observedGeneration"] == 3
