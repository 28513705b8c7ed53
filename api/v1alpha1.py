"""``aigateway.envoyproxy.io/v1alpha1``: AIGatewayRoute, AIServiceBackend and BackendSecurityPolicy.

Field for field the API of upstream Envoy AI Gateway at the Inference Extension baseline (a backendRef may be
an ``InferencePool``), with ``Accepted``/``ResolvedRefs`` conditions of positive polarity in every status.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from api.base import KubeModel
from api.cel import CelRule, CelValidatedModel, ListMap
from api.corev1 import ResourceRequirements
from api.gatewayapi import (
    GATEWAY_GROUP,
    BackendObjectReference,
    HeaderMatchType,
    HTTPHeaderMatch,
    HTTPRouteTimeouts,
    LocalObjectReference,
    LocalPolicyTargetReferenceWithSectionName,
    SecretObjectReference,
)
from api.inference import GROUP as INFERENCE_V1ALPHA2_GROUP
from api.inference_v1 import GROUP as INFERENCE_V1_GROUP
from api.meta import Condition
from api.objects import KindInfo, PrinterColumn, TopLevelObject
from api.shared import APISchemaName, BackendKind, CostType, VersionedAPISchema

GROUP = "aigateway.envoyproxy.io"
VERSION = "v1alpha1"
API_VERSION: Literal["aigateway.envoyproxy.io/v1alpha1"] = "aigateway.envoyproxy.io/v1alpha1"
CATEGORY = "ai-gateway"

_COMMON_COLUMNS = (
    PrinterColumn(
        "Status",
        "string",
        '.status.conditions[?(@.type=="Accepted")].status',
        "Whether the controller accepted the object",
    ),
    PrinterColumn("Reason", "string", '.status.conditions[?(@.type=="Accepted")].reason', "Why", priority=1),
    PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
)


def _kind_info(kind: str, plural: str, short_name: str) -> KindInfo:
    return KindInfo(
        GROUP,
        VERSION,
        kind,
        plural,
        short_names=(short_name,),
        categories=(CATEGORY,),
        printer_columns=_COMMON_COLUMNS,
    )


class Status(KubeModel):
    """The state of the object as the controller last observed it."""

    conditions: Annotated[list[Condition], Field(max_length=8), ListMap("type")] = Field(default_factory=list)
    """Accepted (the object is valid and in use) and ResolvedRefs (every object it references exists)."""


# --- AIGatewayRoute ---------------------------------------------------------------------------------------


ONLY_EXACT_HEADER_MATCH = CelRule(
    rule="self.all(match, match.type != 'RegularExpression')",
    message="currently only exact match is supported",
    holds=lambda matches: all(m.type != HeaderMatchType.REGULAR_EXPRESSION for m in matches),
)
ROUTE_SCHEMA_IS_OPENAI = CelRule(
    rule="self.name == 'OpenAI'",
    message="only the OpenAI schema is supported as the input schema of a route",
    holds=lambda schema: schema.name == APISchemaName.OPENAI,
)
TARGET_REFS_ARE_GATEWAYS = CelRule(
    rule=f"self.all(ref, ref.group == '{GATEWAY_GROUP}' && ref.kind == 'Gateway')",
    message=f"targetRefs must reference Gateways (group {GATEWAY_GROUP}, kind Gateway)",
    holds=lambda refs: all(r.group == GATEWAY_GROUP and r.kind == "Gateway" for r in refs),
)
V1_POOL_ALONE = CelRule(
    rule=f"!self.exists(ref, has(ref.group) && ref.group == '{INFERENCE_V1_GROUP}') || self.size() == 1",
    message=(
        f"a v1 InferencePool (group {INFERENCE_V1_GROUP}) must be the rule's only backendRef: one pool per "
        "rule, not mixed with other backends"
    ),
    holds=lambda refs: len(refs) == 1 or not any(r.group == INFERENCE_V1_GROUP for r in refs),
)
SOME_BACKEND_WEIGHT_POSITIVE = CelRule(
    rule="self.size() == 0 || self.exists(ref, ref.weight > 0)",
    message="at least one backendRef must have a weight greater than 0",
    holds=lambda refs: not refs or any(r.weight > 0 for r in refs),
)
CEL_ONLY_FOR_CEL_COST = CelRule(
    rule="self.type == 'CEL' ? has(self.cel) : !has(self.cel)",
    message="cel must be set when type is CEL, and only then",
    holds=lambda cost: (cost.type == CostType.CEL) == (cost.cel is not None),
)


class PoolFallback(KubeModel):
    """Where an InferencePool's requests go when the pool can't serve them: another InferencePool or an
    AIServiceBackend in the route's namespace."""

    kind: BackendKind = BackendKind.AI_SERVICE_BACKEND
    """Kind of the fallback: AIServiceBackend (the default) or InferencePool."""
    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the AIServiceBackend or InferencePool, in the route's namespace."""
    model_name_override: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    """The model name sent to the fallback instead of the request's (for a fallback InferencePool: the
    modelName of its InferenceModel). Unset: the request's model is sent unchanged."""


