"""The Envoy Gateway ``Backend`` (gateway.envoyproxy.io/v1alpha1), only as far as we read it: its IP, FQDN
and Unix socket endpoints, and the SNI and verification of its TLS (for ``aigw run``). Envoy Gateway owns this
CRD, so fields we do not model are ignored, not rejected. Also the names of the other Envoy Gateway kinds the
controller writes."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from api.base import KubeModel
from api.gatewayapi import PortNumber
from api.objects import KindInfo, TopLevelObject

GROUP = "gateway.envoyproxy.io"
VERSION = "v1alpha1"
ENVOY_EXTENSION_POLICY = KindInfo(GROUP, VERSION, "EnvoyExtensionPolicy", "envoyextensionpolicies")
HTTP_ROUTE_FILTER = KindInfo(GROUP, VERSION, "HTTPRouteFilter", "httproutefilters")
CLIENT_TRAFFIC_POLICY = KindInfo(GROUP, VERSION, "ClientTrafficPolicy", "clienttrafficpolicies")
BACKEND_TRAFFIC_POLICY = KindInfo(GROUP, VERSION, "BackendTrafficPolicy", "backendtrafficpolicies")


class IPEndpoint(KubeModel):
    """An IP address and port."""

    model_config = ConfigDict(extra="ignore")

    address: Annotated[str, Field(min_length=3, max_length=45)]
    port: PortNumber


class FQDNEndpoint(KubeModel):
    """A DNS name and port."""

    model_config = ConfigDict(extra="ignore")

    hostname: Annotated[str, Field(min_length=1, max_length=253)]
    port: PortNumber


class UnixSocket(KubeModel):
    """A Unix domain socket path."""

    model_config = ConfigDict(extra="ignore")

    path: Annotated[str, Field(min_length=1, max_length=4096)]


class BackendEndpoint(KubeModel):
    """One endpoint of a Backend: an IP, an FQDN or a Unix socket."""

    model_config = ConfigDict(extra="ignore")

    ip: IPEndpoint | None = None
    fqdn: FQDNEndpoint | None = None
    unix: UnixSocket | None = None

    @model_validator(mode="after")
    def _at_most_one(self) -> Self:
        if sum(x is not None for x in (self.ip, self.fqdn, self.unix)) > 1:
            raise ValueError("an endpoint sets one of ip, fqdn or unix")
        return self


class BackendTLSSettings(KubeModel):
    """TLS to the Backend, as far as ``aigw run`` reads it: the name to send as SNI, and whether the server's
    certificate goes unchecked."""

    model_config = ConfigDict(extra="ignore")

    sni: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    insecure_skip_verify: bool | None = None


class BackendSpec(KubeModel):
    """Where the Backend's traffic goes, and over TLS or not."""

    model_config = ConfigDict(extra="ignore")

    endpoints: Annotated[list[BackendEndpoint], Field(max_length=64)] = Field(default_factory=list)
    tls: BackendTLSSettings | None = None


class Backend(TopLevelObject):
    """An Envoy Gateway Backend: endpoints outside the cluster's Services, such as a provider's API host."""

    KIND_INFO = KindInfo(GROUP, VERSION, "Backend", "backends")

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["gateway.envoyproxy.io/v1alpha1"] = "gateway.envoyproxy.io/v1alpha1"
    kind: Literal["Backend"] = "Backend"
    spec: BackendSpec
