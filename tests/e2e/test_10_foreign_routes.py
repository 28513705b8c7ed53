"""Scenario 10: the extension server points at the ORIGINAL_DST cluster only the InferencePool routes our
controller generated. A hand-written HTTPRoute that matches our pool header (an attempt to get a proxy to an
``ip:port`` of the client's choice) keeps Envoy Gateway's direct response, checked in the xDS that the real
Envoy Gateway gave its Envoy, next to our own pool route, which is rewritten.

The harness runs one Envoy at a time (Envoy Gateway's Host infrastructure starts each with the same hot
restart base id), so the foreign route sits on the scenario's Gateway; that a route on another Gateway (one no
AIGatewayRoute targets) is refused even when named like ours is in tests/unit/extensionserver/test_xds.py."""

from __future__ import annotations

from typing import Any

from api.objects import Obj
from tests.e2e import objects
from tests.e2e.harness import Scenario, Upstreams
from tests.e2e.kube import wait_for
from tests.realparts.dns import DnsServer
from tests.realparts.ports import common_port

POOL_HEADER = ("x-ai-eg-selected-backend", "original_destination_cluster")


def _hand_written_pool_route(name: str, ns: str, gateway: str, *, benign: str, port: int) -> Obj:
    """What an attacker writes: our pool rule's match, here with a backend. On its own hostname: with the
    same match on the same virtual host as ours, Envoy Gateway's route order could let it take our traffic,
    which would hide what this test checks (the extension server's choice)."""
    route = objects.http_route(name, ns, gateway, benign, port)
    route["spec"]["hostnames"] = ["attacker.example"]
    route["spec"]["rules"][0]["matches"] = [
        {"headers": [{"type": "Exact", "name": POOL_HEADER[0], "value": POOL_HEADER[1]}]}
    ]
    return route


def _routes(dump: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every xDS route of the Envoy's dynamic route configurations, by name."""
    out: dict[str, dict[str, Any]] = {}
    for config in dump.get("configs", []):
        for rc in config.get("dynamic_route_configs", []):
            for vh in rc.get("route_config", {}).get("virtual_hosts", []):
                for r in vh.get("routes", []):
                    out[r.get("name", "")] = r
    return out


def test_a_hand_written_pool_route_is_not_rewritten(
    scn: Scenario, upstreams: Upstreams, dns_server: DnsServer
) -> None:
    ips = {"member": "127.0.0.81", "victim": "127.0.0.89"}
    port = common_port(list(ips.values()))
    for name, ip in ips.items():
        upstreams.start(name, ip, port)
    dns_server.set_records({objects.service_fqdn("member", scn.ns): [ips["member"]]})
    scn.apply(
        *objects.pool_backend("member", scn.ns, port, "pool"),
        objects.inference_pool("pool", scn.ns, {"app": "pool"}, port),
        objects.inference_model("llama", scn.ns, "llama-3", "pool"),
        objects.route_to_pool("pooled", scn.ns, scn.gateway, "llama-3", "pool"),
        objects.eg_backend("victim", scn.ns, port, ip=ips["victim"]),
        _hand_written_pool_route("attacker", scn.ns, scn.gateway, benign="victim", port=port),
    )
    scn.wait_ok("llama-3", upstream="member")

    ours = f"httproute/{scn.ns}/pooled/rule/0/match/0/"
    theirs = f"httproute/{scn.ns}/attacker/rule/0/match/0/"

    def both_translated() -> tuple[dict[str, Any], dict[str, Any]] | None:
        for admin in reversed(scn.eg.envoy_admin_addresses()):
            try:
                routes = _routes(scn.eg.config_dump(admin))
            except OSError:
                continue  # an Envoy of an earlier scenario, gone
            mine = [r for name, r in routes.items() if name.startswith(ours)]
            foreign = [r for name, r in routes.items() if name.startswith(theirs)]
            if mine and foreign:
                return mine[0], foreign[0]
        return None

    mine, foreign = wait_for(both_translated, "our pool route and the hand-written one in Envoy's xDS", 120)
    assert mine["route"]["cluster"] == "original_destination_cluster"  # ours: rewritten
    # theirs: exactly as Envoy Gateway made it (its own cluster for the victim Backend), never ORIGINAL_DST
    assert foreign.get("route", {}).get("cluster", "").startswith(f"httproute/{scn.ns}/attacker/"), foreign
    assert "x-ai-eg-original-dst" not in str(foreign)
