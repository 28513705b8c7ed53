"""YAML factories for the controller's integration tests (namespace is set by ``Aigw.apply``)."""

from __future__ import annotations

import json


def route(
    name: str, gateway: str, *refs: str, header: tuple[str, str] | None = None, pool: str | None = None
) -> str:
    brefs = [{"name": r} for r in refs] + ([{"kind": "InferencePool", "name": pool}] if pool else [])
    rule: dict[str, object] = {"backendRefs": brefs}
    if header:
        rule["matches"] = [{"headers": [{"type": "Exact", "name": header[0], "value": header[1]}]}]
    spec = {
        "schema": {"name": "OpenAI"},
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway}],
        "rules": [rule],
    }
    return json.dumps(
        {
            "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
            "kind": "AIGatewayRoute",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def backend(
    name: str,
    *,
    service: str | None = None,
    eg_backend: str | None = None,
    port: int | None = None,
    labels: dict[str, str] | None = None,
    bsp: str | None = None,
    schema: str = "OpenAI",
    namespace: str | None = None,
) -> str:
    """``namespace``: the backendRef's (a cross-namespace reference), else the backend's own."""
    ref: dict[str, object]
    if eg_backend:
        ref = {"group": "gateway.envoyproxy.io", "kind": "Backend", "name": eg_backend}
    else:
        ref = {"name": service or name, "port": 8080}
    if port:
        ref["port"] = port
    if namespace:
        ref["namespace"] = namespace
    spec: dict[str, object] = {"schema": {"name": schema}, "backendRef": ref}
    if bsp:
        spec["backendSecurityPolicyRef"] = {
            "group": "aigateway.envoyproxy.io",
            "kind": "BackendSecurityPolicy",
            "name": bsp,
        }
    md: dict[str, object] = {"name": name}
    if labels:
        md["labels"] = labels
    return json.dumps(
        {
            "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
            "kind": "AIServiceBackend",
            "metadata": md,
            "spec": spec,
        }
    )


def service(name: str, *ports: int, headless: bool = True) -> str:
    spec: dict[str, object] = {"ports": [{"name": f"p{p}", "port": p} for p in ports or (8080,)]}
    if headless:
        spec["clusterIP"] = "None"
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})


def eg_backend(name: str, *endpoints: tuple[str, str, int]) -> str:
    eps = [
        {kind: {("address" if kind == "ip" else "hostname"): addr, "port": port}}
        for kind, addr, port in endpoints
    ]
    return json.dumps(
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "Backend",
            "metadata": {"name": name},
            "spec": {"endpoints": eps},
        }
    )


def api_key_policy(name: str, secret: str, namespace: str | None = None) -> str:
    ref = {"name": secret, **({"namespace": namespace} if namespace else {})}
    return json.dumps(
        {
            "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
            "kind": "BackendSecurityPolicy",
            "metadata": {"name": name},
            "spec": {"type": "APIKey", "apiKey": {"secretRef": ref}},
        }
    )


def reference_grant(name: str, *, from_: list[tuple[str, str, str]], to: list[tuple[str, str, str]]) -> str:
    """A Gateway API ReferenceGrant (in the namespace it is applied to: the referents'). ``from_``: (group,
    kind, namespace) of the referrers; ``to``: (group, kind, name) of the referents, name ``""`` = any."""
    return json.dumps(
        {
            "apiVersion": "gateway.networking.k8s.io/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": name},
            "spec": {
                "from": [{"group": g, "kind": k, "namespace": ns} for g, k, ns in from_],
                "to": [{"group": g, "kind": k, **({"name": n} if n else {})} for g, k, n in to],
            },
        }
    )


def secret(name: str, **data: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "type": "Opaque",
            "stringData": data,
        }
    )


def pool(name: str, selector: dict[str, str], port: int = 8080, ext: str = "envoy-ai-gateway") -> str:
    return json.dumps(
        {
            "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
            "kind": "InferencePool",
            "metadata": {"name": name},
            "spec": {"selector": selector, "targetPortNumber": port, "extensionRef": {"name": ext}},
        }
    )


def model(name: str, model_name: str, pool_name: str, criticality: str | None = None) -> str:
    spec: dict[str, object] = {"modelName": model_name, "poolRef": {"name": pool_name}}
    if criticality:
        spec["criticality"] = criticality
    return json.dumps(
        {
            "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
            "kind": "InferenceModel",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def docs(*parts: str) -> str:
    return "\n---\n".join(parts)
