"""Trust boundaries in the pure builders: ReferenceGrants for cross-namespace references, and no HTTPRoute
parent without an attached ext_proc."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from controller.translate import BuildOptions, ObjKey, Snapshot, build_gateway, extension_policy_spec
from controller.translate.grants import Ref, permitted
from tests.unit.controller.objects import (
    GW,
    NS,
    api_key_policy,
    attached_policies,
    b64,
    backend,
    keyed,
    one_route_snapshot,
    reference_grant,
    route,
    rule,
)

AIGW = "aigateway.envoyproxy.io"
SECRET_REF = Ref(AIGW, "BackendSecurityPolicy", "a", "", "Secret", ObjKey("b", "key"))


def test_a_reference_within_a_namespace_needs_no_grant() -> None:
    assert permitted(replace(SECRET_REF, to=ObjKey("a", "key")), [])


def test_a_grant_must_match_namespace_from_and_to() -> None:
    def grant(ns: str = "b", frm: tuple[str, str, str] = (AIGW, "BackendSecurityPolicy", "a"),
              to: tuple[str, str, str] = ("", "Secret", "key")) -> dict[str, Any]:  # fmt: skip
        return reference_grant("g", ns, from_=[frm], to=[to])

    assert permitted(SECRET_REF, [grant()])
    assert permitted(SECRET_REF, [grant(to=("", "Secret", ""))])  # no name: every Secret
    assert permitted(SECRET_REF, [grant(to=("core", "Secret", "key"))])  # "core" is the core group
    assert not permitted(SECRET_REF, [])
    assert not permitted(SECRET_REF, [grant(ns="a")])  # the grant lives in the referent's namespace
    assert not permitted(SECRET_REF, [grant(frm=(AIGW, "AIServiceBackend", "a"))])
    assert not permitted(SECRET_REF, [grant(frm=(AIGW, "BackendSecurityPolicy", "c"))])
    assert not permitted(SECRET_REF, [grant(to=("", "Secret", "other"))])
    assert not permitted(SECRET_REF, [grant(to=("", "ConfigMap", "key"))])


def test_missing_grant_message_names_the_grant() -> None:
    assert SECRET_REF.missing_grant() == (
        "Secret b/key is in another namespace: it needs a ReferenceGrant in namespace b from "
        f"{AIGW}/BackendSecurityPolicy in a to Secret b/key"
    )


def _cond(b: Any, kind: str, name: str, typ: str) -> tuple[str, str, str]:
    st = next(s for s in b.statuses if s.kind == kind and s.key.name == name)
    c = next(c for c in st.conditions if c.type == typ)
    return c.status, c.reason, c.message


def _snap(**kw: Any) -> Snapshot:
    kw.setdefault("backends", keyed(backend("a", bsp="p")))
    kw.setdefault("security_policies", keyed(api_key_policy("p", "key")))
    return one_route_snapshot(**kw)


def test_a_secret_in_another_namespace_is_not_copied_without_a_grant() -> None:
    policy = api_key_policy("p", "key")
    policy["spec"]["apiKey"]["secretRef"]["namespace"] = "vault"
    secrets = {ObjKey("vault", "key"): {"apiKey": b64("sk-vault")}}
    s = _snap(security_policies=keyed(policy), secrets=secrets)
    b = build_gateway(s, BuildOptions())
    status, reason, message = _cond(b, "BackendSecurityPolicy", "p", "ResolvedRefs")
    assert (status, reason) == ("False", "RefNotPermitted")
    assert "ReferenceGrant in namespace vault" in message
    assert _cond(b, "AIServiceBackend", "a", "ResolvedRefs")[1] == "RefNotPermitted"
    auth = next(o for o in b.gateway_objects if o["kind"] == "Secret")
    assert b64("sk-vault") not in auth.get("data", {}).values()
    assert b.filter_config is not None and b.filter_config.backends == []

    grant = reference_grant(
        "g", "vault", from_=[(AIGW, "BackendSecurityPolicy", NS)], to=[("", "Secret", "")]
    )
    b = build_gateway(replace(s, grants=(grant,)), BuildOptions())
    assert _cond(b, "BackendSecurityPolicy", "p", "ResolvedRefs")[0] == "True"
    auth = next(o for o in b.gateway_objects if o["kind"] == "Secret")
    assert b64("sk-vault") in auth["data"].values()


def test_the_extension_policy_fails_closed_explicitly() -> None:
    spec = extension_policy_spec(GW, BuildOptions())
    assert spec["extProc"][0]["failOpen"] is False
    eep = next(
        o
        for o in build_gateway(_snap(), BuildOptions()).gateway_objects
        if o["kind"] == "EnvoyExtensionPolicy"
    )
    assert eep["spec"] == spec


def _parents(s: Snapshot) -> list[str] | None:
    hrs = build_gateway(s, BuildOptions()).http_routes
    return None if not hrs else [p["name"] for p in hrs[0]["spec"]["parentRefs"]]


def test_http_route_parents_are_the_gateways_with_an_attached_ext_proc() -> None:
    gw2 = ObjKey(NS, "gw2")
    both = frozenset({GW, gw2})
    s = _snap(routes=(route("r1", [rule("a")], gateways=("gw", "gw2")),), gateways=both)
    assert _parents(s) == ["gw", "gw2"]
    # not stored yet (our apply is on its way): no parent, and no condition either
    pending = replace(s, extension_policies=attached_policies([GW]))
    assert _parents(pending) == ["gw"]
    assert _cond(build_gateway(pending, BuildOptions()), "AIGatewayRoute", "r1", "Accepted")[0] == "True"
    # stored with another spec (someone edited it, or an older controller wrote it): not attached
    edited = attached_policies(both)
    edited[gw2]["spec"]["extProc"][0]["failOpen"] = True
    assert _parents(replace(s, extension_policies=edited)) == ["gw"]
    # Envoy Gateway refused it
    refused = attached_policies(both)
    refused[gw2]["status"] = {"ancestors": [{
        "ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw2"},
        "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
        "conditions": [
            {"type": "Accepted", "status": "False", "reason": "Invalid", "message": "bad backend"},
        ],
    }]}  # fmt: skip
    b = build_gateway(replace(s, extension_policies=refused), BuildOptions())
    assert [p["name"] for p in b.http_routes[0]["spec"]["parentRefs"]] == ["gw"]
    status, reason, message = _cond(b, "AIGatewayRoute", "r1", "Accepted")
    assert (status, reason) == ("False", "ExtensionPolicyNotAccepted")
    assert "Gateway default/gw2" in message and "Invalid: bad backend" in message
    # the API server refused it: no parent on either Gateway when both are refused, so no HTTPRoute
    msg = "denied"
    gone = replace(s, refused_policies={GW: msg, gw2: msg})
    assert _parents(gone) is None
    assert msg in _cond(build_gateway(gone, BuildOptions()), "AIGatewayRoute", "r1", "Accepted")[2]
