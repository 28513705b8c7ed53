"""One source of truth for the API: the defaults the builders act on are the ones ``api/`` declares.

Minimal documents of every kind the builders read (only the fields the CRDs require) go through the api
models, the way the controller's cache reads them (``TopLevelObject.read``) and the way ``aigw run`` parses
them (``parse``), and then through the builders; every default that shows in what the builders emit is
compared with the field default of the api model. Two more checks read the source of everything that reads
the models (the controller, ``aigw``, the ext_proc): no string that is an api default (a kind, an enum value,
a profile name), and no kind, group or apiVersion name, is written there, where it would become a second
copy.
"""

from __future__ import annotations

import ast
import enum
import importlib
import pkgutil
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import api
import controller.runtime as runtime
from api import corev1
from api import filterconfig as fc
from api.envoygateway import Backend
from api.gatewayapi import BackendObjectReference, HTTPHeaderMatch
from api.inference import Extension, InferenceModel, InferencePool, PoolObjectReference
from api.inference_v1 import InferenceObjective
from api.inference_v1 import InferencePool as V1InferencePool
from api.kinds import ALL_KINDS
from api.objects import KindInfo, ObjKey, TopLevelObject
from api.v1alpha1 import (
    AIGatewayFilterConfig,
    AIGatewayRoute,
    AIGatewayRouteRuleBackendRef,
    AIServiceBackend,
    AWSCredentialsFile,
    BackendSecurityPolicy,
)
from controller.gateway import kinds
from controller.translate import BuildOptions, Snapshot, build_gateway
from tests.unit.controller.objects import GW, NS, attached_policies, b64, gateway, service

REPO = Path(__file__).resolve().parents[3]
ROUTES = "aigateway.envoyproxy.io/v1alpha1"
INFERENCE = "inference.networking.x-k8s.io/v1alpha2"
META = {"name": "x", "namespace": NS, "uid": "u", "generation": 1}


def _default(model: type[BaseModel], field: str) -> Any:
    value = model.model_fields[field].default
    return value.value if isinstance(value, enum.Enum) else value


MINIMAL: dict[type[TopLevelObject], dict[str, Any]] = {
    AIGatewayRoute: {
        "apiVersion": ROUTES,
        "kind": "AIGatewayRoute",
        "metadata": {**META, "name": "r"},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": GW.name}],
            "schema": {"name": "OpenAI"},
            "rules": [
                {
                    "backendRefs": [{"name": "b"}],
                    "matches": [{"headers": [{"name": "x-ai-eg-model", "value": "m"}]}],
                },
                {"backendRefs": [{"kind": "InferencePool", "name": "p"}]},
            ],
            "filterConfig": {},
        },
    },
    AIServiceBackend: {
        "apiVersion": ROUTES,
        "kind": "AIServiceBackend",
        "metadata": {**META, "name": "b", "labels": {"pool": "p"}},
        "spec": {
            "schema": {"name": "OpenAI"},
            "backendRef": {"name": "svc", "port": 8080},
            "backendSecurityPolicyRef": {
                "group": "aigateway.envoyproxy.io",
                "kind": "BackendSecurityPolicy",
                "name": "aws",
            },
        },
    },
    BackendSecurityPolicy: {
        "apiVersion": ROUTES,
        "kind": "BackendSecurityPolicy",
        "metadata": {**META, "name": "aws"},
        "spec": {
            "type": "AWSCredentials",
            "awsCredentials": {"region": "us-east-1", "credentialsFile": {"secretRef": {"name": "creds"}}},
        },
    },
    InferencePool: {
        "apiVersion": INFERENCE,
        "kind": "InferencePool",
        "metadata": {**META, "name": "p"},
        "spec": {
            "selector": {"pool": "p"},
            "targetPortNumber": 8080,
            "extensionRef": {"name": "envoy-ai-gateway"},
        },
    },
    InferenceModel: {
        "apiVersion": INFERENCE,
        "kind": "InferenceModel",
        "metadata": {**META, "name": "m"},
        "spec": {"modelName": "llama", "poolRef": {"name": "p"}},
    },
    V1InferencePool: {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {**META, "name": "v1p"},
        "spec": {
            "selector": {"matchLabels": {"app": "vllm"}},
            "targetPorts": [{"number": 8000}],
            "endpointPickerRef": {"name": "epp", "port": {"number": 9002}},
        },
    },
    InferenceObjective: {
        "apiVersion": INFERENCE,
        "kind": "InferenceObjective",
        "metadata": {**META, "name": "o"},
        "spec": {"poolRef": {"name": "v1p"}},
    },
    Backend: {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "Backend",
        "metadata": {**META, "name": "eb"},
        "spec": {"endpoints": [{"fqdn": {"hostname": "api.example", "port": 443}}]},
    },
}


