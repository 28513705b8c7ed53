"""The resources emitter: desired Kubernetes objects for one Gateway, from its ``Resolution`` (pure; the
reconcile applies them with server-side apply)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping

import orjson

from api import headers
from api.corev1 import CONFIG_MAP, DEPLOYMENT, SECRET, SERVICE
from api.envoygateway import (
    BACKEND_TRAFFIC_POLICY,
    CLIENT_TRAFFIC_POLICY,
    ENVOY_EXTENSION_POLICY,
    HTTP_ROUTE_FILTER,
    Backend,
)
from api.filterconfig import CONFIG_KEY
from api.gatewayapi import GATEWAY, HTTP_ROUTE, HeaderMatchType, duration_seconds, referent_key
from api.objects import KindInfo, Obj, ObjKey
from api.shared import BackendKind
from api.v1alpha1 import AIGatewayRoute, ExternalProcessorConfig
from controller.translate import names as n
from controller.translate import views
from controller.translate.attachment import extension_policy_spec
from controller.translate.resolve import BackendResolution, PoolResolution, RouteResolution
from controller.translate.snapshot import BuildOptions, Snapshot
from controller.translate.views import SecretUse, secret_file_key


def _type(kind: KindInfo) -> Obj:
    return {"apiVersion": kind.api_version, "kind": kind.kind}


def owner_ref(*, api_version: str, kind: str, name: str, uid_: str) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid_,
        "controller": True,
        "blockOwnerDeletion": False,
    }


def _meta(name: str, namespace: str, labels: Mapping[str, str], owners: list[Obj]) -> Obj:
    md: Obj = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if owners:
        md["ownerReferences"] = owners
    return md


def with_desired_hash(obj: Obj) -> Obj:
    """Stamp ``obj`` with the hash of its content, so the reconcile can skip writes of unchanged objects."""
    digest = hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    obj.setdefault("metadata", {}).setdefault("annotations", {})[n.DESIRED_HASH_ANNOTATION] = digest
    return obj


def _gateway_owner(snap: Snapshot) -> list[Obj]:
    gw = snap.gateway_object
    uid = str((gw or {}).get("metadata", {}).get("uid") or "")
    if not uid:
        return []
    return [owner_ref(api_version=GATEWAY.api_version, kind=GATEWAY.kind, name=snap.gateway.name, uid_=uid)]


# --- HTTPRoute + HTTPRouteFilter


def build_host_rewrite_filter(*, namespace: str) -> Obj:
    """``ai-eg-host-rewrite``: rewrites ``Host`` to the backend's hostname. Shared by every route of a
    namespace, identical whoever writes it, not owned (so that no single route's deletion removes it from the
    others)."""
    return {
        **_type(HTTP_ROUTE_FILTER),
        "metadata": {
            "name": n.HOST_REWRITE_FILTER,
            "namespace": namespace,
            "labels": {n.MANAGED_BY_KEY: n.MANAGED_BY},
        },
        "spec": {"urlRewrite": {"hostname": {"type": "Backend"}}},
    }


def _header_match(value: str) -> Obj:
    return {
        "headers": [
            {"type": HeaderMatchType.EXACT.value, "name": headers.SELECTED_BACKEND_HEADER, "value": value}
        ]
    }


def _max_timeout(values: list[str], default: str) -> str:
    best, best_s = default, -1.0
    for v in values:
        try:
            s = duration_seconds(v)
        except ValueError:
            continue
        if s > best_s:
            best, best_s = v, s
    return best


MAX_HTTPROUTE_RULES = 16
"""Gateway API's limit on the rules of one HTTPRoute."""

ROUTE_NAME_LABEL = "aigateway.envoyproxy.io/route-name"
"""On each HTTPRoute: the AIGatewayRoute it was built from (one route may need several HTTPRoutes)."""


def build_http_route(
    route: RouteResolution,
    *,
    backends: Mapping[ObjKey, BackendResolution],
    pools: Mapping[ObjKey, PoolResolution],
    options: BuildOptions,
) -> Obj:
    """The first (usually the only) HTTPRoute of ``build_http_routes``."""
    return build_http_routes(route, backends=backends, pools=pools, options=options)[0]


def _backend_ref(res: BackendResolution) -> Obj:
    """The backend's ``spec.backendRef`` as an HTTPRoute backendRef (namespace made explicit)."""
    ref = res.backend.spec.backend_ref
    out: Obj = {
        "group": ref.group,
        "kind": ref.kind,
        "name": ref.name,
        "namespace": referent_key(ref, res.backend).namespace,
    }
    if ref.port is not None:
        out["port"] = ref.port
    return out


