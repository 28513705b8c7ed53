"""The credential headers on our routes only, and foreign routes that try to read the credential metadata."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from envoy.config.route.v3.route_components_pb2 import Route, VirtualHost
from google.protobuf import json_format

from api.headers import CREDENTIAL_HEADERS, CREDENTIAL_METADATA_NAMESPACE
from controller.extensionserver.credentials import (
    DISABLED_STATUS,
    credential_headers_to_add,
    reads_credentials,
    route_credentials,
)
from tests.unit.extensionserver import eg_xds

FOREIGN = "httproute/team/outranker/rule/0/match/0/*"


def _foreign_route(**extra: Any) -> dict[str, Any]:
    """A hand-written HTTPRoute's rule that outranks ours: our backend header plus one more header."""
    route = eg_xds.backend_route()
    route["name"] = FOREIGN
    route["match"]["headers"].append({"name": "x-team", "string_match": {"exact": "a"}})
    route["route"]["cluster"] = "httproute/team/outranker/rule/0"
    route["metadata"] = {
        "filter_metadata": {
            "envoy-gateway": {"resources": [{"kind": "HTTPRoute", "namespace": "team", "name": "outranker"}]}
        }
    }
    route.update(extra)
    return route


def _vh(*extra_routes: dict[str, Any]) -> VirtualHost:
    data = eg_xds.virtual_host_dict()
    data["routes"] = [*extra_routes, *data["routes"]]
    return json_format.ParseDict(data, VirtualHost())


def _route(vh: VirtualHost, name: str) -> Route:
    (route,) = [r for r in vh.routes if r.name == name]
    return route


def _added(route: Route) -> dict[str, str]:
    return {o.header.key: o.header.value for o in route.request_headers_to_add}


def test_our_routes_copy_each_credential_header_from_the_metadata_and_nothing_when_absent() -> None:
    result = route_credentials(_vh(), generated=eg_xds.generated())
    assert result.injected == 2 and not result.warnings  # the backend route and the pool route of default/llm
    for name in (eg_xds.BACKEND_ROUTE, eg_xds.POOL_ROUTE):
        route = _route(result.virtual_host, name)
        assert _added(route) == {
            h: f"%DYNAMIC_METADATA({CREDENTIAL_METADATA_NAMESPACE}:{h})%" for h in CREDENTIAL_HEADERS
        }
        for option in route.request_headers_to_add:
            assert option.append_action == option.OVERWRITE_IF_EXISTS_OR_ADD  # a client's copy never stays
            assert not option.keep_empty_value  # absent metadata key: no header at all
    # a route of another HTTPRoute (not an AIGatewayRoute's) gets nothing
    assert not _route(result.virtual_host, eg_xds.PLAIN_ROUTE).request_headers_to_add


def test_a_foreign_route_that_outranks_ours_gets_no_credential_headers() -> None:
    vh = _vh(_foreign_route())
    result = route_credentials(vh, generated=eg_xds.generated())
    assert _route(result.virtual_host, FOREIGN) is not None
    assert _route(result.virtual_host, FOREIGN) == _route(vh, FOREIGN)  # untouched: it keeps its backend
    assert not _route(result.virtual_host, FOREIGN).request_headers_to_add
    assert result.disabled == 0


def test_idempotent_and_other_entries_of_our_routes_kept() -> None:
    vh = _vh()
    backend = _route(vh, eg_xds.BACKEND_ROUTE)
    backend.request_headers_to_add.add().header.key = "x-kept"
    stale = backend.request_headers_to_add.add()
    stale.header.key, stale.header.value = "Authorization", "stale"
    once = route_credentials(vh, generated=eg_xds.generated()).virtual_host
    twice = route_credentials(once, generated=eg_xds.generated())
    assert twice.virtual_host is once and twice.injected == 0 and twice.already_done == 2
    keys = [o.header.key for o in _route(once, eg_xds.BACKEND_ROUTE).request_headers_to_add]
    assert keys == ["x-kept", *CREDENTIAL_HEADERS]


