"""The Inference Extension's own v1 InferencePool and v1alpha2 InferenceObjective CRDs (v1.5.0, installed by
``hack/setup-envtest.sh``) on the real API server: valid objects are accepted and our models read them back;
invalid ones get the server's messages."""

from __future__ import annotations

import copy

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from api.inference_v1 import ExtensionFailureMode, InferenceObjective, InferencePool
from api.objects import Obj
from api.v1alpha1 import AIGatewayRoute
from tests.integration.test_crd_validation import NOT_ALL_CHECKED, Invalid, _rejection, _route, _set


def _pool() -> Obj:
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": "pool"},
        "spec": {
            "selector": {"matchLabels": {"app": "vllm"}},
            "targetPorts": [{"number": 8000}],
            "endpointPickerRef": {"name": "envoy-ai-gateway", "port": {"number": 9002}},
        },
    }


def _objective() -> Obj:
    return {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferenceObjective",
        "metadata": {"name": "sheddable"},
        "spec": {"priority": -1, "poolRef": {"name": "pool"}},
    }


async def _create(api: client.ApiClient, namespace: str, obj: Obj) -> Obj:
    group, version = obj["apiVersion"].split("/")
    plural = {"InferencePool": "inferencepools", "InferenceObjective": "inferenceobjectives"}.get(
        obj["kind"], "aigatewayroutes"
    )
    result: Obj = await client.CustomObjectsApi(api).create_namespaced_custom_object(
        group, version, namespace, plural, obj
    )
    return result


async def test_pool_is_accepted_with_defaults_and_read_by_our_model(
    api_client: client.ApiClient, namespace: str
) -> None:
    created = await _create(api_client, namespace, _pool())
    ref = created["spec"]["endpointPickerRef"]
    assert (ref["kind"], ref["failureMode"], created["spec"]["appProtocol"]) == (
        "Service",
        "FailClose",
        "http",
    )
    pool = InferencePool.read(created)
    assert pool.spec.uses_builtin_picker and [p.number for p in pool.spec.target_ports] == [8000]
    assert pool.spec.endpoint_picker_ref is not None
    assert pool.spec.endpoint_picker_ref.failure_mode is ExtensionFailureMode.FAIL_CLOSE


async def test_objective_is_accepted_and_read_by_our_model(
    api_client: client.ApiClient, namespace: str
) -> None:
    created = await _create(api_client, namespace, _objective())
    objective = InferenceObjective.read(created)
    assert objective.spec.priority == -1
    assert (objective.spec.pool_ref.group, objective.spec.pool_ref.name) == (
        "inference.networking.k8s.io",
        "pool",
    )


POOL = 'InferencePool.inference.networking.k8s.io "pool" is invalid: '
OBJECTIVE = 'InferenceObjective.inference.networking.x-k8s.io "sheddable" is invalid: '
INVALID = [
    Invalid(
        "pool-no-target-ports",
        _pool,
        _set("spec.targetPorts", None),
        POOL + f"[spec.targetPorts: Required value, {NOT_ALL_CHECKED}]",
    ),
    Invalid(
        "pool-duplicate-ports",
        _pool,
        _set("spec.targetPorts", [{"number": 8000}, {"number": 8000}]),
        POOL + "spec.targetPorts: Invalid value: port number must be unique",
    ),
    Invalid(
        "pool-epp-without-port",
        _pool,
        _set("spec.endpointPickerRef.port", None),
        POOL
        + "spec.endpointPickerRef: Invalid value: port is required when kind is 'Service' or unspecified "
        "(defaults to 'Service')",
    ),
    Invalid(
        "pool-failure-mode",
        _pool,
        _set("spec.endpointPickerRef.failureMode", "Sometimes"),
        POOL + '[spec.endpointPickerRef.failureMode: Unsupported value: "Sometimes": supported values: '
        f'"FailOpen", "FailClose", {NOT_ALL_CHECKED}]',
    ),
    Invalid(
        "pool-port-zero",
        _pool,
        _set("spec.targetPorts", [{"number": 0}]),
        POOL + "spec.targetPorts[0].number: Invalid value: 0: spec.targetPorts[0].number in body should be "
        "greater than or equal to 1",
    ),
    Invalid(
        "objective-no-pool",
        _objective,
        _set("spec.poolRef", None),
        OBJECTIVE + "spec.poolRef: Required value",
    ),
]


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
async def test_invalid_object_is_rejected_with_the_servers_message(
    api_client: client.ApiClient, namespace: str, case: Invalid
) -> None:
    obj = copy.deepcopy(case.make())
    case.mutate(obj)
    with pytest.raises(ApiException) as rejected:
        await _create(api_client, namespace, obj)
    assert _rejection(rejected.value) == case.message


async def test_a_route_may_name_a_v1_pool_alone(api_client: client.ApiClient, namespace: str) -> None:
    ref = {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "pool"}
    route = _route()
    route["spec"]["rules"][0]["backendRefs"] = [ref]
    created = await _create(api_client, namespace, route)
    assert created["spec"]["rules"][0]["backendRefs"] == [ref | {"weight": 1}]
    assert AIGatewayRoute.read(created).spec.rules[0].backend_refs[0].is_v1_pool
