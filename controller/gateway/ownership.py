"""Which routes the extension server treats as ours: the InferencePool routes it may point at the
ORIGINAL_DST cluster, the routes that copy the credential metadata into headers (``generated_pool_routes``),
and the Gateways whose foreign routes may not read that metadata (``gateways_with_ai_routes``).

That cluster sends a request to whatever ``ip:port`` a header names. Behind our ext_proc that header is ours
(the ext_proc strips the client's copy and sets it from the endpoint it picked); on any other Gateway it is
the client's, which makes the route an open proxy. So a pool route qualifies only when Envoy Gateway
translated it from an HTTPRoute that carries the name our builders give the HTTPRoutes of an AIGatewayRoute
(``<route>``, ``<route>-2``, ...) in that AIGatewayRoute's namespace, AND its virtual host belongs to a
Gateway that AIGatewayRoute targets (so our ext_proc filters it). Both facts come from Envoy Gateway's own xDS
metadata (the source object's identity and the listener's Gateway), which an HTTPRoute's author can't set,
checked against the cache of AIGatewayRoutes.
"""

from __future__ import annotations

import base64
import binascii

from api.gatewayapi import GATEWAY, HTTP_ROUTE
from api.objects import ObjKey
from controller.extensionserver.client_certs import ClientCertificates
from controller.extensionserver.xds import GatewayFilter, RouteFilter, RouteSource
from controller.gateway.cache import route_gateways
from controller.runtime.cache import Store
from controller.translate.names import extproc_client_secret, extproc_name, route_names_for_http_route


def generated_pool_routes(routes: Store) -> RouteFilter:
    """A RouteFilter over ``routes``, the cache of AIGatewayRoutes (read at each call, so always current)."""

    def accept(source: RouteSource | None, gateway: RouteSource | None) -> bool:
        if source is None or gateway is None or source.kind != HTTP_ROUTE.kind:
            return False
        if gateway.kind not in ("", GATEWAY.kind):
            return False
        wanted = ObjKey(gateway.namespace, gateway.name)
        for name in route_names_for_http_route(source.name):
            route = routes.get_by_name(name, source.namespace)
            if route is not None and str(wanted) in route_gateways(route):
                return True
        return False

    return accept


def gateways_with_ai_routes(routes: Store) -> GatewayFilter:
    """A GatewayFilter over ``routes``, the cache of AIGatewayRoutes: a Gateway some AIGatewayRoute targets
    (so it carries our ext_proc), or an unknown one (None, or a kind other than Gateway: counted as ours, so
    the guard errs on the safe side)."""

    def carries(gateway: RouteSource | None) -> bool:
        if gateway is None or gateway.kind not in ("", GATEWAY.kind):
            return True
        wanted = str(ObjKey(gateway.namespace, gateway.name))
        return any(wanted in route_gateways(route) for route in routes.list())

    return carries


def extproc_client_certificates(secrets: Store) -> ClientCertificates:
    """The client pairs of our ext_procs' ``ai-eg-extproc-<gw>-client`` Secrets, by SDS name
    (``<namespace>/<name>``), from ``secrets``, the cache of the Secrets we manage (read at each call). Any
    other name, or a Secret without both keys, is not ours to hand out: None."""
    prefix, suffix = extproc_name(""), extproc_client_secret("").removeprefix(extproc_name(""))

    def lookup(sds_name: str) -> tuple[bytes, bytes] | None:
        namespace, _, name = sds_name.partition("/")
        if not namespace or not name.startswith(prefix) or not name.endswith(suffix):
            return None
        data = (secrets.get(f"{namespace}/{name}") or {}).get("data") or {}
        try:
            return base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"])
        except (KeyError, TypeError, binascii.Error):
            return None

    return lookup