FALLBACK_ONLY_FOR_POOLS = CelRule(
    rule="self.kind == 'InferencePool' || !has(self.fallback)",
    message="fallback can only be set on a backendRef of kind InferencePool",
    holds=lambda r: r.kind == BackendKind.INFERENCE_POOL or r.fallback is None,
)
FALLBACK_IS_ANOTHER_OBJECT = CelRule(
    rule="!has(self.fallback) || self.fallback.kind != self.kind || self.fallback.name != self.name",
    message="an InferencePool can't be its own fallback: name another InferencePool or an AIServiceBackend",
    holds=lambda r: r.fallback is None or (r.fallback.kind, r.fallback.name) != (r.kind, r.name),
)


GROUP_FITS_KIND = CelRule(
    rule=(
        "!has(self.group) "
        "|| (self.kind == 'InferencePool' "
        f"&& self.group in ['{INFERENCE_V1_GROUP}', '{INFERENCE_V1ALPHA2_GROUP}']) "
        f"|| (self.kind == 'AIServiceBackend' && self.group == '{GROUP}')"
    ),
    message=(
        f"group must be {INFERENCE_V1_GROUP} (the Inference Extension's v1 InferencePool) or "
        f"{INFERENCE_V1ALPHA2_GROUP} for kind InferencePool, and {GROUP} or unset for kind AIServiceBackend"
    ),
    holds=lambda r: (
        r.group is None
        or (
            r.kind == BackendKind.INFERENCE_POOL and r.group in (INFERENCE_V1_GROUP, INFERENCE_V1ALPHA2_GROUP)
        )
        or (r.kind == BackendKind.AI_SERVICE_BACKEND and r.group == GROUP)
    ),
)
NO_FALLBACK_FOR_V1_POOLS = CelRule(
    rule=f"!has(self.fallback) || !has(self.group) || self.group != '{INFERENCE_V1_GROUP}'",
    message=f"fallback is not supported yet on a v1 InferencePool (group {INFERENCE_V1_GROUP})",
    holds=lambda r: r.fallback is None or r.group != INFERENCE_V1_GROUP,
)


class AIGatewayRouteRuleBackendRef(CelValidatedModel):
    """A weighted reference to an AIServiceBackend or an InferencePool in the route's namespace."""

    CEL_RULES = (
        FALLBACK_ONLY_FOR_POOLS,
        FALLBACK_IS_ANOTHER_OBJECT,
        GROUP_FITS_KIND,
        NO_FALLBACK_FOR_V1_POOLS,
    )

    group: Annotated[str, Field(max_length=253)] | None = None
    """Only needed for the Inference Extension's v1 InferencePool (selecting Pods): set
    inference.networking.k8s.io with kind InferencePool. Unset: an AIServiceBackend, or the v1alpha2
    InferencePool (inference.networking.x-k8s.io), by kind."""
    kind: BackendKind = BackendKind.AI_SERVICE_BACKEND
    """Kind of the referent: AIServiceBackend (the default) or InferencePool."""
    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the AIServiceBackend or InferencePool, in the route's namespace."""
    weight: Annotated[int, Field(ge=0, le=1_000_000, json_schema_extra={"format": "int32"})] = 1
    """Relative share of the rule's requests sent to this backend: weight / sum of the rule's weights."""
    fallback: PoolFallback | None = None
    """Only for an InferencePool: where its requests go while it can't serve them, that is while it has no
    endpoint, or while it is saturated and would shed the request (a Sheddable model's request once every
    endpoint is past its queue or KV-cache threshold, a Standard one past the higher threshold; Critical
    requests stay on the pool while it has an endpoint). Never used while the pool can serve the request."""

    @property
    def is_v1_pool(self) -> bool:
        """True when the reference names the Inference Extension's v1 InferencePool (Pods)."""
        return self.kind == BackendKind.INFERENCE_POOL and self.group == INFERENCE_V1_GROUP


