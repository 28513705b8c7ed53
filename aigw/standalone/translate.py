"""From the in-memory store to what ``aigw run`` writes: the controller's builders plus a small Envoy Gateway.

The controller's own ``build_gateway`` turns a ``Snapshot`` into the filter config, one HTTPRoute per
AIGatewayRoute, the per-Gateway auth Secret and every object's conditions. In a cluster Envoy Gateway then
translates the HTTPRoutes into Envoy routes and clusters; here ``translate`` does that part itself, for the
only shapes the builders emit: a rule matching the selected-backend header and forwarding to a ``Backend`` (or
a Service), the InferencePool rule without backendRefs, and the catch-all.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aigw.standalone.envoyconfig import (
    BUFFER_LIMIT_BYTES,
    Address,
    BackendCluster,
    ExtProcSettings,
    HeaderRoute,
    LocalReplyOverride,
    UpstreamTLS,
)
from aigw.standalone.store import Store, pod_ips
from api import headers
from api.corev1 import SECRET, SERVICE
from api.envoygateway import (
    BACKEND_TRAFFIC_POLICY,
    CLIENT_TRAFFIC_POLICY,
    ENVOY_EXTENSION_POLICY,
    Backend,
    BackendTLSSettings,
)
from api.filterconfig import FilterConfig
from api.gatewayapi import GATEWAY, REFERENCE_GRANT, duration_seconds
from api.inference import InferenceModel, InferencePool
from api.inference_v1 import QUALIFIED_KIND as V1_POOL_KIND
from api.inference_v1 import InferenceObjective
from api.inference_v1 import InferencePool as V1InferencePool
from api.objects import Obj, ObjKey
from api.shared import BackendKind
from api.v1alpha1 import AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy
from controller.translate import (
    CREDENTIALS_NOT_READY,
    BuildOptions,
    DnsAnswer,
    GatewayBuild,
    ObjectStatus,
    Snapshot,
    build_gateway,
    eg_endpoints,
    extension_policy_spec,
    gateway_keys,
    hostnames_to_resolve,
    refs_of_kind,
    render_filter_config,
    secret_file_key,
    v1_pool_refs,
)

DEMO_UPSTREAM_ANNOTATION = "standalone.aigateway.envoyproxy.io/demo-upstream"
"""On an Envoy Gateway ``Backend``: ``"true"`` makes ``aigw run`` start the fake OpenAI upstream on each of
its IP endpoints, ``"sim"`` a simulated vLLM replica (``aigw-sim``: queues, KV cache, vLLM's /metrics)."""

DEFAULT_ROUTE_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True, kw_only=True)
class DemoUpstream:
    """A demo OpenAI-compatible server to start: named after its Backend, listening on ``address``; ``sim``:
    a simulated vLLM replica rather than the fake upstream."""

    name: str
    address: Address
    sim: bool = False


@dataclass(frozen=True, kw_only=True)
class Translation:
    """Everything one build produced. ``filter_config`` is None when the Gateway has nothing to serve."""

    gateway: ObjKey
    filter_config: FilterConfig
    filter_config_yaml: str
    auth_files: Mapping[str, bytes]
    """Credential file name (inside ``BuildOptions.auth_dir``) -> content."""
    clusters: tuple[BackendCluster, ...]
    routes: tuple[HeaderRoute, ...]
    pool_timeout_seconds: float
    problems: tuple[str, ...]
    """Conditions that are not True, and translation notes, each naming the object and its file."""
    refusals: tuple[str, ...]
    """Why the build must not be applied at all (``credential_refusals``); ``problems`` only warn."""
    requeue_after: float | None
    """Seconds until the DNS answers used expire (None: no hostname was resolved)."""
    demo_upstreams: tuple[DemoUpstream, ...] = field(default=())
    extproc: ExtProcSettings = field(default_factory=ExtProcSettings)
    """The ext_proc filter settings, from the builder's EnvoyExtensionPolicy."""
    buffer_limit_bytes: int = BUFFER_LIMIT_BYTES
    """From the builder's ClientTrafficPolicy ``connection.bufferLimit``."""
    local_replies: tuple[LocalReplyOverride, ...] = ()
    """From the builder's BackendTrafficPolicy ``responseOverride`` (``source: Local``)."""


