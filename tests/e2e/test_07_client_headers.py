"""Scenario 7: routing headers a client sets (the endpoint picker's destination header, our original-dst and
selected-backend headers) are ignored: requests still land only where the gateway picks."""

from __future__ import annotations

from tests.e2e import objects
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams
from tests.realparts.dns import DnsServer
from tests.realparts.ports import common_port


def test_client_destination_headers_are_ignored(
    scn: Scenario, upstreams: Upstreams, dns_server: DnsServer
) -> None:
    ips = {"picked-1": "127.0.0.71", "picked-2": "127.0.0.72", "trap": "127.0.0.79"}
    port = common_port(list(ips.values()))
    for name, ip in ips.items():
        upstreams.start(name, ip, port)
    side = upstreams.start("side", "127.0.0.78")
    dns_server.set_records({objects.service_fqdn("guarded", scn.ns): [ips["picked-1"], ips["picked-2"]]})
    scn.apply(
        *objects.pool_backend("guarded", scn.ns, port, "guarded"),
        objects.inference_pool("guarded", scn.ns, {"app": "guarded"}, port),
        objects.inference_model("guarded", scn.ns, "guarded-model", "guarded"),
        objects.route_to_pool("guarded", scn.ns, scn.gateway, "guarded-model", "guarded"),
        *objects.direct_backend("side", scn.ns, side.host, side.port),
        objects.route_to_backend("side", scn.ns, scn.gateway, "side-model", "side"),
    )
    scn.wait_ok("guarded-model", upstream=lambda n: n in ("picked-1", "picked-2"))
    scn.wait_ok("side-model", upstream="side")
    upstreams.reset()

    trap = f"{ips['trap']}:{port}"
    hostile = {
        "x-gateway-destination-endpoint": trap,
        "x-ai-eg-original-dst": trap,
        "x-ai-eg-selected-backend": f"side.{scn.ns}",
    }
    for _ in range(30):
        reply = chat(scn.port, "guarded-model", headers=hostile)
        assert reply.status == 200, reply.body
        assert reply.upstream in ("picked-1", "picked-2")
    # The other way round: a direct-backend request cannot be pushed into the pool's endpoints.
    for _ in range(10):
        reply = chat(
            scn.port,
            "side-model",
            headers={**hostile, "x-ai-eg-selected-backend": "original_destination_cluster"},
        )
        assert (reply.status, reply.upstream) == (200, "side"), reply.body
    counts = upstreams.counts()
    assert counts["trap"] == 0
    assert counts["picked-1"] + counts["picked-2"] == 30
    assert counts["side"] == 10
    for u in upstreams.by_name.values():
        for r in u.received:
            assert r.headers.get("x-gateway-destination-endpoint") in (None, f"{u.host}:{port}")
