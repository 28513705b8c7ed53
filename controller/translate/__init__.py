"""Pure builders ("translate"): one Gateway's snapshot in; filter config, desired objects and conditions out.

No I/O. Used by the controller's per-Gateway reconcile and by the standalone CLI (``aigw run``), which reads
the same objects from files.

The flow goes one way: ``Snapshot`` -> ``resolve`` (``resolve.py``) -> ``Resolution`` -> three independent
emitters: the filter config (``config.py``), the Kubernetes objects (``resources.py``) and the conditions
(``conditions.py``). ``views.py`` holds the few facts derived from the api models that the models do not
state; every default and rule lives in ``api/``.

Inputs
------
``Snapshot`` (``controller.translate.snapshot``): the Gateway key and object, the AIGatewayRoutes that target
it, and what they reference (AIServiceBackends, BackendSecurityPolicies, Services, EG Backends, Secret data,
InferencePools, InferenceModels) as api models, the keys of all existing Gateways, each pool's parent
Gateways, and DNS answers ``{hostname: DnsAnswer(ips, ttl, error)}``. ``BuildOptions`` carries the
command-line settings (cluster domain, inference extension on/off, extensionRef name, ext_proc image / log
level / out-of-cluster address).

Functions
---------
- ``hostnames_to_resolve(snapshot, options) -> list[str]``: what to look up before building (pool members'
  ``<svc>.<ns>.svc.<cluster-domain>`` and EG Backend FQDN endpoints).
- ``build_gateway(snapshot, options) -> GatewayBuild``: everything at once (config, per-Gateway objects,
  HTTPRoutes, host-rewrite filters, statuses, DNS failures, ``requeue_after``, and the backends left out
  because a header can't carry their key, ``InvalidCredential``).
- ``resolve(snapshot, options) -> Resolution``; ``statuses(resolution)``: the conditions of every object
  (reasons listed in ``controller.translate.conditions``).
- ``build_filter_config(resolution, options) -> FilterConfig`` and ``render_filter_config(cfg) -> str``
  (deterministic; ``uuid`` = content hash).
- ``build_http_route``, ``build_host_rewrite_filter``, ``build_extension_policy``,
  ``build_extproc_deployment``, ``build_extproc_service``, ``build_extproc_backend``, ``build_config_map``,
  ``build_auth_secret``.

Names: per Gateway ``<ns>/<gw>`` the ConfigMap (key ``filter-config.yaml``), auth Secret, Deployment,
Service, EnvoyExtensionPolicy (and EG Backend with ``--extproc-address``) are all ``ai-eg-extproc-<gw>`` in
the Gateway's namespace; an HTTPRoute is named like its AIGatewayRoute; the HTTPRouteFilter is
``ai-eg-host-rewrite``.
"""

from api.objects import ObjKey
from controller.translate.attachment import contains, extension_policy_spec
from controller.translate.conditions import ObjectStatus, statuses
from controller.translate.config import build_filter_config, config_hash, render_filter_config
from controller.translate.gateway import GatewayBuild, build_gateway
from controller.translate.names import extproc_name
from controller.translate.resolve import (
    CREDENTIALS_NOT_READY,
    INVALID_CREDENTIAL,
    InvalidCredential,
    Resolution,
    dns_failures,
    hostnames_to_resolve,
    resolve,
)
from controller.translate.resources import (
    build_auth_secret,
    build_config_map,
    build_extension_policy,
    build_extproc_backend,
    build_extproc_deployment,
    build_extproc_service,
    build_host_rewrite_filter,
    build_http_route,
    build_http_routes,
)
from controller.translate.snapshot import (
    DEFAULT_MAX_BODY_BYTES,
    BuildOptions,
    DnsAnswer,
    ExtprocAddress,
    Snapshot,
    clamp_requeue,
)
from controller.translate.views import (
    eg_endpoints,
    gateway_keys,
    refs_of_kind,
    secret_file_key,
    v1_pool_refs,
)

__all__ = [
    "CREDENTIALS_NOT_READY",
    "DEFAULT_MAX_BODY_BYTES",
    "INVALID_CREDENTIAL",
    "BuildOptions",
    "DnsAnswer",
    "ExtprocAddress",
    "GatewayBuild",
    "InvalidCredential",
    "ObjKey",
    "ObjectStatus",
    "Resolution",
    "Snapshot",
    "build_auth_secret",
    "build_config_map",
    "build_extension_policy",
    "build_extproc_backend",
    "build_extproc_deployment",
    "build_extproc_service",
    "build_filter_config",
    "build_gateway",
    "build_host_rewrite_filter",
    "build_http_route",
    "build_http_routes",
    "clamp_requeue",
    "config_hash",
    "contains",
    "dns_failures",
    "eg_endpoints",
    "extension_policy_spec",
    "extproc_name",
    "gateway_keys",
    "hostnames_to_resolve",
    "refs_of_kind",
    "render_filter_config",
    "resolve",
    "secret_file_key",
    "statuses",
    "v1_pool_refs",
]
