"""No HTTPRoute of ours reaches a Gateway whose ext_proc is not attached (real API server).

Without the ext_proc, our HTTPRoutes would let clients pick a backend with the
``x-ai-eg-selected-backend`` header. So an HTTPRoute is attached to a Gateway only once the Gateway's
EnvoyExtensionPolicy is in place: the API server stored it as we built it (``failOpen: false`` explicit), and
Envoy Gateway has not refused it. Envoy Gateway's verdict is read back from the policy's
``status.ancestors``; here the test writes it, as Envoy Gateway does (``tests/e2e`` runs the real one).
"""

from __future__ import annotations

import json
from typing import Any

from controller.gateway import kinds
from controller.translate import extproc_name
from tests.integration.controller.conftest import Aigw, deny_admission, eventually, gateway_yaml
from tests.integration.controller.manifests import backend, docs, route, service

EG_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"


async def write_eg_status(aigw: Aigw, gateway: str, status: str, reason: str, message: str) -> None:
    """Write the policy's ``status.ancestors`` as Envoy Gateway v1.9.0 does (one ancestor per Gateway)."""
    name = extproc_name(gateway)
    obj = await aigw.get(kinds.ENVOYEXTENSIONPOLICIES, name)
    assert obj is not None
    cond = {
        "type": "Accepted", "status": status, "reason": reason, "message": message,
        "observedGeneration": obj["metadata"]["generation"], "lastTransitionTime": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    ancestor = {
        "ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway,
                        "namespace": aigw.ns},
        "controllerName": EG_CONTROLLER,
        "conditions": [cond],
    }  # fmt: skip
    await aigw.kube.patch(
        kinds.ENVOYEXTENSIONPOLICIES,
        name=name,
        namespace=aigw.ns,
        body={"status": {"ancestors": [ancestor]}},
        subresource="status",
    )


async def parent_gateways(aigw: Aigw, name: str) -> list[str] | None:
    hr = await aigw.get(kinds.HTTPROUTES, name)
    return None if hr is None else sorted(p["name"] for p in hr["spec"]["parentRefs"])


async def test_the_policy_fails_closed_explicitly(aigw: Aigw) -> None:
    await aigw.apply(docs(gateway_yaml("gw"), service("s"), backend("b", service="s"), route("r", "gw", "b")))

    async def policy() -> dict[str, Any]:
        obj = await aigw.get(kinds.ENVOYEXTENSIONPOLICIES, extproc_name("gw"))
        assert obj is not None
        return obj

    eep = await eventually(policy)
    # (the CRD defaults it to false too: tests/unit/controller/test_trust.py checks that we set it)
    assert eep["spec"]["extProc"][0]["failOpen"] is False


async def test_no_http_route_while_the_api_server_refuses_the_policy(aigw: Aigw) -> None:
    eep_spec = {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}],
        "extProc": [{"backendRefs": [{"name": "x", "port": 1063}]}],
    }
    policy = await deny_admission(
        aigw,
        group="gateway.envoyproxy.io",
        kind="EnvoyExtensionPolicy",
        name=extproc_name("gw"),
        spec=eep_spec,
    )
    await aigw.apply(docs(gateway_yaml("gw"), service("s"), backend("b", service="s"), route("r", "gw", "b")))
    c = await aigw.wait_condition(
        kinds.AIGATEWAYROUTES, "r", "Accepted", "False", "ExtensionPolicyNotAccepted"
    )
    assert f"EnvoyExtensionPolicy {aigw.ns}/{extproc_name('gw')}" in c["message"], c
    assert "refused by the test's admission policy" in c["message"], c
    await aigw.config_when("gw", lambda cfg: len(cfg.rules) == 1)  # everything else of the Gateway is there
    assert await aigw.get(kinds.HTTPROUTES, "r") is None
    assert await aigw.get(kinds.ENVOYEXTENSIONPOLICIES, extproc_name("gw")) is None

    await aigw.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", policy)
    # a change of the route brings the reconcile back at once (a rejection is otherwise retried after 60 s);
    # the API server drops the admission policy asynchronously, so touch it until the policy is stored
    doc = json.loads(route("r", "gw", "b"))
    touches = iter(range(1000))

    async def attached() -> bool:
        doc["metadata"]["labels"] = {"touch": str(next(touches))}
        await aigw.apply(json.dumps(doc))
        return await parent_gateways(aigw, "r") == ["gw"]

    await eventually(attached, within=40, interval=1.0)
    await aigw.wait_condition(kinds.AIGATEWAYROUTES, "r", "Accepted", "True")


async def test_envoy_gateways_verdict_on_the_policy_gates_the_http_route(aigw: Aigw) -> None:
    await aigw.apply(docs(
        gateway_yaml("g1"), gateway_yaml("g2"), service("s"), backend("b", service="s"),
        route("r", "g1", "b"),
    ))  # fmt: skip
    two = json.loads(route("r", "g1", "b"))
    two["spec"]["targetRefs"].append({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "g2"})
    await aigw.apply(json.dumps(two))

    async def both() -> bool:
        return await parent_gateways(aigw, "r") == ["g1", "g2"]

    await eventually(both)
    await write_eg_status(aigw, "g1", "True", "Accepted", "Policy has been accepted.")
    await write_eg_status(aigw, "g2", "False", "Invalid", "ExtProc: backend not found.")
    c = await aigw.wait_condition(
        kinds.AIGATEWAYROUTES, "r", "Accepted", "False", "ExtensionPolicyNotAccepted"
    )
    assert "ExtProc: backend not found." in c["message"] and f"{aigw.ns}/g2" in c["message"], c

    # served on g1 only, where the ext_proc is attached
    async def only_g1() -> bool:
        return await parent_gateways(aigw, "r") == ["g1"]

    await eventually(only_g1)
    evs = await aigw.events("r")
    assert any(e["reason"] == "ExtensionPolicyNotAccepted" and e["type"] == "Warning" for e in evs), evs

    # Envoy Gateway accepts it: back on both
    await write_eg_status(aigw, "g2", "True", "Accepted", "Policy has been accepted.")
    await eventually(both)
    await aigw.wait_condition(kinds.AIGATEWAYROUTES, "r", "Accepted", "True")

    # refused on its only Gateway: the HTTPRoute goes
    await aigw.apply(route("r", "g1", "b"))
    await write_eg_status(aigw, "g1", "False", "Invalid", "ExtProc: service port not found.")

    async def gone() -> bool:
        return await aigw.get(kinds.HTTPROUTES, "r") is None

    await eventually(gone)