def build_http_routes(
    route: RouteResolution,
    *,
    backends: Mapping[ObjKey, BackendResolution],
    pools: Mapping[ObjKey, PoolResolution],
    options: BuildOptions,
) -> list[Obj]:
    """The HTTPRoutes of one AIGatewayRoute. They depend on the route, its backends and the attachment of its
    Gateways' ext_procs only (never on which Gateway's reconcile builds them), so reconciles of different
    Gateways always agree on them. Parents: the route's Gateways whose ext_proc is attached
    (``route.attached``, see ``controller.translate.attachment``), never the others.

    An HTTPRoute holds at most 16 rules, an AIGatewayRoute up to 128 backends: the rules are cut into
    HTTPRoutes named ``<route>``, ``<route>-2``, ``<route>-3``, ... (15 rules each, plus the catch-all in the
    first), all labelled with the route's name.

    Rules: one per distinct AIServiceBackend the route references (header ``x-ai-eg-selected-backend`` exact
    ``<backend>.<ns>`` → the backend's ``spec.backendRef``, its ``timeouts``, and the host-rewrite filter);
    one for all its InferencePools (header value ``original_destination_cluster``, no backendRefs: the
    extension server points it at the ORIGINAL_DST cluster; timeout the largest member ``timeouts.request``,
    else ``options.pool_request_timeout``); and a final catch-all on path ``/`` without backends, so that a
    request the ext_proc did not route still reaches the ext_proc, which answers it (404).
    """
    ai_route = route.route
    rules: list[Obj] = []
    for k in views.refs_of_kind(ai_route, BackendKind.AI_SERVICE_BACKEND):
        b = backends.get(k)
        if b is None or b.problems:
            continue
        rule: Obj = {
            "matches": [_header_match(k.dotted)],
            "backendRefs": [_backend_ref(b)],
            "filters": [
                {
                    "type": "ExtensionRef",
                    "extensionRef": {
                        "group": HTTP_ROUTE_FILTER.group,
                        "kind": HTTP_ROUTE_FILTER.kind,
                        "name": n.HOST_REWRITE_FILTER,
                    },
                }
            ],
        }
        timeouts = b.backend.spec.timeouts
        if timeouts is not None and (t := timeouts.to_json_dict()):
            rule["timeouts"] = t
        rules.append(rule)
    used_pools = [k for k in views.refs_of_kind(ai_route, BackendKind.INFERENCE_POOL) if k in pools]
    if (used_pools or route.usable_v1_pools) and options.enable_inference_extension:
        requests = [
            mt.request
            for k in used_pools
            for m in pools[k].members
            if (mt := m.backend.backend.spec.timeouts) is not None and mt.request
        ]
        rules.append(
            {
                "matches": [_header_match(headers.ORIGINAL_DST_CLUSTER)],
                "timeouts": {"request": _max_timeout(requests, options.pool_request_timeout)},
            }
        )
    catch_all = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    size = MAX_HTTPROUTE_RULES - 1
    chunks = [rules[i : i + size] for i in range(0, len(rules), size)] or [[]]
    chunks[0] = [*chunks[0], catch_all]
    parents = [
        {
            "group": t.group,
            "kind": t.kind,
            "name": t.name,
            **({"sectionName": t.section_name} if t.section_name else {}),
        }
        for t in ai_route.spec.target_refs
        if (t.group, t.kind) == (GATEWAY.group, GATEWAY.kind)
        and ObjKey(route.key.namespace, t.name) in route.attached
    ]
    key, uid = route.key, ai_route.metadata.uid
    kind = AIGatewayRoute.KIND_INFO
    owners = [owner_ref(api_version=kind.api_version, kind=kind.kind, name=key.name, uid_=uid)] if uid else []
    labels = {n.MANAGED_BY_KEY: n.MANAGED_BY, ROUTE_NAME_LABEL: n.label_value(key.name)}
    return [
        with_desired_hash(
            {
                **_type(HTTP_ROUTE),
                "metadata": _meta(n.http_route_name(key.name, i), key.namespace, labels, owners),
                "spec": {"parentRefs": parents, "rules": chunk},
            }
        )
        for i, chunk in enumerate(chunks)
    ]


# --- EnvoyExtensionPolicy, ext_proc Backend/Service/Deployment


def build_extension_policy(snap: Snapshot, options: BuildOptions) -> Obj:
    """The Gateway's EnvoyExtensionPolicy (spec: ``extension_policy_spec``)."""
    name = n.extproc_name(snap.gateway.name)
    return with_desired_hash(
        {
            **_type(ENVOY_EXTENSION_POLICY),
            "metadata": _meta(
                name, snap.gateway.namespace, n.gateway_labels(snap.gateway), _gateway_owner(snap)
            ),
            "spec": extension_policy_spec(snap.gateway, options),
        }
    )