def choose_gateway(store: Store, requested: ObjKey | None) -> tuple[ObjKey, dict[str, Any]]:
    """The Gateway this standalone gateway plays, and its object.

    ``requested`` (``--gateway``) wins when the inputs hold it or an AIGatewayRoute targets it; else the only
    Gateway in the inputs; else the only Gateway that the AIGatewayRoutes target (a minimal Gateway object is
    made up for it). Raises ``ValueError`` otherwise, naming the Gateways there are.
    """
    gateways = store.bodies(GATEWAY.kind)
    targeted: list[ObjKey] = []
    for route in store.models(AIGatewayRoute).values():
        for k in gateway_keys(route):
            if k not in targeted:
                targeted.append(k)
    if requested is None:
        candidates = list(gateways) or targeted
        if len(candidates) != 1:
            names = ", ".join(str(k) for k in candidates) or "none"
            raise ValueError(
                f"cannot tell which Gateway to serve (found: {names}): pass --gateway NAMESPACE/NAME"
            )
        requested = candidates[0]
    elif requested not in gateways and requested not in targeted:
        names = ", ".join(str(k) for k in [*gateways, *(k for k in targeted if k not in gateways)]) or "none"
        raise ValueError(
            f"Gateway {requested} is not in the inputs and no AIGatewayRoute targets it (found: {names})"
        )
    if requested in gateways:
        return requested, gateways[requested]
    return requested, {
        "apiVersion": GATEWAY.api_version,
        "kind": GATEWAY.kind,
        "metadata": {"name": requested.name, "namespace": requested.namespace, "uid": "aigw-standalone"},
        "spec": {"gatewayClassName": "aigw-standalone", "listeners": []},
    }


def standalone_pods(pool: V1InferencePool) -> list[Obj]:
    """The Pods a v1 pool's ``POD_IPS_ANNOTATION`` stands for: one Running, Ready Pod per address, carrying
    the pool's labels, so that the controller's own membership rules make the endpoints."""
    ns, labels = pool.metadata.namespace, pool.spec.selector.match_labels
    return [
        {
            "metadata": {"name": f"{pool.metadata.name}-{i}", "namespace": ns, "labels": dict(labels)},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
        }
        for i, ip in enumerate(pod_ips(pool), start=1)
    ]


def snapshot_of(
    store: Store,
    *,
    gateway: ObjKey,
    gateway_object: Obj,
    dns: Mapping[str, DnsAnswer],
    options: BuildOptions,
) -> Snapshot:
    """The reconcile's snapshot over the store: the Gateway's routes and every other object of the inputs."""
    routes = tuple(r for r in store.models(AIGatewayRoute).values() if gateway in gateway_keys(r))
    pools = store.models(InferencePool)
    pool_parents = {
        k: (gateway,) for r in routes for k in refs_of_kind(r, BackendKind.INFERENCE_POOL) if k in pools
    }
    v1_pools = store.models(V1InferencePool, kind=V1_POOL_KIND)
    # aigw plays Envoy Gateway: it installs the ext_proc filter itself, from the policy the builders emit, so
    # the policy is in place on its Gateway by construction (and on no other).
    policy = {"metadata": {"namespace": gateway.namespace}, "spec": extension_policy_spec(gateway, options)}
    return Snapshot(
        gateway=gateway,
        gateway_object=gateway_object,
        routes=routes,
        backends=store.models(AIServiceBackend),
        security_policies=store.models(BackendSecurityPolicy),
        services=store.bodies(SERVICE.kind),
        eg_backends=store.models(Backend),
        secrets=store.secret_data(),
        pools=pools,
        models=tuple(store.models(InferenceModel).values()),
        gateways=frozenset({gateway, *store.bodies(GATEWAY.kind)}),
        pool_parents=pool_parents,
        v1_pools=v1_pools,
        pods=tuple(pod for p in v1_pools.values() for pod in standalone_pods(p)),
        v1_pool_parents={k: (gateway,) for r in routes for k in v1_pool_refs(r) if k in v1_pools},
        objectives=tuple(store.models(InferenceObjective).values()),
        dns=dns,
        grants=tuple(store.bodies(REFERENCE_GRANT.kind).values()),
        extension_policies={gateway: policy},
    )


