"""Scenario 5: an InferenceModel with weighted targetModels; the upstream sees the rewritten model names in
the expected proportions (80/20)."""

from __future__ import annotations

from collections import Counter

from tests.e2e import artifacts, objects
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams
from tests.realparts.dns import DnsServer

REQUESTS = 400


def test_target_models_are_rewritten_by_weight(
    scn: Scenario, upstreams: Upstreams, dns_server: DnsServer
) -> None:
    up = upstreams.start("lora-server", "127.0.0.51")
    dns_server.set_records({objects.service_fqdn("lora", scn.ns): [up.host]})
    scn.apply(
        *objects.pool_backend("lora", scn.ns, up.port, "lora"),
        objects.inference_pool("lora-pool", scn.ns, {"app": "lora"}, up.port),
        objects.inference_model(
            "mistral", scn.ns, "mistral:latest", "lora-pool", targets=[("lora-a", 80), ("lora-b", 20)]
        ),
        objects.route_to_pool("lora", scn.ns, scn.gateway, "mistral:latest", "lora-pool"),
    )
    scn.wait_ok("mistral:latest", upstream="lora-server")
    upstreams.reset()

    for _ in range(REQUESTS):
        reply = chat(scn.port, "mistral:latest")
        assert reply.status == 200, reply.body
    models = Counter(r.model for r in up.received)
    assert set(models) == {"lora-a", "lora-b"}, models
    share = models["lora-a"] / REQUESTS
    artifacts.measure("5. share of lora-a (weight 80 of 100) over 400 requests", f"{share:.3f}")
    # Binomial(400, 0.8): standard deviation 0.02; 0.70..0.90 is five of them.
    assert 0.70 <= share <= 0.90, models
