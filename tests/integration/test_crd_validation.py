"""Our CRDs, as the real API server enforces them: samples are accepted, invalid objects get exact messages.

The messages asserted here are the API server's own (OpenAPI schema validation and the CRDs' CEL rules), so a
change to a CRD that changes what users see fails here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from api.errors import InvalidObjectError
from api.kinds import parse_object
from api.objects import Obj
from tests.realparts.controlplane import REPO_ROOT, ControlPlane

SAMPLES = sorted((REPO_ROOT / "config" / "samples").glob("*.yaml"))
MERGE_PATCH: dict[str, Any] = {"_content_type": "application/merge-patch+json"}
GAIE = ("inference.networking.x-k8s.io", "v1alpha2")


def _route() -> Obj:
    return {
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "AIGatewayRoute",
        "metadata": {"name": "bad"},
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


def _backend() -> Obj:
    return {
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "AIServiceBackend",
        "metadata": {"name": "bad"},
        "spec": {"schema": {"name": "OpenAI"}, "backendRef": {"name": "svc", "port": 8080}},
    }


def _policy() -> Obj:
    return {
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "BackendSecurityPolicy",
        "metadata": {"name": "bad"},
        "spec": {"type": "APIKey", "apiKey": {"secretRef": {"name": "key"}}},
    }


def _pool() -> Obj:
    return {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferencePool",
        "metadata": {"name": "bad"},
        "spec": {"selector": {"app": "m"}, "targetPortNumber": 8080, "extensionRef": {"name": "epp"}},
    }


def _model() -> Obj:
    return {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferenceModel",
        "metadata": {"name": "bad"},
        "spec": {"modelName": "m", "poolRef": {"name": "pool"}},
    }


PLURALS = {
    "AIGatewayRoute": "aigatewayroutes",
    "AIServiceBackend": "aiservicebackends",
    "BackendSecurityPolicy": "backendsecuritypolicies",
    "InferencePool": "inferencepools",
    "InferenceModel": "inferencemodels",
}


@dataclass(frozen=True)
class Invalid:
    """An object made invalid by ``mutate``, and the API server's exact message for it."""

    id: str
    make: Callable[[], Obj]
    mutate: Callable[[Obj], None]
    message: str
    cel: bool = False
    """A CEL rule rejects it: the server prints the rule's message and no value."""

    @property
    def field(self) -> str:
        """The field path the server names first, e.g. ``spec.rules[0].backendRefs``."""
        return self.message.split(" is invalid: ", 1)[1].lstrip("[").split(":", 1)[0]

    @property
    def cel_message(self) -> str | None:
        """The CEL rule's message, for a case a CEL rule rejects."""
        return self.message.partition(f"{self.field}: Invalid value: ")[2] if self.cel else None


def _cel(id: str, make: Callable[[], Obj], mutate: Callable[[Obj], None], message: str) -> Invalid:
    return Invalid(id, make, mutate, message, cel=True)


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    """A mutation that sets the dotted ``path`` (integers index lists) to ``value``; None deletes it."""

    def mutate(obj: Obj) -> None:
        keys: list[str | int] = [int(k) if k.isdigit() else k for k in path.split(".")]
        node: Any = obj
        for key in keys[:-1]:
            node = node[key]
        if value is None:
            del node[keys[-1]]
        else:
            node[keys[-1]] = copy.deepcopy(value)

    return mutate


