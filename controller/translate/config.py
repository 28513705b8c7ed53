"""The filter-config emitter: the config of one Gateway, from its ``Resolution`` (pure, deterministic)."""

from __future__ import annotations

import hashlib

import orjson
import yaml

from api import filterconfig as fc
from api.objects import ObjKey
from api.shared import BackendKind
from api.v1alpha1 import AIServiceBackend, BackendSecurityPolicyType
from controller.translate.names import v1_pool_config_name
from controller.translate.resolve import (
    BackendResolution,
    PoolResolution,
    Resolution,
    RouteResolution,
    V1PoolResolution,
)
from controller.translate.snapshot import BuildOptions
from controller.translate.views import secret_file_key


def _auth(res: BackendResolution, options: BuildOptions) -> fc.BackendAuth | None:
    if res.policy is None or not res.secret_uses:
        return None
    path = f"{options.auth_dir.rstrip('/')}/{secret_file_key(res.secret_uses[0])}"
    spec = res.policy.policy.spec
    if spec.type == BackendSecurityPolicyType.API_KEY:
        return fc.BackendAuth(api_key=fc.APIKeyAuth(filename=path))
    if spec.type == BackendSecurityPolicyType.AWS_CREDENTIALS and spec.aws_credentials is not None:
        aws = spec.aws_credentials
        profile = aws.credentials_file.profile if aws.credentials_file is not None else None
        return fc.BackendAuth(
            aws=fc.AWSAuth(
                credential_file_name=path,
                region=aws.region,
                **({"profile": profile} if profile is not None else {}),
            )
        )
    if spec.type == BackendSecurityPolicyType.AZURE_CREDENTIALS:
        return fc.BackendAuth(azure=fc.AzureAuth(filename=path))
    return None


def _schema(backend: AIServiceBackend) -> fc.VersionedAPISchema:
    schema = backend.spec.schema_
    return fc.VersionedAPISchema(name=schema.name, version=schema.version)


def _backend(res: BackendResolution, options: BuildOptions) -> fc.Backend:
    return fc.Backend(name=res.key.dotted, schema_=_schema(res.backend), auth=_auth(res, options))


def _endpoints(pool: PoolResolution) -> dict[ObjKey, list[fc.Endpoint]]:
    out: dict[ObjKey, list[fc.Endpoint]] = {}
    port = pool.pool.spec.target_port_number
    for m in pool.members:
        eps: dict[tuple[str, str | None], fc.Endpoint] = {}
        for e in m.endpoints:
            ep = fc.Endpoint(ip=e.ip, port=port, hostname=e.hostname)
            eps.setdefault((ep.ip, e.hostname), ep)
        out[m.backend.key] = list(eps.values())
    return out


def _pool(res: PoolResolution, resolution: Resolution, options: BuildOptions) -> fc.InferencePool:
    endpoints = _endpoints(res)
    members = [
        fc.PoolMember(
            name=m.backend.key.dotted,
            schema_=_schema(m.backend.backend),
            auth=_auth(m.backend, options),
            endpoints=endpoints[m.backend.key],
        )
        for m in res.members
    ]
    pool_models = [
        fc.InferenceModel(
            model_name=mr.model.spec.model_name,
            target_models=[fc.TargetModel(name=t.name, weight=t.weight) for t in mr.model.spec.target_models],
            **({"criticality": mr.model.spec.criticality} if mr.model.spec.criticality is not None else {}),
        )
        for mr in sorted(resolution.models, key=lambda mr: mr.model.spec.model_name)
        if mr.problem is None and mr.pool_key == res.key
    ]
    return fc.InferencePool(name=res.key.dotted, members=members, models=pool_models, picker=res.picker)


def _v1_pool(res: V1PoolResolution) -> fc.InferencePool:
    """A v1 pool as one member whose endpoints are its Pods' ``podIP:targetPort`` (no DNS, no credentials:
    a self-hosted model server), serving any model the route sends (there is no InferenceModel in v1); with
    its external endpoint picker, when it names one."""
    name = v1_pool_config_name(res.key)
    member = fc.PoolMember(
        name=name,
        schema_=fc.VersionedAPISchema(name=fc.APISchemaName.OPENAI),
        endpoints=list(res.endpoints),
    )
    external: fc.ExternalPicker | None = None
    ref = res.pool.spec.endpoint_picker_ref
    if res.epp is not None and ref is not None:
        external = fc.ExternalPicker(
            service=res.epp.label,
            endpoints=list(res.epp.endpoints),
            target_ports=sorted({p.number for p in res.pool.spec.target_ports}),
            tls=res.epp.tls,
            failure_mode=fc.ExternalPickerFailureMode(ref.failure_mode.value),
        )
    return fc.InferencePool(
        name=name,
        members=[member],
        serves_any_model=True,
        objectives=[fc.InferenceObjective(name=o, priority=p) for o, p in res.objectives],
        external_picker=external,
    )


