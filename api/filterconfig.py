"""The filter config: the one contract between the controller and the ext_proc.

The controller builds one ``FilterConfig`` per Gateway, merging every AIGatewayRoute that targets it, and
writes it as YAML under ``CONFIG_KEY`` of a ConfigMap; the kubelet projects it into the ext_proc's pod, which
loads, validates and compiles it. Everything in it is fully resolved: hostnames have already been turned into
IP addresses by the controller, so the ext_proc never resolves DNS on the data path.

The format is versioned: the ext_proc refuses a document whose ``version`` it does not know, and keeps serving
the last good config instead.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from api import headers
from api.base import KubeModel
from api.picker import EndpointPickerConfig
from api.shared import (
    TARGET_MODEL_WEIGHTS_ALL_OR_NONE,
    APISchemaName,
    BackendKind,
    CostType,
    Criticality,
    TargetModel,
    VersionedAPISchema,
)

__all__ = [
    "CONFIG_KEY",
    "FILTER_CONFIG_VERSION",
    "APIKeyAuth",
    "APISchemaName",
    "AWSAuth",
    "AzureAuth",
    "Backend",
    "BackendAuth",
    "BackendKind",
    "BackendRef",
    "CostType",
    "Criticality",
    "Endpoint",
    "EndpointPickerConfig",
    "ExternalPicker",
    "ExternalPickerFailureMode",
    "Fallback",
    "FilterConfig",
    "HeaderMatch",
    "InferenceModel",
    "InferenceObjective",
    "InferencePool",
    "LLMRequestCost",
    "PoolMember",
    "RouteMatch",
    "RouteRule",
    "TargetModel",
    "VersionedAPISchema",
]

FILTER_CONFIG_VERSION: Literal["v1"] = "v1"
"""The schema version this code reads and writes."""

CONFIG_KEY = "filter-config.yaml"
"""Key of the filter config inside the ConfigMap, and the file name in the ext_proc's config directory."""


class HeaderMatch(KubeModel):
    """An exact match of one request header. Names compare case-insensitively, values exactly."""

    name: Annotated[str, Field(min_length=1)]
    value: str

    @field_validator("name")
    @classmethod
    def _lower_name(cls, v: str) -> str:
        return v.lower()


class RouteMatch(KubeModel):
    """A match: it matches when **all** its headers match. An empty match matches every request."""

    headers: list[HeaderMatch] = Field(default_factory=list)


class Fallback(KubeModel):
    """Where a pool reference's requests go while the pool can't serve them (no endpoint, or saturated and
    shedding the request), by ``<name>.<namespace>``."""

    kind: BackendKind = BackendKind.AI_SERVICE_BACKEND
    name: Annotated[str, Field(min_length=1)]
    model_name_override: Annotated[str, Field(min_length=1)] | None = None
    """The model name the fallback gets (and, for a pool, looks its InferenceModel up by); unset: the
    request's."""


class BackendRef(KubeModel):
    """A weighted reference from a rule to a backend or a pool, by its ``<name>.<namespace>``."""

    kind: BackendKind = BackendKind.AI_SERVICE_BACKEND
    name: Annotated[str, Field(min_length=1)]
    weight: Annotated[int, Field(ge=0)] = 1
    fallback: Fallback | None = None
    """Only on a pool reference."""

    @model_validator(mode="after")
    def _fallback_only_for_pools(self) -> Self:
        if self.fallback is not None and self.kind != BackendKind.INFERENCE_POOL:
            raise ValueError(f"{self.name}: fallback is only allowed on an InferencePool reference")
        return self


class RouteRule(KubeModel):
    """One AIGatewayRoute rule. It matches when **any** of its matches matches; no matches match all."""

    route: str
    """``<namespace>/<name>`` of the AIGatewayRoute the rule came from (for logs, metrics and costs)."""
    matches: list[RouteMatch] = Field(default_factory=list)
    backend_refs: list[BackendRef] = Field(default_factory=list)


class APIKeyAuth(KubeModel):
    """``Authorization: Bearer <key>``, the key read from a mounted file."""

    filename: str