EXTPROC_UNAVAILABLE_BODY = orjson.dumps(
    {
        "error": {
            "message": "the gateway cannot process requests right now (its request processor is unavailable)",
            "type": "service_unavailable",
            "code": "extproc_unavailable",
        }
    }
).decode()
"""The body clients get when the ext_proc fails: OpenAI's error shape, like every other error of ours."""


def build_client_traffic_policy(snap: Snapshot, options: BuildOptions) -> Obj:
    """The Gateway's ClientTrafficPolicy: ``connection.bufferLimit`` = ``options.max_body_bytes``, the
    listener's per-connection buffer, which every buffered body (the request, and a non-streamed answer) must
    fit; Envoy Gateway's default is 32 KiB. A request over it gets Envoy's 413, which the ext_proc reshapes
    into OpenAI's ``request_too_large``. ``http1.http10``: HTTP/1.0 clients (``ab``, ...) are served, where
    Envoy's default is a plain-text 426 (and on ``aigw run``'s listener an empty reply). (A
    ClientTrafficPolicy has no route level, so it takes the Gateway's one slot: a user's own
    ClientTrafficPolicy on the same Gateway is ``Conflicted``.)"""
    name = n.extproc_name(snap.gateway.name)
    target = [{"group": GATEWAY.group, "kind": GATEWAY.kind, "name": snap.gateway.name}]
    return with_desired_hash(
        {
            **_type(CLIENT_TRAFFIC_POLICY),
            "metadata": _meta(
                name, snap.gateway.namespace, n.gateway_labels(snap.gateway), _gateway_owner(snap)
            ),
            "spec": {
                "targetRefs": target,
                "connection": {"bufferLimit": str(options.max_body_bytes)},
                "http1": {"http10": {}},
            },
        }
    )


def build_route_traffic_policy(
    route: RouteResolution, *, http_routes: Iterable[Obj], options: BuildOptions
) -> Obj:
    """The BackendTrafficPolicy of one AIGatewayRoute, on its HTTPRoutes (``http_routes``), named, labelled
    and owned like them.

    - ``connection.bufferLimit`` = ``options.max_body_bytes`` on the upstream side (the ClientTrafficPolicy
      sets the listener's);
    - ``responseOverride`` for local replies (``source: Local``) with status ``EXTPROC_ERROR_STATUS``: when
      the ext_proc is down Envoy answers that (the EnvoyExtensionPolicy's ``statusOnError``) and the override
      makes it 503 with ``EXTPROC_UNAVAILABLE_BODY``. The request never reaches an upstream (``failOpen`` is
      false).

    On the routes rather than the Gateway, with ``mergeType: StrategicMerge``: Envoy Gateway takes one
    BackendTrafficPolicy per Gateway (a second is ``Conflicted``), and that slot is the user's, e.g. for a
    token rate limit as upstream Envoy AI Gateway documents it; Envoy Gateway merges ours into it.
    """
    key, uid = route.key, route.route.metadata.uid
    kind = AIGatewayRoute.KIND_INFO
    owners = [owner_ref(api_version=kind.api_version, kind=kind.kind, name=key.name, uid_=uid)] if uid else []
    labels = {n.MANAGED_BY_KEY: n.MANAGED_BY, ROUTE_NAME_LABEL: n.label_value(key.name)}
    targets = [
        {"group": HTTP_ROUTE.group, "kind": HTTP_ROUTE.kind, "name": hr["metadata"]["name"]}
        for hr in http_routes
    ]
    return with_desired_hash(
        {
            **_type(BACKEND_TRAFFIC_POLICY),
            "metadata": _meta(key.name, key.namespace, labels, owners),
            "spec": {
                "targetRefs": targets,
                "mergeType": "StrategicMerge",
                "connection": {"bufferLimit": str(options.max_body_bytes)},
                "responseOverride": [
                    {
                        "match": {"statusCodes": [{"type": "Value", "value": n.EXTPROC_ERROR_STATUS}]},
                        "source": "Local",
                        "response": {
                            "statusCode": 503,
                            "contentType": "application/json",
                            "body": {"type": "Inline", "inline": EXTPROC_UNAVAILABLE_BODY},
                        },
                    }
                ],
            },
        }
    )


