"""The map from any object to the Gateways it affects, snapshot assembly, the reconciler's pure helpers."""

from __future__ import annotations

from typing import Any

from api.v1alpha1 import AIServiceBackend
from controller.gateway.cache import Caches, Parsed
from controller.gateway.reconciler import contains
from controller.gateway.setup import SpecChanged
from controller.runtime import Store
from controller.translate import BuildOptions, ObjKey
from tests.unit.controller.objects import (
    NS,
    api_key_policy,
    b64,
    backend,
    eg_backend,
    eg_ref,
    gateway,
    ip_ep,
    model,
    pool,
    route,
    rule,
    service,
)


def store(*objs: dict[str, Any]) -> Store:
    s = Store()
    for o in objs:
        s.upsert(o)
    return s


def secret(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
            "data": {k: b64(v) for k, v in data.items()}}  # fmt: skip


def caches(**objs: list[dict[str, Any]]) -> Caches:
    c = Caches(
        options=BuildOptions(enable_inference_extension=True),
        gateways=store(*objs.get("gateways", [])),
        routes=store(),
        backends=store(),
        policies=store(),
        secrets=store(*objs.get("secrets", [])),
        services=store(*objs.get("services", [])),
        eg_backends=store(*objs.get("eg_backends", [])),
    )
    c.pools, c.models = Store(), Store()
    Caches.add_indexes(routes=c.routes.add_indexer, backends=c.backends.add_indexer,
                       policies=c.policies.add_indexer, models=c.models.add_indexer,
                       pools=c.pools.add_indexer)  # fmt: skip
    for kind, st in (
        ("routes", c.routes),
        ("backends", c.backends),
        ("policies", c.policies),
        ("models", c.models),
        ("pools", c.pools),
    ):
        for o in objs.get(kind, []):
            st.upsert(o)
    return c


GA, GB = ObjKey(NS, "ga"), ObjKey(NS, "gb")


def world() -> Caches:
    return caches(
        gateways=[gateway("ga"), gateway("gb")],
        routes=[
            route("ra", [rule("a"), rule(("InferencePool", "p"))], gateways=("ga",)),
            route("rb", [rule("b")], gateways=("gb",)),
            route("rab", [rule("shared")], gateways=("ga", "gb")),
        ],
        backends=[
            backend("a", bsp="pol"),
            backend("b", ref=eg_ref("eb")),
            backend("shared"),
            backend("m1", labels={"app": "x"}),
            backend("m2", labels={"app": "y"}),
        ],
        policies=[api_key_policy("pol", "sec")],
        secrets=[secret("sec", apiKey="k"), secret("unrelated", apiKey="k")],
        services=[service("svc-a"), service("svc-m1")],
        eg_backends=[eg_backend("eb", ip_ep("192.0.2.1", 443))],
        pools=[pool("p", {"app": "x"})],
        models=[model("mod", "llama", "p")],
    )


def test_gateways_for_every_kind() -> None:
    c = world()
    g = c.gateways_for
    assert g("Gateway", gateway("ga")) == {GA}
    assert g("AIGatewayRoute", route("rab", [], gateways=("ga", "gb"))) == {GA, GB}
    assert g("AIServiceBackend", backend("a")) == {GA}
    assert g("AIServiceBackend", backend("shared")) == {GA, GB}
    assert g("AIServiceBackend", backend("m1", labels={"app": "x"})) == {GA}  # through the pool's selector
    assert g("AIServiceBackend", backend("m2", labels={"app": "y"})) == set()
    assert g("BackendSecurityPolicy", api_key_policy("pol", "sec")) == {GA}
    assert g("Secret", secret("sec")) == {GA}
    assert g("Secret", secret("unrelated")) == set()
    assert g("Service", service("svc-a")) == {GA}
    assert g("Backend", eg_backend("eb")) == {GB}
    assert g("InferencePool", pool("p", {})) == {GA}
    assert g("InferenceModel", model("mod", "llama", "p")) == {GA}
    assert g("InferenceModel", model("other", "llama", "nowhere")) == set()