class AWSAuth(KubeModel):
    """SigV4 signing with an AWS credentials file."""

    credential_file_name: str
    region: Annotated[str, Field(min_length=1)]
    profile: str = "default"


class AzureAuth(KubeModel):
    """``Authorization: Bearer <token>``, the access token read from a mounted file."""

    filename: str


class BackendAuth(KubeModel):
    """Exactly one way to authenticate to an upstream."""

    api_key: APIKeyAuth | None = None
    aws: AWSAuth | None = None
    azure: AzureAuth | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if sum(x is not None for x in (self.api_key, self.aws, self.azure)) != 1:
            raise ValueError("exactly one of apiKey, aws or azure must be set")
        return self


class Backend(KubeModel):
    """An AIServiceBackend that Envoy reaches through its own cluster (selected by header value ``name``)."""

    name: Annotated[str, Field(min_length=1)]
    """``<backend>.<namespace>``: the value the ext_proc writes into the selected-backend header."""
    schema_: VersionedAPISchema = Field(alias="schema")
    auth: BackendAuth | None = None


class Endpoint(KubeModel):
    """One concrete address of a pool member, precomputed by the controller."""

    ip: str
    port: Annotated[int, Field(ge=1, le=65535)]
    hostname: str | None = None
    """The DNS name the IP came from, if any. The ext_proc sets ``Host`` to it."""

    @field_validator("ip")
    @classmethod
    def _valid_ip(cls, v: str) -> str:
        return str(ipaddress.ip_address(v))

    @property
    def address(self) -> str:
        """``ip:port`` as Envoy's ORIGINAL_DST cluster reads it (IPv6 in brackets)."""
        ip = ipaddress.ip_address(self.ip)
        return f"[{ip}]:{self.port}" if ip.version == 6 else f"{ip}:{self.port}"


class PoolMember(KubeModel):
    """An AIServiceBackend selected by an InferencePool, with its resolved endpoints."""

    name: Annotated[str, Field(min_length=1)]
    """``<backend>.<namespace>``."""
    schema_: VersionedAPISchema = Field(alias="schema")
    auth: BackendAuth | None = None
    endpoints: list[Endpoint] = Field(default_factory=list)


class InferenceModel(KubeModel):
    """A model served by a pool: the client's ``model`` and the weighted names it is rewritten to."""

    model_name: Annotated[str, Field(min_length=1, max_length=256)]
    criticality: Criticality = Criticality.STANDARD
    target_models: Annotated[list[TargetModel], TARGET_MODEL_WEIGHTS_ALL_OR_NONE] = Field(
        default_factory=list
    )


class ExternalPickerFailureMode(StrEnum):
    """What the ext_proc does when the external endpoint picker does not answer (down, timed out, an
    unusable answer)."""

    FAIL_OPEN = "FailOpen"
    """Our own picker chooses the endpoint instead."""
    FAIL_CLOSE = "FailClose"
    """The request gets 503 ``endpoint_picker_unavailable``."""


class ExternalPicker(KubeModel):
    """An external endpoint picker (the Inference Extension's EPP protocol: an Envoy ext_proc gRPC service)
    that the ext_proc asks for each request's endpoint of a v1 pool."""

    service: Annotated[str, Field(min_length=1)]
    """``<name>.<namespace>:<port>`` of the EPP Service (logs and errors)."""
    endpoints: list[Endpoint] = Field(default_factory=list)
    """The Service's addresses, resolved by the controller; empty (not resolved yet) counts as down."""
    target_ports: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(min_length=1)]
    """The pool's target ports: an endpoint the EPP names must use one of them."""
    failure_mode: ExternalPickerFailureMode = ExternalPickerFailureMode.FAIL_CLOSE
    tls: bool = True
    """TLS to the EPP (its certificate is self-signed by default and not verified); false: plaintext."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    """The whole exchange with the EPP (connect, request headers and body, its answer); past it the EPP
    counts as down. Below the ext_proc's own message timeout, so the failure mode decides, not Envoy."""


class InferenceObjective(KubeModel):
    """A v1 pool's InferenceObjective: the request's ``x-gateway-inference-objective`` header names it; its
    priority sets the request's criticality (below 0 Sheddable, 0 Standard, above 0 Critical)."""

    name: Annotated[str, Field(min_length=1)]
    priority: int = 0


