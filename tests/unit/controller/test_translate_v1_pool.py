"""The builders with a v1 InferencePool (Pods): the route's rule reaches the pool's Pod endpoints without DNS,
and every reason a v1 pool is not served shows on the route."""

from __future__ import annotations

from typing import Any

from api import filterconfig as fc
from api import headers
from api.inference_v1 import EPP_TLS_ANNOTATION, ExtensionFailureMode, InferenceObjective
from api.inference_v1 import InferencePool as V1Pool
from api.objects import ObjKey
from controller.translate import BuildOptions, build_filter_config, build_gateway, resolve
from controller.translate.snapshot import DnsAnswer
from tests.unit.controller.objects import GW, NS, attached_policies, gateway, pool, route, service, snapshot
from tests.unit.controller.objects import keyed as keyed_objects

INF = BuildOptions(enable_inference_extension=True)
V1 = "inference.networking.k8s.io"


def v1_pool(name: str = "p", *, epp: str = "envoy-ai-gateway", ports: tuple[int, ...] = (8000,)) -> V1Pool:
    return V1Pool.read(
        {
            "apiVersion": f"{V1}/v1",
            "kind": "InferencePool",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "selector": {"matchLabels": {"app": "vllm"}},
                "targetPorts": [{"number": p} for p in ports],
                "endpointPickerRef": {"name": epp, "port": {"number": 9002}},
            },
        }
    )