def test_owned_objects_map_to_their_gateway() -> None:
    c = world()
    owners = [{"kind": "Gateway", "name": "ga"}]
    cm = {
        "kind": "ConfigMap",
        "metadata": {"name": "ai-eg-extproc-ga", "namespace": NS, "ownerReferences": owners},
    }
    assert c.gateways_for("ConfigMap", cm) == {GA}
    hr = {"kind": "HTTPRoute", "metadata": {"name": "r", "namespace": NS},
          "spec": {"parentRefs": [{"name": "gb"}, {"kind": "Service", "name": "x"}]}}  # fmt: skip
    assert c.gateways_for("HTTPRoute", hr) == {GB}


def test_a_routes_own_objects_map_to_that_routes_gateways() -> None:
    """A route's BackendTrafficPolicy (owned by the AIGatewayRoute, naming no Gateway) maps to the Gateways
    the route targets, so a deleted or edited one is put back at once; a deleted route's, to none."""
    c = world()

    def policy(owner: str) -> dict[str, Any]:
        refs = [{"apiVersion": "aigateway.envoyproxy.io/v1alpha1", "kind": "AIGatewayRoute", "name": owner}]
        return {"kind": "BackendTrafficPolicy", "metadata": {"name": owner, "namespace": NS,
                                                            "ownerReferences": refs}}  # fmt: skip

    assert c.gateways_for("BackendTrafficPolicy", policy("rab")) == {GA, GB}
    assert c.gateways_for("BackendTrafficPolicy", policy("rb")) == {GB}
    assert c.gateways_for("BackendTrafficPolicy", policy("gone")) == set()
    # the host-rewrite filter is shared by every HTTPRoute of its namespace
    rewrite = {"kind": "HTTPRouteFilter", "metadata": {"name": "ai-eg-host-rewrite", "namespace": NS}}
    assert c.gateways_for("HTTPRouteFilter", rewrite) == {GA, GB}
    elsewhere = {"kind": "HTTPRouteFilter", "metadata": {"name": "ai-eg-host-rewrite", "namespace": "other"}}
    assert c.gateways_for("HTTPRouteFilter", elsewhere) == set()


def test_snapshot_holds_what_the_gateway_reads() -> None:
    c = world()
    s = c.snapshot(GA)
    assert s.gateway_object is not None
    assert sorted(r.metadata.name for r in s.routes) == ["ra", "rab"]
    assert sorted(k.name for k in s.backends) == ["a", "m1", "shared"]
    assert list(s.security_policies) == [ObjKey(NS, "pol")]
    assert s.secrets == {ObjKey(NS, "sec"): {"apiKey": b64("k")}}
    assert list(s.pools) == [ObjKey(NS, "p")]
    assert [m.metadata.name for m in s.models] == ["mod"]
    assert s.gateways == frozenset({GA, GB})
    assert s.pool_parents == {ObjKey(NS, "p"): (GA,)}
    assert sorted(k.name for k in s.services) == ["svc-a", "svc-m1"]
    b = c.snapshot(GB)
    assert sorted(k.name for k in b.backends) == ["b", "shared"] and list(b.eg_backends) == [ObjKey(NS, "eb")]


def test_snapshot_of_a_missing_gateway_still_has_its_routes() -> None:
    c = world()
    c.gateways.delete(f"{NS}/ga")
    s = c.snapshot(GA)
    assert s.gateway_object is None and len(s.routes) == 2 and GA not in s.gateways


def test_object_snapshots_for_orphans() -> None:
    c = world()
    s = c.object_snapshot("AIServiceBackend", backend("a", bsp="pol"))
    assert list(s.backends) == [ObjKey(NS, "a")] and ObjKey(NS, "sec") in s.secrets
    s = c.object_snapshot("InferenceModel", model("lost", "x", "nowhere"))
    assert [m.metadata.name for m in s.models] == ["lost"] and not s.pools
    s = c.object_snapshot("InferencePool", pool("p", {"app": "x"}))
    assert ObjKey(NS, "m1") in s.backends


