"""Facts the builders derive from the api models that the models do not state as fields.

The models carry every default and rule (``api/``: a referent's namespace, the age order, a pool's selector,
which group and kind a reference names); nothing here restates one. What is left: keys, the objects a route
references, which Secrets a policy reads, the endpoints of an Envoy Gateway Backend, and the few reads of
JSON documents of the kinds we do not model (``mapping``, ``key_of``, the ports of a Service).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.corev1 import SERVICE
from api.envoygateway import Backend
from api.gatewayapi import GATEWAY, BackendObjectReference, referent_key
from api.inference import InferenceModel
from api.inference_v1 import InferenceObjective
from api.inference_v1 import InferencePool as V1InferencePool
from api.objects import Obj, ObjKey, TopLevelObject
from api.shared import BackendKind
from api.v1alpha1 import AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy, BackendSecurityPolicyType
from controller.translate.names import (
    AWS_CREDENTIALS_KEY,
    AZURE_ACCESS_TOKEN_KEY,
    CLIENT_SECRET_KEY,
    rotated_secret,
)


def mapping(value: Any) -> Mapping[str, Any]:
    """A field of a JSON object that should be an object itself; ``{}`` when it is absent or anything else
    (the kinds the builders do not model are read defensively)."""
    return value if isinstance(value, Mapping) else {}


def key_of(obj: Obj) -> ObjKey:
    """The key of a cached JSON object (of a kind the builders do not model)."""
    md = obj.get("metadata") or {}
    return ObjKey(str(md.get("namespace") or ""), str(md.get("name", "")))


def generation(obj: TopLevelObject) -> int:
    return obj.metadata.generation or 0


def gateway_keys(route: AIGatewayRoute) -> tuple[ObjKey, ...]:
    """The Gateways the route targets (in its namespace), in order, without duplicates."""
    keys = (
        ObjKey(route.metadata.namespace, t.name)
        for t in route.spec.target_refs
        if GATEWAY.matches(t.group, t.kind)
    )
    return tuple(dict.fromkeys(keys))


def refs_of_kind(route: AIGatewayRoute, kind: BackendKind) -> tuple[ObjKey, ...]:
    """Distinct objects of ``kind`` the route references across all rules, in first-use order: backendRefs
    and their fallbacks alike (a fallback is read, watched, resolved and routed to like any backend)."""
    ns = route.metadata.namespace
    keys: dict[ObjKey, None] = {}
    for rule in route.spec.rules:
        for r in rule.backend_refs:
            if r.kind == kind and not r.is_v1_pool:
                keys[ObjKey(ns, r.name)] = None
            if r.fallback is not None and r.fallback.kind == kind:
                keys[ObjKey(ns, r.fallback.name)] = None
    return tuple(keys)


def v1_pool_refs(route: AIGatewayRoute) -> tuple[ObjKey, ...]:
    """Distinct v1 InferencePools (``inference.networking.k8s.io``) the route references, in first-use order
    (``refs_of_kind`` leaves them out: they are another kind of object than the v1alpha2 pools)."""
    ns = route.metadata.namespace
    refs = (ObjKey(ns, r.name) for rule in route.spec.rules for r in rule.backend_refs if r.is_v1_pool)
    return tuple(dict.fromkeys(refs))


def fallback_only_refs(route: AIGatewayRoute, kind: BackendKind) -> frozenset[ObjKey]:
    """The objects of ``kind`` the route references only as a fallback (for the conditions' wording)."""
    ns = route.metadata.namespace
    refs = [r for rule in route.spec.rules for r in rule.backend_refs]
    direct = {ObjKey(ns, r.name) for r in refs if r.kind == kind and not r.is_v1_pool}
    fallbacks = {
        ObjKey(ns, r.fallback.name) for r in refs if r.fallback is not None and r.fallback.kind == kind
    }
    return frozenset(fallbacks - direct)


def is_service(ref: BackendObjectReference) -> bool:
    return SERVICE.matches(ref.group, ref.kind)


def is_eg_backend(ref: BackendObjectReference) -> bool:
    return Backend.KIND_INFO.matches(ref.group, ref.kind)


def policy_key(backend: AIServiceBackend) -> ObjKey | None:
    """The BackendSecurityPolicy the backend names (whatever its kind; the resolver checks that)."""
    ref = backend.spec.backend_security_policy_ref
    return ObjKey(backend.metadata.namespace, ref.name) if ref is not None else None


@dataclass(frozen=True, slots=True)
class SecretUse:
    """A Secret key a policy needs."""

    secret: ObjKey
    key: str


def secret_file_key(use: SecretUse) -> str:
    """The key of a credential inside the per-Gateway auth Secret, and its file name in the ext_proc: the
    filter config (``config``) names the file, the auth Secret (``resources``) holds it."""
    return f"{use.secret.namespace}.{use.secret.name}.{use.key}"


def needs_rotation(policy: BackendSecurityPolicy) -> bool:
    """Whether the policy's credentials are temporary ones the controller issues and renews: an AWS OIDC token
    exchange, or Azure client credentials."""
    spec = policy.spec
    aws = spec.aws_credentials
    if spec.type == BackendSecurityPolicyType.AWS_CREDENTIALS and aws is not None:
        return aws.oidc_exchange_token is not None
    return spec.type == BackendSecurityPolicyType.AZURE_CREDENTIALS and spec.azure_credentials is not None


def sends_as_header(policy: BackendSecurityPolicy) -> bool:
    """Whether the ext_proc sends the policy's credential as a request header (an API key, an Azure access
    token) rather than parsing it (an AWS credentials file, for SigV4)."""
    header_types = (BackendSecurityPolicyType.API_KEY, BackendSecurityPolicyType.AZURE_CREDENTIALS)
    return policy.spec.type in header_types


def credential_use(policy: BackendSecurityPolicy) -> SecretUse | None:
    """The Secret key the ext_proc reads the policy's credentials from: the user's API key or credentials
    file, or for a rotated method the temporary credentials the controller writes
    (``names.rotated_secret``)."""
    spec = policy.spec
    if spec.type == BackendSecurityPolicyType.API_KEY and spec.api_key is not None:
        return SecretUse(referent_key(spec.api_key.secret_ref, policy), "apiKey")
    aws = spec.aws_credentials
    if spec.type == BackendSecurityPolicyType.AWS_CREDENTIALS and aws is not None:
        if aws.credentials_file is not None:
            return SecretUse(referent_key(aws.credentials_file.secret_ref, policy), AWS_CREDENTIALS_KEY)
        if aws.oidc_exchange_token is not None:
            return SecretUse(rotated_secret_key(policy), AWS_CREDENTIALS_KEY)
    if spec.type == BackendSecurityPolicyType.AZURE_CREDENTIALS and spec.azure_credentials is not None:
        return SecretUse(rotated_secret_key(policy), AZURE_ACCESS_TOKEN_KEY)
    return None


def rotated_secret_key(policy: BackendSecurityPolicy) -> ObjKey:
    """Where the rotation writes the policy's temporary credentials (its own namespace)."""
    return ObjKey(policy.metadata.namespace, rotated_secret(policy.metadata.name))


def source_uses(policy: BackendSecurityPolicy) -> tuple[SecretUse, ...]:
    """The Secret keys the rotation reads to issue the policy's temporary credentials (the client secret);
    none for the methods the ext_proc reads directly."""
    spec = policy.spec
    aws = spec.aws_credentials
    if spec.type == BackendSecurityPolicyType.AWS_CREDENTIALS and aws is not None and aws.oidc_exchange_token:
        secret = referent_key(aws.oidc_exchange_token.oidc.client_secret, policy)
        return (SecretUse(secret, CLIENT_SECRET_KEY),)
    azure = spec.azure_credentials
    if spec.type == BackendSecurityPolicyType.AZURE_CREDENTIALS and azure is not None:
        return (SecretUse(referent_key(azure.client_secret_ref, policy), CLIENT_SECRET_KEY),)
    return ()


def secret_uses(policy: BackendSecurityPolicy) -> tuple[SecretUse, ...]:
    """Every Secret key the policy depends on: where its credentials are read from (``credential_use``),
    then what the rotation reads to issue them (``source_uses``)."""
    use = credential_use(policy)
    return ((use,) if use is not None else ()) + source_uses(policy)


def pool_key(model: InferenceModel) -> ObjKey:
    return ObjKey(model.metadata.namespace, model.spec.pool_ref.name)


def objective_pool_key(objective: InferenceObjective) -> ObjKey | None:
    """The v1 InferencePool an InferenceObjective applies to (same namespace); None when its poolRef names
    another kind."""
    ref = objective.spec.pool_ref
    if not V1InferencePool.KIND_INFO.matches(ref.group, ref.kind):
        return None
    return ObjKey(objective.metadata.namespace, ref.name)


def service_ports(obj: Obj) -> tuple[int, ...]:
    return tuple(int(p.get("port", 0)) for p in (obj.get("spec") or {}).get("ports") or [])


@dataclass(frozen=True, slots=True)
class EgEndpoint:
    kind: str
    """``ip``, ``fqdn`` or ``unix``."""
    address: str
    port: int | None


def eg_endpoints(backend: Backend) -> tuple[EgEndpoint, ...]:
    """The Backend's endpoints, flattened."""
    out: list[EgEndpoint] = []
    for ep in backend.spec.endpoints:
        if ep.ip is not None:
            out.append(EgEndpoint("ip", ep.ip.address, ep.ip.port))
        elif ep.fqdn is not None:
            out.append(EgEndpoint("fqdn", ep.fqdn.hostname, ep.fqdn.port))
        elif ep.unix is not None:
            out.append(EgEndpoint("unix", ep.unix.path, None))
    return tuple(out)