class AIGatewayRouteRuleMatch(KubeModel):
    """Conditions on a request; all of them must hold."""

    headers: Annotated[
        list[HTTPHeaderMatch],
        Field(max_length=16),
        ListMap("name"),
        ONLY_EXACT_HEADER_MATCH,
    ] = Field(default_factory=list)
    """Header matches, all of which must match. The header x-ai-eg-model carries the request body's model."""


class AIGatewayRouteRule(KubeModel):
    """Routes the requests that match any of ``matches`` to ``backendRefs``."""

    backend_refs: Annotated[
        list[AIGatewayRouteRuleBackendRef], Field(max_length=128), SOME_BACKEND_WEIGHT_POSITIVE, V1_POOL_ALONE
    ] = Field(default_factory=list)
    """The backends a matching request is sent to, chosen by weight."""
    matches: Annotated[list[AIGatewayRouteRuleMatch], Field(max_length=128)] = Field(default_factory=list)
    """The rule applies when any match holds; with no matches it applies to every request."""


class FilterType(StrEnum):
    """How the AI gateway filter runs in Envoy."""

    EXTERNAL_PROCESSOR = "ExternalProcessor"
    DYNAMIC_MODULE = "DynamicModule"


class ExternalProcessorConfig(KubeModel):
    """Settings of the ext_proc Deployment."""

    replicas: Annotated[int, Field(ge=0, json_schema_extra={"format": "int32"})] | None = None
    """Number of ext_proc replicas."""
    resources: ResourceRequirements | None = None
    """Compute resources of the ext_proc container."""


EXTERNAL_PROCESSOR_ONLY_FOR_ITS_TYPE = CelRule(
    rule="self.type == 'ExternalProcessor' || !has(self.externalProcessor)",
    message="externalProcessor can only be set when type is ExternalProcessor",
    holds=lambda c: c.type == FilterType.EXTERNAL_PROCESSOR or c.external_processor is None,
)


class AIGatewayFilterConfig(CelValidatedModel):
    """How the AI gateway filter is deployed for this route."""

    CEL_RULES = (EXTERNAL_PROCESSOR_ONLY_FOR_ITS_TYPE,)

    type: FilterType = FilterType.EXTERNAL_PROCESSOR
    """ExternalProcessor (the default) or DynamicModule (reserved, not supported yet)."""
    external_processor: ExternalProcessorConfig | None = None
    """Settings of the ext_proc when type is ExternalProcessor."""


class LLMRequestCost(CelValidatedModel):
    """A cost computed from a response's token usage and written to Envoy dynamic metadata
    ``io.envoy.ai_gateway/<metadataKey>``, where rate limits can use it."""

    CEL_RULES = (CEL_ONLY_FOR_CEL_COST,)

    metadata_key: Annotated[str, Field(min_length=1, max_length=253)]
    """Key of the cost inside the io.envoy.ai_gateway metadata namespace."""
    type: CostType
    """InputToken, OutputToken, TotalToken, or CEL to compute the cost with the expression in cel."""
    cel: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    """A CEL expression over model, backend, input_tokens, output_tokens and total_tokens that returns a
    non-negative integer. Only with type CEL."""


class AIGatewayRouteSpec(KubeModel):
    """Routes OpenAI-style requests arriving at the target Gateways to AI service backends and inference
    pools, by header (including the model from the request body)."""

    target_refs: Annotated[
        list[LocalPolicyTargetReferenceWithSectionName],
        Field(min_length=1, max_length=128),
        TARGET_REFS_ARE_GATEWAYS,
    ]
    """The Gateways this route attaches to, in the route's namespace."""
    schema_: Annotated[VersionedAPISchema, ROUTE_SCHEMA_IS_OPENAI] = Field(alias="schema")
    """The API schema of client requests. Only OpenAI is supported."""
    rules: Annotated[list[AIGatewayRouteRule], Field(max_length=128)]
    """Routing rules; the first rule that matches a request wins."""
    filter_config: AIGatewayFilterConfig | None = None
    """How the AI gateway filter is deployed."""
    llm_request_costs: Annotated[list[LLMRequestCost], Field(max_length=36)] = Field(default_factory=list)
    """Costs to compute from each response's token usage."""


class AIGatewayRoute(TopLevelObject):
    """An AIGatewayRoute routes LLM API requests that arrive at Gateways to AIServiceBackends and
    InferencePools, deciding per request from its headers and its body's model."""

    KIND_INFO = _kind_info("AIGatewayRoute", "aigatewayroutes", "aigwroute")

    api_version: Literal["aigateway.envoyproxy.io/v1alpha1"] = API_VERSION
    kind: Literal["AIGatewayRoute"] = "AIGatewayRoute"
    spec: AIGatewayRouteSpec
    status: Status = Field(default_factory=Status)