def hostnames(store: Store, *, gateway: ObjKey, gateway_object: Obj, options: BuildOptions) -> list[str]:
    """The DNS names the filter config needs (pool members' FQDNs), as the controller computes them."""
    snap = snapshot_of(store, gateway=gateway, gateway_object=gateway_object, dns={}, options=options)
    return hostnames_to_resolve(snap, options)


def translate(
    store: Store,
    *,
    gateway: ObjKey,
    gateway_object: Obj,
    options: BuildOptions,
    dns: Mapping[str, DnsAnswer],
) -> Translation:
    """Run the controller's ``build_gateway`` over the store and turn its HTTPRoutes into Envoy config."""
    snap = snapshot_of(store, gateway=gateway, gateway_object=gateway_object, dns=dns, options=options)
    build = build_gateway(snap, options)
    if build.filter_config is None:  # pragma: no cover - snapshot_of always provides a Gateway object
        raise RuntimeError(f"no filter config built for Gateway {gateway}")
    problems = [_describe(s, store) for s in build.statuses if s.problems()]
    clusters, routes, pool_timeout, notes = _envoy_routes(build, store)
    problems.extend(notes)
    return Translation(
        gateway=gateway,
        filter_config=build.filter_config,
        filter_config_yaml=render_filter_config(build.filter_config),
        auth_files=_auth_files(build),
        clusters=clusters,
        routes=routes,
        pool_timeout_seconds=pool_timeout,
        problems=tuple(problems),
        refusals=tuple(credential_refusals(build)),
        requeue_after=build.requeue_after,
        demo_upstreams=demo_upstreams(store),
        extproc=_extproc_settings(build),
        buffer_limit_bytes=_buffer_limit(build),
        local_replies=_local_replies(build),
    )


def demo_upstreams(store: Store) -> tuple[DemoUpstream, ...]:
    """The IP endpoints of every ``Backend`` annotated ``DEMO_UPSTREAM_ANNOTATION: "true"`` or ``"sim"``."""
    out: list[DemoUpstream] = []
    for key, backend in sorted(store.models(Backend).items()):
        kind = backend.metadata.annotations.get(DEMO_UPSTREAM_ANNOTATION, "").lower()
        if kind not in ("true", "sim"):
            continue
        for ep in eg_endpoints(backend):
            if ep.kind == "ip" and ep.port:
                address = Address(host=ep.address, port=ep.port)
                out.append(DemoUpstream(name=key.name, address=address, sim=kind == "sim"))
    return tuple(out)


def _envoy_routes(
    build: GatewayBuild, store: Store
) -> tuple[tuple[BackendCluster, ...], tuple[HeaderRoute, ...], float, list[str]]:
    clusters: dict[str, BackendCluster] = {}
    routes: dict[str, HeaderRoute] = {}
    pool_timeout = 0.0
    notes: list[str] = []
    for http_route in build.http_routes:
        for rule in http_route["spec"]["rules"]:
            value = _selected_backend(rule)
            if value is None:
                continue  # the catch-all: our own catch-all route answers 404
            timeout = _timeout(rule)
            refs = rule.get("backendRefs") or []
            if value == headers.ORIGINAL_DST_CLUSTER:
                pool_timeout = max(pool_timeout, timeout)
                continue
            if not refs:  # pragma: no cover - the builder always gives a backend rule its backendRef
                continue
            cluster, note = _cluster(refs[0], store)
            clusters[cluster.name] = cluster
            if note:
                notes.append(note)
            auto_host = any(f.get("type") == "ExtensionRef" for f in rule.get("filters") or [])
            routes[value] = HeaderRoute(
                value=value, cluster=cluster.name, timeout_seconds=timeout, auto_host_rewrite=auto_host
            )
    return (
        tuple(clusters.values()),
        tuple(routes.values()),
        pool_timeout or DEFAULT_ROUTE_TIMEOUT_SECONDS,
        list(dict.fromkeys(notes)),
    )


