"""Cross-namespace references need a ReferenceGrant in the referent's namespace (Gateway API's rule), on the
real API server: refused without one (``ResolvedRefs=False RefNotPermitted``, a message naming the missing
grant, a Warning Event, nothing of the referent used), used once the grant exists (adding it re-reconciles),
refused again when it goes."""

from __future__ import annotations

import base64

from api.filterconfig import FilterConfig
from controller.gateway import kinds
from controller.runtime import SECRETS
from controller.translate import extproc_name
from tests.integration.controller.conftest import Aigw, apply_yaml, eventually, gateway_yaml
from tests.integration.controller.manifests import (
    api_key_policy,
    backend,
    docs,
    eg_backend,
    pool,
    reference_grant,
    route,
    secret,
    service,
)

AIGW = "aigateway.envoyproxy.io"
EG = "gateway.envoyproxy.io"


async def auth_data(aigw: Aigw, gateway: str) -> dict[str, str]:
    """The Gateway's auth Secret, decoded; waits for it (a reconcile applies the ConfigMap just before it)."""
    obj = await eventually(lambda: aigw.get(SECRETS, extproc_name(gateway)), within=20)
    assert obj is not None
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


async def refused_with_event(aigw: Aigw, kind_plural: str, name: str, *, parent: int | None = None) -> str:
    resource = next(r for r in kinds.BY_KIND.values() if r.plural == kind_plural)
    c = await aigw.wait_condition(resource, name, "ResolvedRefs", "False", "RefNotPermitted", parent=parent)

    async def event() -> bool:
        return any(
            e["reason"] == "RefNotPermitted" and e["type"] == "Warning" for e in await aigw.events(name)
        )

    await eventually(event)
    return str(c["message"])


async def test_a_secret_in_another_namespace_needs_a_grant(aigw_cluster: Aigw, other_namespace: str) -> None:
    aigw, b = aigw_cluster, other_namespace
    await apply_yaml(aigw.cp, b, secret("key", apiKey="sk-other-namespace"))
    await aigw.apply(docs(
        gateway_yaml("gw"), service("s"), api_key_policy("bsp", "key", namespace=b),
        backend("be", service="s", bsp="bsp"), route("r", "gw", "be"),
    ))  # fmt: skip

    msg = await refused_with_event(aigw, "backendsecuritypolicies", "bsp")
    want = f"ReferenceGrant in namespace {b} from {AIGW}/BackendSecurityPolicy in {aigw.ns} to Secret {b}/key"
    assert want in msg, msg
    await aigw.wait_condition(kinds.AISERVICEBACKENDS, "be", "ResolvedRefs", "False", "RefNotPermitted")
    # nothing of the Secret was copied: the rule has no backend, the per-Gateway auth Secret lacks the key
    cfg = await aigw.config_when("gw", lambda c: len(c.rules) == 1)
    assert cfg.rules[0].backend_refs == [] and cfg.backends == []
    assert "sk-other-namespace" not in (await auth_data(aigw, "gw")).values()

    # a grant for another kind, or from another namespace, does not count
    await apply_yaml(aigw.cp, b, docs(
        reference_grant("wrong-kind", from_=[(AIGW, "AIServiceBackend", aigw.ns)],
                        to=[("", "Secret", "key")]),
        reference_grant("wrong-ns", from_=[(AIGW, "BackendSecurityPolicy", b)], to=[("", "Secret", "")]),
        reference_grant("wrong-name", from_=[(AIGW, "BackendSecurityPolicy", aigw.ns)],
                        to=[("", "Secret", "other")]),
    ))  # fmt: skip
    await refused_with_event(aigw, "backendsecuritypolicies", "bsp")

    # the grant arrives: the Secret is used, without touching any object of ours
    await apply_yaml(aigw.cp, b, reference_grant(
        "ok", from_=[(AIGW, "BackendSecurityPolicy", aigw.ns)], to=[("", "Secret", "key")]
    ))  # fmt: skip
    await aigw.wait_condition(kinds.BACKENDSECURITYPOLICIES, "bsp", "ResolvedRefs", "True")
    await aigw.wait_condition(kinds.AISERVICEBACKENDS, "be", "ResolvedRefs", "True")

    async def copied() -> bool:
        return "sk-other-namespace" in (await auth_data(aigw, "gw")).values()

    await eventually(copied)
    cfg = await aigw.config_when("gw", lambda c: len(c.rules[0].backend_refs) == 1)
    assert cfg.backends[0].auth is not None and cfg.backends[0].auth.api_key is not None

    # the grant goes: the credential goes with it
    await aigw.kubectl("-n", b, "delete", "referencegrant", "ok")
    await refused_with_event(aigw, "backendsecuritypolicies", "bsp")

    async def removed() -> bool:
        return "sk-other-namespace" not in (await auth_data(aigw, "gw")).values()

    await eventually(removed)


