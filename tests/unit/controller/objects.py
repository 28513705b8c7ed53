"""Factories of Kubernetes JSON objects for builder tests (shaped as the API server returns them), and the
step the controller's cache takes before the builders see them: ``typed`` reads a document of a modelled kind
into its api model (``TopLevelObject.read``)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from api.kinds import kind_for
from api.objects import ObjKey
from controller.translate import BuildOptions, Snapshot, extension_policy_spec, extproc_name

NS = "default"
GW = ObjKey(NS, "gw")


def _md(
    name: str,
    ns: str,
    *,
    ts: str = "2026-01-01T00:00:00Z",
    labels: dict[str, str] | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    md: dict[str, Any] = {
        "name": name,
        "namespace": ns,
        "uid": f"uid-{ns}-{name}",
        "generation": generation,
        "creationTimestamp": ts,
    }
    if labels:
        md["labels"] = labels
    return md


def gateway(name: str = "gw", ns: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": _md(name, ns),
        "spec": {"gatewayClassName": "eg", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    }


def route(
    name: str,
    rules: list[dict[str, Any]],
    *,
    gateways: tuple[str, ...] = ("gw",),
    ns: str = NS,
    ts: str = "2026-01-01T00:00:00Z",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "AIGatewayRoute",
        "metadata": _md(name, ns, ts=ts),
        "spec": {
            "targetRefs": [
                {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": g} for g in gateways
            ],
            "schema": {"name": "OpenAI"},
            "rules": rules,
            **spec,
        },
    }


def rule(*refs: tuple[str, str] | str, headers: list[list[tuple[str, str]]] | None = None) -> dict[str, Any]:
    brefs = []
    for r in refs:
        if isinstance(r, str):
            brefs.append({"name": r})
        else:
            brefs.append({"kind": r[0], "name": r[1]})
    out: dict[str, Any] = {"backendRefs": brefs}
    if headers is not None:
        out["matches"] = [
            {"headers": [{"type": "Exact", "name": n, "value": v} for n, v in m]} for m in headers
        ]
    return out


def backend(
    name: str,
    *,
    ref: dict[str, Any] | None = None,
    ns: str = NS,
    labels: dict[str, str] | None = None,
    bsp: str | None = None,
    schema: str = "OpenAI",
    timeouts: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schema": {"name": schema},
        "backendRef": ref or {"name": f"svc-{name}", "port": 8080},
    }
    if bsp:
        spec["backendSecurityPolicyRef"] = {
            "group": "aigateway.envoyproxy.io",
            "kind": "BackendSecurityPolicy",
            "name": bsp,
        }
    if timeouts:
        spec["timeouts"] = timeouts
    return {
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "AIServiceBackend",
        "metadata": _md(name, ns, labels=labels),
        "spec": spec,
    }


def eg_ref(name: str, port: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"group": "gateway.envoyproxy.io", "kind": "Backend", "name": name}
    if port is not None:
        out["port"] = port
    return out


def service(name: str, *ports: int, ns: str = NS, headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": p, "protocol": "TCP"} for p in ports or (8080,)]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": _md(name, ns), "spec": spec}


def eg_backend(name: str, *endpoints: dict[str, Any], ns: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "Backend",
        "metadata": _md(name, ns),
        "spec": {"endpoints": list(endpoints)},
    }


def ip_ep(address: str, port: int) -> dict[str, Any]:
    return {"ip": {"address": address, "port": port}}


def fqdn_ep(hostname: str, port: int) -> dict[str, Any]:
    return {"fqdn": {"hostname": hostname, "port": port}}


def api_key_policy(name: str, secret: str, ns: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "BackendSecurityPolicy",
        "metadata": _md(name, ns),
        "spec": {"type": "APIKey", "apiKey": {"secretRef": {"name": secret}}},
    }


def aws_policy(name: str, secret: str, ns: str = NS, region: str = "us-east-1") -> dict[str, Any]:
    return {
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "BackendSecurityPolicy",
        "metadata": _md(name, ns),
        "spec": {
            "type": "AWSCredentials",
            "awsCredentials": {
                "region": region,
                "credentialsFile": {"secretRef": {"name": secret}, "profile": "p"},
            },
        },
    }


def azure_policy(name: str, ns: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "BackendSecurityPolicy",
        "metadata": _md(name, ns),
        "spec": {
            "type": "AzureCredentials",
            "azureCredentials": {"clientID": "c", "tenantID": "t", "clientSecretRef": {"name": "s"}},
        },
    }


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def pool(
    name: str, selector: dict[str, str], port: int = 8080, *, ns: str = NS, ext: str = "envoy-ai-gateway"
) -> dict[str, Any]:
    return {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferencePool",
        "metadata": _md(name, ns),
        "spec": {"selector": selector, "targetPortNumber": port, "extensionRef": {"name": ext}},
    }


def model(
    name: str,
    model_name: str,
    pool_name: str,
    *,
    ns: str = NS,
    ts: str = "2026-01-01T00:00:00Z",
    criticality: str | None = None,
    targets: list[tuple[str, int | None]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"modelName": model_name, "poolRef": {"name": pool_name}}
    if criticality:
        spec["criticality"] = criticality
    if targets:
        spec["targetModels"] = [{"name": n, **({"weight": w} if w is not None else {})} for n, w in targets]
    return {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferenceModel",
        "metadata": _md(name, ns, ts=ts),
        "spec": spec,
    }


def typed(obj: Any) -> Any:
    """The api model of a JSON document of a modelled kind (as the controller's cache reads it); anything
    else as it is."""
    if isinstance(obj, Mapping) and (kind := kind_for(str(obj.get("apiVersion")), str(obj.get("kind")))):
        return kind.read(obj)
    return obj


def keyed(*objs: dict[str, Any]) -> dict[ObjKey, Any]:
    """``{key: object}``, objects of modelled kinds as their api models."""
    return {ObjKey(o["metadata"]["namespace"], o["metadata"]["name"]): typed(o) for o in objs}


def snapshot(**kw: Any) -> Snapshot:
    """``Snapshot(**kw)`` with every JSON document of a modelled kind read into its api model."""
    out: dict[str, Any] = {}
    for f in fields(Snapshot):
        if f.name not in kw:
            continue
        value = kw[f.name]
        if f.name in ("routes", "models"):
            value = tuple(typed(o) for o in value)
        elif f.name in ("backends", "security_policies", "eg_backends", "pools", "v1_pools"):
            value = {k: typed(o) for k, o in value.items()}
        out[f.name] = value
    return Snapshot(**out)


def reference_grant(
    name: str, ns: str, *, from_: list[tuple[str, str, str]], to: list[tuple[str, str, str]]
) -> dict[str, Any]:
    """``from_``: (group, kind, namespace) of referrers; ``to``: (group, kind, name) of referents (name
    ``""``: any)."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": _md(name, ns),
        "spec": {
            "from": [{"group": g, "kind": k, "namespace": n} for g, k, n in from_],
            "to": [{"group": g, "kind": k, **({"name": n} if n else {})} for g, k, n in to],
        },
    }


def attached_policies(
    gateways: Iterable[ObjKey], options: BuildOptions | None = None
) -> dict[ObjKey, dict[str, Any]]:
    """Each Gateway's EnvoyExtensionPolicy as the API server would hold it, accepted by Envoy Gateway."""
    return {
        g: {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "EnvoyExtensionPolicy",
            "metadata": _md(extproc_name(g.name), g.namespace),
            "spec": extension_policy_spec(g, options or BuildOptions()),
        }
        for g in gateways
    }


def one_route_snapshot(*, options: BuildOptions | None = None, **kw: Any) -> Snapshot:
    """A snapshot of ``GW``: route ``r1`` to backend ``a`` (Service ``svc-a``), the Gateway's ext_proc
    attached (as built with ``options``); ``kw`` overrides or adds fields."""
    base: dict[str, Any] = {
        "gateway": GW,
        "gateway_object": gateway(),
        "gateways": frozenset({GW}),
        "routes": (route("r1", [rule("a")]),),
        "backends": keyed(backend("a")),
        "services": keyed(service("svc-a")),
    }
    base.update(kw)
    base.setdefault("extension_policies", attached_policies(base["gateways"], options))
    return snapshot(**base)
