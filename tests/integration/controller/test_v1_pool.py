"""A v1 InferencePool (the Inference Extension's own CRD) on the real API server, over Pods created without a
kubelet and status-patched as a kubelet would: the Gateway's filter config follows the Pods' readiness and
labels, and the pool's ``status.parents`` says who serves it and whether its picker is supported."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from aigw.upstream import serve_in_thread
from api.filterconfig import FilterConfig
from api.inference_v1 import CONTROLLER_NAME
from controller.gateway import kinds
from tests.integration.controller.conftest import Aigw, eventually, gateway_yaml
from tests.integration.controller.manifests import docs
from tests.integration.extproc.harness import gateway_in_front, write_atomically
from tests.realparts.epp import pod_object, ready_pod_status
from tests.realparts.ports import free_port

V1 = "inference.networking.k8s.io"
LABELS = {"app": "vllm"}
WITHIN = 10.0  # generous: the membership changes are measured and reported below, and asserted under this


def v1_route(name: str, gateway: str, pool: str, *, model: str = "llama") -> str:
    return json.dumps({
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "AIGatewayRoute",
        "metadata": {"name": name},
        "spec": {
            "schema": {"name": "OpenAI"},
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway}],
            "rules": [{
                "matches": [{"headers": [{"name": "x-ai-eg-model", "value": model}]}],
                "backendRefs": [{"group": V1, "kind": "InferencePool", "name": pool}],
            }],
        },
    })  # fmt: skip


def v1_pool(name: str, *, epp: str = "envoy-ai-gateway", ports: tuple[int, ...] = (8000,)) -> str:
    return json.dumps({
        "apiVersion": f"{V1}/v1",
        "kind": "InferencePool",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": LABELS},
            "targetPorts": [{"number": p} for p in ports],
            "endpointPickerRef": {"name": epp, "port": {"number": 9002}},
        },
    })  # fmt: skip


async def create_pod(aigw: Aigw, name: str, ip: str) -> None:
    await aigw.kubectl("-n", aigw.ns, "apply", "-f", "-", input=yaml.safe_dump(
        pod_object(namespace=aigw.ns, name=name, labels=LABELS)))  # fmt: skip
    await patch_status(aigw, name, ready_pod_status(ip))


async def patch_status(aigw: Aigw, name: str, patch: dict[str, Any]) -> None:
    await aigw.kubectl("-n", aigw.ns, "patch", "pod", name, "--subresource=status", "--type=merge",
                       "-p", json.dumps(patch))  # fmt: skip


def addresses(cfg: FilterConfig, pool: str) -> list[str]:
    p = next(p for p in cfg.pools if p.name == pool)
    return [e.address for e in p.members[0].endpoints]


async def until_addresses(aigw: Aigw, pool: str, want: list[str]) -> float:
    """Seconds until the Gateway's config holds exactly ``want`` for ``pool``."""
    t0 = time.monotonic()
    await aigw.config_when("gw", lambda c: addresses(c, pool) == want, within=WITHIN)
    return time.monotonic() - t0