# --- AIServiceBackend -------------------------------------------------------------------------------------

BACKEND_REF_IS_SERVICE_OR_BACKEND = CelRule(
    rule=(
        "(self.group == '' && self.kind == 'Service') "
        "|| (self.group == 'gateway.envoyproxy.io' && self.kind == 'Backend')"
    ),
    message="backendRef must be a Service or an Envoy Gateway Backend (group gateway.envoyproxy.io)",
    holds=lambda r: (r.group, r.kind) in {("", "Service"), ("gateway.envoyproxy.io", "Backend")},
)
SECURITY_POLICY_REF_KIND = CelRule(
    rule=f"self.group == '{GROUP}' && self.kind == 'BackendSecurityPolicy'",
    message=f"backendSecurityPolicyRef must reference a BackendSecurityPolicy (group {GROUP})",
    holds=lambda r: r.group == GROUP and r.kind == "BackendSecurityPolicy",
)


class AIServiceBackendSpec(KubeModel):
    """An upstream AI service: its API schema, how Envoy reaches it, and how to authenticate to it."""

    schema_: VersionedAPISchema = Field(alias="schema")
    """The API schema the backend speaks; requests are translated to it."""
    backend_ref: Annotated[BackendObjectReference, BACKEND_REF_IS_SERVICE_OR_BACKEND]
    """The Kubernetes Service or Envoy Gateway Backend that serves the API."""
    backend_security_policy_ref: Annotated[LocalObjectReference, SECURITY_POLICY_REF_KIND] | None = None
    """The BackendSecurityPolicy holding the credentials for this backend, if it needs any."""
    timeouts: HTTPRouteTimeouts | None = None
    """Request timeouts for this backend."""


class AIServiceBackend(TopLevelObject):
    """An AIServiceBackend is one upstream AI service, such as OpenAI, AWS Bedrock, Azure OpenAI or a
    self-hosted model server. InferencePools select AIServiceBackends by label."""

    KIND_INFO = _kind_info("AIServiceBackend", "aiservicebackends", "aisb")

    api_version: Literal["aigateway.envoyproxy.io/v1alpha1"] = API_VERSION
    kind: Literal["AIServiceBackend"] = "AIServiceBackend"
    spec: AIServiceBackendSpec
    status: Status = Field(default_factory=Status)


# --- BackendSecurityPolicy --------------------------------------------------------------------------------


class BackendSecurityPolicyType(StrEnum):
    """The kind of credentials."""

    API_KEY = "APIKey"
    AWS_CREDENTIALS = "AWSCredentials"
    AZURE_CREDENTIALS = "AzureCredentials"


class BackendSecurityPolicyAPIKey(KubeModel):
    """An API key sent as ``Authorization: Bearer <key>``."""

    secret_ref: SecretObjectReference
    """The Secret whose key apiKey holds the API key."""


class AWSCredentialsFile(KubeModel):
    """An AWS credentials file (INI format) stored in a Secret."""

    secret_ref: SecretObjectReference
    """The Secret whose key credentials holds the AWS credentials file."""
    profile: Annotated[str, Field(min_length=1, max_length=253)] = "default"
    """The profile of the credentials file to use."""


class OIDCProvider(KubeModel):
    """An OpenID Connect provider."""

    issuer: Annotated[str, Field(min_length=1, max_length=2048)]
    """The provider's issuer URL; its discovery document supplies the endpoints not set here."""
    authorization_endpoint: str | None = None
    """The provider's authorization endpoint."""
    token_endpoint: str | None = None
    """The provider's token endpoint."""


class OIDC(KubeModel):
    """OpenID Connect client settings (the subset of Envoy Gateway's OIDC used for token exchange)."""

    provider: OIDCProvider
    """The OpenID Connect provider."""
    client_id: Annotated[str, Field(min_length=1, max_length=253)] = Field(alias="clientID")
    """The client ID registered with the provider."""
    client_secret: SecretObjectReference
    """The Secret whose key client-secret holds the client secret."""
    scopes: Annotated[list[Annotated[str, Field(max_length=253)]], Field(max_length=32)] = Field(
        default_factory=list
    )
    """Scopes to request besides openid."""


