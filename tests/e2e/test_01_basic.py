"""Scenario 1, the basic sample: an AIGatewayRoute sends one model to one AIServiceBackend, and the request
gets a 200 from that upstream (and from no other)."""

from __future__ import annotations

from tests.e2e import objects
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams


def test_basic_route_reaches_its_backend(scn: Scenario, upstreams: Upstreams) -> None:
    right = upstreams.start("basic", "127.0.0.21")
    other = upstreams.start("other", "127.0.0.22")
    scn.apply(
        *objects.direct_backend("basic", scn.ns, right.host, right.port),
        *objects.direct_backend("other", scn.ns, other.host, other.port),
        objects.route_to_backend("basic", scn.ns, scn.gateway, "gpt-4o-mini", "basic"),
        objects.route_to_backend("other", scn.ns, scn.gateway, "other-model", "other"),
    )
    scn.wait_ok("gpt-4o-mini", upstream="basic")
    upstreams.reset()

    for _ in range(10):
        reply = chat(scn.port, "gpt-4o-mini")
        assert reply.status == 200, reply.body
        assert reply.upstream == "basic"
        assert reply.json()["model"] == "gpt-4o-mini"
        assert reply.json()["usage"]["total_tokens"] > 0
    assert upstreams.counts() == {"basic": 10, "other": 0}