async def test_membership_follows_readiness_and_labels(aigw: Aigw) -> None:
    ns = aigw.ns
    pool = f"p.{ns}@v1"
    await aigw.apply(docs(gateway_yaml("gw"), v1_route("r", "gw", "p"), v1_pool("p", ports=(8000, 8001))))
    await create_pod(aigw, "a", "127.0.0.11")
    await create_pod(aigw, "b", "127.0.0.12")
    both = ["127.0.0.11:8000", "127.0.0.11:8001", "127.0.0.12:8000", "127.0.0.12:8001"]
    await aigw.config_when("gw", lambda c: addresses(c, pool) == both, within=30)
    cfg = await aigw.config("gw")
    assert cfg is not None
    assert [(r.kind, r.name) for r in cfg.rules[0].backend_refs] == [("InferencePool", pool)]
    assert next(p for p in cfg.pools if p.name == pool).serves_any_model

    timings: dict[str, float] = {}
    await patch_status(aigw, "a", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    timings["unready"] = await until_addresses(aigw, pool, both[2:])
    await patch_status(aigw, "a", ready_pod_status("127.0.0.11"))
    timings["ready again"] = await until_addresses(aigw, pool, both)
    await aigw.kubectl("-n", ns, "label", "pod", "b", "app=other", "--overwrite")
    timings["label removed"] = await until_addresses(aigw, pool, both[:2])
    await aigw.kubectl("-n", ns, "label", "pod", "b", "app=vllm", "--overwrite")
    timings["label back"] = await until_addresses(aigw, pool, both)
    await aigw.kubectl("-n", ns, "delete", "pod", "a", "--wait=false")
    timings["deleted"] = await until_addresses(aigw, pool, both[2:])
    print("v1 pool membership latency (s):", {k: round(t, 3) for k, t in timings.items()})

    async def served() -> dict[str, Any]:
        obj = await aigw.get(kinds.V1_INFERENCEPOOLS, "p")
        assert obj is not None
        (parent,) = (obj.get("status") or {}).get("parents") or [{}]
        conds = {c["type"]: (c["status"], c["reason"]) for c in parent.get("conditions") or []}
        assert conds == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}, parent
        return dict(parent)

    parent = await eventually(served, within=WITHIN)
    assert parent["controllerName"] == CONTROLLER_NAME
    assert parent["parentRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "namespace": ns, "name": "gw"}  # fmt: skip


async def test_a_missing_epp_service_is_reported_and_the_pool_not_served(aigw: Aigw) -> None:
    await aigw.apply(docs(gateway_yaml("gw"), v1_route("r", "gw", "p"), v1_pool("p", epp="vllm-epp")))
    await create_pod(aigw, "a", "127.0.0.11")

    async def pool_refused() -> bool:
        obj = await aigw.get(kinds.V1_INFERENCEPOOLS, "p")
        assert obj is not None
        (parent,) = (obj.get("status") or {}).get("parents") or [{}]
        resolved = next(c for c in parent["conditions"] if c["type"] == "ResolvedRefs")
        assert (resolved["status"], resolved["reason"]) == ("False", "InvalidExtensionRef"), resolved
        assert f"Service {aigw.ns}/vllm-epp not found" in resolved["message"], resolved
        return True

    await eventually(pool_refused, within=WITHIN)
    c = await aigw.wait_condition(kinds.AIGATEWAYROUTES, "r", "ResolvedRefs", "False", "BackendNotFound")
    assert f"InferencePool {aigw.ns}/p ({V1})" in c["message"]
    cfg = await aigw.config("gw")
    assert cfg is not None and cfg.pools == [] and cfg.rules[0].backend_refs == []


@pytest.mark.envoy
async def test_a_request_through_envoy_reaches_a_ready_pods_endpoint(aigw: Aigw, tmp_path: Path) -> None:
    """The controller's config from real Pods, served by our ext_proc behind the real Envoy: requests land on
    the ready Pod's address (a fake upstream listening at its podIP), never on the unready one, whatever the
    client's own destination header says; once the second Pod is ready, both serve."""
    port = free_port()
    ips = {"pod-a": "127.0.0.21", "pod-b": "127.0.0.22"}
    with contextlib.ExitStack() as stack:
        for name, ip in ips.items():
            stack.enter_context(serve_in_thread(name=name, host=ip, port=port))
        pool = f"p.{aigw.ns}@v1"
        await aigw.apply(docs(gateway_yaml("gw"), v1_route("r", "gw", "p"), v1_pool("p", ports=(port,))))
        await create_pod(aigw, "pod-a", ips["pod-a"])
        await create_pod(aigw, "pod-b", ips["pod-b"])
        await patch_status(aigw, "pod-b", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
        cfg = await aigw.config_when(
            "gw", lambda c: addresses(c, pool) == [f"{ips['pod-a']}:{port}"], within=30
        )
        config_path = tmp_path / "filter-config.yaml"
        write_atomically(config_path, yaml.safe_dump(cfg.to_json_dict(), sort_keys=False).encode())
        gw = gateway_in_front(stack, config_path=config_path, workdir=tmp_path, backends={})

        def served_by(n: int, headers: dict[str, str] | None = None) -> Counter[str]:
            replies = [gw.chat("llama", headers=headers) for _ in range(n)]
            assert all(r.status == 200 for r in replies), [(r.status, r.body[:200]) for r in replies]
            return Counter(r.upstream or "" for r in replies)

        spoof = {
            "x-gateway-destination-endpoint": f"{ips['pod-b']}:{port}",
            "x-ai-eg-original-dst": f"{ips['pod-b']}:{port}",
        }
        assert await asyncio.to_thread(served_by, 6, spoof) == Counter({"pod-a": 6})

        await patch_status(aigw, "pod-b", ready_pod_status(ips["pod-b"]))
        both = sorted(f"{ip}:{port}" for ip in ips.values())
        cfg = await aigw.config_when("gw", lambda c: addresses(c, pool) == both)
        await asyncio.to_thread(gw.apply, cfg.to_json_dict())
        assert set(await asyncio.to_thread(served_by, 40)) == {"pod-a", "pod-b"}


async def test_our_parent_entry_goes_with_the_route_and_others_entries_stay(aigw: Aigw) -> None:
    await aigw.apply(docs(gateway_yaml("gw"), v1_route("r", "gw", "p"), v1_pool("p")))
    other = {
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "theirs"},
        "controllerName": "example.com/another-gateway",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }  # fmt: skip

    async def controllers() -> list[str]:
        obj = await aigw.get(kinds.V1_INFERENCEPOOLS, "p")
        assert obj is not None
        return sorted(p.get("controllerName", "") for p in (obj.get("status") or {}).get("parents") or [])

    async def only(want: list[str]) -> bool:
        got = await controllers()
        assert got == want, got
        return True

    await eventually(lambda: only([CONTROLLER_NAME]), within=WITHIN)
    add_other = json.dumps([{"op": "add", "path": "/status/parents/-", "value": other}])
    await aigw.kubectl("-n", aigw.ns, "patch", f"inferencepool.{V1}", "p", "--subresource=status",
                       "--type=json", "-p", add_other)  # fmt: skip
    await aigw.delete("aigatewayroute", "r")
    await eventually(lambda: only(["example.com/another-gateway"]), within=WITHIN)


async def test_inference_objectives_follow_into_the_pools_config(aigw: Aigw) -> None:
    ns = aigw.ns
    pool = f"p.{ns}@v1"
    await aigw.apply(docs(gateway_yaml("gw"), v1_route("r", "gw", "p"), v1_pool("p")))
    await create_pod(aigw, "a", "127.0.0.11")

    def objective(name: str, priority: int) -> str:
        return json.dumps({
            "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
            "kind": "InferenceObjective",
            "metadata": {"name": name},
            "spec": {"priority": priority, "poolRef": {"group": V1, "name": "p"}},
        })  # fmt: skip

    def objectives(cfg: FilterConfig) -> list[tuple[str, int]]:
        return [(o.name, o.priority) for o in next(p for p in cfg.pools if p.name == pool).objectives]

    await aigw.apply(docs(objective("batch", -1), objective("chat", 5)))
    await aigw.config_when("gw", lambda c: objectives(c) == [("batch", -1), ("chat", 5)], within=WITHIN)
    await aigw.kubectl("-n", ns, "patch", "inferenceobjective", "chat", "--type=merge",
                       "-p", json.dumps({"spec": {"priority": -2}}))  # fmt: skip
    await aigw.config_when("gw", lambda c: objectives(c) == [("batch", -1), ("chat", -2)], within=WITHIN)
    await aigw.delete("inferenceobjective", "batch")
    await aigw.config_when("gw", lambda c: objectives(c) == [("chat", -2)], within=WITHIN)
