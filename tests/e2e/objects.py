"""Builders of the Kubernetes objects the e2e scenarios apply, in the shapes of ``config/samples``.

Pure functions: names and ports in, plain dicts out.
"""

from __future__ import annotations

import base64

from api import inference, v1alpha1
from api.envoygateway import Backend
from api.gatewayapi import GATEWAY
from api.objects import Obj
from tests.realparts.envoygateway import CONTROLLER_NAME
from tests.realparts.ports import free_port

AIGW = v1alpha1.API_VERSION
GAIE = inference.API_VERSION
EG = Backend.KIND_INFO.api_version
GW = GATEWAY.api_version
AIGW_GROUP = v1alpha1.GROUP
GATEWAY_CLASS = "aigw-e2e"


def listener_port() -> int:
    """A port free on every interface: Envoy Gateway's Host infrastructure binds listeners on 0.0.0.0."""
    return free_port("0.0.0.0")


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def gateway_class(name: str = GATEWAY_CLASS) -> Obj:
    return {
        "apiVersion": GW,
        "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": CONTROLLER_NAME},
    }


def gateway(name: str, ns: str, port: int, class_name: str = GATEWAY_CLASS) -> Obj:
    return {
        "apiVersion": GW,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "gatewayClassName": class_name,
            "listeners": [{"name": "http", "protocol": "HTTP", "port": port}],
        },
    }


def eg_backend(name: str, ns: str, port: int, *, ip: str | None = None, fqdn: str | None = None) -> Obj:
    """An Envoy Gateway ``Backend`` with one IP or FQDN endpoint."""
    endpoint: Obj = (
        {"ip": {"address": ip, "port": port}} if ip else {"fqdn": {"hostname": fqdn, "port": port}}
    )
    return {
        "apiVersion": EG,
        "kind": "Backend",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"endpoints": [endpoint]},
    }


def http_route(name: str, ns: str, gateway_name: str, backend: str, port: int) -> Obj:
    """A plain HTTPRoute sending everything to an EG ``Backend`` (no code of ours involved)."""
    return {
        "apiVersion": GW,
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [{"name": gateway_name}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"group": "gateway.envoyproxy.io", "kind": "Backend", "name": backend, "port": port}
                    ],
                }
            ],
        },
    }


def ai_service_backend(
    name: str,
    ns: str,
    backend: str,
    *,
    labels: dict[str, str] | None = None,
    schema: Obj | None = None,
    policy: str | None = None,
) -> Obj:
    """An AIServiceBackend (``schema``, default OpenAI; ``policy`` a BackendSecurityPolicy) whose
    ``backendRef`` is the EG ``Backend`` named ``backend``."""
    meta: Obj = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": AIGW,
        "kind": "AIServiceBackend",
        "metadata": meta,
        "spec": {
            "schema": schema or {"name": "OpenAI"},
            "backendRef": {"name": backend, "kind": "Backend", "group": "gateway.envoyproxy.io"},
            **(
                {
                    "backendSecurityPolicyRef": {
                        "group": AIGW_GROUP,
                        "kind": "BackendSecurityPolicy",
                        "name": policy,
                    }
                }
                if policy
                else {}
            ),
        },
    }


def rule(
    *, model: str | None = None, backends: list[tuple[str, str, int]], headers: dict[str, str] | None = None
) -> Obj:
    """An AIGatewayRoute rule matching ``x-ai-eg-model`` (and more headers); refs ``(kind, name, weight)``."""
    match_headers = [{"type": "Exact", "name": "x-ai-eg-model", "value": model}] if model else []
    match_headers += [{"type": "Exact", "name": k, "value": v} for k, v in (headers or {}).items()]
    out: Obj = {"backendRefs": [{"kind": k, "name": n, "weight": w} for k, n, w in backends]}
    if match_headers:
        out["matches"] = [{"headers": match_headers}]
    return out


def ai_gateway_route(name: str, ns: str, gateway_name: str, rules: list[Obj]) -> Obj:
    return {
        "apiVersion": AIGW,
        "kind": "AIGatewayRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "schema": {"name": "OpenAI"},
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway_name}],
            "rules": rules,
            "llmRequestCosts": [
                {"metadataKey": "llm_input_token", "type": "InputToken"},
                {"metadataKey": "llm_output_token", "type": "OutputToken"},
                {"metadataKey": "llm_total_token", "type": "TotalToken"},
            ],
        },
    }


def inference_pool(name: str, ns: str, selector: dict[str, str], port: int) -> Obj:
    return {
        "apiVersion": GAIE,
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": selector,
            "targetPortNumber": port,
            "extensionRef": {"name": "envoy-ai-gateway"},
        },
    }


def inference_model(
    name: str, ns: str, model: str, pool: str, targets: list[tuple[str, int]] | None = None
) -> Obj:
    spec: Obj = {"modelName": model, "criticality": "Critical", "poolRef": {"name": pool}}
    if targets:
        spec["targetModels"] = [{"name": n, "weight": w} for n, w in targets]
    return {
        "apiVersion": GAIE,
        "kind": "InferenceModel",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def headless_service(name: str, ns: str, port: int) -> Obj:
    """A headless Service without a selector: its name resolves only through our DNS server."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": port, "targetPort": port}]},
    }


def service_fqdn(name: str, ns: str) -> str:
    return f"{name}.{ns}.svc.cluster.local"


def direct_backend(name: str, ns: str, ip: str, port: int) -> list[Obj]:
    """An AIServiceBackend reached through its own Envoy cluster: an EG ``Backend`` on ``ip:port``."""
    return [eg_backend(name, ns, port, ip=ip), ai_service_backend(name, ns, name)]


def pool_backend(name: str, ns: str, port: int, label: str) -> list[Obj]:
    """A pool member: an AIServiceBackend labelled ``app=<label>`` in front of a headless Service ``name``."""
    backend = ai_service_backend(name, ns, name, labels={"app": label})
    backend["spec"]["backendRef"] = {"name": name, "port": port}
    return [headless_service(name, ns, port), backend]


def route_to_pool(name: str, ns: str, gateway_name: str, model: str, pool: str) -> Obj:
    return ai_gateway_route(
        name, ns, gateway_name, [rule(model=model, backends=[("InferencePool", pool, 1)])]
    )


def route_to_backend(name: str, ns: str, gateway_name: str, model: str, backend: str) -> Obj:
    return ai_gateway_route(
        name, ns, gateway_name, [rule(model=model, backends=[("AIServiceBackend", backend, 1)])]
    )


def secret(name: str, ns: str, **data: str) -> Obj:
    """An Opaque Secret holding ``data`` (base64-encoded here)."""
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "data": encoded,
    }


def security_policy(name: str, ns: str, spec: Obj) -> Obj:
    """A BackendSecurityPolicy with ``spec``."""
    return {
        "apiVersion": AIGW,
        "kind": "BackendSecurityPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }
