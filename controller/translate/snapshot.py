"""The frozen input of one Gateway's build: every object its reconcile reads, plus DNS answers and options.

Objects of the kinds ``api/`` models are their api models, parsed once where they enter (the controller's
cache reads each version of an object once, ``TopLevelObject.read``; ``aigw run`` keeps the models it
validated from its files). The kinds the builders barely read (the Gateway, Services, ReferenceGrants, our
own EnvoyExtensionPolicies) are the JSON documents (``Obj``). A snapshot holds references, not copies:
callers must not mutate anything while a build runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from api.envoygateway import Backend
from api.headers import DEFAULT_EXTENSION_REF_NAME
from api.inference import InferenceModel, InferencePool
from api.inference_v1 import InferenceObjective
from api.inference_v1 import InferencePool as V1InferencePool
from api.objects import Obj, ObjKey
from api.v1alpha1 import AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy
from controller.translate.names import EXTPROC_AUTH_DIR, EXTPROC_CONFIG_DIR

MIN_REQUEUE_SECONDS = 5.0
MAX_REQUEUE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """What the resolver knows about one hostname.

    ``ips`` are the last known addresses (A and AAAA), kept when a later lookup fails; ``ttl`` is the seconds
    until they should be looked up again; ``error`` is the text of the last failure, ``None`` when the last
    lookup succeeded.
    """

    ips: tuple[str, ...] = ()
    ttl: float = MAX_REQUEUE_SECONDS
    error: str | None = None


DEFAULT_MAX_BODY_BYTES = 50 * 1024 * 1024
"""50 MiB: room for long prompts (a 128k-token context is ~0.5 MB of text; images as data URLs are more)."""


@dataclass(frozen=True, slots=True)
class ExtprocAddress:
    """An ext_proc reachable outside the cluster (``--extproc-address host:port``)."""

    host: str
    port: int

    @classmethod
    def parse(cls, value: str) -> ExtprocAddress:
        """Parse ``host:port`` or ``[v6]:port``."""
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {value!r}")
        return cls(host=host.strip("[]"), port=int(port))


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """Controller-wide settings that shape the desired objects (from the command line)."""

    cluster_domain: str = "cluster.local"
    enable_inference_extension: bool = False
    extension_ref_name: str = DEFAULT_EXTENSION_REF_NAME
    extproc_image: str = "ghcr.io/ai-gateway-py/extproc:latest"
    extproc_log_level: str = "info"
    extproc_address: ExtprocAddress | None = None
    """When set, the EnvoyExtensionPolicy points at an EG ``Backend`` with this endpoint, and no ext_proc
    Deployment or Service is created."""
    extproc_mtls: bool = False
    """Mutual TLS between Envoy and the in-cluster ext_proc (``--extproc-mtls``): the ext_proc mounts a server
    certificate and accepts only clients of the Gateway's CA; the EnvoyExtensionPolicy reaches it through an
    EG ``Backend`` that presents the client certificate (material: ``Snapshot.extproc_tls``)."""
    config_dir: str = EXTPROC_CONFIG_DIR
    """Where the ext_proc finds ``filter-config.yaml`` (the ConfigMap's mount path in the pod)."""
    auth_dir: str = EXTPROC_AUTH_DIR
    """Where credential files are mounted in the ext_proc (the auth Secret's mount path)."""
    pool_request_timeout: str = "60s"
    """Route timeout for InferencePool rules when no member backend sets ``timeouts.request``."""
    message_timeout: str = "10s"
    """ext_proc ``messageTimeout``: the whole request body is buffered and parsed within it."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Largest request or non-streamed response body a Gateway buffers (Envoy Gateway's connection
    ``bufferLimit``, 32 KiB by default); a request over it gets 413."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the reconcile of Gateway ``gateway`` reads, taken from the cache at one instant.

    - ``gateway_object``: the Gateway itself (``None`` when it does not exist: nothing is built for it, and
      the owned objects are pruned).
    - ``routes``: the AIGatewayRoutes whose ``targetRefs`` name the Gateway.
    - ``backends``: AIServiceBackends referenced by those routes, plus every AIServiceBackend in the
      namespace of a referenced InferencePool (the pool's selector is evaluated by the builder).
    - ``security_policies``, ``services``, ``eg_backends``: referenced by those backends.
    - ``secrets``: referenced Secrets, ``data`` only (base64 strings; never logged).
    - ``pools``: referenced InferencePools; ``models``: every InferenceModel whose ``poolRef`` names one of
      them.
    - ``v1_pools``: referenced v1 InferencePools (``inference.networking.k8s.io``); ``pods``: the Pods of
      their namespaces that carry their selectors' labels (readiness is judged by the builder);
      ``objectives``: the InferenceObjectives whose ``poolRef`` names one of them.
    - ``gateways``: the keys of all Gateways that exist (to tell a route whether its other parents exist).
    - ``pool_parents``: for each pool, every Gateway that reaches it through some route (for
      ``status.parent``); ``v1_pool_parents`` likewise for the v1 pools (``status.parents``).
    - ``dns``: answers for the hostnames in ``hostnames_to_resolve(snapshot)``.
    - ``grants``: the ReferenceGrants of every namespace the objects above refer into from another one.
    - ``extension_policies``: for each Gateway the routes target, its EnvoyExtensionPolicy as stored (with
      Envoy Gateway's ``status.ancestors``), when it exists; ``refused_policies``: for each Gateway whose
      policy the API server refused at the last attempt, the API server's message. A route's HTTPRoutes
      attach only to Gateways whose policy is in place (``controller.translate.attachment``).
    """

    gateway: ObjKey
    gateway_object: Obj | None = None
    routes: tuple[AIGatewayRoute, ...] = ()
    backends: Mapping[ObjKey, AIServiceBackend] = field(default_factory=dict)
    security_policies: Mapping[ObjKey, BackendSecurityPolicy] = field(default_factory=dict)
    services: Mapping[ObjKey, Obj] = field(default_factory=dict)
    eg_backends: Mapping[ObjKey, Backend] = field(default_factory=dict)
    secrets: Mapping[ObjKey, Mapping[str, str]] = field(default_factory=dict)
    pools: Mapping[ObjKey, InferencePool] = field(default_factory=dict)
    models: tuple[InferenceModel, ...] = ()
    v1_pools: Mapping[ObjKey, V1InferencePool] = field(default_factory=dict)
    pods: tuple[Obj, ...] = ()
    gateways: frozenset[ObjKey] = frozenset()
    pool_parents: Mapping[ObjKey, tuple[ObjKey, ...]] = field(default_factory=dict)
    v1_pool_parents: Mapping[ObjKey, tuple[ObjKey, ...]] = field(default_factory=dict)
    objectives: tuple[InferenceObjective, ...] = ()
    dns: Mapping[str, DnsAnswer] = field(default_factory=dict)
    grants: tuple[Obj, ...] = ()
    extension_policies: Mapping[ObjKey, Obj] = field(default_factory=dict)
    refused_policies: Mapping[ObjKey, str] = field(default_factory=dict)
    extproc_tls: Mapping[str, str] = field(default_factory=dict)
    """With ``BuildOptions.extproc_mtls``: the Gateway's TLS material (PEM text; keys ``ca.crt``, ``ca.key``,
    ``tls.crt``, ``tls.key``, ``client.crt``, ``client.key``), kept and renewed by the reconcile."""


def clamp_requeue(seconds: float) -> float:
    """The requeue delay for a TTL: clamped to [5 s, 300 s]."""
    return min(MAX_REQUEUE_SECONDS, max(MIN_REQUEUE_SECONDS, seconds))
