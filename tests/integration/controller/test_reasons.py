"""Every condition reason, produced by a test object and read back the way a user reads it: with
``kubectl describe`` (the condition, and the Warning Event with the same reason)."""

from __future__ import annotations

import json
import re

from controller.gateway import kinds
from controller.runtime import Resource
from tests.integration.controller.conftest import Aigw, deny_admission, eventually, gateway_yaml
from tests.integration.controller.manifests import (
    api_key_policy,
    backend,
    docs,
    model,
    pool,
    route,
    service,
)


def dynamic_module_route(name: str, gateway: str, ref: str) -> str:
    doc = json.loads(route(name, gateway, ref))
    doc["spec"]["filterConfig"] = {"type": "DynamicModule"}
    return json.dumps(doc)


def model_with_pool_kind(name: str, kind: str) -> str:
    doc = json.loads(model(name, "x", "p-ok"))
    doc["spec"]["poolRef"]["kind"] = kind
    return json.dumps(doc)


CASES: list[tuple[Resource, str, str, str]] = [
    # (resource, name, condition type, reason)
    (kinds.AIGATEWAYROUTES, "r-missing", "ResolvedRefs", "BackendNotFound"),
    (kinds.AIGATEWAYROUTES, "r-nogw", "Accepted", "NoMatchingParent"),
    (kinds.AIGATEWAYROUTES, "r-dyn", "Accepted", "UnsupportedValue"),
    (kinds.AISERVICEBACKENDS, "b-nosvc", "ResolvedRefs", "BackendNotFound"),
    (kinds.AISERVICEBACKENDS, "b-nobsp", "ResolvedRefs", "SecurityPolicyNotFound"),
    (kinds.AISERVICEBACKENDS, "b-nosecret", "ResolvedRefs", "SecretNotFound"),
    (kinds.BACKENDSECURITYPOLICIES, "p-nosecret", "ResolvedRefs", "SecretNotFound"),
    (kinds.INFERENCEPOOLS, "p-ext", "ResolvedRefs", "InvalidExtensionRef"),
    (kinds.INFERENCEPOOLS, "p-port", "ResolvedRefs", "PortMismatch"),
    (kinds.INFERENCEPOOLS, "p-dns", "ResolvedRefs", "DNSResolutionFailed"),
    (kinds.INFERENCEMODELS, "m-young", "Accepted", "ModelNameInUse"),
    (kinds.INFERENCEMODELS, "m-nopool", "Accepted", "PoolNotFound"),
    (kinds.INFERENCEMODELS, "m-kind", "Accepted", "InvalidKind"),
]


async def test_every_reason_is_visible_in_kubectl_describe(aigw: Aigw) -> None:
    ns = aigw.ns
    aigw.dns.set_records({f"s-ok.{ns}.svc.cluster.local": ["10.6.0.1"]})
    await aigw.apply(docs(
        gateway_yaml("gw"), service("s-ok"), service("s-port", 9999),
        backend("b-ok", service="s-ok", labels={"pool": "ok"}),
        route("r-missing", "gw", "ghost"),
        route("r-nogw", "nope", "b-ok"),
        dynamic_module_route("r-dyn", "gw", "b-ok"),
        backend("b-nosvc", service="s-none"),
        backend("b-nobsp", service="s-ok", bsp="bsp-none"),
        api_key_policy("p-nosecret", "secret-none"),
        backend("b-nosecret", service="s-ok", bsp="p-nosecret"),
        pool("p-ok", {"pool": "ok"}),
        pool("p-ext", {"pool": "ok"}, ext="someone-elses-epp"),
        backend("b-port", service="s-port", labels={"pool": "port"}), pool("p-port", {"pool": "port"}),
        backend("b-dns", service="s-unresolvable", labels={"pool": "dns"}), service("s-unresolvable"),
        pool("p-dns", {"pool": "dns"}),
        route("r-pools", "gw", pool="p-ok"),
        route("r-pools-2", "gw", "b-ok"),
    ))  # fmt: skip
    # Models: the older one keeps the name. Created one after the other so that their ages differ.
    await aigw.apply(model("m-old", "llama", "p-ok"))
    await aigw.wait_condition(kinds.INFERENCEMODELS, "m-old", "Accepted", "True")
    await aigw.apply(
        docs(
            model("m-young", "llama", "p-ok"),
            model("m-nopool", "x", "p-none"),
            model_with_pool_kind("m-kind", "Service"),
        )
    )
    # Pools are only reported for Gateways that reach them.
    for p in ("p-ext", "p-port", "p-dns"):
        await aigw.apply(route(f"r-{p}", "gw", pool=p))

    for res, name, typ, reason in CASES:
        parent = 0 if res is kinds.INFERENCEPOOLS else None
        cond = await aigw.wait_condition(res, name, typ, "False", reason, parent=parent, within=30)
        assert cond["message"], f"{res.kind} {name}: empty message"
        assert cond["observedGeneration"] == 1

        async def described(res: Resource = res, name: str = name, reason: str = reason) -> str:
            out = await aigw.kubectl("-n", ns, "describe", f"{res.plural}.{res.group}", name)
            status, events = out.split("Events:", 1)
            assert re.search(rf"Reason:\s+{reason}\n", status), out
            assert re.search(rf"Warning\s+{reason}\s", events), out
            return out

        out = await eventually(described, within=20)
        assert "Events:" in out
    # the messages name what is wrong
    c = await aigw.condition(kinds.INFERENCEMODELS, "m-nopool", "Accepted")
    assert c is not None and f"InferencePool {ns}/p-none not found" in c["message"]
    c = await aigw.condition(kinds.INFERENCEPOOLS, "p-port", "ResolvedRefs", parent=0)
    assert c is not None and f"Service {ns}/s-port has no port 8080 (ports: 9999)" in c["message"]
    c = await aigw.condition(kinds.INFERENCEMODELS, "m-young", "Accepted")
    assert c is not None and f"InferenceModel {ns}/m-old" in c["message"]
    out = await aigw.kubectl("-n", ns, "get", "aiservicebackends")
    assert "b-nosvc" in out


