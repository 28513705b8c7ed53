"""Malformed objects are rejected with the field path and the rule they broke, as the API server would."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from api.envoygateway import Backend
from api.errors import FieldError, InvalidObjectError, field_path
from api.inference import InferenceModel, InferencePool
from api.kinds import parse_object
from api.objects import TopLevelObject
from api.v1alpha1 import AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy

META = {"name": "x", "namespace": "default"}

ROUTE: dict[str, Any] = {
    "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
    "kind": "AIGatewayRoute",
    "metadata": META,
    "spec": {
        "schema": {"name": "OpenAI"},
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}],
        "rules": [
            {
                "matches": [{"headers": [{"name": "x-ai-eg-model", "value": "m"}]}],
                "backendRefs": [{"name": "b"}],
            }
        ],
    },
}
BACKEND: dict[str, Any] = {
    "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
    "kind": "AIServiceBackend",
    "metadata": META,
    "spec": {"schema": {"name": "OpenAI"}, "backendRef": {"name": "svc", "port": 80}},
}
BSP: dict[str, Any] = {
    "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
    "kind": "BackendSecurityPolicy",
    "metadata": META,
    "spec": {"type": "APIKey", "apiKey": {"secretRef": {"name": "s"}}},
}
POOL: dict[str, Any] = {
    "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
    "kind": "InferencePool",
    "metadata": META,
    "spec": {
        "selector": {"app": "a"},
        "targetPortNumber": 8080,
        "extensionRef": {"name": "envoy-ai-gateway"},
    },
}
MODEL: dict[str, Any] = {
    "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
    "kind": "InferenceModel",
    "metadata": META,
    "spec": {"modelName": "m", "poolRef": {"name": "p"}},
}


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``base`` with the dotted ``path`` (list indexes as numbers) set to ``value``."""
    obj = copy.deepcopy(base)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = obj
    for p in parents:
        node = node[p]
    node[last] = value
    return obj


def _errors(data: dict[str, Any]) -> list[FieldError]:
    with pytest.raises(InvalidObjectError) as caught:
        parse_object(data)
    return list(caught.value.errors)


def test_valid_objects_parse() -> None:
    assert isinstance(parse_object(ROUTE), AIGatewayRoute)
    assert isinstance(parse_object(BACKEND), AIServiceBackend)
    assert isinstance(parse_object(BSP), BackendSecurityPolicy)
    assert isinstance(parse_object(POOL), InferencePool)
    assert isinstance(parse_object(MODEL), InferenceModel)


