"""Scenario 6: a pool member's DNS record changes; traffic moves to the new endpoint within the record's TTL
plus a few seconds (controller re-resolution, config write, projection, ext_proc reload), and stays there."""

from __future__ import annotations

import time

from tests.e2e import artifacts, objects
from tests.e2e.client import chat
from tests.e2e.conftest import DNS_TTL
from tests.e2e.harness import Scenario, Upstreams
from tests.realparts.dns import DnsServer
from tests.realparts.ports import common_port

SLACK_SECONDS = 5


def test_traffic_follows_a_dns_change(scn: Scenario, upstreams: Upstreams, dns_server: DnsServer) -> None:
    old_ip, new_ip = "127.0.0.61", "127.0.0.62"
    port = common_port([old_ip, new_ip])
    upstreams.start("old", old_ip, port)
    upstreams.start("new", new_ip, port)
    fqdn = objects.service_fqdn("moving", scn.ns)
    dns_server.set_records({fqdn: [old_ip]})
    scn.apply(
        *objects.pool_backend("moving", scn.ns, port, "moving"),
        objects.inference_pool("moving", scn.ns, {"app": "moving"}, port),
        objects.inference_model("moving", scn.ns, "moving-model", "moving"),
        objects.route_to_pool("moving", scn.ns, scn.gateway, "moving-model", "moving"),
    )
    scn.wait_ok("moving-model", upstream="old")

    dns_server.set_records({fqdn: [new_ip]})
    changed = time.monotonic()
    deadline = changed + DNS_TTL + SLACK_SECONDS
    moved_after: float | None = None
    while time.monotonic() < deadline:
        reply = chat(scn.port, "moving-model")
        assert reply.status == 200, reply.body
        if reply.upstream == "new":
            moved_after = time.monotonic() - changed
            break
        time.sleep(0.1)
    assert moved_after is not None, f"traffic did not move within {DNS_TTL} s TTL + {SLACK_SECONDS} s"
    artifacts.measure(f"6. traffic moved after a DNS change (TTL {DNS_TTL} s) in", f"{moved_after:.2f} s")

    upstreams.reset()
    for _ in range(20):
        reply = chat(scn.port, "moving-model")
        assert (reply.status, reply.upstream) == (200, "new"), reply.body
    assert upstreams.counts()["old"] == 0