def test_contains_ignores_server_defaults_and_dropped_empties() -> None:
    want = {"spec": {"ports": [{"port": 80}]}, "data": {}}
    assert contains(want, {"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "clusterIP": "10.0.0.1"}})
    assert not contains(want, {"spec": {"ports": [{"port": 81}]}})
    assert not contains(want, {"spec": {"ports": []}})
    assert not contains({"data": {"k": "v"}}, {})


def test_spec_changed_ignores_status_and_resource_version() -> None:
    p = SpecChanged()
    old: dict[str, Any] = {
        "metadata": {"name": "x", "resourceVersion": "1", "labels": {"a": "b"}},
        "spec": {"x": 1},
    }
    assert not p.update(
        old, {**old, "metadata": {**old["metadata"], "resourceVersion": "2"}, "status": {"c": 1}}
    )
    assert p.update(old, {**old, "spec": {"x": 2}})
    assert p.update(old, {**old, "metadata": {**old["metadata"], "labels": {"a": "c"}}})
    assert p.create(old) and p.delete(old)


def test_pools_selecting_uses_the_selector_index() -> None:
    c = caches(pools=[pool("p1", {"app": "x", "tier": "a"}), pool("p2", {"app": "x"}), pool("all", {})])
    names = sorted(p["metadata"]["name"] for p in c.pools_selecting(backend("b", labels={"app": "x"})))
    assert names == ["all", "p2"]
    names = sorted(
        p["metadata"]["name"] for p in c.pools_selecting(backend("b", labels={"app": "x", "tier": "a"}))
    )
    assert names == ["all", "p1", "p2"]


def test_each_object_version_is_read_into_its_model_once() -> None:
    parsed = Parsed(AIServiceBackend)
    v1 = backend("a")
    first = parsed(v1)
    assert isinstance(first, AIServiceBackend) and parsed(v1) is first  # same version: the same model
    v2 = {**v1, "metadata": {**v1["metadata"], "labels": {"app": "x"}}}  # the informer's next version
    second = parsed(v2)
    assert second is not first and second is not None and second.metadata.labels == {"app": "x"}
    assert parsed(v2) is second


def test_an_object_that_does_not_fit_its_model_is_left_out_and_logged(caplog: Any) -> None:
    parsed = Parsed(AIServiceBackend)
    bad = backend("a")
    del bad["spec"]["backendRef"]  # a CRD other than ours
    assert parsed(bad) is None and parsed.all([bad, backend("b")])[0].metadata.name == "b"
    assert "default/a" in caplog.text and "backendRef" in caplog.text


def test_the_memo_forgets_deleted_objects() -> None:
    parsed = Parsed(AIServiceBackend)
    live = store(backend("kept"))
    parsed(live.get(f"{NS}/kept") or {})
    for i in range(1100):
        parsed(backend(f"gone-{i}"))
    parsed.prune(live)
    assert parsed.size() == 1


def test_a_v1_pools_epp_service_and_objectives_map_to_its_gateways_and_enter_their_snapshots() -> None:
    c = world()
    c.v1_pools = Store()
    Caches.add_v1_indexes(v1_pools=c.v1_pools.add_indexer)
    v1 = {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": "v1p", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "vllm"}},
            "targetPorts": [{"number": 8000}],
            "endpointPickerRef": {"name": "epp", "port": {"number": 9002}},
        },
    }
    c.v1_pools.upsert(v1)
    c.services.upsert(service("epp", 9002))  # type: ignore[union-attr]
    c.routes.upsert(
        route("rv", [{"backendRefs": [{"group": "inference.networking.k8s.io", "kind": "InferencePool",
                                       "name": "v1p"}]}], gateways=("gb",))
    )  # fmt: skip
    assert c.gateways_for("Service", service("epp")) == {GB}
    assert c.gateways_for("Service", service("unrelated")) == set()
    assert ObjKey(NS, "epp") in c.snapshot(GB).services
    c.objectives = Store()
    Caches.add_objective_indexes(objectives=c.objectives.add_indexer)
    obj = {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferenceObjective",
        "metadata": {"name": "batch", "namespace": NS},
        "spec": {"priority": -1, "poolRef": {"group": "inference.networking.k8s.io", "name": "v1p"}},
    }
    c.objectives.upsert(obj)
    assert c.gateways_for("InferenceObjective", obj) == {GB}
    assert [o.metadata.name for o in c.snapshot(GB).objectives] == ["batch"]
