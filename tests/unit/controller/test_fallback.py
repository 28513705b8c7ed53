"""A pool backendRef's ``fallback`` through the builders: resolved like any backend, written into the filter
config, routed to by the HTTPRoute, and reported (``FallbackNotFound``) when it is missing or broken."""

from __future__ import annotations

from typing import Any

from api import filterconfig as fc
from api import headers
from controller.translate import ObjKey, build_gateway
from tests.unit.controller.objects import NS, backend, keyed, pool, route, service
from tests.unit.controller.test_translate import INF, cond, pool_snap, status_of


def _fallback_rule(**fallback: Any) -> dict[str, Any]:
    return {"backendRefs": [{"kind": "InferencePool", "name": "p", "fallback": fallback}]}


def _snap(fallback: dict[str, Any], **kw: Any) -> Any:
    base = pool_snap()
    backends = dict(base.backends) | keyed(backend("cloud"))
    services = dict(base.services) | keyed(service("svc-cloud"))
    args: dict[str, Any] = dict(
        routes=(route("r1", [_fallback_rule(**fallback)]),), backends=backends, services=services
    )
    args.update(kw)
    return pool_snap(**args)


def test_a_backend_fallback_goes_into_the_config_and_gets_its_http_route_rule() -> None:
    b = build_gateway(_snap({"name": "cloud", "modelNameOverride": "gpt-4o-mini"}), INF)
    assert b.filter_config is not None
    (ref,) = b.filter_config.rules[0].backend_refs
    assert ref == fc.BackendRef(
        kind=fc.BackendKind.INFERENCE_POOL,
        name="p.default",
        fallback=fc.Fallback(name="cloud.default", model_name_override="gpt-4o-mini"),
    )
    assert [x.name for x in b.filter_config.backends] == ["cloud.default"]
    values = [
        h["value"]
        for r in b.http_routes[0]["spec"]["rules"]
        for m in r["matches"]
        for h in m.get("headers", [])
    ]
    assert values == ["cloud.default", headers.ORIGINAL_DST_CLUSTER]  # Envoy can route the fallback
    st = status_of(b.statuses, "AIGatewayRoute", "r1")
    assert cond(st, "ResolvedRefs")[0] == "True"


def test_a_pool_fallback_is_a_pool_of_the_config_with_this_gateway_as_parent() -> None:
    s = _snap(
        {"kind": "InferencePool", "name": "spare"},
        pools=keyed(pool("p", {"app": "x"}), pool("spare", {"app": "other"})),
    )
    b = build_gateway(s, INF)
    assert b.filter_config is not None
    assert [p.name for p in b.filter_config.pools] == ["p.default", "spare.default"]
    (ref,) = b.filter_config.rules[0].backend_refs
    assert ref.fallback == fc.Fallback(kind=fc.BackendKind.INFERENCE_POOL, name="spare.default")


def test_a_missing_fallback_is_reported_and_the_pool_is_served_without_it() -> None:
    b = build_gateway(_snap({"name": "gone"}), INF)
    st = status_of(b.statuses, "AIGatewayRoute", "r1")
    status, reason, message = cond(st, "ResolvedRefs")
    assert (status, reason) == ("False", "FallbackNotFound")
    assert "AIServiceBackend default/gone not found" in message and "served without it" in message
    assert b.filter_config is not None
    (ref,) = b.filter_config.rules[0].backend_refs
    assert (ref.name, ref.fallback) == ("p.default", None)

    b = build_gateway(_snap({"kind": "InferencePool", "name": "nope"}), INF)
    _, reason, message = cond(status_of(b.statuses, "AIGatewayRoute", "r1"), "ResolvedRefs")
    assert reason == "FallbackNotFound" and "InferencePool default/nope not found" in message


def test_a_fallback_whose_own_references_are_broken_is_not_used() -> None:
    base = _snap({"name": "cloud"})
    services = {k: v for k, v in base.services.items() if k != ObjKey(NS, "svc-cloud")}
    b = build_gateway(_snap({"name": "cloud"}, services=services), INF)
    _, reason, message = cond(status_of(b.statuses, "AIGatewayRoute", "r1"), "ResolvedRefs")
    assert reason == "FallbackNotFound" and "Service default/svc-cloud not found" in message
    assert b.filter_config is not None and b.filter_config.backends == []


def test_an_object_used_directly_and_as_a_fallback_keeps_the_plain_reason() -> None:
    rules = [_fallback_rule(name="gone"), {"backendRefs": [{"name": "gone"}]}]
    b = build_gateway(_snap({}, routes=(route("r1", rules),)), INF)
    _, reason, _ = cond(status_of(b.statuses, "AIGatewayRoute", "r1"), "ResolvedRefs")
    assert reason == "BackendNotFound"