def _has_pool_endpoints(cfg: FilterConfig, ips: set[str]) -> bool:
    return {e.ip for p in cfg.pools for m in p.members for e in m.endpoints} == ips


async def test_pool_members_in_another_namespace_need_a_grant(
    aigw_cluster: Aigw, other_namespace: str
) -> None:
    aigw, b = aigw_cluster, other_namespace
    aigw.dns.set_records({f"vllm.{b}.svc.cluster.local": ["10.12.0.1"], f"local.{aigw.ns}.svc.cluster.local":
                          ["10.12.0.2"]})  # fmt: skip
    await apply_yaml(aigw.cp, b, docs(service("vllm"), eg_backend("ip", ("ip", "10.12.0.3", 8080))))
    await aigw.apply(docs(
        gateway_yaml("gw"), service("local"),
        backend("m-svc", service="vllm", namespace=b, labels={"pool": "p"}),
        backend("m-eg", eg_backend="ip", namespace=b, labels={"pool": "p"}),
        backend("m-local", service="local", labels={"pool": "p"}),
        pool("p", {"pool": "p"}), route("r", "gw", pool="p"),
    ))  # fmt: skip

    msg = await refused_with_event(aigw, "inferencepools", "p", parent=0)
    assert (
        f"ReferenceGrant in namespace {b} from {AIGW}/AIServiceBackend in {aigw.ns} to Service {b}/vllm"
        in msg
    )
    assert f"to {EG}/Backend {b}/ip" in msg, msg
    for m in ("m-svc", "m-eg"):
        await aigw.wait_condition(kinds.AISERVICEBACKENDS, m, "ResolvedRefs", "False", "RefNotPermitted")
    # only the member of the pool's own namespace is used
    await aigw.config_when("gw", lambda c: _has_pool_endpoints(c, {"10.12.0.2"}))

    # one grant for both kinds, by name for the Service and for any Backend
    to = [("", "Service", "vllm"), (EG, "Backend", "")]
    await apply_yaml(
        aigw.cp, b, reference_grant("members", from_=[(AIGW, "AIServiceBackend", aigw.ns)], to=to)
    )
    await aigw.wait_condition(kinds.INFERENCEPOOLS, "p", "ResolvedRefs", "True", parent=0)
    await aigw.config_when("gw", lambda c: _has_pool_endpoints(c, {"10.12.0.1", "10.12.0.2", "10.12.0.3"}))


async def test_a_direct_backend_in_another_namespace_needs_a_grant(
    aigw_cluster: Aigw, other_namespace: str
) -> None:
    aigw, b = aigw_cluster, other_namespace
    await apply_yaml(aigw.cp, b, eg_backend("api", ("fqdn", "api.example.com", 443)))
    await aigw.apply(docs(gateway_yaml("gw"), backend("be", eg_backend="api", namespace=b),
                          route("r", "gw", "be")))  # fmt: skip
    msg = await refused_with_event(aigw, "aiservicebackends", "be")
    assert (
        f"ReferenceGrant in namespace {b} from {AIGW}/AIServiceBackend in {aigw.ns} to {EG}/Backend {b}/api"
        in msg
    )
    await aigw.wait_condition(kinds.AIGATEWAYROUTES, "r", "ResolvedRefs", "False", "BackendNotFound")
    cfg = await aigw.config_when("gw", lambda c: len(c.rules) == 1)
    assert cfg.rules[0].backend_refs == []

    async def http_route_rules() -> int:
        hr = await aigw.get(kinds.HTTPROUTES, "r")
        assert hr is not None
        return len(hr["spec"]["rules"])

    assert (
        await eventually(http_route_rules) == 1
    )  # the catch-all only: no rule points into the other namespace

    await apply_yaml(aigw.cp, b, reference_grant(
        "api", from_=[(AIGW, "AIServiceBackend", aigw.ns)], to=[(EG, "Backend", "api")]
    ))  # fmt: skip
    await aigw.wait_condition(kinds.AISERVICEBACKENDS, "be", "ResolvedRefs", "True")
    await aigw.config_when("gw", lambda c: len(c.rules[0].backend_refs) == 1)

    async def two_rules() -> bool:
        return await http_route_rules() == 2

    await eventually(two_rules)
    hr = await aigw.get(kinds.HTTPROUTES, "r")
    assert hr is not None and hr["spec"]["rules"][0]["backendRefs"][0]["namespace"] == b