NOT_ALL_CHECKED = (
    "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)
ROUTE = 'AIGatewayRoute.aigateway.envoyproxy.io "bad" is invalid: '
BACKEND = 'AIServiceBackend.aigateway.envoyproxy.io "bad" is invalid: '
POLICY = 'BackendSecurityPolicy.aigateway.envoyproxy.io "bad" is invalid: '
MODEL = 'InferenceModel.inference.networking.x-k8s.io "bad" is invalid: '
POOL = 'InferencePool.inference.networking.x-k8s.io "bad" is invalid: '


def _headers(n: int) -> list[Obj]:
    return [{"name": f"x-h{i}", "value": "v"} for i in range(n)]


def _aws_with_both_credentials(obj: Obj) -> None:
    obj["spec"] = {
        "type": "AWSCredentials",
        "awsCredentials": {
            "region": "us-east-1",
            "credentialsFile": {"secretRef": {"name": "file"}},
            "oidcExchangeToken": {
                "oidc": {
                    "provider": {"issuer": "https://idp"},
                    "clientID": "c",
                    "clientSecret": {"name": "s"},
                },
                "awsRoleArn": "arn:aws:iam::1:role/r",
            },
        },
    }


INVALID: list[Invalid] = [
    # CEL rules
    _cel(
        "route-targetRefs-not-a-gateway",
        _route,
        _set("spec.targetRefs.0.kind", "HTTPRoute"),
        ROUTE + "spec.targetRefs: Invalid value: targetRefs must reference Gateways "
        "(group gateway.networking.k8s.io, kind Gateway)",
    ),
    _cel(
        "route-input-schema-not-openai",
        _route,
        _set("spec.schema.name", "AWSBedrock"),
        ROUTE
        + "spec.schema: Invalid value: only the OpenAI schema is supported as the input schema of a route",
    ),
    _cel(
        "route-all-weights-zero",
        _route,
        _set("spec.rules.0.backendRefs", [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]),
        ROUTE + "spec.rules[0].backendRefs: Invalid value: "
        "at least one backendRef must have a weight greater than 0",
    ),
    _cel(
        "route-fallback-on-a-backend",
        _route,
        _set("spec.rules.0.backendRefs.0.fallback", {"name": "spare"}),
        ROUTE + "spec.rules[0].backendRefs[0]: Invalid value: "
        "fallback can only be set on a backendRef of kind InferencePool",
    ),
    _cel(
        "route-pool-is-its-own-fallback",
        _route,
        _set(
            "spec.rules.0.backendRefs.0",
            {"kind": "InferencePool", "name": "p", "fallback": {"kind": "InferencePool", "name": "p"}},
        ),
        ROUTE + "spec.rules[0].backendRefs[0]: Invalid value: "
        "an InferencePool can't be its own fallback: name another InferencePool or an AIServiceBackend",
    ),
    _cel(
        "route-v1-pool-group-on-a-backend",
        _route,
        _set("spec.rules.0.backendRefs.0.group", "inference.networking.k8s.io"),
        ROUTE + "spec.rules[0].backendRefs[0]: Invalid value: "
        "group must be inference.networking.k8s.io (the Inference Extension's v1 InferencePool) or "
        "inference.networking.x-k8s.io for kind InferencePool, and aigateway.envoyproxy.io or unset for kind "
        "AIServiceBackend",
    ),
    _cel(
        "route-v1-pool-mixed-with-a-backend",
        _route,
        _set(
            "spec.rules.0.backendRefs",
            [{"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "p"}, {"name": "b"}],
        ),
        ROUTE + "spec.rules[0].backendRefs: Invalid value: "
        "a v1 InferencePool (group inference.networking.k8s.io) must be the rule's only backendRef: one pool "
        "per rule, not mixed with other backends",
    ),
    _cel(
        "route-v1-pool-with-fallback",
        _route,
        _set(
            "spec.rules.0.backendRefs.0",
            {
                "group": "inference.networking.k8s.io",
                "kind": "InferencePool",
                "name": "p",
                "fallback": {"name": "b"},
            },
        ),
        ROUTE + "spec.rules[0].backendRefs[0]: Invalid value: "
        "fallback is not supported yet on a v1 InferencePool (group inference.networking.k8s.io)",
    ),
    _cel(
        "route-regex-header-match",
        _route,
        _set("spec.rules.0.matches.0.headers.0.type", "RegularExpression"),
        ROUTE + "spec.rules[0].matches[0].headers: Invalid value: currently only exact match is supported",
    ),
    _cel(
        "route-external-processor-with-dynamic-module",
        _route,
        _set("spec.filterConfig", {"type": "DynamicModule", "externalProcessor": {"replicas": 2}}),
        ROUTE + "spec.filterConfig: Invalid value: "
        "externalProcessor can only be set when type is ExternalProcessor",
    ),
    _cel(
        "route-cel-cost-without-expression",
        _route,
        _set("spec.llmRequestCosts", [{"metadataKey": "c", "type": "CEL"}]),
        ROUTE + "spec.llmRequestCosts[0]: Invalid value: cel must be set when type is CEL, and only then",
    ),
    _cel(
        "backend-service-without-port",
        _backend,
        _set("spec.backendRef.port", None),
        BACKEND + "spec.backendRef: Invalid value: Must have port for Service reference",
    ),
    _cel(
        "backend-ref-to-a-deployment",
        _backend,
        _set("spec.backendRef", {"group": "apps", "kind": "Deployment", "name": "d"}),
        BACKEND + "spec.backendRef: Invalid value: backendRef must be a Service or an Envoy Gateway Backend "
        "(group gateway.envoyproxy.io)",
    ),
    _cel(
        "backend-security-policy-ref-to-a-secret",
        _backend,
        _set("spec.backendSecurityPolicyRef", {"group": "", "kind": "Secret", "name": "s"}),
        BACKEND + "spec.backendSecurityPolicyRef: Invalid value: backendSecurityPolicyRef must reference a "
        "BackendSecurityPolicy (group aigateway.envoyproxy.io)",
    ),
    _cel(
        "backend-request-timeout-longer-than-request",
        _backend,
        _set("spec.timeouts", {"request": "10s", "backendRequest": "1m"}),
        BACKEND
        + "spec.timeouts: Invalid value: backendRequest timeout cannot be longer than request timeout",
    ),
    _cel(
        "policy-apikey-type-without-apikey",
        _policy,
        _set("spec.apiKey", None),
        POLICY + "spec: Invalid value: apiKey must be set when type is APIKey",
    ),
    _cel(
        "policy-aws-file-and-oidc",
        _policy,
        _aws_with_both_credentials,
        POLICY + "spec.awsCredentials: Invalid value: "
        "exactly one of credentialsFile or oidcExchangeToken must be set",
    ),
    _cel(
        "model-weights-on-some-targets",
        _model,
        _set("spec.targetModels", [{"name": "a", "weight": 10}, {"name": "b"}]),
        MODEL
        + "spec.targetModels: Invalid value: Weights should be set for all models, or none of the models.",
    ),
    # enums
    Invalid(
        "route-unknown-schema",
        _route,
        _set("spec.schema.name", "Anthropic"),
        ROUTE
        + '[spec.schema.name: Unsupported value: "Anthropic": supported values: "OpenAI", "AWSBedrock", '
        f'"AzureOpenAI", {NOT_ALL_CHECKED}]',
    ),
    Invalid(
        "policy-unknown-type",
        _policy,
        _set("spec.type", "GCPCredentials"),
        POLICY
        + '[spec.type: Unsupported value: "GCPCredentials": supported values: "APIKey", "AWSCredentials", '
        f'"AzureCredentials", {NOT_ALL_CHECKED}]',
    ),
    Invalid(
        "model-unknown-criticality",
        _model,
        _set("spec.criticality", "Urgent"),
        MODEL + '[spec.criticality: Unsupported value: "Urgent": supported values: "Critical", "Standard", '
        f'"Sheddable", {NOT_ALL_CHECKED}]',
    ),
    Invalid(
        "pool-unknown-failure-mode",
        _pool,
        _set("spec.extensionRef.failureMode", "FailSometimes"),
        POOL
        + 'spec.extensionRef.failureMode: Unsupported value: "FailSometimes": supported values: "FailOpen", '
        '"FailClose"',
    ),
    # required fields
    Invalid(
        "route-without-rules",
        _route,
        _set("spec.rules", None),
        ROUTE + f"[spec.rules: Required value, {NOT_ALL_CHECKED}]",
    ),
    Invalid(
        "backend-without-schema",
        _backend,
        _set("spec.schema", None),
        BACKEND + f"[spec.schema: Required value, {NOT_ALL_CHECKED}]",
    ),
    Invalid(
        "model-without-pool",
        _model,
        _set("spec.poolRef", None),
        MODEL + f"[spec.poolRef: Required value, {NOT_ALL_CHECKED}]",
    ),
    Invalid(
        "pool-without-selector", _pool, _set("spec.selector", None), POOL + "spec.selector: Required value"
    ),
    # limits and formats
    Invalid(
        "route-without-targets",
        _route,
        _set("spec.targetRefs", []),
        ROUTE + "spec.targetRefs: Invalid value: 0: spec.targetRefs in body should have at least 1 items",
    ),
    Invalid(
        "route-too-many-costs",
        _route,
        _set("spec.llmRequestCosts", [{"metadataKey": f"k{i}", "type": "InputToken"} for i in range(37)]),
        ROUTE + f"[spec.llmRequestCosts: Too many: 37: must have at most 36 items, {NOT_ALL_CHECKED}]",
    ),
    Invalid(
        "route-too-many-header-matches",
        _route,
        _set("spec.rules.0.matches.0.headers", _headers(17)),
        ROUTE
        + f"[spec.rules[0].matches[0].headers: Too many: 17: must have at most 16 items, {NOT_ALL_CHECKED}]",
    ),
    Invalid(
        "route-negative-weight",
        _route,
        _set("spec.rules.0.backendRefs.0.weight", -1),
        ROUTE
        + "[spec.rules[0].backendRefs[0].weight: Invalid value: -1: spec.rules[0].backendRefs[0].weight in "
        "body should be greater than or equal to 0, spec.rules[0].backendRefs: Invalid value: at least one "
        "backendRef must have a weight greater than 0]",
    ),
    Invalid(
        "route-header-name-with-space",
        _route,
        _set("spec.rules.0.matches.0.headers.0.name", "bad header"),
        ROUTE + 'spec.rules[0].matches[0].headers[0].name: Invalid value: "bad header": '
        "spec.rules[0].matches[0].headers[0].name in body should match '^[A-Za-z0-9!#$%&'*+\\-.^_\\x60|~]+$'",
    ),
    Invalid(
        "backend-timeout-not-a-duration",
        _backend,
        _set("spec.timeouts", {"request": "1 minute"}),
        BACKEND
        + 'spec.timeouts.request: Invalid value: "1 minute": spec.timeouts.request in body should match '
        "'^([0-9]{1,5}(h|m|s|ms)){1,4}$'",
    ),
    _cel(
        "policy-two-credentials",
        _policy,
        _set("spec.azureCredentials", {"clientID": "c", "tenantID": "t", "clientSecretRef": {"name": "s"}}),
        POLICY + "spec: Invalid value: only one of apiKey, awsCredentials or azureCredentials may be set",
    ),
    Invalid(
        "model-name-too-long",
        _model,
        _set("spec.modelName", "m" * 257),
        MODEL + f"[spec.modelName: Too long: may not be more than 256 bytes, {NOT_ALL_CHECKED}]",
    ),
    Invalid(
        "model-too-many-targets",
        _model,
        _set("spec.targetModels", [{"name": f"t{i}"} for i in range(11)]),
        MODEL + f"[spec.targetModels: Too many: 11: must have at most 10 items, {NOT_ALL_CHECKED}]",
    ),
    Invalid(
        "pool-port-zero",
        _pool,
        _set("spec.targetPortNumber", 0),
        POOL
        + "spec.targetPortNumber: Invalid value: 0: spec.targetPortNumber in body should be greater than or "
        "equal to 1",
    ),
]


async def _create(api: client.ApiClient, namespace: str, obj: Obj) -> Obj:
    group, version = obj["apiVersion"].split("/")
    result: Obj = await client.CustomObjectsApi(api).create_namespaced_custom_object(
        group, version, namespace, PLURALS[obj["kind"]], obj
    )
    return result


def _rejection(exc: ApiException) -> str:
    body = json.loads(exc.body or "{}")
    assert (exc.status, body["reason"]) == (422, "Invalid"), body
    message: str = body["message"]
    return message


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
async def test_invalid_object_is_rejected_with_the_exact_message(
    api_client: client.ApiClient, namespace: str, case: Invalid
) -> None:
    obj = case.make()
    case.mutate(obj)
    with pytest.raises(ApiException) as rejected:
        await _create(api_client, namespace, obj)
    assert _rejection(rejected.value) == case.message


@pytest.mark.parametrize("make", [_route, _backend, _policy, _pool, _model])
async def test_the_valid_base_objects_are_accepted(
    api_client: client.ApiClient, namespace: str, make: Callable[[], Obj]
) -> None:
    # Each invalid case is one change away from these: proves the rejection comes from that change alone.
    created = await _create(api_client, namespace, make())
    assert created["metadata"]["uid"]


async def test_inference_model_name_is_immutable(api_client: client.ApiClient, namespace: str) -> None:
    api = client.CustomObjectsApi(api_client)
    await _create(api_client, namespace, _model())
    # Other fields may change ...
    patched = await api.patch_namespaced_custom_object(
        *GAIE,
        namespace,
        "inferencemodels",
        "bad",
        {"spec": {"criticality": "Critical"}},
        **MERGE_PATCH,
    )
    assert patched["spec"]["criticality"] == "Critical"
    # ... the model name may not.
    with pytest.raises(ApiException) as rejected:
        await api.patch_namespaced_custom_object(
            *GAIE,
            namespace,
            "inferencemodels",
            "bad",
            {"spec": {"modelName": "other"}},
            **MERGE_PATCH,
        )
    assert (
        _rejection(rejected.value) == MODEL + 'spec.modelName: Invalid value: "other": modelName is immutable'
    )


async def test_server_applies_the_schema_defaults(api_client: client.ApiClient, namespace: str) -> None:
    created = await _create(api_client, namespace, _route())
    assert created["spec"]["rules"][0]["backendRefs"] == [
        {"kind": "AIServiceBackend", "name": "b", "weight": 1}
    ]
    assert created["spec"]["rules"][0]["matches"][0]["headers"][0]["type"] == "Exact"


def _namespaced(doc: Obj, namespace: str) -> Obj:
    """The sample object moved into ``namespace`` (cluster-scoped ones get a per-test name instead)."""
    doc = copy.deepcopy(doc)
    if doc["kind"] == "GatewayClass":
        doc["metadata"]["name"] = f"{doc['metadata']['name']}-{namespace}"
    else:
        doc["metadata"]["namespace"] = namespace
    return doc


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_is_accepted(control_plane: ControlPlane, namespace: str, sample: Path) -> None:
    docs = [d for d in yaml.safe_load_all(sample.read_text()) if d]
    assert docs, f"{sample} holds no objects"
    objs = [_namespaced(d, namespace) for d in docs]
    stream = yaml.safe_dump_all(objs)
    try:
        done = control_plane.kubectl("create", "-f", "-", "-o", "name", input=stream, check=False)
        assert done.returncode == 0, done.stderr
        expected = [
            f"{o['kind'].lower()}.{o['apiVersion'].split('/')[0]}/{o['metadata']['name']}" for o in objs
        ]
        expected = [e.replace(".v1/", "/") for e in expected]  # core kinds print without a group
        assert done.stdout.split() == expected
    finally:
        for o in objs:
            if "namespace" not in o["metadata"]:
                control_plane.kubectl("delete", o["kind"], o["metadata"]["name"], "--ignore-not-found")


def _words(text: str) -> str:
    return " ".join(text.split())


def test_kubectl_explain_shows_our_field_docs(control_plane: ControlPlane) -> None:
    crd = yaml.safe_load((REPO_ROOT / "config/crd/aigateway.envoyproxy.io_aigatewayroutes.yaml").read_text())
    rules = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "rules"
    ]
    backend_refs = rules["items"]["properties"]["backendRefs"]
    out = control_plane.kubectl("explain", "aigatewayroute.spec.rules.backendRefs").stdout
    assert "KIND:       AIGatewayRoute" in out
    assert "FIELD: backendRefs <[]Object>" in out
    text = _words(out)
    assert _words(backend_refs["description"]) in text
    assert _words(backend_refs["items"]["description"]) in text
    for field, schema in backend_refs["items"]["properties"].items():
        assert _words(schema["description"]) in text, field
    assert "name <string> -required-" in text
    assert "enum: AIServiceBackend, InferencePool" in text


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_python_models_reject_what_the_server_rejects(case: Invalid) -> None:
    # The controller and `aigw run` validate with the models in api/: they must refuse the same objects, at
    # the same field, and say the same thing for CEL rules (whose Python mirrors live next to the rule).
    obj = case.make()
    case.mutate(obj)
    obj["metadata"]["namespace"] = "ns"
    with pytest.raises(InvalidObjectError) as rejected:
        parse_object(obj)
    first = rejected.value.errors[0]
    assert first.path == case.field
    if case.cel_message is not None:
        assert first.message == case.cel_message