READ_KINDS: tuple[type[TopLevelObject], ...] = (*ALL_KINDS, V1InferencePool, InferenceObjective)
"""Every kind the builders read as a model: ours, and the Inference Extension's v1 pool and objective."""


def test_every_kind_has_a_minimal_document() -> None:
    assert set(MINIMAL) == set(READ_KINDS)


@pytest.mark.parametrize("kind", list(MINIMAL), ids=lambda k: k.__name__)
def test_a_read_applies_the_same_defaults_as_a_parse(kind: type[TopLevelObject]) -> None:
    # The controller reads (lenient), aigw run parses (strict): both must hand the builders the same model.
    assert kind.read(MINIMAL[kind]).spec == kind.parse(MINIMAL[kind]).spec  # type: ignore[attr-defined]


def _build() -> Any:
    route = AIGatewayRoute.read(MINIMAL[AIGatewayRoute])
    backend = AIServiceBackend.read(MINIMAL[AIServiceBackend])
    policy = BackendSecurityPolicy.read(MINIMAL[BackendSecurityPolicy])
    pool = InferencePool.read(MINIMAL[InferencePool])
    snap = Snapshot(
        gateway=GW,
        gateway_object=gateway(),
        routes=(route,),
        backends={backend.ref: backend},
        security_policies={policy.ref: policy},
        services={ObjKey(NS, "svc"): service("svc", 8080)},
        secrets={ObjKey(NS, "creds"): {"credentials": b64("[default]")}},
        pools={pool.ref: pool},
        models=(InferenceModel.read(MINIMAL[InferenceModel]),),
        gateways=frozenset({GW}),
        extension_policies=attached_policies([GW]),
    )
    return build_gateway(snap, BuildOptions(enable_inference_extension=True))


def test_what_the_builders_emit_carries_the_api_defaults() -> None:
    build = _build()
    problems = [(s.kind, c.reason, c.message) for s in build.statuses for c in s.problems()]
    # filterConfig {} means type ExternalProcessor; extensionRef {name} means the core Service; a poolRef
    # {name} means an InferencePool of the inference group: all of it is accepted and resolved.
    assert problems == []
    assert _default(AIGatewayFilterConfig, "type") == "ExternalProcessor"
    assert (_default(Extension, "group"), _default(Extension, "kind")) == ("", "Service")
    assert _default(PoolObjectReference, "kind") == "InferencePool"

    cfg = build.filter_config
    ref = cfg.rules[0].backend_refs[0]
    assert ref.kind == _default(AIGatewayRouteRuleBackendRef, "kind")
    assert ref.weight == _default(AIGatewayRouteRuleBackendRef, "weight")
    assert [h.name for h in cfg.rules[0].matches[0].headers] == ["x-ai-eg-model"]  # type Exact by default
    assert _default(HTTPHeaderMatch, "type") == "Exact"
    assert cfg.backends[0].auth.aws.profile == _default(AWSCredentialsFile, "profile")
    assert cfg.pools[0].models[0].criticality == _default(fc.InferenceModel, "criticality")

    http_route = build.http_routes[0]
    backend_ref = http_route["spec"]["rules"][0]["backendRefs"][0]
    assert (backend_ref["group"], backend_ref["kind"]) == (
        _default(BackendObjectReference, "group"),
        _default(BackendObjectReference, "kind"),
    )


def _api_string_defaults() -> dict[str, list[str]]:
    """Every non-empty string default of the models' fields (enum defaults by value), with where it is; a
    top-level kind's own ``apiVersion`` and ``kind`` are names, not defaults."""
    out: dict[str, list[str]] = {}
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, f in model.model_fields.items():
            d = f.default.value if isinstance(f.default, enum.Enum) else f.default
            own_type = issubclass(model, TopLevelObject) and name in ("api_version", "kind")
            if isinstance(d, str) and d and not own_type:
                out.setdefault(d, []).append(f"{model.__name__}.{name}")
            for t in _types(f.annotation):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    walk(t)

    for kind in READ_KINDS:
        walk(kind)
    return out