def pod(ip: str, *, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": f"pod-{ip}", "namespace": NS, "labels": {"app": "vllm"}},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def v1_rule(name: str = "p") -> dict[str, Any]:
    return {
        "backendRefs": [{"group": V1, "kind": "InferencePool", "name": name}],
        "matches": [{"headers": [{"name": headers.MODEL_NAME_HEADER, "value": "llama"}]}],
    }


def snap(*pools: V1Pool, pods: tuple[dict[str, Any], ...] = (), **kw: Any) -> Any:
    base: dict[str, Any] = {
        "gateway": GW,
        "gateway_object": gateway(),
        "gateways": frozenset({GW}),
        "extension_policies": attached_policies(frozenset({GW})),
        "routes": (route("r1", [v1_rule()]),),
        "v1_pools": {p.ref: p for p in pools},
        "pods": pods,
    }
    base.update(kw)
    return snapshot(**base)


def test_the_rule_reaches_every_target_port_of_the_ready_pods() -> None:
    s = snap(
        v1_pool(ports=(8000, 8001)), pods=(pod("127.0.0.3"), pod("127.0.0.2"), pod("127.0.0.4", ready=False))
    )
    cfg = build_filter_config(resolve(s, INF), INF)
    (r,) = cfg.rules
    assert [(b.kind, b.name) for b in r.backend_refs] == [(fc.BackendKind.INFERENCE_POOL, "p.default@v1")]
    (p,) = cfg.pools
    assert p.name == "p.default@v1" and p.serves_any_model and p.models == []
    assert [e.address for e in p.members[0].endpoints] == [
        "127.0.0.2:8000",
        "127.0.0.2:8001",
        "127.0.0.3:8000",
        "127.0.0.3:8001",
    ]
    assert p.members[0].auth is None


def test_a_v1_and_a_v1alpha2_pool_of_one_name_stay_apart() -> None:
    s = snap(
        v1_pool(),
        pods=(pod("127.0.0.2"),),
        pools=keyed_objects(pool("p", {"app": "other"})),
        routes=(route("r1", [v1_rule(), {"backendRefs": [{"kind": "InferencePool", "name": "p"}]}]),),
    )
    res = resolve(s, INF)
    assert res.routes[0].usable_v1_pools == frozenset({ObjKey(NS, "p")})
    cfg = build_filter_config(res, INF)
    assert [b.name for r in cfg.rules for b in r.backend_refs] == ["p.default@v1", "p.default"]


def test_the_route_gets_the_original_destination_rule() -> None:
    b = build_gateway(snap(v1_pool(), pods=(pod("127.0.0.2"),)), INF)
    values = [
        m["headers"][0]["value"]
        for r in b.http_routes[0]["spec"]["rules"]
        for m in r["matches"]
        if "headers" in m
    ]
    assert values == [headers.ORIGINAL_DST_CLUSTER]


def _route_problems(s: Any, options: BuildOptions = INF) -> list[tuple[str, str]]:
    rr = resolve(s, options).routes[0]
    assert rr.usable_v1_pools == frozenset()
    return [(p.reason, p.message) for p in rr.problems]


def test_a_missing_pool_is_not_found() -> None:
    assert _route_problems(snap()) == [("BackendNotFound", f"InferencePool {NS}/p ({V1}) not found")]


EPP_HOST = f"vllm-epp.{NS}.svc.cluster.local"


def test_a_missing_epp_service_is_invalid_extension_ref_and_the_route_says_so() -> None:
    s = snap(v1_pool(epp="vllm-epp"), pods=(pod("127.0.0.2"),))
    res = resolve(s, INF)
    (c,) = [c for c in res.v1_pools[ObjKey(NS, "p")].conditions if c.type == "ResolvedRefs"]
    assert (c.status.value, c.reason) == ("False", "InvalidExtensionRef")
    assert c.message == f"endpointPickerRef Service vllm-epp port 9002: Service {NS}/vllm-epp not found"
    ((reason, message),) = _route_problems(s)
    assert reason == "BackendNotFound" and c.message in message
    assert build_filter_config(res, INF).pools == []


def test_an_epp_service_without_the_port_is_invalid_extension_ref() -> None:
    s = snap(v1_pool(epp="vllm-epp"), services={ObjKey(NS, "vllm-epp"): service("vllm-epp", 9003)})
    ((_, message),) = _route_problems(s)
    assert f"Service {NS}/vllm-epp has no port 9002 (ports: 9003)" in message


def test_an_external_epp_reaches_the_config_with_its_resolved_addresses_and_failure_mode() -> None:
    pool_obj = v1_pool(epp="vllm-epp")
    assert pool_obj.spec.endpoint_picker_ref is not None
    pool_obj.spec.endpoint_picker_ref.failure_mode = ExtensionFailureMode.FAIL_OPEN
    s = snap(
        pool_obj,
        pods=(pod("127.0.0.2"),),
        services={ObjKey(NS, "vllm-epp"): service("vllm-epp", 9002)},
        dns={EPP_HOST: DnsAnswer(ips=("127.0.0.9", "127.0.0.8"), ttl=5)},
    )
    res = resolve(s, INF)
    assert res.used_hostnames() == [EPP_HOST]
    (p,) = build_filter_config(res, INF).pools
    ext = p.external_picker
    assert ext is not None and ext.service == f"vllm-epp.{NS}:9002"
    assert ext.failure_mode == fc.ExternalPickerFailureMode.FAIL_OPEN
    assert [e.address for e in ext.endpoints] == ["127.0.0.8:9002", "127.0.0.9:9002"]
    # the Pods stay in the config: our picker's choice when a FailOpen EPP does not answer
    assert [e.address for e in p.members[0].endpoints] == ["127.0.0.2:8000"]


def test_an_epp_not_resolved_yet_is_in_the_config_without_addresses() -> None:
    s = snap(v1_pool(epp="vllm-epp"), services={ObjKey(NS, "vllm-epp"): service("vllm-epp", 9002)})
    (p,) = build_filter_config(resolve(s, INF), INF).pools
    assert p.external_picker is not None and p.external_picker.endpoints == []
    assert p.external_picker.failure_mode == fc.ExternalPickerFailureMode.FAIL_CLOSE


def test_without_the_inference_extension_the_kind_is_invalid() -> None:
    ((reason, message),) = _route_problems(snap(v1_pool()), BuildOptions())
    assert reason == "InvalidKind" and "--enable-inference-extension" in message
    assert build_filter_config(resolve(snap(v1_pool()), BuildOptions()), BuildOptions()).pools == []


def test_a_pool_with_no_ready_pod_is_served_with_no_endpoint() -> None:
    cfg = build_filter_config(resolve(snap(v1_pool(), pods=(pod("127.0.0.2", ready=False),)), INF), INF)
    assert cfg.pools[0].members[0].endpoints == []


def objective(
    name: str, priority: int | None, *, pool_name: str = "p", group: str = V1
) -> InferenceObjective:
    spec: dict[str, Any] = {"poolRef": {"group": group, "kind": "InferencePool", "name": pool_name}}
    if priority is not None:
        spec["priority"] = priority
    return InferenceObjective.read(
        {
            "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
            "kind": "InferenceObjective",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
    )


def test_the_pools_inference_objectives_reach_the_config_with_their_priority() -> None:
    objectives = (
        objective("batch", -1),
        objective("chat", 10),
        objective("plain", None),
        objective("elsewhere", -5, pool_name="other"),
        objective("old-group", -5, group="inference.networking.x-k8s.io"),
    )
    s = snap(v1_pool(), pods=(pod("127.0.0.2"),), objectives=objectives)
    (p,) = build_filter_config(resolve(s, INF), INF).pools
    assert [(o.name, o.priority) for o in p.objectives] == [("batch", -1), ("chat", 10), ("plain", 0)]


def test_tls_to_the_epp_unless_the_pool_says_plaintext_and_a_bad_value_is_refused() -> None:
    services = {ObjKey(NS, "vllm-epp"): service("vllm-epp", 9002)}
    for value, want in ((None, True), ("true", True), ("False", False)):
        pool_obj = v1_pool(epp="vllm-epp")
        if value is not None:
            pool_obj.metadata.annotations[EPP_TLS_ANNOTATION] = value
        (p,) = build_filter_config(resolve(snap(pool_obj, services=services), INF), INF).pools
        assert p.external_picker is not None and p.external_picker.tls is want, value
    pool_obj = v1_pool(epp="vllm-epp")
    pool_obj.metadata.annotations[EPP_TLS_ANNOTATION] = "maybe"
    ((_, message),) = _route_problems(snap(pool_obj, services=services))
    assert f'annotation {EPP_TLS_ANNOTATION} must be "true" or "false"' in message
