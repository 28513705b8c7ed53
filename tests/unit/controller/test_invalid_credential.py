"""A credential a header can't carry (``api.headers.header_credential``) through the builders: the policy and
its backends get ``InvalidCredential``, only those backends are left out, and ``invalid_credentials`` lists
them for a composer that refuses the whole change instead (``aigw run``)."""

from __future__ import annotations

import base64
from dataclasses import replace

from controller.translate import BuildOptions, ObjKey, Snapshot, build_gateway
from tests.unit.controller.objects import (
    NS,
    api_key_policy,
    aws_policy,
    azure_policy,
    b64,
    backend,
    keyed,
    route,
    rule,
    service,
)
from tests.unit.controller.test_translate import INF, cond, objects_by_kind, pool_snap, snap, status_of

SECRET = ObjKey(NS, "sec")


def two_backends(key: str) -> Snapshot:
    """Route r1 to ``a`` (API key in Secret ``sec``: ``key``) and to ``b`` (no credentials)."""
    return snap(
        routes=(route("r1", [rule("a"), rule("b")]),),
        backends=keyed(backend("a", bsp="k"), backend("b")),
        services=keyed(service("svc-a"), service("svc-b")),
        security_policies=keyed(api_key_policy("k", "sec")),
        secrets={SECRET: {"apiKey": b64(key)}},
    )


def test_only_the_policys_backends_are_left_out_and_the_message_never_has_the_key() -> None:
    bad = build_gateway(two_backends("sk-secret-1\nx-evil: 1"), BuildOptions())
    message = (
        "Secret default/sec key 'apiKey' holds characters not allowed in an HTTP header; the backends using "
        "this policy are not served until it is fixed"
    )
    assert cond(status_of(bad.statuses, "BackendSecurityPolicy", "k"), "ResolvedRefs") == (
        "False",
        "InvalidCredential",
        message,
    )
    assert cond(status_of(bad.statuses, "AIServiceBackend", "a"), "ResolvedRefs") == (
        "False",
        "InvalidCredential",
        f"BackendSecurityPolicy default/k: {message}",
    )
    assert cond(status_of(bad.statuses, "AIServiceBackend", "b"), "ResolvedRefs")[0] == "True"
    status, reason, route_message = cond(status_of(bad.statuses, "AIGatewayRoute", "r1"), "ResolvedRefs")
    assert (status, reason) == ("False", "BackendNotFound") and "AIServiceBackend default/a" in route_message
    assert "sk-secret" not in str(bad.statuses)
    assert bad.filter_config is not None
    assert [x.name for x in bad.filter_config.backends] == ["b.default"]
    assert objects_by_kind(bad)["Secret"]["data"] == {}  # the bad key is not handed to the ext_proc
    ((key, finding),) = bad.invalid_credentials
    assert key == ObjKey(NS, "a") and finding.use.secret == SECRET and finding.use.key == "apiKey"
    assert finding.what == "holds characters not allowed in an HTTP header"

    fixed = build_gateway(two_backends("sk-secret-1\n"), BuildOptions())  # a trailing newline is stripped
    assert cond(status_of(fixed.statuses, "BackendSecurityPolicy", "k"), "ResolvedRefs")[0] == "True"
    assert cond(status_of(fixed.statuses, "AIServiceBackend", "a"), "ResolvedRefs")[0] == "True"
    assert fixed.filter_config is not None
    assert [x.name for x in fixed.filter_config.backends] == ["a.default", "b.default"]
    assert fixed.invalid_credentials == ()


def test_each_way_a_header_cannot_carry_a_key_is_named() -> None:
    for raw, what in (
        (b"   \n", "is empty"),
        (b"sk-\xff", "is not UTF-8 (byte 3)"),
        (b"sk-a\x01b", "holds characters not allowed in an HTTP header"),
    ):
        s = replace(two_backends(""), secrets={SECRET: {"apiKey": base64.b64encode(raw).decode()}})
        (_, finding), *_ = build_gateway(s, BuildOptions()).invalid_credentials
        assert finding.what == what
    s = replace(two_backends(""), secrets={SECRET: {"apiKey": "not base64!"}})
    st = status_of(build_gateway(s, BuildOptions()).statuses, "BackendSecurityPolicy", "k")
    assert cond(st, "ResolvedRefs")[:2] == ("False", "InvalidCredential")
    assert "is not base64" in cond(st, "ResolvedRefs")[2]


def test_an_azure_access_token_is_checked_and_an_aws_credentials_file_is_not() -> None:
    s = snap(
        routes=(route("r1", [rule("az"), rule("aws")]),),
        backends=keyed(backend("az", bsp="az"), backend("aws", bsp="aws", schema="AWSBedrock")),
        services=keyed(service("svc-az"), service("svc-aws")),
        security_policies=keyed(azure_policy("az"), aws_policy("aws", "creds")),
        secrets={
            ObjKey(NS, "s"): {"client-secret": b64("x")},
            ObjKey(NS, "ai-eg-bsp-az"): {"azureAccessToken": b64("tok\r\nen")},
            ObjKey(NS, "creds"): {"credentials": b64("[default]\naws_access_key_id = A\n")},
        },
    )
    b = build_gateway(s, BuildOptions())
    assert cond(status_of(b.statuses, "BackendSecurityPolicy", "az"), "ResolvedRefs")[:2] == (
        "False",
        "InvalidCredential",
    )
    assert cond(status_of(b.statuses, "BackendSecurityPolicy", "aws"), "ResolvedRefs")[0] == "True"
    assert [k for k, _ in b.invalid_credentials] == [ObjKey(NS, "az")]
    assert b.filter_config is not None and [x.name for x in b.filter_config.backends] == ["aws.default"]


def test_a_pool_member_is_left_out_and_only_reached_backends_are_listed() -> None:
    base = pool_snap()
    backends = dict(base.backends) | keyed(
        backend("a", labels={"app": "x"}, bsp="k"), backend("unrouted", bsp="k")
    )
    s = pool_snap(
        backends=backends,
        services=dict(base.services) | keyed(service("svc-unrouted")),
        security_policies=keyed(api_key_policy("k", "sec")),
        secrets={SECRET: {"apiKey": b64("")}},
    )
    b = build_gateway(s, INF)
    assert b.filter_config is not None
    assert [m.name for m in b.filter_config.pools[0].members] == ["b.default"]
    status, reason, message = cond(status_of(b.statuses, "InferencePool", "p"), "ResolvedRefs", 0)
    assert (status, reason) == ("False", "InvalidCredential") and "AIServiceBackend default/a" in message
    unrouted = status_of(b.statuses, "AIServiceBackend", "unrouted")
    assert cond(unrouted, "ResolvedRefs")[:2] == ("False", "InvalidCredential")
    # no route reaches "unrouted": it is left out anyway, but nothing would have served it
    assert [k for k, _ in b.invalid_credentials] == [ObjKey(NS, "a")]