class InferencePool(KubeModel):
    """An InferencePool served by our built-in endpoint picker, or (a v1 pool with ``externalPicker``) by
    an external one."""

    name: Annotated[str, Field(min_length=1)]
    """``<pool>.<namespace>``."""
    members: list[PoolMember] = Field(default_factory=list)
    models: list[InferenceModel] = Field(default_factory=list)
    picker: EndpointPickerConfig | None = None
    """How the ext_proc picks this pool's endpoint; unset: the defaults in ``api.picker``."""
    serves_any_model: bool = False
    """A v1 InferencePool (the Inference Extension's GA API has no InferenceModel): a request's model need
    not be in ``models``; it is sent unchanged, with Standard criticality."""
    objectives: list[InferenceObjective] = Field(default_factory=list)
    """A v1 pool's InferenceObjectives (an external picker reads them itself from the header)."""
    external_picker: ExternalPicker | None = None
    """A v1 pool whose ``endpointPickerRef`` names an EPP: it chooses the endpoint; ``members`` are the
    Pods' endpoints our picker falls back to (FailOpen)."""

    @model_validator(mode="after")
    def _unique_model_names(self) -> Self:
        _require_unique([m.model_name for m in self.models], f"pool {self.name}: modelName")
        _require_unique([o.name for o in self.objectives], f"pool {self.name}: objective")
        return self


class LLMRequestCost(KubeModel):
    """A number written into dynamic metadata ``<metadataNamespace>/<metadataKey>`` when a response ends."""

    route: str
    """``<namespace>/<name>`` of the AIGatewayRoute that declared the cost; it applies to its rules."""
    metadata_key: Annotated[str, Field(min_length=1)]
    type: CostType
    cel: str | None = None

    @model_validator(mode="after")
    def _cel_iff_type_cel(self) -> Self:
        if (self.type == CostType.CEL) != bool(self.cel):
            raise ValueError("cel must be set exactly when type is CEL")
        return self


class FilterConfig(KubeModel):
    """Everything the ext_proc of one Gateway needs, fully resolved."""

    version: Literal["v1"] = FILTER_CONFIG_VERSION
    gateway: str = ""
    """``<namespace>/<name>`` of the Gateway this config serves (informational)."""
    uuid: str = ""
    """Content hash written by the controller; changes exactly when the rest of the document changes."""
    metadata_namespace: str = headers.METADATA_NAMESPACE
    schema_: VersionedAPISchema = Field(
        alias="schema", default_factory=lambda: VersionedAPISchema(name=APISchemaName.OPENAI)
    )
    model_name_header_key: str = headers.MODEL_NAME_HEADER
    selected_backend_header_key: str = headers.SELECTED_BACKEND_HEADER
    original_destination_header_key: str = headers.ORIGINAL_DST_HEADER
    rules: list[RouteRule] = Field(default_factory=list)
    backends: list[Backend] = Field(default_factory=list)
    pools: list[InferencePool] = Field(default_factory=list)
    llm_request_costs: list[LLMRequestCost] = Field(default_factory=list)

    @model_validator(mode="after")
    def _refs_resolve(self) -> Self:
        _require_unique([b.name for b in self.backends], "backend name")
        _require_unique([p.name for p in self.pools], "pool name")
        known = {
            BackendKind.AI_SERVICE_BACKEND: {b.name for b in self.backends},
            BackendKind.INFERENCE_POOL: {p.name for p in self.pools},
        }
        for i, rule in enumerate(self.rules):
            for j, ref in enumerate(rule.backend_refs):
                if ref.name not in known[ref.kind]:
                    raise ValueError(
                        f"rules[{i}].backendRefs[{j}]: {ref.kind.value} {ref.name!r} is not defined"
                    )
                fb = ref.fallback
                if fb is not None and fb.name not in known[fb.kind]:
                    raise ValueError(
                        f"rules[{i}].backendRefs[{j}].fallback: {fb.kind.value} {fb.name!r} is not defined"
                    )
        return self


def _require_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"duplicate {what} {n!r}")
        seen.add(n)
