"""Scenario 2 (upstream issue #509): two AIGatewayRoutes attached to the same Gateway both work, because the
controller merges every route of a Gateway into one filter config and one EnvoyExtensionPolicy."""

from __future__ import annotations

from tests.e2e import objects
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams


def test_two_routes_on_one_gateway_both_work(scn: Scenario, upstreams: Upstreams) -> None:
    a = upstreams.start("route-a", "127.0.0.23")
    b = upstreams.start("route-b", "127.0.0.24")
    scn.apply(
        *objects.direct_backend("a", scn.ns, a.host, a.port),
        *objects.direct_backend("b", scn.ns, b.host, b.port),
        objects.route_to_backend("first", scn.ns, scn.gateway, "model-a", "a"),
        objects.route_to_backend("second", scn.ns, scn.gateway, "model-b", "b"),
    )
    scn.wait_ok("model-a", upstream="route-a")
    scn.wait_ok("model-b", upstream="route-b")
    upstreams.reset()

    for _ in range(5):
        for model, upstream in (("model-a", "route-a"), ("model-b", "route-b")):
            reply = chat(scn.port, model)
            assert (reply.status, reply.upstream) == (200, upstream), reply.body
    assert upstreams.counts() == {"route-a": 5, "route-b": 5}
    configmaps = [c["metadata"]["name"] for c in scn.kube.items("configmaps", scn.ns)]
    assert configmaps.count("ai-eg-extproc-gw") == 1, configmaps
    policies = scn.kube.items("envoyextensionpolicies", scn.ns)
    assert len(policies) == 1, [p["metadata"]["name"] for p in policies]
