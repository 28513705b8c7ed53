"""Object names, labels and paths shared by the builders and the reconcile (API groups live in ``api/``).

Everything the controller creates for a Gateway ``<ns>/<gw>`` lives in the Gateway's namespace and is named
``ai-eg-extproc-<gw>`` (ConfigMap, Secret, Deployment, Service, EnvoyExtensionPolicy, or the Envoy Gateway
``Backend`` when the ext_proc runs outside the cluster). Each carries the labels in ``gateway_labels`` so that
the reconcile can list, and prune, exactly the objects of one Gateway. An HTTPRoute is named like its
AIGatewayRoute, in the route's namespace, and labelled ``MANAGED_BY``; the host-rewrite HTTPRouteFilter is
shared by every route of a namespace.
"""

from __future__ import annotations

import hashlib
from typing import Final

from api.objects import ObjKey

MANAGED_BY_KEY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "envoy-ai-gateway"
GATEWAY_NAME_LABEL: Final = "aigateway.envoyproxy.io/gateway-name"
APP_NAME_LABEL: Final = "app.kubernetes.io/name"
APP_INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
EXTPROC_APP: Final = "ai-eg-extproc"
DESIRED_HASH_ANNOTATION: Final = "aigateway.envoyproxy.io/desired-hash"
"""Hash of what the controller last applied; a live copy with the same hash is not rewritten."""

HOST_REWRITE_FILTER: Final = "ai-eg-host-rewrite"
EXTPROC_PREFIX: Final = "ai-eg-extproc-"
FIELD_MANAGER: Final = "envoy-ai-gateway"

EXTPROC_ERROR_STATUS: Final = 507
"""The status Envoy gives a request when the ext_proc fails (down, refused, timed out): the
EnvoyExtensionPolicy's ``statusOnError``. A code nothing else on this path produces (not Envoy, not our
ext_proc; upstream answers are excluded by ``source: Local``), so the BackendTrafficPolicy's
``responseOverride`` can turn exactly these into 503 with an OpenAI error body."""

EXTPROC_GRPC_PORT: Final = 1063
EXTPROC_METRICS_PORT: Final = 9190
EXTPROC_CONFIG_DIR: Final = "/etc/ai-gateway/extproc"
EXTPROC_AUTH_DIR: Final = "/etc/ai-gateway/auth"
EXTPROC_TLS_DIR: Final = "/etc/ai-gateway/tls"
"""Where the ext_proc's server certificate, key and client CA are mounted (``--extproc-mtls``)."""

_MAX_LABEL = 63


def extproc_name(gateway: str) -> str:
    """``ai-eg-extproc-<gw>``, shortened with a hash suffix when it would exceed a DNS label (63 chars)."""
    name = EXTPROC_PREFIX + gateway
    if len(name) <= _MAX_LABEL:
        return name
    digest = hashlib.sha256(gateway.encode()).hexdigest()[:8]
    return f"{name[: _MAX_LABEL - 9].rstrip('-.')}-{digest}"


def label_value(value: str) -> str:
    """``value`` if it fits a label value (63 chars), else a shortened form with a hash suffix."""
    if len(value) <= _MAX_LABEL:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: _MAX_LABEL - 9].rstrip('-._')}-{digest}"


def gateway_labels(gateway: ObjKey) -> dict[str, str]:
    """Labels on every per-Gateway object; the reconcile lists and prunes by them."""
    return {MANAGED_BY_KEY: MANAGED_BY, GATEWAY_NAME_LABEL: label_value(gateway.name)}


def extproc_selector(gateway: ObjKey) -> dict[str, str]:
    """Pod labels of one Gateway's ext_proc (and the Service selector)."""
    return {APP_NAME_LABEL: EXTPROC_APP, APP_INSTANCE_LABEL: label_value(gateway.name)}


def service_hostname(*, name: str, namespace: str, cluster_domain: str) -> str:
    """The DNS name of a Service: ``<svc>.<ns>.svc.<cluster-domain>``."""
    return f"{name}.{namespace}.svc.{cluster_domain.strip('.')}"


def http_route_name(route_name: str, index: int) -> str:
    """Name of the ``index``-th (from 0) HTTPRoute built from AIGatewayRoute ``route_name``: ``<route>``, then
    ``<route>-2``, ``<route>-3``, ..."""
    return route_name if index == 0 else f"{route_name}-{index + 1}"


def route_names_for_http_route(name: str) -> tuple[str, ...]:
    """The AIGatewayRoute names whose HTTPRoutes may be named ``name`` (inverse of ``http_route_name``)."""
    base, sep, suffix = name.rpartition("-")
    if sep and base and suffix.isdigit() and suffix[0] != "0" and int(suffix) >= 2:
        return (name, base)
    return (name,)


def extproc_tls_secret(gateway: str) -> str:
    """The Secret of a Gateway's ext_proc TLS material: the CA and the server pair (mounted, but for the CA
    key)."""
    return f"{extproc_name(gateway)}-tls"


def extproc_client_secret(gateway: str) -> str:
    """The ``kubernetes.io/tls`` Secret of Envoy's client pair and the CA, read by Envoy Gateway."""
    return f"{extproc_name(gateway)}-client"


ROTATED_SECRET_PREFIX: Final = "ai-eg-bsp-"
AWS_CREDENTIALS_KEY: Final = "credentials"
"""The key of an AWS credentials file (INI) in a Secret: a user's, or the one the rotation writes."""
AZURE_ACCESS_TOKEN_KEY: Final = "azureAccessToken"
"""The key of the Azure access token in the Secret the rotation writes."""
CLIENT_SECRET_KEY: Final = "client-secret"
"""The key of an OIDC or Azure client secret in the user's Secret."""


def rotated_secret(policy: str) -> str:
    """``ai-eg-bsp-<policy>``: the Secret, in the policy's namespace, where the credential rotation writes the
    temporary credentials of BackendSecurityPolicy ``policy`` (upstream's name); shortened with a hash suffix
    beyond 253 characters (a Secret name's limit)."""
    name = ROTATED_SECRET_PREFIX + policy
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(policy.encode()).hexdigest()[:8]
    return f"{name[:244].rstrip('-.')}-{digest}"


def v1_pool_config_name(pool: ObjKey) -> str:
    """The filter config's name of a v1 InferencePool (and of its one member): ``<pool>.<namespace>@v1``. The
    ``@`` is in no Kubernetes name, so it never equals a v1alpha2 pool's or a backend's ``<name>.<namespace>``
    (a v1 and a v1alpha2 pool of one name may coexist)."""
    return f"{pool.dotted}@v1"