def test_input_not_mutated() -> None:
    vh = _vh()
    before = copy.deepcopy(vh)
    route_credentials(vh, generated=eg_xds.generated())
    assert vh == before


@pytest.mark.parametrize(
    "where",
    [
        {
            "request_headers_to_add": [
                {
                    "header": {
                        "key": "x-leak",
                        "value": f"%DYNAMIC_METADATA({CREDENTIAL_METADATA_NAMESPACE}:authorization)%",
                    }
                }
            ]
        },
        {
            "response_headers_to_add": [
                {
                    "header": {
                        "key": "x-leak",
                        "value": f"%METADATA(DYNAMIC:{CREDENTIAL_METADATA_NAMESPACE.upper()}:api-key)%",
                    }
                }
            ]
        },
        {"request_headers_to_add": [{"header": {"key": "x-leak", "value": "%CEL(xds.node.id)%"}}]},
        {
            "typed_per_filter_config": {
                "envoy.filters.http.header_mutation": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": f"%DYNAMIC_METADATA({CREDENTIAL_METADATA_NAMESPACE})%",
                }
            }
        },
    ],
    ids=["request-header", "response-header-other-operator", "cel-expression", "per-filter-config"],
)
def test_a_foreign_route_that_reads_the_credential_metadata_is_disabled(where: dict[str, Any]) -> None:
    vh = _vh(_foreign_route(**where))
    result = route_credentials(vh, generated=eg_xds.generated())
    route = _route(result.virtual_host, FOREIGN)
    assert result.disabled == 1 and "team/outranker" in result.warnings[0]
    assert route.WhichOneof("action") == "direct_response" and route.direct_response.status == DISABLED_STATUS
    assert not route.request_headers_to_add and not route.response_headers_to_add
    assert not route.typed_per_filter_config
    assert route.match == _route(vh, FOREIGN).match  # still takes its requests: they never reach a backend
    # ours still get their headers; run twice: still disabled, nothing more changes
    assert _added(_route(result.virtual_host, eg_xds.BACKEND_ROUTE))
    again = route_credentials(result.virtual_host, generated=eg_xds.generated())
    assert again.virtual_host is result.virtual_host and again.disabled == 1


def test_reads_credentials_ignores_other_metadata_and_literal_values() -> None:
    plain = json_format.ParseDict(
        _foreign_route(
            request_headers_to_add=[
                {
                    "header": {
                        "key": "x-cost",
                        "value": "%DYNAMIC_METADATA(io.envoy.ai_gateway:llm_total_token)%",
                    }
                },
                {"header": {"key": "x-lit", "value": "io.envoy.ai_gateway.credential"}},
            ]
        ),
        Route(),
    )
    assert not reads_credentials(plain)


def test_credential_headers_to_add_lists_every_credential_header() -> None:
    assert [o.header.key for o in credential_headers_to_add()] == list(CREDENTIAL_HEADERS)


def test_only_gateways_that_carry_our_ext_proc_are_guarded() -> None:
    """A Gateway no AIGatewayRoute targets never sees the credential metadata: its routes may use CEL."""
    cel = {"request_headers_to_add": [{"header": {"key": "x-path", "value": "%CEL(request.path)%"}}]}
    vh = _vh(_foreign_route(**cel))
    elsewhere = eg_xds.ai_gateway_route(gateway="another-gateway")
    result = route_credentials(vh, generated=eg_xds.generated(elsewhere), guarded=eg_xds.guarded(elsewhere))
    assert result.virtual_host is vh and result.disabled == 0 and result.injected == 0
    # on our Gateway, and on a virtual host whose Gateway Envoy Gateway did not record, it is disabled
    assert route_credentials(vh, generated=eg_xds.generated(), guarded=eg_xds.guarded()).disabled == 1
    vh.ClearField("metadata")
    assert (
        route_credentials(
            vh, generated=eg_xds.generated(elsewhere), guarded=eg_xds.guarded(elsewhere)
        ).disabled
        == 1
    )
