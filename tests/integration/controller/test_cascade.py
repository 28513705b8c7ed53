"""Changes to every kind cascade to the right Gateway's ConfigMap, and only to it (real API server)."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from api.filterconfig import APISchemaName, Criticality, FilterConfig
from controller.gateway import kinds
from controller.runtime import CONFIGMAPS, DEPLOYMENTS, SECRETS, SERVICES, Request, Resource
from controller.translate import extproc_name
from tests.integration.controller.conftest import Aigw, eventually, gateway_yaml
from tests.integration.controller.manifests import (
    api_key_policy,
    backend,
    docs,
    eg_backend,
    model,
    pool,
    route,
    secret,
    service,
)


def writes(aigw: Aigw) -> dict[str, float]:
    return {
        f"{s.labels['kind']}/{s.labels['verb']}": s.value
        for m in aigw.reconciler.metrics.writes.collect()
        for s in m.samples
    }


async def rv(aigw: Aigw, resource: object, name: str) -> str:
    obj = await aigw.get(resource, name)  # type: ignore[arg-type]
    assert obj is not None
    return str(obj["metadata"]["resourceVersion"])


def host(aigw: Aigw, svc: str) -> str:
    return f"{svc}.{aigw.ns}.svc.cluster.local"


async def test_two_routes_on_one_gateway_share_one_config_and_two_gateways_get_two(aigw: Aigw) -> None:
    ns = aigw.ns
    await aigw.apply(docs(
        gateway_yaml("gw-a"), gateway_yaml("gw-b"), service("s1"), service("s2"),
        backend("b1", service="s1"), backend("b2", service="s2"),
        route("r1", "gw-a", "b1", header=("x-ai-eg-model", "m1")),
        route("r2", "gw-a", "b2", header=("x-ai-eg-model", "m2")),
        route("r3", "gw-b", "b2"),
    ))  # fmt: skip
    # level-triggered: a config may first hold a rule whose backend's Service is not cached yet
    a = await aigw.config_when("gw-a", lambda c: len(c.rules) == 2 and len(c.backends) == 2)
    assert sorted(r.route for r in a.rules) == [f"{ns}/r1", f"{ns}/r2"]
    assert [b.name for b in a.backends] == [f"b1.{ns}", f"b2.{ns}"]
    b = await aigw.config_when("gw-b", lambda c: len(c.rules) == 1)
    assert b.rules[0].route == f"{ns}/r3" and b.gateway == f"{ns}/gw-b"

    async def present(res: Resource, name: str) -> dict[str, Any]:
        obj = await aigw.get(res, name)
        assert obj is not None, f"{res.kind} {name} not there yet"
        return obj

    # The ConfigMap is applied first; the other objects of the same reconcile follow.
    hr = await eventually(functools.partial(present, kinds.HTTPROUTES, "r1"))
    assert hr["spec"]["parentRefs"][0]["name"] == "gw-a"
    assert hr["spec"]["rules"][0]["matches"][0]["headers"][0]["value"] == f"b1.{ns}"
    assert hr["metadata"]["ownerReferences"][0]["kind"] == "AIGatewayRoute"
    eep = await eventually(functools.partial(present, kinds.ENVOYEXTENSIONPOLICIES, extproc_name("gw-a")))
    assert eep["spec"]["targetRefs"][0]["name"] == "gw-a"
    dep = await eventually(functools.partial(present, DEPLOYMENTS, extproc_name("gw-a")))
    assert dep["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == extproc_name("gw-a")
    await eventually(functools.partial(present, SERVICES, extproc_name("gw-a")))
    await eventually(functools.partial(present, kinds.HTTPROUTEFILTERS, "ai-eg-host-rewrite"))


async def test_each_kind_cascades_to_its_gateway_only(aigw: Aigw) -> None:
    ns = aigw.ns
    aigw.dns.set_records({host(aigw, "ms"): ["10.2.0.1"]})
    await aigw.apply(docs(
        gateway_yaml("gw-a"), gateway_yaml("gw-b"),
        service("sa"), service("sb"), service("ms"),
        secret("ka", apiKey="k1"), secret("ka2", apiKey="k2"), api_key_policy("pa", "ka"),
        backend("ba", service="sa", bsp="pa"), backend("bb", service="sb"),
        backend("ma", service="ms", labels={"app": "a"}),
        pool("pool-a", {"app": "a"}), model("mod-a", "llama", "pool-a"),
        route("ra", "gw-a", "ba", pool="pool-a", header=("x-ai-eg-model", "v1")),
        route("rb", "gw-b", "bb"),
    ))  # fmt: skip
    await aigw.config_when("gw-a", lambda c: len(c.pools) == 1 and len(c.pools[0].members) == 1)
    await aigw.config_when("gw-b", lambda c: len(c.backends) == 1)
    b_rv = await rv(aigw, CONFIGMAPS, extproc_name("gw-b"))

    def auth_file(c: FilterConfig) -> str | None:
        auth = c.backends[0].auth
        return auth.api_key.filename if auth and auth.api_key else None

    # AIGatewayRoute
    await aigw.apply(route("ra", "gw-a", "ba", pool="pool-a", header=("x-ai-eg-model", "v2")))
    await aigw.config_when("gw-a", lambda c: c.rules[0].matches[0].headers[0].value == "v2")
    # AIServiceBackend
    await aigw.apply(backend("ba", service="sa", bsp="pa", schema="AzureOpenAI"))
    await aigw.config_when("gw-a", lambda c: c.backends[0].schema_.name == APISchemaName.AZURE_OPENAI)
    # BackendSecurityPolicy
    await aigw.apply(api_key_policy("pa", "ka2"))
    await aigw.config_when("gw-a", lambda c: auth_file(c) == f"/etc/ai-gateway/auth/{ns}.ka2.apiKey")
    # Secret: the credentials are copied into the Gateway's auth Secret (the config only names the file)
    await aigw.apply(secret("ka2", apiKey="rotated"))

    async def rotated() -> bool:
        s = await aigw.get(SECRETS, extproc_name("gw-a"))
        return s is not None and s["data"].get(f"{ns}.ka2.apiKey") == "cm90YXRlZA=="

    await eventually(rotated)
    # InferenceModel
    await aigw.apply(model("mod-a", "llama", "pool-a", criticality="Critical"))
    await aigw.config_when("gw-a", lambda c: c.pools[0].models[0].criticality == Criticality.CRITICAL)
    # Service: the pool's target port disappears
    await aigw.apply(service("ms", 9000))
    await aigw.config_when("gw-a", lambda c: c.pools[0].members == [])
    await aigw.wait_condition(
        kinds.INFERENCEPOOLS, "pool-a", "ResolvedRefs", "False", "PortMismatch", parent=0
    )
    # InferencePool: the target port follows (with the backend's port)
    await aigw.apply(
        docs(
            pool("pool-a", {"app": "a"}, port=9000),
            backend("ma", service="ms", port=9000, labels={"app": "a"}),
        )
    )
    await aigw.config_when(
        "gw-a", lambda c: [e.port for m in c.pools[0].members for e in m.endpoints] == [9000]
    )
    # EG Backend
    await aigw.apply(
        docs(
            eg_backend("eb", ("ip", "192.0.2.10", 9000)), backend("mb", eg_backend="eb", labels={"app": "a"})
        )
    )
    await aigw.config_when("gw-a", lambda c: len(c.pools[0].members) == 2)
    await aigw.apply(eg_backend("eb", ("ip", "192.0.2.11", 9000)))
    await aigw.config_when(
        "gw-a", lambda c: any(e.ip == "192.0.2.11" for m in c.pools[0].members for e in m.endpoints)
    )
    assert await rv(aigw, CONFIGMAPS, extproc_name("gw-b")) == b_rv


async def test_pool_selector_starts_matching_a_new_backend(aigw: Aigw) -> None:
    aigw.dns.set_records({host(aigw, "m1"): ["10.3.0.1"], host(aigw, "m2"): ["10.3.0.2", "fd00::2"]})
    await aigw.apply(docs(
        gateway_yaml("gw"), service("m1"), service("m2"),
        backend("m1", labels={"app": "x"}), backend("m2", labels={"app": "other"}),
        pool("p", {"app": "x"}), route("r", "gw", pool="p"),
    ))  # fmt: skip
    await aigw.config_when("gw", lambda c: [m.name for m in c.pools[0].members] == [f"m1.{aigw.ns}"])
    await aigw.apply(backend("m2", labels={"app": "x"}))
    cfg = await aigw.config_when("gw", lambda c: len(c.pools[0].members) == 2)
    assert [e.ip for e in cfg.pools[0].members[1].endpoints] == ["10.3.0.2", "fd00::2"]
    # and stops matching again
    await aigw.apply(backend("m1", labels={"app": "gone"}))
    await aigw.config_when("gw", lambda c: [m.name for m in c.pools[0].members] == [f"m2.{aigw.ns}"])


async def test_dns_change_is_followed_within_its_ttl_and_an_outage_keeps_the_addresses(aigw: Aigw) -> None:
    name = host(aigw, "m")
    aigw.dns.set_records({name: ["10.4.0.1"]})
    await aigw.apply(
        docs(
            gateway_yaml("gw"),
            service("m"),
            backend("m", labels={"app": "m"}),
            pool("p", {"app": "m"}),
            route("r", "gw", pool="p"),
        )
    )

    def ips(c: FilterConfig) -> list[str]:
        return [e.ip for m in c.pools[0].members for e in m.endpoints] if c.pools else []

    await aigw.config_when("gw", lambda c: ips(c) == ["10.4.0.1"])
    aigw.dns.set_records({name: ["10.4.0.2"]})
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await aigw.config_when("gw", lambda c: ips(c) == ["10.4.0.2"], within=aigw.dns.ttl + 6)
    assert loop.time() - t0 <= aigw.dns.ttl + 6

    aigw.dns.stop()

    async def event_seen() -> bool:
        evs = await aigw.events("p")
        return any(e["reason"] == "DNSResolutionFailed" and e["type"] == "Warning" for e in evs)

    await eventually(event_seen, within=aigw.dns.ttl + 15)
    cfg = await aigw.config("gw")
    assert cfg is not None and ips(cfg) == ["10.4.0.2"]
    cond = await aigw.condition(kinds.INFERENCEPOOLS, "p", "ResolvedRefs", parent=0)
    assert cond is not None and cond["status"] == "True"  # addresses are known: not a resolution failure
    aigw.dns.start()


def legacy_gateway_btp(gateway_uid: str) -> str:
    """The Gateway-level BackendTrafficPolicy earlier versions made (it took the user's slot), owned by the
    Gateway ``gw`` as they made it: pruned on upgrade."""
    return f"""
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: ai-eg-extproc-gw
  labels: {{app.kubernetes.io/managed-by: envoy-ai-gateway, aigateway.envoyproxy.io/gateway-name: gw}}
  ownerReferences:
  - {{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, name: gw, uid: {gateway_uid}}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]
"""


async def test_deleting_a_route_prunes_its_httproute_and_shrinks_the_config(aigw: Aigw) -> None:
    await aigw.apply(
        docs(
            gateway_yaml("gw"),
            service("s"),
            backend("b", service="s"),
            route("r1", "gw", "b"),
            route("r2", "gw", "b"),
        )
    )
    await aigw.config_when("gw", lambda c: len(c.rules) == 2)

    async def created() -> bool:
        return await aigw.get(kinds.HTTPROUTES, "r2") is not None

    await eventually(created)
    policy = await aigw.get(kinds.BACKENDTRAFFICPOLICIES, "r2")  # written right after its HTTPRoutes
    assert policy is not None and policy["spec"]["targetRefs"][0]["name"] == "r2"

    gw = await aigw.get(kinds.GATEWAYS, "gw")
    assert gw is not None
    await aigw.apply(legacy_gateway_btp(gw["metadata"]["uid"]))

    async def legacy_pruned() -> bool:
        return await aigw.get(kinds.BACKENDTRAFFICPOLICIES, extproc_name("gw")) is None

    await eventually(legacy_pruned)
    await aigw.delete("aigatewayroute", "r2")
    cfg = await aigw.config_when("gw", lambda c: len(c.rules) == 1)
    assert cfg.rules[0].route == f"{aigw.ns}/r1"

    async def pruned() -> bool:
        return (
            await aigw.get(kinds.HTTPROUTES, "r2") is None
            and await aigw.get(kinds.BACKENDTRAFFICPOLICIES, "r2") is None
            and await aigw.get(kinds.BACKENDTRAFFICPOLICIES, "r1") is not None
        )

    await eventually(pruned)
    # Deleting the Gateway prunes everything it owned.
    await aigw.delete("gateway", "gw")

    async def all_gone() -> bool:
        for res in (CONFIGMAPS, DEPLOYMENTS, SERVICES, SECRETS, kinds.ENVOYEXTENSIONPOLICIES):
            if await aigw.get(res, extproc_name("gw")) is not None:
                return False
        return True

    await eventually(all_gone)
    await aigw.wait_condition(kinds.AIGATEWAYROUTES, "r1", "Accepted", "False", "NoMatchingParent")


async def test_nothing_is_written_when_nothing_changed(aigw: Aigw) -> None:
    aigw.dns.set_records({host(aigw, "m"): ["10.5.0.1"]})
    await aigw.apply(
        docs(
            gateway_yaml("gw"),
            service("m"),
            backend("m", labels={"app": "m"}),
            service("s"),
            backend("b", service="s"),
            pool("p", {"app": "m"}),
            model("mod", "llama", "p"),
            route("r", "gw", "b", pool="p"),
        )
    )
    await aigw.config_when("gw", lambda c: len(c.pools) == 1 and len(c.pools[0].members[0].endpoints) == 1)
    await aigw.wait_condition(kinds.INFERENCEMODELS, "mod", "Accepted", "True")
    await asyncio.sleep(1.0)  # let the informers deliver our own writes back to the cache
    before = writes(aigw)
    for _ in range(3):
        await aigw.reconciler.reconcile(Request(namespace=aigw.ns, name="gw"))
    assert writes(aigw) == before


async def test_a_route_with_many_backends_gets_several_httproutes_and_they_shrink_with_it(aigw: Aigw) -> None:
    names = [f"b{i}" for i in range(20)]
    await aigw.apply(docs(gateway_yaml("gw"), service("s"), *(backend(x, service="s") for x in names),
                          route("big", "gw", *names)))  # fmt: skip
    await aigw.config_when("gw", lambda c: len(c.backends) == 20)

    async def httproutes(expected: list[str]) -> bool:
        out = await aigw.kubectl("-n", aigw.ns, "get", "httproutes", "-o", "name")
        return sorted(x.rpartition("/")[2] for x in out.split()) == expected

    await eventually(functools.partial(httproutes, ["big", "big-2"]))
    await aigw.wait_condition(kinds.AIGATEWAYROUTES, "big", "Accepted", "True")
    await aigw.apply(route("big", "gw", *names[:3]))
    await aigw.config_when("gw", lambda c: len(c.backends) == 3)
    await eventually(functools.partial(httproutes, ["big"]))


async def test_deleting_one_of_two_gateways_keeps_the_shared_route(aigw: Aigw) -> None:
    await aigw.apply(docs(gateway_yaml("g1"), gateway_yaml("g2"), service("s"), backend("b", service="s"),
                          route("r", "g1", "b"), route("shared", "g1", "b")))  # fmt: skip
    doc = json.loads(route("shared", "g1", "b"))
    doc["spec"]["targetRefs"].append({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "g2"})
    await aigw.apply(json.dumps(doc))
    await aigw.config_when("g2", lambda c: [r.route for r in c.rules] == [f"{aigw.ns}/shared"])
    await aigw.delete("gateway", "g1")

    async def g1_gone() -> bool:
        return await aigw.get(CONFIGMAPS, extproc_name("g1")) is None

    await eventually(g1_gone)
    await aigw.wait_condition(kinds.AIGATEWAYROUTES, "r", "Accepted", "False", "NoMatchingParent")
    await aigw.wait_condition(kinds.AIGATEWAYROUTES, "shared", "Accepted", "True")

    async def httproutes() -> list[str]:
        out = await aigw.kubectl("-n", aigw.ns, "get", "httproutes", "-o", "name")
        return sorted(x.rpartition("/")[2] for x in out.split())

    async def only_shared() -> bool:
        return await httproutes() == ["shared"]

    await eventually(only_shared)
    await asyncio.sleep(1.0)
    assert await httproutes() == ["shared"]  # and it stays
