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

OBJECTIVE_HEADER: Final = "x-gateway-inference-objective"
"""The Inference Extension's header naming a request's InferenceObjective (a v1 pool's priority)."""

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

CREDENTIAL_METADATA_NAMESPACE: Final = "io.envoy.ai_gateway.credentials"
"""Dynamic metadata namespace the ext_proc puts a backend's credential headers into, never into the request's
headers: only the routes our controller generated copy them into headers, at Envoy's router, so a route that
someone else attached to the Gateway and that outranks ours never receives them. Separate from
METADATA_NAMESPACE so that an access log of the costs can never print a credential."""

CREDENTIAL_HEADERS: Final = ("authorization", "api-key", "x-amz-security-token")
"""The request headers that carry a backend's credential (a bearer token, Azure's ``api-key``, SigV4's
signature and session token). Each travels as metadata key ``<header name>`` in
CREDENTIAL_METADATA_NAMESPACE."""


def credential_header_value(name: str) -> str:
    """The Envoy header value (a command operator) that copies credential header ``name`` from the metadata;
    Envoy adds nothing when the key is absent."""
    return f"%DYNAMIC_METADATA({CREDENTIAL_METADATA_NAMESPACE}:{name})%"


def header_credential(raw: bytes) -> str:
    """The credential a file (or Secret value) ``raw`` holds, as it goes into a header: UTF-8, surrounding
    whitespace stripped, not empty, and only visible ASCII, space and tab (RFC 9110 field-value without
    obs-text: a newline or control character would be refused by Envoy or split the header). Raises
    ValueError saying what is wrong, never quoting the secret. The one rule the ext_proc applies when it
    loads a key and the controller's resolver applies to a policy's key before handing it over (the policy's
    ``InvalidCredential``; ``aigw run`` refuses the change instead)."""
    try:
        secret = raw.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise ValueError(f"is not UTF-8 (byte {e.start})") from None
    if not secret:
        raise ValueError("is empty")
    if not all(c == "\t" or " " <= c <= "~" for c in secret):
        raise ValueError("holds characters not allowed in an HTTP header")
    return secret