class AWSOIDCExchangeToken(KubeModel):
    """Obtains an OIDC token and exchanges it for temporary AWS credentials
    (STS AssumeRoleWithWebIdentity)."""

    oidc: OIDC
    """How to obtain the OIDC token."""
    grant_type: Annotated[str, Field(max_length=253)] | None = None
    """The OAuth grant type; client_credentials when unset."""
    aud: Annotated[str, Field(max_length=253)] | None = None
    """The audience of the OIDC token."""
    aws_role_arn: Annotated[str, Field(min_length=1, max_length=2048)]
    """The ARN of the AWS IAM role to assume."""


ONE_AWS_CREDENTIAL_SOURCE = CelRule(
    rule="has(self.credentialsFile) != has(self.oidcExchangeToken)",
    message="exactly one of credentialsFile or oidcExchangeToken must be set",
    holds=lambda c: (c.credentials_file is None) != (c.oidc_exchange_token is None),
)


class BackendSecurityPolicyAWSCredentials(CelValidatedModel):
    """AWS credentials for SigV4 request signing: a credentials file, or an OIDC token exchange."""

    CEL_RULES = (ONE_AWS_CREDENTIAL_SOURCE,)

    region: Annotated[str, Field(min_length=1, max_length=64)]
    """The AWS region of the service."""
    credentials_file: AWSCredentialsFile | None = None
    """A static credentials file."""
    oidc_exchange_token: AWSOIDCExchangeToken | None = None
    """An OIDC token exchanged for temporary credentials, rotated before they expire."""


class BackendSecurityPolicyAzureCredentials(KubeModel):
    """An Azure AD (Entra ID) application's client credentials, exchanged for access tokens."""

    client_id: Annotated[str, Field(min_length=1, max_length=253)] = Field(alias="clientID")
    """The application (client) ID."""
    tenant_id: Annotated[str, Field(min_length=1, max_length=253)] = Field(alias="tenantID")
    """The directory (tenant) ID."""
    client_secret_ref: SecretObjectReference
    """The Secret whose key client-secret holds the client secret."""


def _method_for_type(type_: BackendSecurityPolicyType, field: str, attribute: str) -> CelRule:
    return CelRule(
        rule=f"self.type != '{type_.value}' || has(self.{field})",
        message=f"{field} must be set when type is {type_.value}",
        holds=lambda spec: spec.type != type_ or getattr(spec, attribute) is not None,
    )


API_KEY_FOR_API_KEY_TYPE = _method_for_type(BackendSecurityPolicyType.API_KEY, "apiKey", "api_key")
AWS_FOR_AWS_TYPE = _method_for_type(
    BackendSecurityPolicyType.AWS_CREDENTIALS, "awsCredentials", "aws_credentials"
)
AZURE_FOR_AZURE_TYPE = _method_for_type(
    BackendSecurityPolicyType.AZURE_CREDENTIALS, "azureCredentials", "azure_credentials"
)
ONE_METHOD = CelRule(
    rule="[has(self.apiKey), has(self.awsCredentials), has(self.azureCredentials)].filter(x, x).size() <= 1",
    message="only one of apiKey, awsCredentials or azureCredentials may be set",
    holds=lambda s: sum(m is not None for m in (s.api_key, s.aws_credentials, s.azure_credentials)) <= 1,
)


class BackendSecurityPolicySpec(CelValidatedModel):
    """Credentials for an AI service: a type and exactly the one method that type names."""

    # No maxProperties here: it would reject a second credential before ONE_METHOD runs, with the API server's
    # "Too many: 3: must have at most 2 items", which names neither the fields nor the fix.
    CEL_RULES = (API_KEY_FOR_API_KEY_TYPE, AWS_FOR_AWS_TYPE, AZURE_FOR_AZURE_TYPE, ONE_METHOD)

    type: BackendSecurityPolicyType
    """The kind of credentials: APIKey, AWSCredentials or AzureCredentials."""
    api_key: BackendSecurityPolicyAPIKey | None = None
    """An API key, when type is APIKey."""
    aws_credentials: BackendSecurityPolicyAWSCredentials | None = None
    """AWS credentials, when type is AWSCredentials."""
    azure_credentials: BackendSecurityPolicyAzureCredentials | None = None
    """Azure credentials, when type is AzureCredentials."""


class BackendSecurityPolicy(TopLevelObject):
    """A BackendSecurityPolicy holds the credentials the gateway uses to call an AIServiceBackend that
    references it."""

    KIND_INFO = _kind_info("BackendSecurityPolicy", "backendsecuritypolicies", "bsp")

    api_version: Literal["aigateway.envoyproxy.io/v1alpha1"] = API_VERSION
    kind: Literal["BackendSecurityPolicy"] = "BackendSecurityPolicy"
    spec: BackendSecurityPolicySpec
    status: Status = Field(default_factory=Status)
