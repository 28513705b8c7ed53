"""Pure functions over a virtual host: the credential headers our routes copy from the ext_proc's metadata,
and the foreign routes that try to read that metadata.

The ext_proc never writes a backend's credential into the request's headers: it returns it as dynamic metadata
(``CREDENTIAL_METADATA_NAMESPACE``), and Envoy's router copies it into the headers only on a route that has
our ``request_headers_to_add`` (``%DYNAMIC_METADATA(ns:authorization)%``, ...; an absent key adds nothing).
Only routes our controller generated get them, so a route that someone else attached to the Gateway and that
outranks ours (a higher Gateway API precedence for the same request) receives no credential.

Envoy Gateway copies an HTTPRoute's header values into the xDS verbatim, and Envoy evaluates command operators
in them: a hand-written route could add ``%DYNAMIC_METADATA(<our namespace>:authorization)%`` itself, or a
``%CEL(...)%`` expression that builds the namespace's name at run time. Such a foreign route is disabled (a
direct 403 that says why), never served.

Like ``xds``: no I/O, inputs never mutated, unchanged routes returned as the same message objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.config.route.v3.route_components_pb2 import DirectResponseAction, Route, VirtualHost

from api.headers import CREDENTIAL_HEADERS, CREDENTIAL_METADATA_NAMESPACE, credential_header_value
from controller.extensionserver.xds import (
    GatewayFilter,
    RouteFilter,
    every_gateway,
    route_source,
    virtual_host_gateway,
    with_routes_replaced,
)

_NAMESPACE_BYTES: Final = CREDENTIAL_METADATA_NAMESPACE.lower().encode()
_EXPRESSION_OPERATORS: Final = ("%cel(",)
"""Envoy command operators whose argument is an expression, not a literal name: a namespace could be built
from parts there, so a foreign route may not use them in a header value."""

DISABLED_STATUS: Final = 403
DISABLED_BODY: Final = (
    "route disabled by the AI gateway's extension server: it reads the metadata namespace "
    f"{CREDENTIAL_METADATA_NAMESPACE}, which carries backend credentials"
)


def credential_headers_to_add() -> list[HeaderValueOption]:
    """What a route of ours adds to the request at the router: each credential header from its metadata key,
    overwriting a client's copy; nothing when the key is absent (``keep_empty_value`` false)."""
    return [
        HeaderValueOption(
            header=HeaderValue(key=name, value=credential_header_value(name)),
            append_action=HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            keep_empty_value=False,
        )
        for name in CREDENTIAL_HEADERS
    ]


def reads_credentials(route: Route) -> bool:
    """Whether ``route`` names the credential namespace anywhere (header values, per-filter configs, ...), or
    has a header value with an expression operator."""
    if _NAMESPACE_BYTES in route.SerializeToString().lower():
        return True
    options = (*route.request_headers_to_add, *route.response_headers_to_add)
    return any(op in o.header.value.lower() for o in options for op in _EXPRESSION_OPERATORS)


@dataclass(frozen=True, kw_only=True)
class CredentialsResult:
    """Outcome of ``route_credentials``: the new virtual host (the input object when nothing changed), how
    many of our routes got the credential headers (``injected``; ``already_done`` had them), how many foreign
    routes were ``disabled``, and one warning per disabled route."""

    virtual_host: VirtualHost
    injected: int = 0
    already_done: int = 0
    disabled: int = 0
    warnings: list[str] = field(default_factory=list)


def _with_credentials(route: Route) -> Route | None:
    """``route`` with exactly our credential entries last in ``request_headers_to_add`` (any other entry for
    those header names dropped); None when it already is."""
    wanted = credential_headers_to_add()
    kept = [o for o in route.request_headers_to_add if o.header.key.lower() not in CREDENTIAL_HEADERS]
    if list(route.request_headers_to_add) == [*kept, *wanted]:
        return None
    updated = Route()
    updated.CopyFrom(route)
    del updated.request_headers_to_add[:]
    updated.request_headers_to_add.extend([*kept, *wanted])
    return updated


def _disabled(route: Route) -> Route:
    """``route`` with the same name and match, answering DISABLED_STATUS and nothing else."""
    out = Route(name=route.name)
    out.match.CopyFrom(route.match)
    out.direct_response.CopyFrom(DirectResponseAction(status=DISABLED_STATUS))
    out.direct_response.body.inline_string = DISABLED_BODY
    return out


def route_credentials(
    virtual_host: VirtualHost, *, generated: RouteFilter, guarded: GatewayFilter = every_gateway
) -> CredentialsResult:
    """Give every route that ``generated`` accepts (by its ``route_source`` and the virtual host's Gateway)
    the credential headers, and, on a Gateway that ``guarded`` accepts (one that carries our ext_proc, so its
    requests can carry the credential metadata), disable every other route that ``reads_credentials``.
    Idempotent."""
    gateway = virtual_host_gateway(virtual_host)
    guard = guarded(gateway)
    new_routes: dict[int, Route] = {}
    injected = already = disabled = 0
    warnings: list[str] = []
    for index, route in enumerate(virtual_host.routes):
        source = route_source(route)
        if generated(source, gateway):
            updated = _with_credentials(route)
            if updated is None:
                already += 1
            else:
                injected += 1
                new_routes[index] = updated
        elif guard and reads_credentials(route):
            disabled += 1
            replacement = _disabled(route)
            if replacement != route:
                new_routes[index] = replacement
            warnings.append(
                f"route {route.name or index!r} in virtual host {virtual_host.name!r} from "
                f"{source or 'an unknown source'} reads the credential metadata namespace "
                f"{CREDENTIAL_METADATA_NAMESPACE} (or uses an expression operator in a header value), which "
                f"only our generated routes may; disabled (it answers {DISABLED_STATUS})"
            )
    return CredentialsResult(
        virtual_host=with_routes_replaced(virtual_host, new_routes),
        injected=injected,
        already_done=already,
        disabled=disabled,
        warnings=warnings,
    )
