"""Header names, metadata namespaces and special names shared by the controller, the extension server and the
ext_proc. One place, so that the routes the controller writes and the headers the ext_proc sets always
agree."""

from typing import Final

MODEL_NAME_HEADER: Final = "x-ai-eg-model"
"""Set by the ext_proc from the body's ``model``; usable in AIGatewayRoute header matches."""

SELECTED_BACKEND_HEADER: Final = "x-ai-eg-selected-backend"
"""Set by the ext_proc to ``<backend>.<namespace>`` or ORIGINAL_DST_CLUSTER; HTTPRoute rules match on it."""

ORIGINAL_DST_HEADER: Final = "x-ai-eg-original-dst"
"""``ip:port`` of the endpoint the ext_proc picked; read by the ORIGINAL_DST cluster."""

GATEWAY_DESTINATION_ENDPOINT_HEADER: Final = "x-gateway-destination-endpoint"
"""The Inference Extension's endpoint-picker header. Never honoured from clients: always stripped."""

ORIGINAL_DST_CLUSTER: Final = "original_destination_cluster"
"""Name of the Envoy ORIGINAL_DST cluster the extension server adds."""

METADATA_NAMESPACE: Final = "io.envoy.ai_gateway"
"""Dynamic metadata namespace the ext_proc writes token costs into."""

CLIENT_ROUTING_HEADERS: Final = (
    SELECTED_BACKEND_HEADER,
    ORIGINAL_DST_HEADER,
    GATEWAY_DESTINATION_ENDPOINT_HEADER,
)
"""Headers a client must never be able to set: the ext_proc removes or overwrites every one of them."""

DEFAULT_EXTENSION_REF_NAME: Final = "envoy-ai-gateway"
"""``InferencePool.spec.extensionRef.name`` that selects our built-in endpoint picker."""