def _selected_backend(rule: Mapping[str, Any]) -> str | None:
    for match in rule.get("matches") or []:
        for h in match.get("headers") or []:
            if h.get("name") == headers.SELECTED_BACKEND_HEADER:
                return str(h.get("value"))
    return None


def _timeout(rule: Mapping[str, Any]) -> float:
    request = (rule.get("timeouts") or {}).get("request")
    if not request:
        return DEFAULT_ROUTE_TIMEOUT_SECONDS
    return duration_seconds(str(request))


def _cluster(ref: Mapping[str, Any], store: Store) -> tuple[BackendCluster, str | None]:
    """The cluster of an HTTPRoute backendRef, and a note when it cannot work locally."""
    # The builder writes every field of the reference out (``resources._backend_ref``): no defaults to apply.
    group, kind, ns, name = (str(ref[f]) for f in ("group", "kind", "namespace", "name"))
    key = ObjKey(ns, name)
    cluster_name = f"{kind.lower()}/{ns}/{name}"
    if not Backend.KIND_INFO.matches(group, kind):
        return BackendCluster(name=cluster_name, endpoints=()), (
            f"{kind} {key}: aigw run has no cluster to find Services in; point the AIServiceBackend at a "
            f"{Backend.KIND_INFO.group} {Backend.KIND_INFO.kind} instead (requests to it get 503)"
        )
    obj = store.of_kind(Backend.KIND_INFO.kind)[key]
    backend = store.models(Backend)[key]
    endpoints: list[Address] = []
    skipped: list[str] = []
    for ep in eg_endpoints(backend):
        if ep.kind in ("ip", "fqdn") and ep.port:
            endpoints.append(Address(host=ep.address, port=ep.port))
        else:
            skipped.append(ep.address)
    tls = _tls(backend.spec.tls, endpoints)
    note = f"Backend {key} ({obj.where}): unix endpoints are not supported: {skipped}" if skipped else None
    return BackendCluster(name=cluster_name, endpoints=tuple(endpoints), tls=tls), note


def _tls(settings: BackendTLSSettings | None, endpoints: list[Address]) -> UpstreamTLS | None:
    """TLS when the Backend has ``spec.tls`` or an endpoint on port 443; SNI is the first hostname."""
    if settings is None and not any(a.port == 443 for a in endpoints):
        return None
    settings = settings or BackendTLSSettings()
    sni = settings.sni or next((a.host for a in endpoints if not a.host[:1].isdigit()), "")
    return UpstreamTLS(sni=sni, verify=not settings.insecure_skip_verify)


_BODY_MODES = {
    "Buffered": "BUFFERED",
    "Streamed": "STREAMED",
    "BufferedPartial": "BUFFERED_PARTIAL",
    "FullDuplexStreamed": "FULL_DUPLEX_STREAMED",
}


def _extproc_settings(build: GatewayBuild) -> ExtProcSettings:
    """Envoy Gateway's translation of the builder's EnvoyExtensionPolicy ``extProc[0]`` (Envoy's default
    message timeout, 200 ms, when it sets none)."""
    for obj in build.gateway_objects:
        if obj.get("kind") != ENVOY_EXTENSION_POLICY.kind:
            continue
        ext = (obj.get("spec") or {}).get("extProc") or [{}]
        mode = ext[0].get("processingMode") or {}
        request, response = mode.get("request"), mode.get("response")
        timeout = ext[0].get("messageTimeout")
        return ExtProcSettings(
            request_headers=request is not None,
            response_headers=response is not None,
            request_body_mode=_BODY_MODES.get(str((request or {}).get("body")), "NONE"),
            response_body_mode=_BODY_MODES.get(str((response or {}).get("body")), "NONE"),
            allow_mode_override=bool(mode.get("allowModeOverride", False)),
            message_timeout_seconds=duration_seconds(str(timeout)) if timeout else 0.2,
            writable_namespaces=tuple((ext[0].get("metadata") or {}).get("writableNamespaces") or ()),
            status_on_error=ext[0].get("statusOnError"),
        )
    return ExtProcSettings()  # pragma: no cover - the builder always makes the policy


