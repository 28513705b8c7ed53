"""Unit tests of the pure builders: every rule and backend combination, every condition reason."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import yaml

from api import filterconfig as fc
from api import headers
from controller.translate import (
    BuildOptions,
    DnsAnswer,
    ExtprocAddress,
    ObjectStatus,
    ObjKey,
    Snapshot,
    build_filter_config,
    build_gateway,
    extproc_name,
    hostnames_to_resolve,
    render_filter_config,
    resolve,
)
from tests.unit.controller.objects import (
    GW,
    NS,
    api_key_policy,
    attached_policies,
    aws_policy,
    azure_policy,
    b64,
    backend,
    eg_backend,
    eg_ref,
    fqdn_ep,
    gateway,
    ip_ep,
    keyed,
    model,
    pool,
    reference_grant,
    route,
    rule,
    service,
    snapshot,
)

INF = BuildOptions(enable_inference_extension=True)
AIGW = "aigateway.envoyproxy.io"
SVC_HOST = "svc-a.default.svc.cluster.local"


def snap(**kw: Any) -> Snapshot:
    """A snapshot of ``GW``; every Gateway in ``gateways`` has its ext_proc attached unless
    ``extension_policies`` says otherwise."""
    base: dict[str, Any] = {"gateway": GW, "gateway_object": gateway(), "gateways": frozenset({GW})}
    base.update(kw)
    base.setdefault("extension_policies", attached_policies(base["gateways"]))
    return snapshot(**base)


def filter_config(s: Snapshot, options: BuildOptions) -> fc.FilterConfig:
    return build_filter_config(resolve(s, options), options)


def simple(**kw: Any) -> Snapshot:
    base: dict[str, Any] = {
        "routes": (route("r1", [rule("a")]),),
        "backends": keyed(backend("a")),
        "services": keyed(service("svc-a")),
    }
    base.update(kw)
    return snap(**base)


def status_of(statuses: tuple[ObjectStatus, ...], kind: str, name: str) -> ObjectStatus:
    return next(s for s in statuses if s.kind == kind and s.key == ObjKey(NS, name))


def cond(st: ObjectStatus, typ: str, parent: int | None = None) -> tuple[str, str, str]:
    conds = st.parents[parent][1] if parent is not None else st.conditions
    c = next(c for c in conds if c.type == typ)
    return c.status, c.reason, c.message


def objects_by_kind(b: Any) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in b.gateway_objects}


# --- filter config


def test_simple_route_builds_one_rule_and_backend() -> None:
    cfg = filter_config(simple(), BuildOptions())
    assert cfg.gateway == "default/gw"
    assert [r.route for r in cfg.rules] == ["default/r1"]
    assert cfg.rules[0].backend_refs == [fc.BackendRef(name="a.default")]
    assert cfg.rules[0].matches == []
    assert [b.name for b in cfg.backends] == ["a.default"]
    assert cfg.backends[0].auth is None


def test_two_routes_merge_into_one_config_oldest_first() -> None:
    s = snap(
        routes=(route("new", [rule("b")], ts="2026-02-01T00:00:00Z"), route("old", [rule("a")])),
        backends=keyed(backend("a"), backend("b")),
        services=keyed(service("svc-a"), service("svc-b")),
    )
    cfg = filter_config(s, BuildOptions())
    assert [r.route for r in cfg.rules] == ["default/old", "default/new"]
    assert [b.name for b in cfg.backends] == ["a.default", "b.default"]


def test_every_header_of_a_match_is_kept_and_matches_are_ored() -> None:
    r = rule("a", headers=[[("x-ai-eg-model", "m1"), ("X-Tenant", "t1")], [("x-ai-eg-model", "m2")]])
    cfg = filter_config(simple(routes=(route("r1", [r]),)), BuildOptions())
    m = cfg.rules[0].matches
    assert [[(h.name, h.value) for h in x.headers] for x in m] == [
        [("x-ai-eg-model", "m1"), ("x-tenant", "t1")],
        [("x-ai-eg-model", "m2")],
    ]


def test_weights_are_copied() -> None:
    r = {"backendRefs": [{"name": "a", "weight": 3}, {"name": "b", "weight": 0}]}
    s = snap(
        routes=(route("r1", [r]),),
        backends=keyed(backend("a"), backend("b")),
        services=keyed(service("svc-a"), service("svc-b")),
    )
    cfg = filter_config(s, BuildOptions())
    assert [(x.name, x.weight) for x in cfg.rules[0].backend_refs] == [("a.default", 3), ("b.default", 0)]


def test_uuid_is_a_content_hash() -> None:
    a = filter_config(simple(), BuildOptions())
    b = filter_config(simple(), BuildOptions())
    assert a.uuid == b.uuid and len(a.uuid) == 32
    c = filter_config(simple(routes=(route("r1", [rule("a", headers=[[("k", "v")]])]),)), BuildOptions())
    assert c.uuid != a.uuid


def test_rendered_yaml_round_trips_through_the_contract() -> None:
    s = snap(
        routes=(
            route(
                "r1",
                [rule("a"), rule(("InferencePool", "p"))],
                llmRequestCosts=[
                    {"metadataKey": "out", "type": "OutputToken"},
                    {"metadataKey": "c", "type": "CEL", "cel": "input_tokens + 1"},
                ],
            ),
        ),
        backends=keyed(backend("a", bsp="k"), backend("m", labels={"app": "x"})),
        services=keyed(service("svc-a"), service("svc-m")),
        security_policies=keyed(api_key_policy("k", "sec")),
        secrets={ObjKey(NS, "sec"): {"apiKey": b64("sk")}},
        pools=keyed(pool("p", {"app": "x"})),
        models=(model("im", "llama", "p", criticality="Critical", targets=[("l1", 1), ("l2", 3)]),),
        dns={"svc-m.default.svc.cluster.local": DnsAnswer(("10.0.0.1",), 30)},
    )
    cfg = filter_config(s, INF)
    text = render_filter_config(cfg)
    again = fc.FilterConfig.model_validate(yaml.safe_load(text))
    assert again == cfg
    assert [c.metadata_key for c in cfg.llm_request_costs] == ["out", "c"]
    assert cfg.llm_request_costs[1].cel == "input_tokens + 1"
    assert cfg.llm_request_costs[0].route == "default/r1"


def test_missing_backend_is_dropped_from_the_rule_and_reported() -> None:
    s = snap(
        routes=(route("r1", [rule("a", "ghost")]),),
        backends=keyed(backend("a")),
        services=keyed(service("svc-a")),
    )
    b = build_gateway(s, BuildOptions())
    assert b.filter_config is not None
    assert [x.name for x in b.filter_config.rules[0].backend_refs] == ["a.default"]
    st = status_of(b.statuses, "AIGatewayRoute", "r1")
    assert cond(st, "Accepted")[0] == "True"
    assert cond(st, "ResolvedRefs")[:2] == ("False", "BackendNotFound")
    assert "AIServiceBackend default/ghost not found" in cond(st, "ResolvedRefs")[2]
    assert st.generation == 1


def test_rule_whose_refs_all_fail_keeps_no_backends() -> None:
    s = snap(routes=(route("r1", [rule("ghost")]),))
    cfg = filter_config(s, BuildOptions())
    assert cfg.rules[0].backend_refs == [] and cfg.backends == []


# --- AIServiceBackend conditions


def test_backend_service_not_found() -> None:
    b = build_gateway(simple(services={}), BuildOptions())
    st = status_of(b.statuses, "AIServiceBackend", "a")
    assert cond(st, "ResolvedRefs")[:2] == ("False", "BackendNotFound")
    assert "Service default/svc-a not found" in cond(st, "ResolvedRefs")[2]
    rs = status_of(b.statuses, "AIGatewayRoute", "r1")
    assert cond(rs, "ResolvedRefs")[1] == "BackendNotFound"
    assert b.filter_config is not None and b.filter_config.backends == []


def test_backend_eg_backend_found_and_not_found() -> None:
    s = snap(
        routes=(route("r1", [rule("a")]),),
        backends=keyed(backend("a", ref=eg_ref("be"))),
        eg_backends=keyed(eg_backend("be", fqdn_ep("api.openai.com", 443))),
    )
    b = build_gateway(s, BuildOptions())
    assert cond(status_of(b.statuses, "AIServiceBackend", "a"), "ResolvedRefs")[0] == "True"
    b2 = build_gateway(replace(s, eg_backends={}), BuildOptions())
    assert cond(status_of(b2.statuses, "AIServiceBackend", "a"), "ResolvedRefs")[:2] == (
        "False",
        "BackendNotFound",
    )


def test_backend_invalid_kind() -> None:
    s = simple(backends=keyed(backend("a", ref={"group": "apps", "kind": "Deployment", "name": "x"})))
    b = build_gateway(s, BuildOptions())
    status, reason, msg = cond(status_of(b.statuses, "AIServiceBackend", "a"), "ResolvedRefs")
    assert (status, reason) == ("False", "InvalidKind") and "apps/Deployment" in msg


def test_backend_security_policy_not_found_and_invalid_kind() -> None:
    b = build_gateway(simple(backends=keyed(backend("a", bsp="nope"))), BuildOptions())
    assert cond(status_of(b.statuses, "AIServiceBackend", "a"), "ResolvedRefs")[1] == "SecurityPolicyNotFound"
    bad = backend("a")
    bad["spec"]["backendSecurityPolicyRef"] = {"group": "x.io", "kind": "Thing", "name": "t"}
    b2 = build_gateway(simple(backends=keyed(bad)), BuildOptions())
    assert cond(status_of(b2.statuses, "AIServiceBackend", "a"), "ResolvedRefs")[1] == "InvalidKind"


# --- BackendSecurityPolicy


def test_api_key_policy_gives_a_mounted_file_and_copies_the_secret() -> None:
    s = simple(
        backends=keyed(backend("a", bsp="k")),
        security_policies=keyed(api_key_policy("k", "sec")),
        secrets={ObjKey(NS, "sec"): {"apiKey": b64("sk-1"), "other": b64("x")}},
    )
    b = build_gateway(s, BuildOptions())
    assert b.filter_config is not None
    auth = b.filter_config.backends[0].auth
    assert auth is not None and auth.api_key is not None
    assert auth.api_key.filename == "/etc/ai-gateway/auth/default.sec.apiKey"
    objs = objects_by_kind(b)
    assert objs["Secret"]["data"] == {"default.sec.apiKey": b64("sk-1")}
    dep = objs["Deployment"]["spec"]["template"]["spec"]
    assert {"name": "auth", "secret": {"secretName": "ai-eg-extproc-gw"}} in dep["volumes"]
    st = status_of(b.statuses, "BackendSecurityPolicy", "k")
    assert cond(st, "Accepted")[0] == "True" and cond(st, "ResolvedRefs")[0] == "True"


def test_secret_not_found_and_key_missing() -> None:
    s = simple(backends=keyed(backend("a", bsp="k")), security_policies=keyed(api_key_policy("k", "sec")))
    b = build_gateway(s, BuildOptions())
    st = status_of(b.statuses, "BackendSecurityPolicy", "k")
    assert cond(st, "ResolvedRefs") == ("False", "SecretNotFound", "Secret default/sec not found")
    bst = status_of(b.statuses, "AIServiceBackend", "a")
    assert cond(bst, "ResolvedRefs")[:2] == ("False", "SecretNotFound")
    b2 = build_gateway(replace(s, secrets={ObjKey(NS, "sec"): {"wrong": b64("x")}}), BuildOptions())
    st2 = status_of(b2.statuses, "BackendSecurityPolicy", "k")
    assert cond(st2, "ResolvedRefs") == ("False", "SecretNotFound", "Secret default/sec has no key 'apiKey'")


def test_aws_credentials_file_policy() -> None:
    s = snap(
        routes=(route("r1", [rule("a")]),),
        backends=keyed(backend("a", bsp="aws", schema="AWSBedrock")),
        services=keyed(service("svc-a")),
        security_policies=keyed(aws_policy("aws", "creds")),
        secrets={ObjKey(NS, "creds"): {"credentials": b64("[p]")}},
    )
    cfg = filter_config(s, BuildOptions())
    by = {b.name: b for b in cfg.backends}
    aws = by["a.default"].auth
    assert aws is not None and aws.aws == fc.AWSAuth(
        credential_file_name="/etc/ai-gateway/auth/default.creds.credentials", region="us-east-1", profile="p"
    )
    assert by["a.default"].schema_.name == fc.APISchemaName.AWS_BEDROCK


def oidc_policy(name: str) -> dict[str, Any]:
    p = aws_policy(name, "unused")
    p["spec"]["awsCredentials"] = {
        "region": "us-east-1",
        "oidcExchangeToken": {
            "oidc": {
                "provider": {"issuer": "https://idp.example"},
                "clientID": "c",
                "clientSecret": {"name": "cs"},
            },
            "awsRoleArn": "arn:aws:iam::1:role/r",
        },
    }
    return p


def test_rotated_policies_wait_for_the_rotation_and_never_expose_the_client_secret() -> None:
    s = simple(
        routes=(route("r1", [rule("a"), rule("b")]),),
        backends=keyed(backend("a", bsp="az"), backend("b", bsp="oidc")),
        services=keyed(service("svc-a"), service("svc-b")),
        security_policies=keyed(azure_policy("az"), oidc_policy("oidc")),
        secrets={
            ObjKey(NS, "s"): {"client-secret": b64("az-secret")},
            ObjKey(NS, "cs"): {"client-secret": b64("x")},
        },
    )
    b = build_gateway(s, BuildOptions())
    for name, secret in (("az", "ai-eg-bsp-az"), ("oidc", "ai-eg-bsp-oidc")):
        st = status_of(b.statuses, "BackendSecurityPolicy", name)
        assert cond(st, "Accepted")[:2] == ("True", "Accepted")
        status, reason, message = cond(st, "ResolvedRefs")
        assert (status, reason) == ("False", "CredentialsNotReady")
        assert f"Secret default/{secret}" in message and "CredentialsRotated" in message
    assert cond(status_of(b.statuses, "AIServiceBackend", "a"), "ResolvedRefs")[:2] == (
        "False",
        "CredentialsNotReady",
    )
    assert not filter_config(s, BuildOptions()).backends  # never sent to the ext_proc without credentials

    # once the rotation wrote them: the ext_proc reads the temporary credentials, and only those
    rotated = {
        ObjKey(NS, "ai-eg-bsp-az"): {"azureAccessToken": b64("token")},
        ObjKey(NS, "ai-eg-bsp-oidc"): {"credentials": b64("[default]")},
    }
    s2 = replace(s, secrets={**s.secrets, **rotated})
    b2 = build_gateway(s2, BuildOptions())
    assert b2.filter_config is not None
    auth = {x.name: x.auth for x in b2.filter_config.backends}
    assert auth["a.default"] == fc.BackendAuth(
        azure=fc.AzureAuth(filename="/etc/ai-gateway/auth/default.ai-eg-bsp-az.azureAccessToken")
    )
    assert auth["b.default"] == fc.BackendAuth(
        aws=fc.AWSAuth(
            credential_file_name="/etc/ai-gateway/auth/default.ai-eg-bsp-oidc.credentials", region="us-east-1"
        )
    )
    assert objects_by_kind(b2)["Secret"]["data"] == {
        "default.ai-eg-bsp-az.azureAccessToken": b64("token"),
        "default.ai-eg-bsp-oidc.credentials": b64("[default]"),
    }
    for name in ("az", "oidc"):
        assert cond(status_of(b2.statuses, "BackendSecurityPolicy", name), "ResolvedRefs")[0] == "True"
    # the client secret is still a reference of the policy: missing, it is reported like any Secret
    s3 = replace(s2, secrets={k: v for k, v in s2.secrets.items() if k != ObjKey(NS, "s")})
    st = status_of(build_gateway(s3, BuildOptions()).statuses, "BackendSecurityPolicy", "az")
    assert cond(st, "ResolvedRefs") == ("False", "SecretNotFound", "Secret default/s not found")


def test_policy_breaking_its_own_rules_is_unsupported() -> None:
    # The API server rejects such a policy; one that skipped admission is read as it is, and the resolver
    # reports the rule it breaks (in api/) instead of guessing a credential.
    p = api_key_policy("k", "sec")
    p["spec"] = {"type": "AWSCredentials", "awsCredentials": {"region": "us-east-1"}}
    b = build_gateway(
        simple(backends=keyed(backend("a", bsp="k")), security_policies=keyed(p)), BuildOptions()
    )
    assert cond(status_of(b.statuses, "BackendSecurityPolicy", "k"), "Accepted") == (
        "False",
        "UnsupportedValue",
        "exactly one of credentialsFile or oidcExchangeToken must be set",
    )
    assert cond(status_of(b.statuses, "AIServiceBackend", "a"), "ResolvedRefs")[1] == "UnsupportedValue"


# --- AIGatewayRoute acceptance


def test_route_without_existing_gateway_is_not_accepted() -> None:
    s = simple(routes=(route("r1", [rule("a")], gateways=("nope",)),), gateways=frozenset({GW}))
    b = build_gateway(s, BuildOptions())
    st = status_of(b.statuses, "AIGatewayRoute", "r1")
    assert cond(st, "Accepted") == (
        "False",
        "NoMatchingParent",
        "no targetRef names an existing Gateway (missing: default/nope)",
    )


def test_route_with_one_existing_gateway_of_two_is_accepted() -> None:
    s = simple(routes=(route("r1", [rule("a")], gateways=("gw", "nope")),))
    st = status_of(build_gateway(s, BuildOptions()).statuses, "AIGatewayRoute", "r1")
    assert cond(st, "Accepted")[0] == "True"


def test_dynamic_module_filter_is_unsupported() -> None:
    s = simple(routes=(route("r1", [rule("a")], filterConfig={"type": "DynamicModule"}),))
    b = build_gateway(s, BuildOptions())
    assert cond(status_of(b.statuses, "AIGatewayRoute", "r1"), "Accepted")[:2] == (
        "False",
        "UnsupportedValue",
    )
    assert b.filter_config is not None and b.filter_config.rules == [] and b.http_routes == ()


def test_pool_ref_without_inference_extension_is_invalid_kind() -> None:
    s = simple(routes=(route("r1", [rule("a", ("InferencePool", "p"))]),), pools=keyed(pool("p", {})))
    b = build_gateway(s, BuildOptions())
    status, reason, msg = cond(status_of(b.statuses, "AIGatewayRoute", "r1"), "ResolvedRefs")
    assert (status, reason) == ("False", "InvalidKind") and "--enable-inference-extension" in msg
    assert b.filter_config is not None and b.filter_config.pools == []


# --- InferencePool


def pool_snap(**kw: Any) -> Snapshot:
    base: dict[str, Any] = dict(
        routes=(route("r1", [rule(("InferencePool", "p"))]),),
        backends=keyed(
            backend("a", labels={"app": "x"}),
            backend("b", labels={"app": "x"}),
            backend("c", labels={"app": "other"}),
        ),
        services=keyed(service("svc-a", 8080, headless=True), service("svc-b", 8080), service("svc-c")),
        pools=keyed(pool("p", {"app": "x"})),
        pool_parents={ObjKey(NS, "p"): (GW,)},
        dns={
            SVC_HOST: DnsAnswer(("10.1.0.2", "10.1.0.1"), 30),
            "svc-b.default.svc.cluster.local": DnsAnswer(("fd00::1",), 10),
        },
    )
    base.update(kw)
    return snap(**base)


def test_pool_selector_picks_members_and_endpoints_come_from_dns() -> None:
    s = pool_snap()
    assert hostnames_to_resolve(s, INF) == [SVC_HOST, "svc-b.default.svc.cluster.local"]
    b = build_gateway(s, INF)
    assert b.filter_config is not None
    (p,) = b.filter_config.pools
    assert p.name == "p.default"
    assert [m.name for m in p.members] == ["a.default", "b.default"]
    assert [(e.ip, e.port, e.hostname) for e in p.members[0].endpoints] == [
        ("10.1.0.1", 8080, SVC_HOST),
        ("10.1.0.2", 8080, SVC_HOST),
    ]
    assert p.members[1].endpoints[0].address == "[fd00::1]:8080"
    assert b.filter_config.rules[0].backend_refs == [
        fc.BackendRef(kind=fc.BackendKind.INFERENCE_POOL, name="p.default")
    ]
    st = status_of(b.statuses, "InferencePool", "p")
    assert st.parents[0][0] == GW
    assert cond(st, "Accepted", 0)[0] == "True" and cond(st, "ResolvedRefs", 0)[0] == "True"
    assert b.requeue_after == 10


def test_cluster_domain_flag_changes_the_service_name() -> None:
    assert hostnames_to_resolve(pool_snap(), replace(INF, cluster_domain="corp.example"))[0] == (
        "svc-a.default.svc.corp.example"
    )


def test_pool_new_backend_joins_the_config() -> None:
    s = pool_snap()
    more = dict(s.backends) | keyed(backend("d", labels={"app": "x"}))
    s2 = replace(
        s,
        backends=more,
        services=dict(s.services) | keyed(service("svc-d")),
        dns=dict(s.dns) | {"svc-d.default.svc.cluster.local": DnsAnswer(("10.9.9.9",), 60)},
    )
    cfg = filter_config(s2, INF)
    assert [m.name for m in cfg.pools[0].members] == ["a.default", "b.default", "d.default"]
    assert cfg.pools[0].members[2].endpoints[0].ip == "10.9.9.9"


def test_pool_with_eg_backend_ip_and_fqdn_endpoints() -> None:
    s = pool_snap(
        backends=keyed(backend("e", labels={"app": "x"}, ref=eg_ref("be"))),
        eg_backends=keyed(eg_backend("be", ip_ep("192.0.2.7", 8080), fqdn_ep("model.example", 8080))),
        dns={"model.example": DnsAnswer(("198.51.100.1",), 120)},
    )
    assert hostnames_to_resolve(s, INF) == ["model.example"]
    cfg = filter_config(s, INF)
    eps = cfg.pools[0].members[0].endpoints
    assert [(e.ip, e.hostname) for e in eps] == [("192.0.2.7", None), ("198.51.100.1", "model.example")]


def test_pool_port_mismatch_service_backendref_and_eg_backend() -> None:
    s = pool_snap(services=keyed(service("svc-a", 9000), service("svc-b", 8080)))
    b = build_gateway(s, INF)
    status, reason, msg = cond(status_of(b.statuses, "InferencePool", "p"), "ResolvedRefs", 0)
    assert (status, reason) == ("False", "PortMismatch")
    assert "AIServiceBackend default/a: Service default/svc-a has no port 8080 (ports: 9000)" in msg
    assert b.filter_config is not None and [m.name for m in b.filter_config.pools[0].members] == ["b.default"]

    s2 = pool_snap(backends=keyed(backend("a", labels={"app": "x"}, ref={"name": "svc-a", "port": 80})))
    _, reason2, msg2 = cond(
        status_of(build_gateway(s2, INF).statuses, "InferencePool", "p"), "ResolvedRefs", 0
    )
    assert reason2 == "PortMismatch" and "backendRef port 80 != targetPortNumber 8080" in msg2

    s3 = pool_snap(
        backends=keyed(backend("e", labels={"app": "x"}, ref=eg_ref("be"))),
        eg_backends=keyed(eg_backend("be", ip_ep("192.0.2.7", 9999))),
    )
    _, reason3, msg3 = cond(
        status_of(build_gateway(s3, INF).statuses, "InferencePool", "p"), "ResolvedRefs", 0
    )
    assert reason3 == "PortMismatch" and "Backend default/be: endpoint 192.0.2.7:9999" in msg3


def test_pool_invalid_extension_ref() -> None:
    s = pool_snap(pools=keyed(pool("p", {"app": "x"}, ext="some-epp")))
    b = build_gateway(s, INF)
    status, reason, msg = cond(status_of(b.statuses, "InferencePool", "p"), "ResolvedRefs", 0)
    assert (status, reason) == ("False", "InvalidExtensionRef") and "'some-epp'" in msg
    assert cond(status_of(b.statuses, "AIGatewayRoute", "r1"), "ResolvedRefs")[1] == "BackendNotFound"
    assert b.filter_config is not None and b.filter_config.pools == []
    assert hostnames_to_resolve(s, INF) == []


def test_extension_ref_name_is_configurable() -> None:
    s = pool_snap(pools=keyed(pool("p", {"app": "x"}, ext="mine")))
    b = build_gateway(s, replace(INF, extension_ref_name="mine"))
    assert cond(status_of(b.statuses, "InferencePool", "p"), "ResolvedRefs", 0)[0] == "True"


def test_pool_selector_matching_nothing() -> None:
    s = pool_snap(pools=keyed(pool("p", {"app": "none"})))
    _, reason, msg = cond(status_of(build_gateway(s, INF).statuses, "InferencePool", "p"), "ResolvedRefs", 0)
    assert reason == "BackendNotFound" and "selector app=none matches no AIServiceBackend" in msg


def test_missing_pool_is_backend_not_found_on_the_route() -> None:
    s = pool_snap(pools={})
    st = status_of(build_gateway(s, INF).statuses, "AIGatewayRoute", "r1")
    assert cond(st, "ResolvedRefs") == ("False", "BackendNotFound", "InferencePool default/p not found")


def test_pool_status_has_one_parent_per_gateway() -> None:
    other = ObjKey(NS, "gw2")
    s = pool_snap(pool_parents={ObjKey(NS, "p"): (other, GW)})
    st = status_of(build_gateway(s, INF).statuses, "InferencePool", "p")
    assert [p for p, _ in st.parents] == [GW, other]


# --- DNS


def test_dns_failure_without_known_ips_is_reported() -> None:
    s = pool_snap(
        dns={
            SVC_HOST: DnsAnswer((), 5, "NXDOMAIN"),
            "svc-b.default.svc.cluster.local": DnsAnswer(("10.0.0.9",), 30),
        }
    )
    b = build_gateway(s, INF)
    status, reason, msg = cond(status_of(b.statuses, "InferencePool", "p"), "ResolvedRefs", 0)
    assert (status, reason) == ("False", "DNSResolutionFailed") and SVC_HOST in msg and "NXDOMAIN" in msg
    assert b.dns_failures == ((ObjKey(NS, "p"), ObjKey(NS, "a"), SVC_HOST, "NXDOMAIN"),)
    assert b.filter_config is not None and b.filter_config.pools[0].members[0].endpoints == []
    assert b.requeue_after == 5


def test_dns_failure_with_last_known_ips_keeps_them_silently() -> None:
    s = pool_snap(
        dns={
            SVC_HOST: DnsAnswer(("10.1.0.1",), 5, "timeout"),
            "svc-b.default.svc.cluster.local": DnsAnswer(("10.0.0.9",), 30),
        }
    )
    b = build_gateway(s, INF)
    assert cond(status_of(b.statuses, "InferencePool", "p"), "ResolvedRefs", 0)[0] == "True"
    assert b.dns_failures == ((ObjKey(NS, "p"), ObjKey(NS, "a"), SVC_HOST, "timeout"),)
    assert b.filter_config is not None and b.filter_config.pools[0].members[0].endpoints[0].ip == "10.1.0.1"


def test_requeue_is_clamped() -> None:
    low = pool_snap(
        dns={SVC_HOST: DnsAnswer(("10.0.0.1",), 0), "svc-b.default.svc.cluster.local": DnsAnswer()}
    )
    assert build_gateway(low, INF).requeue_after == 5
    high = pool_snap(
        dns={
            SVC_HOST: DnsAnswer(("10.0.0.1",), 86400),
            "svc-b.default.svc.cluster.local": DnsAnswer(("10.0.0.2",), 3600),
        }
    )
    assert build_gateway(high, INF).requeue_after == 300
    assert build_gateway(simple(), BuildOptions()).requeue_after is None


def test_changed_dns_answer_changes_the_config_uuid() -> None:
    a = filter_config(pool_snap(), INF)
    s = pool_snap()
    b = filter_config(replace(s, dns=dict(s.dns) | {SVC_HOST: DnsAnswer(("10.1.0.3",), 30)}), INF)
    assert a.uuid != b.uuid
    ttl_only = filter_config(
        replace(s, dns=dict(s.dns) | {SVC_HOST: DnsAnswer(("10.1.0.1", "10.1.0.2"), 1)}), INF
    )
    assert ttl_only.uuid == a.uuid


# --- InferenceModel


def test_models_go_into_the_pool_with_criticality_and_weights() -> None:
    s = pool_snap(
        models=(
            model("m1", "llama", "p", criticality="Critical", targets=[("l1", 1), ("l2", 3)]),
            model("m2", "mistral", "p"),
        )
    )
    cfg = filter_config(s, INF)
    ms = cfg.pools[0].models
    assert [(m.model_name, m.criticality) for m in ms] == [
        ("llama", fc.Criticality.CRITICAL),
        ("mistral", fc.Criticality.STANDARD),
    ]
    assert [(t.name, t.weight) for t in ms[0].target_models] == [("l1", 1), ("l2", 3)]


def test_model_name_in_use_oldest_wins() -> None:
    s = pool_snap(
        models=(
            model("young", "llama", "p", ts="2026-03-01T00:00:00Z", targets=[("y", None)]),
            model("old", "llama", "p", ts="2026-01-01T00:00:00Z", targets=[("o", None)]),
        )
    )
    b = build_gateway(s, INF)
    assert cond(status_of(b.statuses, "InferenceModel", "old"), "Accepted")[0] == "True"
    status, reason, msg = cond(status_of(b.statuses, "InferenceModel", "young"), "Accepted")
    assert (status, reason) == ("False", "ModelNameInUse") and "default/old" in msg
    assert b.filter_config is not None
    assert [t.name for t in b.filter_config.pools[0].models[0].target_models] == ["o"]


def test_model_with_missing_pool_names_it() -> None:
    s = pool_snap(models=(model("m", "llama", "ghost"),))
    st = status_of(build_gateway(s, INF).statuses, "InferenceModel", "m")
    assert cond(st, "Accepted") == ("False", "PoolNotFound", "InferencePool default/ghost not found")


def test_model_with_wrong_pool_kind() -> None:
    m = model("m", "llama", "p")
    m["spec"]["poolRef"]["kind"] = "Service"
    st = status_of(build_gateway(pool_snap(models=(m,)), INF).statuses, "InferenceModel", "m")
    assert cond(st, "Accepted")[:2] == ("False", "InvalidKind")


# --- HTTPRoute, filter, policy, ext_proc


def test_http_route_rules() -> None:
    s = pool_snap(
        routes=(route("r1", [rule("a", ("InferencePool", "p")), rule("a")], gateways=("gw",)),),
        backends=dict(pool_snap().backends)
        | keyed(backend("a", labels={"app": "x"}, timeouts={"request": "90s"})),
    )
    b = build_gateway(s, INF)
    (hr,) = b.http_routes
    assert hr["metadata"]["name"] == "r1" and hr["metadata"]["namespace"] == NS
    assert hr["metadata"]["ownerReferences"][0]["kind"] == "AIGatewayRoute"
    assert hr["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}
    ]
    rules = hr["spec"]["rules"]
    assert len(rules) == 3
    assert rules[0]["matches"] == [
        {"headers": [{"type": "Exact", "name": headers.SELECTED_BACKEND_HEADER, "value": "a.default"}]}
    ]
    assert rules[0]["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "svc-a", "namespace": NS, "port": 8080}
    ]
    assert rules[0]["timeouts"] == {"request": "90s"}
    assert rules[0]["filters"][0]["extensionRef"]["name"] == "ai-eg-host-rewrite"
    assert rules[1] == {
        "matches": [
            {
                "headers": [
                    {
                        "type": "Exact",
                        "name": headers.SELECTED_BACKEND_HEADER,
                        "value": headers.ORIGINAL_DST_CLUSTER,
                    }
                ]
            }
        ],
        "timeouts": {"request": "90s"},
    }
    assert rules[2] == {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    (flt,) = b.filters
    assert flt["spec"] == {"urlRewrite": {"hostname": {"type": "Backend"}}}


def test_pool_rule_default_timeout_and_eg_backend_ref() -> None:
    b = build_gateway(pool_snap(), INF)
    assert b.http_routes[0]["spec"]["rules"][0]["timeouts"] == {"request": "60s"}
    s = snap(
        routes=(route("r1", [rule("a")]),),
        backends=keyed(backend("a", ref=eg_ref("be", 443))),
        eg_backends=keyed(eg_backend("be", fqdn_ep("api.openai.com", 443))),
    )
    r = build_gateway(s, BuildOptions()).http_routes[0]["spec"]["rules"][0]
    assert r["backendRefs"] == [
        {"group": "gateway.envoyproxy.io", "kind": "Backend", "name": "be", "namespace": NS, "port": 443}
    ]
    assert "timeouts" not in r


def test_unresolved_backend_gets_no_http_route_rule() -> None:
    b = build_gateway(simple(services={}), BuildOptions())
    assert b.http_routes[0]["spec"]["rules"] == [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    ]


def test_extension_policy_targets_the_gateway() -> None:
    b = build_gateway(simple(), BuildOptions())
    eep = objects_by_kind(b)["EnvoyExtensionPolicy"]
    assert eep["metadata"]["name"] == "ai-eg-extproc-gw" and eep["metadata"]["namespace"] == NS
    assert eep["metadata"]["ownerReferences"][0] == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "name": "gw",
        "uid": "uid-default-gw",
        "controller": True,
        "blockOwnerDeletion": False,
    }
    spec = eep["spec"]
    assert spec["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}]
    (ep,) = spec["extProc"]
    assert ep["backendRefs"] == [{"name": "ai-eg-extproc-gw", "port": 1063}]
    assert ep["processingMode"] == {
        "allowModeOverride": True,
        "request": {"body": "Buffered"},
        "response": {"body": "Buffered"},
    }
    assert ep["metadata"] == {
        "writableNamespaces": ["io.envoy.ai_gateway", "io.envoy.ai_gateway.credentials"]
    }
    assert ep["messageTimeout"] == "10s"


def test_the_gateway_buffers_large_bodies_and_shapes_extproc_failures_as_openai_503() -> None:
    """Envoy Gateway's default 32 KiB buffer fails prompts over 32 KiB with 413; with the ext_proc down,
    clients got a 500 with an empty body (issue 12)."""
    build = build_gateway(simple(), BuildOptions(max_body_bytes=3 << 20))
    objs = objects_by_kind(build)
    target = [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}]
    ctp = objs["ClientTrafficPolicy"]["spec"]
    assert ctp == {
        "targetRefs": target,
        "connection": {"bufferLimit": str(3 << 20)},
        "http1": {"http10": {}},
    }
    (policy,) = build.route_policies
    btp = policy["spec"]
    assert btp["connection"] == {"bufferLimit": str(3 << 20)}
    error_status = objs["EnvoyExtensionPolicy"]["spec"]["extProc"][0]["statusOnError"]
    (override,) = btp["responseOverride"]
    assert override["match"] == {"statusCodes": [{"type": "Value", "value": error_status}]}
    assert override["source"] == "Local"  # never an upstream's answer
    assert override["response"]["statusCode"] == 503
    assert override["response"]["contentType"] == "application/json"
    body = orjson.loads(override["response"]["body"]["inline"])
    assert set(body["error"]) == {"message", "type", "code"}
    default = objects_by_kind(build_gateway(simple(), BuildOptions()))["ClientTrafficPolicy"]
    assert default["spec"]["connection"]["bufferLimit"] == str(50 * 1024 * 1024)


def test_per_gateway_objects_and_labels() -> None:
    b = build_gateway(simple(), BuildOptions())
    kinds = sorted(o["kind"] for o in b.gateway_objects)
    assert kinds == [
        "ClientTrafficPolicy", "ConfigMap", "Deployment", "EnvoyExtensionPolicy", "Secret", "Service",
    ]  # fmt: skip
    for o in b.gateway_objects:
        assert o["metadata"]["name"] == "ai-eg-extproc-gw"
        assert o["metadata"]["labels"]["aigateway.envoyproxy.io/gateway-name"] == "gw"
        assert o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "envoy-ai-gateway"
        assert "aigateway.envoyproxy.io/desired-hash" in o["metadata"]["annotations"]
    cm = objects_by_kind(b)["ConfigMap"]
    assert b.filter_config is not None
    assert fc.FilterConfig.model_validate(yaml.safe_load(cm["data"][fc.CONFIG_KEY])) == b.filter_config


def test_deployment_mounts_config_and_credentials() -> None:
    s = simple(
        routes=(
            route(
                "r1",
                [rule("a")],
                filterConfig={
                    "type": "ExternalProcessor",
                    "externalProcessor": {"replicas": 3, "resources": {"limits": {"cpu": "1"}}},
                },
            ),
        )
    )
    b = build_gateway(s, replace(BuildOptions(), extproc_image="img:1", extproc_log_level="debug"))
    dep = objects_by_kind(b)["Deployment"]
    assert dep["spec"]["replicas"] == 3
    tmpl = dep["spec"]["template"]
    (c,) = tmpl["spec"]["containers"]
    assert c["image"] == "img:1" and c["resources"] == {"limits": {"cpu": "1"}}
    assert c["args"][c["args"].index("--log-level") + 1] == "debug"
    assert c["args"][c["args"].index("--config") + 1] == "/etc/ai-gateway/extproc/filter-config.yaml"
    assert c["readinessProbe"]["grpc"]["port"] == 1063
    assert tmpl["spec"]["volumes"] == [
        {"name": "config", "configMap": {"name": "ai-eg-extproc-gw"}},
        {"name": "auth", "secret": {"secretName": "ai-eg-extproc-gw"}},
    ]
    assert tmpl["metadata"]["labels"]["app.kubernetes.io/instance"] == "gw"
    assert dep["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "ai-eg-extproc",
        "app.kubernetes.io/instance": "gw",
    }
    svc = objects_by_kind(b)["Service"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert [p["port"] for p in svc["spec"]["ports"]] == [1063, 9190]


def test_the_pod_template_does_not_change_with_the_config_or_the_credentials() -> None:
    """The ext_proc hot-reloads its mounted files: a template change would restart every pod for nothing."""
    plain = build_gateway(simple(), BuildOptions())
    other = simple(routes=(route("r1", [rule("a", headers=[[("x-ai-eg-model", "other")]])]),))
    changed = build_gateway(other, BuildOptions())
    assert plain.filter_config is not None and changed.filter_config is not None
    assert plain.filter_config.uuid != changed.filter_config.uuid
    assert objects_by_kind(plain)["Deployment"] == objects_by_kind(changed)["Deployment"]
    restart = build_gateway(simple(), replace(BuildOptions(), extproc_image="img:2"))
    assert objects_by_kind(plain)["Deployment"] != objects_by_kind(restart)["Deployment"]


def test_extproc_address_uses_an_eg_backend_and_no_deployment() -> None:
    opts = replace(BuildOptions(), extproc_address=ExtprocAddress.parse("127.0.0.1:1064"))
    b = build_gateway(simple(), opts)
    objs = objects_by_kind(b)
    assert "Deployment" not in objs and "Service" not in objs
    assert objs["Backend"]["spec"] == {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 1064}}]}
    ep = objs["EnvoyExtensionPolicy"]["spec"]["extProc"][0]
    assert ep["backendRefs"] == [
        {"group": "gateway.envoyproxy.io", "kind": "Backend", "name": "ai-eg-extproc-gw", "port": 1064}
    ]
    named = build_gateway(simple(), replace(opts, extproc_address=ExtprocAddress.parse("extproc.local:9")))
    assert objects_by_kind(named)["Backend"]["spec"]["endpoints"] == [
        {"fqdn": {"hostname": "extproc.local", "port": 9}}
    ]
    assert ExtprocAddress.parse("[::1]:5") == ExtprocAddress("::1", 5)


def test_desired_objects_are_deterministic() -> None:
    assert build_gateway(pool_snap(), INF) == build_gateway(pool_snap(), INF)


def test_no_gateway_object_wants_nothing_but_still_has_statuses() -> None:
    b = build_gateway(simple(gateway_object=None, gateways=frozenset()), BuildOptions())
    assert b.filter_config is None and b.gateway_objects == () and b.http_routes == ()
    st = status_of(b.statuses, "AIGatewayRoute", "r1")
    assert cond(st, "Accepted")[1] == "NoMatchingParent"


def test_a_deleted_gateway_keeps_the_httproutes_of_routes_with_another_gateway() -> None:
    gw2 = ObjKey(NS, "gw2")
    s = simple(routes=(route("r1", [rule("a")], gateways=("gw", "gw2")),), gateway_object=None,
               gateways=frozenset({gw2}))  # fmt: skip
    b = build_gateway(s, BuildOptions())
    assert b.gateway_objects == () and [h["metadata"]["name"] for h in b.http_routes] == ["r1"]
    assert b.http_routes == build_gateway(replace(s, gateway=gw2, gateway_object=gateway("gw2")),
                                          BuildOptions()).http_routes  # fmt: skip


def test_extproc_name_is_a_dns_label() -> None:
    assert extproc_name("gw") == "ai-eg-extproc-gw"
    long = extproc_name("g" * 80)
    assert len(long) <= 63 and long.startswith("ai-eg-extproc-g")
    assert long != extproc_name("g" * 81)


def test_mixed_rule_keeps_order_weights_and_kinds() -> None:
    r = {"backendRefs": [{"name": "a", "weight": 2}, {"kind": "InferencePool", "name": "p", "weight": 5}],
         "matches": [{"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": "m"}]}]}  # fmt: skip
    s = pool_snap(routes=(route("r1", [r]),),
                  backends=dict(pool_snap().backends) | keyed(backend("a")),
                  services=dict(pool_snap().services) | keyed(service("svc-a")))  # fmt: skip
    cfg = filter_config(s, INF)
    assert [(x.kind, x.name, x.weight) for x in cfg.rules[0].backend_refs] == [
        (fc.BackendKind.AI_SERVICE_BACKEND, "a.default", 2),
        (fc.BackendKind.INFERENCE_POOL, "p.default", 5),
    ]
    rules = build_gateway(s, INF).http_routes[0]["spec"]["rules"]
    assert [r["matches"][0].get("headers", [{}])[0].get("value") for r in rules] == [
        "a.default",
        headers.ORIGINAL_DST_CLUSTER,
        None,
    ]


def test_a_backend_shared_by_two_routes_appears_once_in_the_config_and_in_each_httproute() -> None:
    s = simple(routes=(route("r1", [rule("a")]), route("r2", [rule("a")])))
    b = build_gateway(s, BuildOptions())
    assert b.filter_config is not None and [x.name for x in b.filter_config.backends] == ["a.default"]
    assert [h["metadata"]["name"] for h in b.http_routes] == ["r1", "r2"]
    assert all(len(h["spec"]["rules"]) == 2 for h in b.http_routes)


def test_backend_ref_namespace_and_both_timeouts_are_copied() -> None:
    ref = {"name": "svc", "namespace": "other", "port": 80}
    grant = reference_grant("g", "other", from_=[(AIGW, "AIServiceBackend", NS)], to=[("", "Service", "svc")])
    s = simple(backends=keyed(backend("a", ref=ref, timeouts={"request": "30s", "backendRequest": "10s"})),
               services=keyed(service("svc", 80, ns="other")), grants=(grant,))  # fmt: skip
    rule0 = build_gateway(s, BuildOptions()).http_routes[0]["spec"]["rules"][0]
    assert rule0["backendRefs"][0]["namespace"] == "other"
    assert rule0["timeouts"] == {"request": "30s", "backendRequest": "10s"}


def test_route_on_two_gateways_gets_both_parent_refs_whichever_gateway_builds_it() -> None:
    s = simple(routes=(route("r1", [rule("a")], gateways=("gw", "gw2")),),
               gateways=frozenset({GW, ObjKey(NS, "gw2")}))  # fmt: skip
    a = build_gateway(s, BuildOptions()).http_routes[0]
    b = build_gateway(replace(s, gateway=ObjKey(NS, "gw2"), gateway_object=gateway("gw2")), BuildOptions())
    assert a == b.http_routes[0]
    assert [p["name"] for p in a["spec"]["parentRefs"]] == ["gw", "gw2"]


def test_many_backends_are_split_into_httproutes_of_at_most_16_rules() -> None:
    names = [f"b{i:02d}" for i in range(20)]
    s = snap(
        routes=(route("big", [rule(*names)]),),
        backends=keyed(*(backend(x) for x in names)),
        services=keyed(*(service(f"svc-{x}") for x in names)),
    )
    hrs = build_gateway(s, BuildOptions()).http_routes
    assert [h["metadata"]["name"] for h in hrs] == ["big", "big-2"]
    assert [len(h["spec"]["rules"]) for h in hrs] == [16, 5]
    assert hrs[0]["spec"]["rules"][-1] == {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    assert all(h["metadata"]["labels"]["aigateway.envoyproxy.io/route-name"] == "big" for h in hrs)
    values = [
        r["matches"][0]["headers"][0]["value"]
        for h in hrs
        for r in h["spec"]["rules"]
        if "headers" in r["matches"][0]
    ]
    assert values == [f"{x}.default" for x in names]


def test_each_route_has_its_backend_traffic_policy_on_all_its_httproutes_leaving_the_gateway_free() -> None:
    """A second BackendTrafficPolicy on a Gateway is ``Conflicted`` in Envoy Gateway: ours is on the routes,
    merged into the user's Gateway-level one (issue 16)."""
    names = [f"b{i:02d}" for i in range(20)]
    s = snap(
        routes=(route("big", [rule(*names)]), route("small", [rule("b00")])),
        backends=keyed(*(backend(x) for x in names)),
        services=keyed(*(service(f"svc-{x}") for x in names)),
    )
    b = build_gateway(s, BuildOptions())
    assert "BackendTrafficPolicy" not in {o["kind"] for o in b.gateway_objects}
    by_name = {p["metadata"]["name"]: p for p in b.route_policies}
    assert set(by_name) == {"big", "small"}
    big = by_name["big"]
    assert big["kind"] == "BackendTrafficPolicy" and big["metadata"]["namespace"] == NS
    assert big["spec"]["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": x} for x in ("big", "big-2")
    ]
    assert big["spec"]["mergeType"] == "StrategicMerge"
    assert big["metadata"]["labels"]["aigateway.envoyproxy.io/route-name"] == "big"
    (owner,) = big["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("AIGatewayRoute", "big")
    assert [t["name"] for t in by_name["small"]["spec"]["targetRefs"]] == ["small"]


def test_a_cel_cost_that_does_not_compile_is_left_out_and_named_in_partially_invalid() -> None:
    costs = [
        {"metadataKey": "total", "type": "TotalToken"},
        {"metadataKey": "weighted", "type": "CEL", "cel": "input_tokens * 3 + output_tokens"},
        {"metadataKey": "broken", "type": "CEL", "cel": "input_tokens +"},
        {"metadataKey": "typo", "type": "CEL", "cel": "inputtokens * 2"},
    ]
    s = simple(routes=(route("r1", [rule("a")], llmRequestCosts=costs),))
    b = build_gateway(s, BuildOptions())
    st = status_of(b.statuses, "AIGatewayRoute", "r1")
    assert cond(st, "Accepted")[0] == "True"
    status, reason, message = cond(st, "PartiallyInvalid")
    assert (status, reason) == ("True", "InvalidCostExpression")
    assert "llmRequestCosts[2] (broken)" in message and "Syntax error" in message
    assert "llmRequestCosts[3] (typo)" in message and "unknown variable(s) inputtokens" in message
    cfg = filter_config(s, BuildOptions())
    assert [c.metadata_key for c in cfg.llm_request_costs] == ["total", "weighted"]
    assert cfg.rules  # the route is still served
    fixed = simple(routes=(route("r1", [rule("a")], llmRequestCosts=costs[:2]),))
    st = status_of(build_gateway(fixed, BuildOptions()).statuses, "AIGatewayRoute", "r1")
    assert cond(st, "PartiallyInvalid")[:2] == ("False", "Valid")
    assert not st.problems()