async def test_an_object_the_api_server_refuses_is_reported_and_the_rest_still_applies(aigw: Aigw) -> None:
    await deny_admission(aigw, group="gateway.networking.k8s.io", kind="HTTPRoute", name="refused")
    await aigw.apply(docs(gateway_yaml("gw"), service("s"), backend("b", service="s"),
                          route("refused", "gw", "b"), route("fine", "gw", "b")))  # fmt: skip
    cfg = await aigw.config_when("gw", lambda c: len(c.rules) == 2)
    assert {r.route for r in cfg.rules} == {f"{aigw.ns}/refused", f"{aigw.ns}/fine"}

    async def reported() -> bool:
        evs = await aigw.events("refused")
        return any(e["reason"] == "ApplyRejected" and "refused by the test's admission policy" in e["message"]
                   for e in evs)  # fmt: skip

    await eventually(reported, within=30)
    assert await aigw.get(kinds.HTTPROUTES, "fine") is not None
    assert await aigw.get(kinds.HTTPROUTES, "refused") is None
    assert aigw.reconciler.metrics.apply_rejections.labels("HTTPRoute")._value.get() >= 1


def route_with_costs(name: str, gateway: str, ref: str, costs: list[dict[str, str]]) -> str:
    doc = json.loads(route(name, gateway, ref))
    doc["spec"]["llmRequestCosts"] = costs
    return json.dumps(doc)


def azure_policy(name: str) -> str:
    return json.dumps({
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1", "kind": "BackendSecurityPolicy",
        "metadata": {"name": name},
        "spec": {"type": "AzureCredentials",
                 "azureCredentials": {"clientID": "c", "tenantID": "t", "clientSecretRef": {"name": "s"}}},
    })  # fmt: skip


async def test_a_bad_cel_cost_and_a_policy_without_its_client_secret_are_told_in_kubectl_describe(
    aigw: Aigw,
) -> None:
    ns = aigw.ns
    good = {"metadataKey": "weighted", "type": "CEL", "cel": "input_tokens * 3 + output_tokens"}
    bad = {"metadataKey": "broken", "type": "CEL", "cel": "input_tokens * (2"}
    await aigw.apply(docs(
        gateway_yaml("gw"), service("s-ok"), backend("b-ok", service="s-ok"),
        route_with_costs("r-cel", "gw", "b-ok", [good, bad]),
        azure_policy("p-azure"),
    ))  # fmt: skip
    cond = await aigw.wait_condition(
        kinds.AIGATEWAYROUTES, "r-cel", "PartiallyInvalid", "True", "InvalidCostExpression", within=30
    )
    assert "llmRequestCosts[1] (broken)" in cond["message"] and "Syntax error" in cond["message"]
    await aigw.config_when("gw", lambda c: [x.metadata_key for x in c.llm_request_costs] == ["weighted"])
    await aigw.wait_condition(
        kinds.BACKENDSECURITYPOLICIES, "p-azure", "CredentialsRotated", "False", "InvalidReference"
    )

    async def described() -> str:
        out = await aigw.kubectl("-n", ns, "describe", "aigatewayroutes.aigateway.envoyproxy.io", "r-cel")
        status, events = out.split("Events:", 1)
        assert re.search(r"Reason:\s+InvalidCostExpression\n", status), out
        assert re.search(r"Warning\s+InvalidCostExpression\s", events), out
        out = await aigw.kubectl(
            "-n", ns, "describe", "backendsecuritypolicies.aigateway.envoyproxy.io", "p-azure"
        )
        assert re.search(r"Reason:\s+InvalidReference\n", out), out
        assert f"cannot issue credentials: Secret {ns}/s not found" in out, out
        return out

    await eventually(described, within=20)
    # fixed: the condition turns False, and the cost reaches the config
    await aigw.apply(route_with_costs("r-cel", "gw", "b-ok", [good, {**bad, "cel": "input_tokens * 2"}]))
    await aigw.wait_condition(kinds.AIGATEWAYROUTES, "r-cel", "PartiallyInvalid", "False", "Valid", within=30)
    await aigw.config_when(
        "gw", lambda c: [x.metadata_key for x in c.llm_request_costs] == ["weighted", "broken"]
    )
