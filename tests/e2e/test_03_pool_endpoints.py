"""Scenario 3: an InferencePool of two AIServiceBackends whose Service hostnames resolve (through our DNS
server) to three endpoints; 300 requests reach all three, and only them."""

from __future__ import annotations

import time
from collections import Counter

from tests.e2e import artifacts, objects
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams
from tests.realparts.dns import DnsServer
from tests.realparts.ports import common_port

REQUESTS = 300


def test_pool_spreads_over_exactly_the_resolved_endpoints(
    scn: Scenario, upstreams: Upstreams, dns_server: DnsServer
) -> None:
    ips = {"ep-1": "127.0.0.31", "ep-2": "127.0.0.32", "ep-3": "127.0.0.33", "outsider": "127.0.0.34"}
    port = common_port(list(ips.values()))
    for name, ip in ips.items():
        upstreams.start(name, ip, port)
    dns_server.set_records(
        {
            objects.service_fqdn("member-a", scn.ns): [ips["ep-1"], ips["ep-2"]],
            objects.service_fqdn("member-b", scn.ns): [ips["ep-3"]],
        }
    )
    scn.apply(
        *objects.pool_backend("member-a", scn.ns, port, "pool"),
        *objects.pool_backend("member-b", scn.ns, port, "pool"),
        objects.inference_pool("pool", scn.ns, {"app": "pool"}, port),
        objects.inference_model("llama", scn.ns, "llama-3", "pool"),
        objects.route_to_pool("pooled", scn.ns, scn.gateway, "llama-3", "pool"),
    )
    scn.wait_ok("llama-3", upstream=lambda name: name in ("ep-1", "ep-2", "ep-3"))
    upstreams.reset()

    seen: Counter[str | None] = Counter()
    began = time.monotonic()
    for _ in range(REQUESTS):
        reply = chat(scn.port, "llama-3")
        assert reply.status == 200, reply.body
        seen[reply.upstream] += 1
    artifacts.measure(
        f"3. pool spread over {REQUESTS} sequential requests ({time.monotonic() - began:.1f} s)",
        {str(k): v for k, v in sorted(seen.items(), key=str)},
    )
    assert set(seen) == {"ep-1", "ep-2", "ep-3"}, seen
    assert all(n >= REQUESTS // 10 for n in seen.values()), f"very uneven spread: {seen}"
    counts = upstreams.counts()
    assert counts["outsider"] == 0
    assert sum(counts.values()) == REQUESTS
