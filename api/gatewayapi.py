"""The Gateway API (gateway.networking.k8s.io/v1) types our kinds embed, with their upstream limits.

The Inference Extension's shared field types (Group, Kind, ObjectName, PortNumber) carry the same constraints,
so ``api.inference`` uses these too.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from api.base import KubeModel
from api.cel import CelRule, CelValidatedModel
from api.objects import KindInfo, ObjKey, TopLevelObject

GROUP_PATTERN = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
KIND_PATTERN = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
SECTION_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$"
DURATION_PATTERN = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"

Group = Annotated[str, Field(max_length=253, pattern=GROUP_PATTERN)]
"""An API group; empty for the core group."""
Kind = Annotated[str, Field(min_length=1, max_length=63, pattern=KIND_PATTERN)]
"""The kind of a referent, in CamelCase."""
ObjectName = Annotated[str, Field(min_length=1, max_length=253)]
"""The name of a referent."""
Namespace = Annotated[str, Field(min_length=1, max_length=63, pattern=NAMESPACE_PATTERN)]
"""A namespace name (RFC 1123 label)."""
SectionName = Annotated[str, Field(min_length=1, max_length=253, pattern=SECTION_NAME_PATTERN)]
"""The name of a section of an object, such as a Gateway listener."""
PortNumber = Annotated[int, Field(ge=1, le=65535, json_schema_extra={"format": "int32"})]
"""A TCP port number."""
Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]
"""A Gateway API duration such as ``1h``, ``30s`` or ``500ms``; ``0s`` disables the timeout."""

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
GATEWAY = KindInfo(GATEWAY_GROUP, GATEWAY_VERSION, "Gateway", "gateways")
"""The Gateway API kinds we read or write but do not model (their CRDs are the Gateway API's)."""
HTTP_ROUTE = KindInfo(GATEWAY_GROUP, GATEWAY_VERSION, "HTTPRoute", "httproutes")
REFERENCE_GRANT = KindInfo(GATEWAY_GROUP, "v1beta1", "ReferenceGrant", "referencegrants")

_DURATION_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration_seconds(duration: str) -> float:
    """The length of a Gateway API ``Duration`` in seconds (``"1m30s"`` -> 90.0)."""
    parts = re.findall(r"([0-9]+)(ms|h|m|s)", duration)
    return sum(int(n) * _DURATION_UNIT_SECONDS[unit] for n, unit in parts)


_BYTE_SUFFIXES = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


def byte_size(value: str) -> int:
    """A byte count written as Envoy Gateway's ``bufferLimit`` accepts it, with binary suffixes only:
    ``52428800``, ``50Mi`` (Ki, Mi, Gi). Raises ValueError."""
    number, mult = value, 1
    for suffix, m in _BYTE_SUFFIXES.items():
        if value.endswith(suffix):
            number, mult = value[: -len(suffix)], m
    if not number.isdigit() or int(number) == 0:
        raise ValueError(f"expected a positive number of bytes, optionally with Ki, Mi or Gi; got {value!r}")
    return int(number) * mult


MIN_BUFFER_LIMIT_BYTES = 32 * 1024
"""The smallest request-body limit we accept: Envoy Gateway's own default ``bufferLimit`` (32Ki). Below it
the gateway would refuse ordinary chat requests that Envoy Gateway alone lets through."""


def buffer_limit(value: str) -> int:
    """The request-body limit ``value`` in bytes (``byte_size``'s syntax), at least
    ``MIN_BUFFER_LIMIT_BYTES``: the rule the controller's and ``aigw run``'s ``--max-body-bytes`` share.
    Raises ValueError."""
    size = byte_size(value)
    if size < MIN_BUFFER_LIMIT_BYTES:
        raise ValueError(f"must be at least 32Ki (Envoy Gateway's default), got {value!r}")
    return size


class LocalPolicyTargetReferenceWithSectionName(KubeModel):
    """A reference to an object in the same namespace, optionally to one of its sections (a listener)."""

    group: Group
    """Group of the target resource."""
    kind: Kind
    """Kind of the target resource."""
    name: ObjectName
    """Name of the target resource."""
    section_name: SectionName | None = None
    """Name of a section of the target resource, such as a Gateway listener."""


class LocalObjectReference(KubeModel):
    """A reference to an object in the same namespace, by group, kind and name."""

    group: Group
    """Group of the referent; empty for the core API group."""
    kind: Kind
    """Kind of the referent."""
    name: ObjectName
    """Name of the referent."""


class SecretObjectReference(KubeModel):
    """A reference to a Secret, in the referrer's namespace unless ``namespace`` is set."""

    group: Group = ""
    """Group of the referent; empty for the core API group."""
    kind: Kind = "Secret"
    """Kind of the referent."""
    name: ObjectName
    """Name of the referent."""
    namespace: Namespace | None = None
    """Namespace of the referent; defaults to the referrer's namespace."""


PORT_REQUIRED_FOR_SERVICE = CelRule(
    rule="(size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true",
    message="Must have port for Service reference",
    holds=lambda ref: not (ref.group == "" and ref.kind == "Service") or ref.port is not None,
)


class BackendObjectReference(CelValidatedModel):
    """A reference to a backend: a core Service by default, or another kind such as an Envoy Gateway
    Backend."""

    CEL_RULES = (PORT_REQUIRED_FOR_SERVICE,)

    group: Group = ""
    """Group of the referent; empty for the core API group."""
    kind: Kind = "Service"
    """Kind of the referent."""
    name: ObjectName
    """Name of the referent."""
    namespace: Namespace | None = None
    """Namespace of the referent; defaults to the referrer's namespace."""
    port: PortNumber | None = None
    """Destination port; required when the referent is a Kubernetes Service."""


def referent_key(ref: SecretObjectReference | BackendObjectReference, referrer: TopLevelObject) -> ObjKey:
    """The key of the object ``ref`` names: a reference without ``namespace`` points into the referrer's."""
    return ObjKey(ref.namespace or referrer.metadata.namespace, ref.name)


class HeaderMatchType(StrEnum):
    """How a header value is matched."""

    EXACT = "Exact"
    REGULAR_EXPRESSION = "RegularExpression"


class HTTPHeaderMatch(KubeModel):
    """A match on one HTTP request header."""

    type: HeaderMatchType = HeaderMatchType.EXACT
    """How to match the value: Exact or RegularExpression."""
    name: Annotated[str, Field(min_length=1, max_length=256, pattern=HEADER_NAME_PATTERN)]
    """Header name, compared case-insensitively."""
    value: Annotated[str, Field(min_length=1, max_length=4096)]
    """Value of the header to match."""


BACKEND_REQUEST_WITHIN_REQUEST = CelRule(
    rule=(
        "!(has(self.request) && has(self.backendRequest) && duration(self.request) != duration('0s')"
        " && duration(self.backendRequest) > duration(self.request))"
    ),
    message="backendRequest timeout cannot be longer than request timeout",
    holds=lambda t: (
        not (
            t.request is not None
            and t.backend_request is not None
            and duration_seconds(t.request) != 0
            and duration_seconds(t.backend_request) > duration_seconds(t.request)
        )
    ),
)


class HTTPRouteTimeouts(CelValidatedModel):
    """Timeouts of a route rule."""

    CEL_RULES = (BACKEND_REQUEST_WITHIN_REQUEST,)

    request: Duration | None = None
    """Timeout for the gateway to answer the whole client request."""
    backend_request: Duration | None = None
    """Timeout of one request from the gateway to the backend (each retry is a backend request)."""
