"""Scenario 8: ``kubectl describe`` shows ``Accepted=True`` on the route, the pool and the model; a route
whose backend is missing shows the reason in its conditions and an Event, and the requests that need that
backend fail cleanly (a complete error response) while the rest keep working."""

from __future__ import annotations

from typing import Any

from tests.e2e import artifacts, objects
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams
from tests.e2e.kube import condition, wait_for
from tests.realparts.dns import DnsServer


def _pool_condition(pool: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for parent in (pool or {}).get("status", {}).get("parent", []) or []:
        if parent.get("parentRef", {}).get("name") == "gw":
            for c in parent.get("conditions", []):
                if c.get("type") == type_:
                    return dict(c)
    return None


def described_conditions(text: str) -> list[dict[str, str]]:
    """The conditions ``kubectl describe`` prints (each block starts with ``Last Transition Time``)."""
    out: list[dict[str, str]] = []
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        if key == "Last Transition Time":
            out.append({})
        elif out and key in ("Message", "Reason", "Status", "Type"):
            out[-1][key] = value.strip()
    return out


def described_events(text: str) -> list[list[str]]:
    """Rows of the ``Events:`` table of ``kubectl describe`` (type, reason, age, from, message)."""
    _, _, table = text.partition("\nEvents:")
    rows = [ln.split(None, 4) for ln in table.splitlines()[3:] if ln.strip()]
    return [r for r in rows if len(r) == 5]


def test_status_conditions_and_events(scn: Scenario, upstreams: Upstreams, dns_server: DnsServer) -> None:
    up = upstreams.start("healthy", "127.0.0.81")
    dns_server.set_records({objects.service_fqdn("healthy", scn.ns): [up.host]})
    scn.apply(
        *objects.pool_backend("healthy", scn.ns, up.port, "healthy"),
        objects.inference_pool("pool", scn.ns, {"app": "healthy"}, up.port),
        objects.inference_model("model", scn.ns, "healthy-model", "pool"),
        objects.route_to_pool("good", scn.ns, scn.gateway, "healthy-model", "pool"),
    )
    scn.wait_ok("healthy-model", upstream="healthy")

    kube = scn.kube
    kube.wait_condition("aigatewayroute", "good", scn.ns, "Accepted")
    kube.wait_condition("inferencemodel", "model", scn.ns, "Accepted")
    pool_accepted = wait_for(
        lambda: (
            (
                c := _pool_condition(
                    kube.get("inferencepool.inference.networking.x-k8s.io", "pool", scn.ns), "Accepted"
                )
            )
            and c["status"] == "True"
            and c
        ),
        "InferencePool pool Accepted=True for Gateway gw",
    )
    assert pool_accepted["reason"] == "Accepted"
    for kind, name in (
        ("aigatewayroute", "good"),
        ("inferencepool.inference.networking.x-k8s.io", "pool"),
        ("inferencemodel", "model"),
    ):
        described = kube.describe(kind, name, scn.ns)
        accepted = [c for c in described_conditions(described) if c.get("Type") == "Accepted"]
        assert accepted and all(c["Status"] == "True" for c in accepted), described

    scn.apply(objects.route_to_backend("broken", scn.ns, scn.gateway, "broken-model", "missing"))
    resolved = kube.wait_condition("aigatewayroute", "broken", scn.ns, "ResolvedRefs", status="False")
    assert resolved["reason"] == "BackendNotFound", resolved
    assert "missing" in resolved["message"], resolved
    described = kube.describe("aigatewayroute", "broken", scn.ns)
    shown = {c.get("Type"): c for c in described_conditions(described)}
    assert shown["ResolvedRefs"]["Status"] == "False", described
    assert shown["ResolvedRefs"]["Reason"] == "BackendNotFound", described
    events = wait_for(
        lambda: [e for e in kube.events(scn.ns, "broken") if e.get("reason") == "BackendNotFound"],
        "an Event with reason BackendNotFound on AIGatewayRoute broken",
    )
    assert events[0]["type"] == "Warning", events[0]
    rows = wait_for(
        lambda: [
            r
            for r in described_events(kube.describe("aigatewayroute", "broken", scn.ns))
            if r[:2] == ["Warning", "BackendNotFound"]
        ],
        "kubectl describe to list the BackendNotFound Event",
    )
    assert "missing" in rows[0][4], rows

    failing = chat(scn.port, "broken-model")
    artifacts.measure(
        "8. a request whose route has a missing backend got", f"{failing.status} {failing.body[:120]!r}"
    )
    assert 400 <= failing.status < 600, (failing.status, failing.body)
    assert failing.body, "an error without a body"
    assert chat(scn.port, "healthy-model").upstream == "healthy"
    assert condition(kube.get("aigatewayroute", "good", scn.ns), "Accepted") is not None