def build_extproc_backend(snap: Snapshot, options: BuildOptions) -> Obj:
    """The EG ``Backend`` the EnvoyExtensionPolicy points at: the ext_proc's Service by name, or an ext_proc
    outside the cluster (``--extproc-address``). With ``--extproc-mtls``, over mutual TLS: Envoy sends the
    Service's hostname as SNI, checks the server certificate against the Gateway's CA and for that name (Envoy
    Gateway matches the SAN to the SNI), and presents its client certificate (all from
    ``extproc_client_secret``), wherever the ext_proc runs: an outside one serves the same material."""
    addr = options.extproc_address
    name = n.extproc_name(snap.gateway.name)
    host = n.service_hostname(
        name=name, namespace=snap.gateway.namespace, cluster_domain=options.cluster_domain
    )
    endpoint: Obj = {"fqdn": {"hostname": host, "port": n.EXTPROC_GRPC_PORT}}
    if addr is not None:
        try:
            ipaddress.ip_address(addr.host)
            endpoint = {"ip": {"address": addr.host, "port": addr.port}}
        except ValueError:
            endpoint = {"fqdn": {"hostname": addr.host, "port": addr.port}}
    spec: Obj = {"endpoints": [endpoint]}
    if options.extproc_mtls:
        client = n.extproc_client_secret(snap.gateway.name)
        spec["tls"] = {
            "caCertificateRefs": [{"group": SECRET.group, "kind": SECRET.kind, "name": client}],
            "sni": host,
            "clientCertificateRef": {"group": SECRET.group, "kind": SECRET.kind, "name": client},
        }
    return with_desired_hash(
        {
            **_type(Backend.KIND_INFO),
            "metadata": _meta(
                name, snap.gateway.namespace, n.gateway_labels(snap.gateway), _gateway_owner(snap)
            ),
            "spec": spec,
        }
    )


def build_extproc_tls_secrets(snap: Snapshot) -> list[Obj]:
    """The Gateway's TLS material (``--extproc-mtls``) in two Secrets: ``extproc_tls_secret`` (the CA and the
    ext_proc's server pair; the controller keeps the CA key there to renew, the pod mounts the rest) and
    ``extproc_client_secret`` (``kubernetes.io/tls``: Envoy's client pair and ``ca.crt``, for Envoy
    Gateway)."""
    m = snap.extproc_tls
    gw = snap.gateway
    out = []
    for name, typ, data in (
        (
            n.extproc_tls_secret(gw.name),
            "Opaque",
            {k: m[k] for k in ("ca.crt", "ca.key", "tls.crt", "tls.key")},
        ),
        (
            n.extproc_client_secret(gw.name),
            "kubernetes.io/tls",
            {"tls.crt": m["client.crt"], "tls.key": m["client.key"], "ca.crt": m["ca.crt"]},
        ),
    ):
        out.append(
            with_desired_hash(
                {
                    **_type(SECRET),
                    "type": typ,
                    "metadata": _meta(name, gw.namespace, n.gateway_labels(gw), _gateway_owner(snap)),
                    "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
                }
            )
        )
    return out


def build_extproc_service(snap: Snapshot) -> Obj:
    name = n.extproc_name(snap.gateway.name)
    return with_desired_hash(
        {
            **_type(SERVICE),
            "metadata": _meta(
                name, snap.gateway.namespace, n.gateway_labels(snap.gateway), _gateway_owner(snap)
            ),
            "spec": {
                "selector": n.extproc_selector(snap.gateway),
                "ports": [
                    {
                        "name": "grpc",
                        "port": n.EXTPROC_GRPC_PORT,
                        "targetPort": n.EXTPROC_GRPC_PORT,
                        "protocol": "TCP",
                        "appProtocol": "kubernetes.io/h2c",
                    },
                    {
                        "name": "metrics",
                        "port": n.EXTPROC_METRICS_PORT,
                        "targetPort": n.EXTPROC_METRICS_PORT,
                        "protocol": "TCP",
                    },
                ],
            },
        }
    )


def build_config_map(snap: Snapshot, *, config_yaml: str) -> Obj:
    name = n.extproc_name(snap.gateway.name)
    return with_desired_hash(
        {
            **_type(CONFIG_MAP),
            "metadata": _meta(
                name, snap.gateway.namespace, n.gateway_labels(snap.gateway), _gateway_owner(snap)
            ),
            "data": {CONFIG_KEY: config_yaml},
        }
    )


def auth_secret_data(snap: Snapshot, uses: list[SecretUse]) -> dict[str, str]:
    """The credentials the Gateway's ext_proc needs, copied (base64, as stored) into one Secret of the
    Gateway's namespace: pods can only mount Secrets of their own namespace, and routes and backends may live
    elsewhere."""
    out: dict[str, str] = {}
    for use in sorted(uses, key=secret_file_key):
        value = snap.secrets.get(use.secret, {}).get(use.key)
        if value is not None:
            out[secret_file_key(use)] = value
    return out