def build_filter_config(res: Resolution, options: BuildOptions) -> fc.FilterConfig:
    """Merge every accepted AIGatewayRoute into one config; ``uuid`` is the hash of the rest.

    Rules keep route order (oldest route first, then ``namespace/name``) and rule order within a route. A
    backendRef that does not resolve is left out of its rule (the route's ``ResolvedRefs`` says why); a rule
    whose refs all fail keeps no backends, so the ext_proc answers it with an error instead of routing
    elsewhere. A pool's fallback that does not resolve is left out too: the pool is served without one.
    """
    rules: list[fc.RouteRule] = []
    costs: list[fc.LLMRequestCost] = []
    used_backends: dict[ObjKey, None] = {}
    used_pools: dict[ObjKey, None] = {}
    used_v1_pools: dict[ObjKey, None] = {}
    for rr in res.routes:
        if rr.accepted:
            continue
        rname = str(rr.key)
        for rule in rr.route.spec.rules:
            refs: list[fc.BackendRef] = []
            for ref in rule.backend_refs:
                k = ObjKey(rr.key.namespace, ref.name)
                if ref.is_v1_pool:
                    if k in rr.usable_v1_pools:
                        used_v1_pools[k] = None
                        refs.append(
                            fc.BackendRef(kind=ref.kind, name=v1_pool_config_name(k), weight=ref.weight)
                        )
                    continue
                if not _usable(rr, ref.kind, k, used_backends, used_pools):
                    continue
                fallback: fc.Fallback | None = None
                fb = ref.fallback
                if fb is not None and _usable(
                    rr, fb.kind, fk := ObjKey(rr.key.namespace, fb.name), used_backends, used_pools
                ):
                    fallback = fc.Fallback(
                        kind=fb.kind, name=fk.dotted, model_name_override=fb.model_name_override
                    )
                refs.append(fc.BackendRef(kind=ref.kind, name=k.dotted, weight=ref.weight, fallback=fallback))
            matches = [
                fc.RouteMatch(headers=[fc.HeaderMatch(name=h.name, value=h.value) for h in m.headers])
                for m in rule.matches
            ]
            rules.append(fc.RouteRule(route=rname, matches=matches, backend_refs=refs))
        for c in rr.route.spec.llm_request_costs:
            if c.metadata_key in rr.invalid_cost_keys:
                continue  # the route's PartiallyInvalid condition says why
            costs.append(fc.LLMRequestCost(route=rname, metadata_key=c.metadata_key, type=c.type, cel=c.cel))
    cfg = fc.FilterConfig(
        gateway=str(res.gateway),
        rules=rules,
        backends=[_backend(res.backends[k], options) for k in sorted(used_backends)],
        pools=[_pool(res.pools[k], res, options) for k in sorted(used_pools)]
        + [_v1_pool(res.v1_pools[k]) for k in sorted(used_v1_pools)],
        llm_request_costs=costs,
    )
    cfg.uuid = config_hash(cfg)
    return cfg


def _usable(
    rr: RouteResolution,
    kind: BackendKind,
    key: ObjKey,
    used_backends: dict[ObjKey, None],
    used_pools: dict[ObjKey, None],
) -> bool:
    """Whether the route may reach ``key`` (its ResolvedRefs says why not); if so, note it as used."""
    backend = kind == BackendKind.AI_SERVICE_BACKEND
    if key not in (rr.usable_backends if backend else rr.usable_pools):
        return False
    (used_backends if backend else used_pools)[key] = None
    return True


def config_hash(cfg: fc.FilterConfig) -> str:
    """sha256 (first 32 hex digits) of the config without its ``uuid``."""
    doc = cfg.to_json_dict()
    doc.pop("uuid", None)
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def render_filter_config(cfg: fc.FilterConfig) -> str:
    """The YAML document stored under ``filter-config.yaml`` (stable key order)."""
    return yaml.dump(cfg.to_json_dict(), Dumper=_DUMPER, sort_keys=False, default_flow_style=False)


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's emitter when PyYAML has it (about 10x faster than the pure-Python one; same output)."""