def test_defaults_are_applied() -> None:
    route = AIGatewayRoute.parse(ROUTE)
    ref = route.spec.rules[0].backend_refs[0]
    assert (ref.kind.value, ref.weight) == ("AIServiceBackend", 1)
    assert route.spec.rules[0].matches[0].headers[0].type.value == "Exact"
    pool = InferencePool.parse(POOL)
    assert (pool.spec.extension_ref.failure_mode.value, pool.spec.extension_ref.kind) == (
        "FailClose",
        "Service",
    )
    model = InferenceModel.parse(MODEL)
    assert model.spec.criticality is None
    assert (model.spec.pool_ref.group, model.spec.pool_ref.kind) == (
        "inference.networking.x-k8s.io",
        "InferencePool",
    )
    assert model.status.conditions[0].reason == "Pending"


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (
            _with(ROUTE, "spec.rules.0.matches.0.headers.0.type", "RegularExpression"),
            "spec.rules[0].matches[0].headers",
            "currently only exact match is supported",
        ),
        (_with(ROUTE, "spec.schema.name", "AWSBedrock"), "spec.schema", "only the OpenAI schema"),
        (
            _with(ROUTE, "spec.rules.0.backendRefs.0.fallback", {"name": "spare"}),
            "spec.rules[0].backendRefs[0]",
            "fallback can only be set on a backendRef of kind InferencePool",
        ),
        (
            _with(
                ROUTE,
                "spec.rules.0.backendRefs.0",
                {"kind": "InferencePool", "name": "p", "fallback": {"kind": "InferencePool", "name": "p"}},
            ),
            "spec.rules[0].backendRefs[0]",
            "an InferencePool can't be its own fallback",
        ),
        (
            _with(
                ROUTE, "spec.rules.0.backendRefs.0", {"kind": "InferencePool", "name": "p", "fallback": {}}
            ),
            "spec.rules[0].backendRefs[0].fallback.name",
            "Field required",
        ),
        (_with(ROUTE, "spec.schema.name", "SomeRandomVendor"), "spec.schema.name", "'OpenAI'"),
        (
            _with(ROUTE, "spec.rules.0.backendRefs.0.kind", "Foo"),
            "spec.rules[0].backendRefs[0].kind",
            "'AIServiceBackend' or 'InferencePool'",
        ),
        (
            _with(ROUTE, "spec.rules.0.backendRefs.0.weight", 0),
            "spec.rules[0].backendRefs",
            "weight greater than 0",
        ),
        (_with(ROUTE, "spec.targetRefs", []), "spec.targetRefs", "at least 1 item"),
        (_with(ROUTE, "spec.targetRefs.0.kind", "HTTPRoute"), "spec.targetRefs", "must reference Gateways"),
        (
            _with(ROUTE, "spec.llmRequestCosts", [{"metadataKey": "k", "type": "CEL"}]),
            "spec.llmRequestCosts[0]",
            "cel must be set when type is CEL",
        ),
        (
            _with(
                ROUTE, "spec.filterConfig", {"type": "DynamicModule", "externalProcessor": {"replicas": 1}}
            ),
            "spec.filterConfig",
            "externalProcessor can only be set when type is ExternalProcessor",
        ),
        (_with(ROUTE, "spec.rules.0.extra", 1), "spec.rules[0].extra", "Extra inputs are not permitted"),
        (
            _with(
                ROUTE,
                "spec.rules.0.matches.0.headers",
                [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}, {"name": "a", "value": "3"}],
            ),
            "spec.rules[0].matches[0].headers",
            "duplicate entry with name=a: the list is a map keyed by name",
        ),
        (
            _with(BACKEND, "spec.backendRef.port", None),
            "spec.backendRef",
            "Must have port for Service reference",
        ),
        (
            _with(BACKEND, "spec.backendRef", {"group": "apps", "kind": "Deployment", "name": "d"}),
            "spec.backendRef",
            "Service or an Envoy Gateway Backend",
        ),
        (
            _with(BACKEND, "spec.backendSecurityPolicyRef", {"group": "", "kind": "Secret", "name": "s"}),
            "spec.backendSecurityPolicyRef",
            "must reference a BackendSecurityPolicy",
        ),
        (
            _with(BACKEND, "spec.timeouts", {"request": "10s", "backendRequest": "1m"}),
            "spec.timeouts",
            "backendRequest timeout cannot be longer than request timeout",
        ),
        (_with(BACKEND, "spec.timeouts", {"request": "ten seconds"}), "spec.timeouts.request", "pattern"),
        (
            _with(BSP, "spec.type", "UnknownType"),
            "spec.type",
            "'APIKey', 'AWSCredentials' or 'AzureCredentials'",
        ),
        (
            _with(BSP, "spec.type", "AWSCredentials"),
            "spec",
            "awsCredentials must be set when type is AWSCredentials",
        ),
        (
            _with(
                BSP,
                "spec",
                {
                    "type": "APIKey",
                    "azureCredentials": {"clientID": "c", "tenantID": "t", "clientSecretRef": {"name": "s"}},
                },
            ),
            "spec",
            "apiKey must be set when type is APIKey",
        ),
        (
            _with(
                BSP,
                "spec.awsCredentials",
                {"region": "us-east-1", "credentialsFile": {"secretRef": {"name": "s"}}},
            ),
            "spec",
            "only one of apiKey, awsCredentials or azureCredentials may be set",
        ),
        (
            _with(
                BSP,
                "spec",
                {
                    "type": "AzureCredentials",
                    "azureCredentials": {"clientID": "", "tenantID": "t", "clientSecretRef": {"name": "s"}},
                },
            ),
            "spec.azureCredentials.clientID",
            "at least 1 character",
        ),
        (
            _with(BSP, "spec", {"type": "AWSCredentials", "awsCredentials": {"region": "us-east-1"}}),
            "spec.awsCredentials",
            "exactly one of credentialsFile or oidcExchangeToken must be set",
        ),
        (_with(POOL, "spec.targetPortNumber", 0), "spec.targetPortNumber", "greater than or equal to 1"),
        (_with(POOL, "spec.selector", {"app": "bad value!"}), "spec.selector.app", "pattern"),
        (_with(POOL, "spec.selector", {"bad key!": "v"}), "spec.selector.bad key!", "invalid label key"),
        (
            _with(POOL, "spec.extensionRef.failureMode", "Maybe"),
            "spec.extensionRef.failureMode",
            "'FailOpen'",
        ),
        (
            _with(MODEL, "spec.targetModels", [{"name": "a", "weight": 1}, {"name": "b"}]),
            "spec.targetModels",
            "Weights should be set for all models, or none of the models.",
        ),
        (
            _with(MODEL, "spec.targetModels", [{"name": "a", "weight": 0}]),
            "spec.targetModels[0].weight",
            "greater than or equal to 1",
        ),
        (_with(MODEL, "spec.modelName", "m" * 257), "spec.modelName", "at most 256 characters"),
        (
            _with(MODEL, "spec.criticality", "Important"),
            "spec.criticality",
            "'Critical', 'Standard' or 'Sheddable'",
        ),
    ],
)
def test_malformed_objects_name_the_field_and_the_rule(data: dict[str, Any], path: str, message: str) -> None:
    errors = _errors(data)
    matching = [e for e in errors if e.path == path]
    assert matching, f"no error at {path}: {errors}"
    assert any(message in e.message for e in matching), matching


