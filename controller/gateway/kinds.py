"""The kinds the AI Gateway controller reads and writes, as ``Resource`` descriptors."""

from __future__ import annotations

from typing import Final

from controller.runtime import CONFIGMAPS, DEPLOYMENTS, SECRETS, SERVICES, Resource
from controller.translate.names import (
    AIGW_GROUP,
    AIGW_VERSION,
    EG_GROUP,
    EG_VERSION,
    GATEWAY_GROUP,
    INFERENCE_GROUP,
    INFERENCE_VERSION,
)

AIGATEWAYROUTES: Final = Resource(AIGW_GROUP, AIGW_VERSION, "aigatewayroutes", "AIGatewayRoute")
AISERVICEBACKENDS: Final = Resource(AIGW_GROUP, AIGW_VERSION, "aiservicebackends", "AIServiceBackend")
BACKENDSECURITYPOLICIES: Final = Resource(
    AIGW_GROUP, AIGW_VERSION, "backendsecuritypolicies", "BackendSecurityPolicy"
)
INFERENCEPOOLS: Final = Resource(INFERENCE_GROUP, INFERENCE_VERSION, "inferencepools", "InferencePool")
INFERENCEMODELS: Final = Resource(INFERENCE_GROUP, INFERENCE_VERSION, "inferencemodels", "InferenceModel")
GATEWAYS: Final = Resource(GATEWAY_GROUP, "v1", "gateways", "Gateway")
HTTPROUTES: Final = Resource(GATEWAY_GROUP, "v1", "httproutes", "HTTPRoute")
EG_BACKENDS: Final = Resource(EG_GROUP, EG_VERSION, "backends", "Backend")
ENVOYEXTENSIONPOLICIES: Final = Resource(
    EG_GROUP, EG_VERSION, "envoyextensionpolicies", "EnvoyExtensionPolicy"
)
HTTPROUTEFILTERS: Final = Resource(EG_GROUP, EG_VERSION, "httproutefilters", "HTTPRouteFilter")
REFERENCEGRANTS: Final = Resource(GATEWAY_GROUP, "v1beta1", "referencegrants", "ReferenceGrant")

BY_KIND: Final = {
    r.kind: r
    for r in (
        AIGATEWAYROUTES, AISERVICEBACKENDS, BACKENDSECURITYPOLICIES, INFERENCEPOOLS, INFERENCEMODELS,
        GATEWAYS, HTTPROUTES, EG_BACKENDS, ENVOYEXTENSIONPOLICIES, HTTPROUTEFILTERS, CONFIGMAPS, SECRETS,
        SERVICES, DEPLOYMENTS,
    )
}  # fmt: skip
"""Resource of each kind we write, by ``kind``."""

REQUIRED: Final = (
    AIGATEWAYROUTES, AISERVICEBACKENDS, BACKENDSECURITYPOLICIES, GATEWAYS, HTTPROUTES, EG_BACKENDS,
    ENVOYEXTENSIONPOLICIES, HTTPROUTEFILTERS, REFERENCEGRANTS,
)  # fmt: skip
"""CRD-backed kinds the controller needs in every mode."""

INFERENCE: Final = (INFERENCEPOOLS, INFERENCEMODELS)
"""CRD-backed kinds needed with ``--enable-inference-extension``."""
