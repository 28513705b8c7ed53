"""Scenario 10: the extension server points at the ORIGINAL_DST cluster only the InferencePool routes our
controller generated, on a Gateway our ext_proc guards. A hand-written HTTPRoute on another Gateway (no
ext_proc) that matches our header, even one carrying a name our builders could give, stays Envoy Gateway's
direct response: a client can't use it as a proxy to an ``ip:port`` of its choice."""

from __future__ import annotations

from tests.e2e import objects
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams
from tests.e2e.kube import wait_for
from tests.realparts.dns import DnsServer
from tests.realparts.httpclient import request
from tests.realparts.ports import common_port

POOL_HEADER = {"x-ai-eg-selected-backend": "original_destination_cluster"}


def _hand_written_pool_route(name: str, ns: str, gateway: str, *, benign: str, port: int) -> objects.Obj:
    """What an attacker writes: our pool rule's match, and a harmless rule to see when the route is live."""
    route = objects.http_route(name, ns, gateway, benign, port)
    route["spec"]["rules"][0]["matches"] = [{"path": {"type": "PathPrefix", "value": "/healthz"}}]
    route["spec"]["rules"].append(
        {"matches": [{"headers": [{"type": "Exact", "name": k, "value": v} for k, v in POOL_HEADER.items()]}]}
    )
    return route


def test_a_hand_written_pool_route_on_another_gateway_is_not_rewritten(
    scn: Scenario, upstreams: Upstreams, dns_server: DnsServer
) -> None:
    ips = {"member": "127.0.0.81", "victim": "127.0.0.89"}
    port = common_port(list(ips.values()))
    for name, ip in ips.items():
        upstreams.start(name, ip, port)
    benign = upstreams.start("benign", "127.0.0.88")
    dns_server.set_records({objects.service_fqdn("member", scn.ns): [ips["member"]]})
    # ours: a pool route on the scenario's Gateway, which the extension server must keep rewriting
    scn.apply(
        *objects.pool_backend("member", scn.ns, port, "pool"),
        objects.inference_pool("pool", scn.ns, {"app": "pool"}, port),
        objects.inference_model("llama", scn.ns, "llama-3", "pool"),
        objects.route_to_pool("pooled", scn.ns, scn.gateway, "llama-3", "pool"),
    )
    scn.wait_ok("llama-3", upstream="member")

    # theirs: another Gateway without our ext_proc, two hand-written HTTPRoutes with our pool match; one of
    # them named as the second HTTPRoute of our AIGatewayRoute "pooled" would be
    open_port = objects.listener_port()
    scn.apply(
        objects.gateway("open", scn.ns, open_port),
        objects.eg_backend("benign", scn.ns, benign.port, ip=benign.host),
        _hand_written_pool_route("attacker", scn.ns, "open", benign="benign", port=benign.port),
        _hand_written_pool_route("pooled-2", scn.ns, "open", benign="benign", port=benign.port),
    )
    scn.eg.wait_for_listener(open_port, timeout=120)

    def live() -> bool | None:
        return True if request(open_port, "/healthz", method="GET").status == 200 else None

    wait_for(live, "the hand-written routes on Gateway 'open' to be live", 120)
    upstreams.reset()

    victim = f"{ips['victim']}:{port}"
    for _ in range(10):
        reply = chat(open_port, "anything", headers={**POOL_HEADER, "x-ai-eg-original-dst": victim})
        # Envoy Gateway's answer for a rule without backends; before the fix: 200 from the victim
        assert reply.status == 500, (reply.status, reply.body)
    assert upstreams.counts()["victim"] == 0
    # and our own route is still pointed at the ORIGINAL_DST cluster
    reply = chat(scn.port, "llama-3")
    assert (reply.status, reply.upstream) == (200, "member"), reply.body
