"""Objects of ours that name no Gateway are put back at once when someone deletes or edits them, by the
reconcile of the Gateways they serve: a route's BackendTrafficPolicy (owned by the AIGatewayRoute) and a
namespace's shared host-rewrite HTTPRouteFilter. The caches hold them without managedFields while server-side
apply keeps its field manager on the API server (real API server)."""

from __future__ import annotations

import functools

from api.objects import Obj
from controller.gateway import kinds
from controller.translate import names as n
from tests.integration.controller.conftest import Aigw, eventually, gateway_yaml
from tests.integration.controller.manifests import backend, docs, eg_backend, route

PROMPTLY = 20.0
"""Seconds the repair may take on a loaded machine. Without the watch mapping nothing reconciles the Gateway
again (its backend is an IP: no DNS TTL requeues it), so the policy would stay deleted."""


async def _one_route(aigw: Aigw) -> None:
    """Gateway ``gw`` with route ``r1`` to an IP backend: no DNS TTL requeues the Gateway."""
    await aigw.apply(
        docs(
            gateway_yaml("gw"),
            eg_backend("eb", ("ip", "192.0.2.10", 9000)),
            backend("b", eg_backend="eb"),
            route("r1", "gw", "b"),
        )
    )


async def _policy(aigw: Aigw, *, other_than: str | None = None, limit: str | None = None) -> Obj:
    obj = await aigw.get(kinds.BACKENDTRAFFICPOLICIES, "r1")
    assert obj is not None, "the route's BackendTrafficPolicy is not there (yet)"
    assert obj["metadata"]["uid"] != other_than, "still the deleted copy"
    if limit is not None:
        assert obj["spec"]["connection"]["bufferLimit"] == limit, obj["spec"]["connection"]
    return obj


async def test_a_deleted_or_edited_route_policy_is_put_back_at_once(aigw: Aigw) -> None:
    await _one_route(aigw)
    await aigw.config_when("gw", lambda c: len(c.rules) == 1)
    first = await eventually(functools.partial(_policy, aigw))
    limit = first["spec"]["connection"]["bufferLimit"]
    assert first["metadata"]["ownerReferences"][0]["kind"] == "AIGatewayRoute"
    managers = {m["manager"] for m in first["metadata"].get("managedFields") or []}
    assert n.FIELD_MANAGER in managers, managers
    cached = aigw.reconciler.owned["BackendTrafficPolicy"].get(f"{aigw.ns}/r1")
    assert cached is not None and "managedFields" not in cached["metadata"]

    await aigw.kubectl("-n", aigw.ns, "delete", "backendtrafficpolicies.gateway.envoyproxy.io", "r1")
    back = await eventually(
        functools.partial(_policy, aigw, other_than=first["metadata"]["uid"], limit=limit), within=PROMPTLY
    )

    # An edit of a field we own goes back to our value (server-side apply, forced, as our field manager).
    await aigw.kubectl(
        "-n", aigw.ns, "patch", "backendtrafficpolicies.gateway.envoyproxy.io", "r1", "--type=merge",
        "-p", '{"spec": {"connection": {"bufferLimit": "1Ki"}}}',
    )  # fmt: skip
    edited = await aigw.get(kinds.BACKENDTRAFFICPOLICIES, "r1")
    assert edited is not None
    repaired = await eventually(functools.partial(_policy, aigw, limit=limit), within=PROMPTLY)
    assert repaired["metadata"]["uid"] == back["metadata"]["uid"]
    assert repaired["metadata"]["resourceVersion"] != back["metadata"]["resourceVersion"]


async def test_a_deleted_host_rewrite_filter_is_put_back_at_once(aigw: Aigw) -> None:
    """The HTTPRouteFilter our HTTPRoutes of a namespace share maps to the Gateways of that namespace's
    routes."""
    await _one_route(aigw)

    async def rewrite(other_than: str | None = None) -> Obj:
        obj = await aigw.get(kinds.HTTPROUTEFILTERS, n.HOST_REWRITE_FILTER)
        assert obj is not None and obj["metadata"]["uid"] != other_than, "no (new) host-rewrite filter yet"
        return obj

    first = await eventually(rewrite)
    await aigw.kubectl(
        "-n", aigw.ns, "delete", "httproutefilters.gateway.envoyproxy.io", n.HOST_REWRITE_FILTER
    )
    await eventually(functools.partial(rewrite, first["metadata"]["uid"]), within=PROMPTLY)
