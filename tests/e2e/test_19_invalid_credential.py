"""Scenario 19: an API key a header can't carry, on the real Envoy Gateway with our ext_proc. The ext_proc
refuses a whole config over such a key, so the controller leaves only that policy's backend out (its
``ResolvedRefs=False InvalidCredential`` says why): requests for its model get a 404 JSON error, the Gateway's
other models and a route added meanwhile are served, and fixing the Secret brings the backend back with the
new key."""

from __future__ import annotations

from api.objects import Obj
from tests.e2e import objects
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams
from tests.e2e.kube import wait_for


def _key_route(ns: str, gateway: str) -> Obj:
    return objects.ai_gateway_route(
        "r",
        ns,
        gateway,
        [
            objects.rule(model="model-keyed", backends=[("AIServiceBackend", "keyed", 1)]),
            objects.rule(model="model-open", backends=[("AIServiceBackend", "open", 1)]),
        ],
    )


def test_a_bad_key_leaves_only_its_backend_out(scn: Scenario, upstreams: Upstreams) -> None:
    ns = scn.ns
    keyed = upstreams.start("keyed", "127.0.0.191")
    open_ = upstreams.start("open", "127.0.0.192")
    new = upstreams.start("new", "127.0.0.193")
    policy = {"type": "APIKey", "apiKey": {"secretRef": {"name": "key"}}}
    scn.apply(
        objects.eg_backend("keyed", ns, keyed.port, ip=keyed.host),
        objects.secret("key", ns, apiKey="sk-e2e-first"),
        objects.security_policy("p", ns, policy),
        objects.ai_service_backend("keyed", ns, "keyed", policy="p"),
        *objects.direct_backend("open", ns, open_.host, open_.port),
        _key_route(ns, scn.gateway),
    )
    first = scn.wait_ok("model-keyed", upstream="keyed")
    assert first.json()["echo"]["headers"]["authorization"] == f"<{len('Bearer sk-e2e-first')} chars>"
    scn.wait_ok("model-open", upstream="open")

    scn.apply(objects.secret("key", ns, apiKey="sk-e2e-bad\nx-injected: 1"))
    cond = scn.kube.wait_condition("backendsecuritypolicy", "p", ns, "ResolvedRefs", "False", timeout=90)
    assert cond["reason"] == "InvalidCredential" and "sk-e2e" not in cond["message"], cond
    gone = wait_for(
        lambda: r if (r := chat(scn.port, "model-keyed")).status == 404 else None,
        "model-keyed answered 404 once its backend is left out",
        timeout=90,
    )
    assert gone.json()["error"]["code"] == "model_not_found", gone.body
    assert "has no backend" in gone.json()["error"]["message"], gone.body
    reply = chat(scn.port, "model-open")
    assert (reply.status, reply.upstream) == (200, "open"), reply.body

    # the Gateway's other changes still reach the ext_proc (it would refuse a config holding the bad key)
    scn.apply(
        *objects.direct_backend("new", ns, new.host, new.port),
        objects.route_to_backend("r2", ns, scn.gateway, "model-new", "new"),
    )
    scn.wait_ok("model-new", upstream="new", timeout=90)

    scn.apply(objects.secret("key", ns, apiKey="sk-e2e-fixed-key"))
    scn.kube.wait_condition("backendsecuritypolicy", "p", ns, "ResolvedRefs", "True", timeout=90)
    fixed = scn.wait_ok("model-keyed", upstream="keyed", timeout=90)
    assert fixed.json()["echo"]["headers"]["authorization"] == f"<{len('Bearer sk-e2e-fixed-key')} chars>"