def _policy_spec(build: GatewayBuild, kind: str) -> Mapping[str, Any]:
    for obj in (*build.gateway_objects, *build.route_policies):
        if obj.get("kind") == kind:
            spec: Mapping[str, Any] = obj.get("spec") or {}
            return spec
    return {}  # pragma: no cover - the builder always makes the policies


def _buffer_limit(build: GatewayBuild) -> int:
    """Envoy Gateway's translation of the ClientTrafficPolicy's ``connection.bufferLimit`` (plain bytes as
    the builder writes it) into the listener's per-connection buffer limit."""
    limit = (_policy_spec(build, CLIENT_TRAFFIC_POLICY.kind).get("connection") or {}).get("bufferLimit")
    return int(limit) if limit is not None else BUFFER_LIMIT_BYTES


def _local_replies(build: GatewayBuild) -> tuple[LocalReplyOverride, ...]:
    """Envoy Gateway's translation of the BackendTrafficPolicy's ``responseOverride`` entries that match one
    status code of Envoy's own answers (``source: Local``), the shape the builder writes (every route's policy
    has the same ones, so the first one's apply to the whole listener)."""
    out: list[LocalReplyOverride] = []
    for o in _policy_spec(build, BACKEND_TRAFFIC_POLICY.kind).get("responseOverride") or ():
        codes: list[Mapping[str, Any]] = (o.get("match") or {}).get("statusCodes") or []
        response = o.get("response") or {}
        if o.get("source") != "Local" or len(codes) != 1 or "value" not in codes[0]:
            continue  # pragma: no cover - not a shape the builder writes
        out.append(
            LocalReplyOverride(
                status=int(codes[0]["value"]),
                new_status=int(response.get("statusCode") or codes[0]["value"]),
                content_type=str(response.get("contentType") or "text/plain"),
                body=str((response.get("body") or {}).get("inline") or ""),
            )
        )
    return tuple(out)


def _auth_files(build: GatewayBuild) -> dict[str, bytes]:
    """The per-Gateway auth Secret the builder made, as files (the kubelet's job in a cluster)."""
    for obj in build.gateway_objects:
        if obj.get("kind") == SECRET.kind:
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    return {}


def credential_refusals(build: GatewayBuild) -> list[str]:
    """Why ``aigw run`` refuses the build as a whole (one line per backend the Gateway's routes reach whose
    key a header can't carry, by the rule the ext_proc loads keys with), never quoting a key; empty when
    there is none. The controller's builders leave such a backend out and serve the rest, as a cluster
    must; here the input is the user's own files, so the previous config and key keep serving instead,
    until the file is fixed."""
    return [
        f"backend {backend.dotted}: the credential from Secret data {secret_file_key(bad.use)} {bad.what}"
        for backend, bad in build.invalid_credentials
    ]


NO_ROTATION_HINT = (
    " (aigw run does not rotate credentials, so this never becomes ready here: use an APIKey policy or an"
    " AWS credentialsFile)"
)


def _describe(status: ObjectStatus, store: Store) -> str:
    where = store.where(status.kind, status.key)
    conds = "; ".join(
        f"{c.type}={c.status} {c.reason}: {c.message}"
        + (NO_ROTATION_HINT if c.reason == CREDENTIALS_NOT_READY else "")
        for c in status.problems()
    )
    return f"{status.kind} {status.key} [{where}]: {conds}"
