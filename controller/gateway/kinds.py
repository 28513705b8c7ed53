"""The kinds the AI Gateway controller reads and writes, as ``Resource`` descriptors (names from ``api/``)."""

from __future__ import annotations

from typing import Final

from api.corev1 import CONFIG_MAP, DEPLOYMENT, POD, SECRET, SERVICE
from api.envoygateway import (
    BACKEND_TRAFFIC_POLICY,
    CLIENT_TRAFFIC_POLICY,
    ENVOY_EXTENSION_POLICY,
    HTTP_ROUTE_FILTER,
    Backend,
)
from api.gatewayapi import GATEWAY, HTTP_ROUTE, REFERENCE_GRANT
from api.inference import InferenceModel, InferencePool
from api.inference_v1 import QUALIFIED_KIND, InferenceObjective
from api.inference_v1 import InferencePool as V1InferencePool
from api.objects import KindInfo
from api.v1alpha1 import AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy
from controller.runtime import Resource


def resource(kind: KindInfo) -> Resource:
    """The runtime's descriptor of a namespaced kind."""
    return Resource(kind.group, kind.version, kind.plural, kind.kind)


CONFIGMAPS: Final = resource(CONFIG_MAP)
SECRETS: Final = resource(SECRET)
SERVICES: Final = resource(SERVICE)
DEPLOYMENTS: Final = resource(DEPLOYMENT)

AIGATEWAYROUTES: Final = resource(AIGatewayRoute.KIND_INFO)
AISERVICEBACKENDS: Final = resource(AIServiceBackend.KIND_INFO)
BACKENDSECURITYPOLICIES: Final = resource(BackendSecurityPolicy.KIND_INFO)
INFERENCEPOOLS: Final = resource(InferencePool.KIND_INFO)
INFERENCEMODELS: Final = resource(InferenceModel.KIND_INFO)
V1_INFERENCEPOOLS: Final = resource(V1InferencePool.KIND_INFO)
PODS: Final = resource(POD)
INFERENCEOBJECTIVES: Final = resource(InferenceObjective.KIND_INFO)
GATEWAYS: Final = resource(GATEWAY)
HTTPROUTES: Final = resource(HTTP_ROUTE)
EG_BACKENDS: Final = resource(Backend.KIND_INFO)
ENVOYEXTENSIONPOLICIES: Final = resource(ENVOY_EXTENSION_POLICY)
HTTPROUTEFILTERS: Final = resource(HTTP_ROUTE_FILTER)
REFERENCEGRANTS: Final = resource(REFERENCE_GRANT)
CLIENTTRAFFICPOLICIES: Final = resource(CLIENT_TRAFFIC_POLICY)
BACKENDTRAFFICPOLICIES: Final = resource(BACKEND_TRAFFIC_POLICY)

BY_KIND: Final = {
    r.kind: r
    for r in (
        AIGATEWAYROUTES, AISERVICEBACKENDS, BACKENDSECURITYPOLICIES, INFERENCEPOOLS, INFERENCEMODELS,
        GATEWAYS, HTTPROUTES, EG_BACKENDS, ENVOYEXTENSIONPOLICIES, HTTPROUTEFILTERS, CONFIGMAPS, SECRETS,
        SERVICES, DEPLOYMENTS, CLIENTTRAFFICPOLICIES, BACKENDTRAFFICPOLICIES,
    )
} | {QUALIFIED_KIND: V1_INFERENCEPOOLS}  # fmt: skip
"""Resource of each kind we write, by ``kind`` (the v1 pool's status by ``QUALIFIED_KIND``: "InferencePool"
is the v1alpha2 one)."""

REQUIRED: Final = (
    AIGATEWAYROUTES, AISERVICEBACKENDS, BACKENDSECURITYPOLICIES, GATEWAYS, HTTPROUTES, EG_BACKENDS,
    ENVOYEXTENSIONPOLICIES, HTTPROUTEFILTERS, REFERENCEGRANTS, CLIENTTRAFFICPOLICIES, BACKENDTRAFFICPOLICIES,
)  # fmt: skip
"""CRD-backed kinds the controller needs in every mode."""

INFERENCE: Final = (INFERENCEPOOLS, INFERENCEMODELS)
"""CRD-backed kinds needed with ``--enable-inference-extension``."""

INFERENCE_V1: Final = (V1_INFERENCEPOOLS,)
"""The Inference Extension's own CRD: v1 pools are served when it is installed (checked at start)."""

INFERENCE_OBJECTIVE: Final = (INFERENCEOBJECTIVES,)
"""The Inference Extension's InferenceObjective (``inference.networking.x-k8s.io/v1alpha2``, gone from its
v1.6): v1 pools' request priorities are read when it is installed too (checked at start)."""