def build_auth_secret(snap: Snapshot, *, data: Mapping[str, str]) -> Obj:
    name = n.extproc_name(snap.gateway.name)
    return with_desired_hash(
        {
            **_type(SECRET),
            "type": "Opaque",
            "metadata": _meta(
                name, snap.gateway.namespace, n.gateway_labels(snap.gateway), _gateway_owner(snap)
            ),
            "data": dict(data),
        }
    )


def extproc_args(options: BuildOptions) -> list[str]:
    """The ext_proc container's arguments (``aigw-extproc``; see ``extproc/main.py``)."""
    args = [
        "--config", f"{options.config_dir.rstrip('/')}/{CONFIG_KEY}",
        "--listen", f"0.0.0.0:{n.EXTPROC_GRPC_PORT}",
        "--metrics-listen", f"0.0.0.0:{n.EXTPROC_METRICS_PORT}",
        "--log-level", options.extproc_log_level,
    ]  # fmt: skip
    if options.extproc_mtls:
        tls = n.EXTPROC_TLS_DIR
        args += [
            "--tls-cert",
            f"{tls}/tls.crt",
            "--tls-key",
            f"{tls}/tls.key",
            "--tls-client-ca",
            f"{tls}/ca.crt",
        ]
    return args


def build_extproc_deployment(
    snap: Snapshot,
    options: BuildOptions,
    *,
    routes: Iterable[AIGatewayRoute],
) -> Obj:
    """The Gateway's ext_proc: mounts the config ConfigMap and the auth Secret (always, even empty, so that a
    first credential needs no new volume).

    The pod template holds nothing that changes with the config or the credentials: the ext_proc re-reads
    the mounted files when they change (the kubelet updates them in place), so a config change (DNS answers
    included) or a rotated key never restarts the pods. What does need a restart changes the template by
    itself: the image, the arguments, the resources. Replicas and resources come from the first route
    (oldest) that sets them in ``filterConfig.externalProcessor``."""
    name = n.extproc_name(snap.gateway.name)
    processors = [ep for r in routes if (ep := _external_processor(r)) is not None]
    replicas = next((p.replicas for p in processors if p.replicas is not None), 1)
    resources = next(
        (r for p in processors if p.resources is not None and (r := p.resources.to_json_dict())), None
    )
    container: Obj = {
        "name": "extproc",
        "image": options.extproc_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["aigw-extproc"],
        "args": extproc_args(options),
        "ports": [
            {"name": "grpc", "containerPort": n.EXTPROC_GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": n.EXTPROC_METRICS_PORT, "protocol": "TCP"},
        ],
        # the kubelet's gRPC probe speaks plaintext only: a TLS-only port would never be Ready
        "readinessProbe": (
            {"httpGet": {"path": "/health", "port": n.EXTPROC_METRICS_PORT}, "periodSeconds": 5}
            if options.extproc_mtls
            else {"grpc": {"port": n.EXTPROC_GRPC_PORT}, "periodSeconds": 5}
        ),
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": n.EXTPROC_METRICS_PORT},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "volumeMounts": [{"name": "config", "mountPath": options.config_dir, "readOnly": True}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if resources:
        container["resources"] = dict(resources)
    container["volumeMounts"].append({"name": "auth", "mountPath": options.auth_dir, "readOnly": True})
    volumes: list[Obj] = [
        {"name": "config", "configMap": {"name": name}},
        {"name": "auth", "secret": {"secretName": name}},
    ]
    if options.extproc_mtls:  # the server pair and the client CA; never the CA's key
        container["volumeMounts"].append({"name": "tls", "mountPath": n.EXTPROC_TLS_DIR, "readOnly": True})
        items = [{"key": k, "path": k} for k in ("tls.crt", "tls.key", "ca.crt")]
        volumes.append(
            {"name": "tls", "secret": {"secretName": n.extproc_tls_secret(snap.gateway.name), "items": items}}
        )
    labels = {**n.gateway_labels(snap.gateway), **n.extproc_selector(snap.gateway)}
    return with_desired_hash(
        {
            **_type(DEPLOYMENT),
            "metadata": _meta(name, snap.gateway.namespace, labels, _gateway_owner(snap)),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": n.extproc_selector(snap.gateway)},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [container],
                        "volumes": volumes,
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    },
                },
            },
        }
    )


def _external_processor(route: AIGatewayRoute) -> ExternalProcessorConfig | None:
    fc = route.spec.filter_config
    return fc.external_processor if fc is not None else None