def _types(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    return [annotation] if not args else [t for a in args for t in _types(a)]


READERS = [
    p
    for package in ("controller", "aigw", "extproc")
    for p in sorted((REPO / package).rglob("*.py"))
    if not {"runtime", "_generated"} & set(p.relative_to(REPO).parts)
]
"""Everything that reads the api models: the controller (its generic runtime aside: it may not import api/,
see ``test_the_runtime_core_kinds_agree_with_api``), ``aigw`` and the ext_proc."""

SAME_SPELLING = {
    ("controller/translate/resources.py", "Backend"): "an HTTPRouteFilter's urlRewrite hostname type",
    ("controller/main.py", "default"): "the word in an option's help text",
    ("aigw/standalone/inputs.py", "default"): "Kubernetes' default namespace",
}
"""String literals that spell an api default or name but mean something else, with what they mean."""


def _literals_among(values: Mapping[str, object]) -> list[str]:
    """``path:line: value`` of every string literal of ``READERS`` (docstrings aside) that is one of
    ``values``, but for those ``SAME_SPELLING`` lists."""
    found = []
    for path in READERS:
        tree = ast.parse(path.read_text())
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        where = str(path.relative_to(REPO))
        found += [
            f"{where}:{node.lineno}: {node.value!r} ({values[node.value]})"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in values
            and id(node) not in docstrings
            and (where, node.value) not in SAME_SPELLING
        ]
    return found


def test_the_readers_state_no_api_default() -> None:
    defaults = {value: ", ".join(where) for value, where in _api_string_defaults().items()}
    assert {"Exact", "Service", "AIServiceBackend", "ExternalProcessor", "default", "InferencePool"} <= set(
        defaults
    )
    found = _literals_among(defaults)
    assert found == [], "use the api model's field (or its enum/KindInfo) instead:\n" + "\n".join(found)


def _kind_infos() -> set[KindInfo]:
    """Every ``KindInfo`` ``api/`` declares: a top-level model's ``KIND_INFO`` or a module constant."""
    infos: set[KindInfo] = set()
    for module in pkgutil.iter_modules(api.__path__):
        for value in vars(importlib.import_module(f"api.{module.name}")).values():
            if isinstance(value, KindInfo):
                infos.add(value)
            elif (
                isinstance(value, type) and issubclass(value, TopLevelObject) and hasattr(value, "KIND_INFO")
            ):
                infos.add(value.KIND_INFO)
    return infos


def test_every_api_name_has_one_home() -> None:
    # Kinds, groups and apiVersions are written in api/ only; the readers use its KindInfo constants, so a
    # renamed group or a new version changes in one place.
    names = {n: i.kind for i in _kind_infos() for n in (i.kind, i.group, i.api_version) if n}
    assert {"Service", "Backend", "gateway.networking.k8s.io", "aigateway.envoyproxy.io/v1alpha1"} <= set(
        names
    )
    found = _literals_among({n: f"a name of {kind}" for n, kind in names.items()})
    assert found == [], "use the KindInfo of api/ (a model's KIND_INFO or a constant):\n" + "\n".join(found)


def test_the_runtime_core_kinds_agree_with_api() -> None:
    # controller.runtime imports nothing of ours (an import-linter contract), so it names the core kinds it
    # serves itself; the controller uses those derived from api/ (controller.gateway.kinds). Both must agree.
    pairs = [(runtime.CONFIGMAPS, corev1.CONFIG_MAP), (runtime.SECRETS, corev1.SECRET)]
    pairs += [(runtime.SERVICES, corev1.SERVICE), (runtime.DEPLOYMENTS, corev1.DEPLOYMENT)]
    for resource, info in pairs:
        assert resource == kinds.resource(info)
        assert (resource.api_version, resource.kind, resource.plural) == (
            info.api_version,
            info.kind,
            info.plural,
        )


@pytest.mark.parametrize("kind", READ_KINDS, ids=lambda k: k.__name__)
def test_a_models_own_api_version_and_kind_are_its_kind_info(kind: type[TopLevelObject]) -> None:
    # A model's apiVersion and kind fields are Literal types, which cannot name a constant: they must spell
    # what its KIND_INFO says, or the model would reject its own kind.
    info = kind.KIND_INFO
    assert kind.model_fields["api_version"].default == info.api_version
    assert kind.model_fields["kind"].default == info.kind
    assert typing.get_args(kind.model_fields["api_version"].annotation) == (info.api_version,)
    assert typing.get_args(kind.model_fields["kind"].annotation) == (info.kind,)