def test_the_error_text_names_the_object_path_and_rule() -> None:
    with pytest.raises(InvalidObjectError) as caught:
        AIGatewayRoute.parse(_with(ROUTE, "spec.rules.0.matches.0.headers.0.type", "RegularExpression"))
    assert str(caught.value) == (
        "AIGatewayRoute default/x is invalid: "
        "spec.rules[0].matches[0].headers: currently only exact match is supported"
    )


def test_unknown_kinds_are_rejected() -> None:
    with pytest.raises(InvalidObjectError, match="unknown kind v1/Pod"):
        parse_object({"apiVersion": "v1", "kind": "Pod", "metadata": META})


@pytest.mark.parametrize("kind", [AIGatewayRoute, InferencePool])
def test_a_kind_rejects_another_kinds_object(kind: type[TopLevelObject]) -> None:
    with pytest.raises(InvalidObjectError) as caught:
        kind.parse(MODEL)
    assert any(e.path in {"kind", "apiVersion"} for e in caught.value.errors)


def test_field_path_formats_indexes_like_kubernetes() -> None:
    assert field_path(("spec", "rules", 0, "backendRefs", 12, "kind")) == "spec.rules[0].backendRefs[12].kind"
    assert field_path(()) == ""
    assert str(FieldError("", "broken")) == "broken"


def test_envoy_gateway_backend_ignores_fields_it_does_not_model() -> None:
    backend = parse_object(
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "Backend",
            "metadata": META,
            "spec": {
                "endpoints": [
                    {"ip": {"address": "10.0.0.1", "port": 8080}},
                    {"fqdn": {"hostname": "api.openai.com", "port": 443}},
                    {"unix": {"path": "/run/sock"}},
                ],
                "tls": {"insecureSkipVerify": True, "caCertificateRefs": [{"name": "ca"}]},
            },
            "status": {"conditions": []},
        }
    )
    assert isinstance(backend, Backend)
    assert backend.spec.tls is not None and backend.spec.tls.insecure_skip_verify is True
    ip, fqdn, unix = backend.spec.endpoints
    assert (ip.ip and ip.ip.address, fqdn.fqdn and fqdn.fqdn.hostname, unix.unix and unix.unix.path) == (
        "10.0.0.1",
        "api.openai.com",
        "/run/sock",
    )


def test_envoy_gateway_backend_endpoint_is_ip_fqdn_or_unix() -> None:
    errors = _errors(
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "Backend",
            "metadata": META,
            "spec": {
                "endpoints": [
                    {"ip": {"address": "10.0.0.1", "port": 1}, "fqdn": {"hostname": "h", "port": 1}}
                ]
            },
        }
    )
    assert [str(e) for e in errors] == ["spec.endpoints[0]: an endpoint sets one of ip, fqdn or unix"]
