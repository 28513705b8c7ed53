"""The filter config of one Gateway, built from a snapshot (pure, deterministic)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import orjson
import yaml

from api import filterconfig as fc
from controller.translate.names import ObjKey
from controller.translate.snapshot import BuildOptions, DnsAnswer, Snapshot
from controller.translate.status import BackendResolution, PoolResolution, Resolution, resolve
from controller.translate.views import BackendView, PolicyView, SecretUse


def secret_file_key(use: SecretUse) -> str:
    """The key of a credential inside the per-Gateway auth Secret, and its file name in the ext_proc."""
    return f"{use.secret.namespace}.{use.secret.name}.{use.key}"


def _auth(
    policy: PolicyView | None, uses: tuple[SecretUse, ...], options: BuildOptions
) -> fc.BackendAuth | None:
    if policy is None or not uses:
        return None
    path = f"{options.auth_dir.rstrip('/')}/{secret_file_key(uses[0])}"
    if policy.type == "APIKey":
        return fc.BackendAuth(api_key=fc.APIKeyAuth(filename=path))
    if policy.type == "AWSCredentials":
        return fc.BackendAuth(
            aws=fc.AWSAuth(credential_file_name=path, region=policy.region, profile=policy.profile)
        )
    if policy.type == "AzureCredentials":
        return fc.BackendAuth(azure=fc.AzureAuth(filename=path))
    return None


def _schema(view: BackendView) -> fc.VersionedAPISchema:
    return fc.VersionedAPISchema(name=fc.APISchemaName(view.schema_name), version=view.schema_version)


def _backend(res: BackendResolution, options: BuildOptions) -> fc.Backend:
    return fc.Backend(
        name=res.view.key.dotted, schema_=_schema(res.view), auth=_auth(res.policy, res.secret_uses, options)
    )


def _endpoints(pool: PoolResolution, dns: Mapping[str, DnsAnswer]) -> dict[ObjKey, list[fc.Endpoint]]:
    out: dict[ObjKey, list[fc.Endpoint]] = {}
    port = pool.view.target_port
    for m in pool.members:
        eps: dict[tuple[str, str | None], fc.Endpoint] = {}
        for ip in m.ips:
            ep = fc.Endpoint(ip=ip, port=port)
            eps.setdefault((ep.ip, None), ep)
        for host in m.hostnames:
            for ip in sorted(dns.get(host, DnsAnswer()).ips):
                ep = fc.Endpoint(ip=ip, port=port, hostname=host)
                eps.setdefault((ep.ip, host), ep)
        out[m.backend.view.key] = list(eps.values())
    return out


def _pool(res: PoolResolution, models: Resolution, snap: Snapshot, options: BuildOptions) -> fc.InferencePool:
    endpoints = _endpoints(res, snap.dns)
    members = [
        fc.PoolMember(
            name=m.backend.view.key.dotted,
            schema_=_schema(m.backend.view),
            auth=_auth(m.backend.policy, m.backend.secret_uses, options),
            endpoints=endpoints[m.backend.view.key],
        )
        for m in res.members
    ]
    pool_models = [
        fc.InferenceModel(
            model_name=mr.view.model_name,
            criticality=fc.Criticality(mr.view.criticality or "Standard"),
            target_models=[fc.TargetModel(name=n, weight=w) for n, w in mr.view.targets],
        )
        for mr in sorted(models.models, key=lambda mr: mr.view.model_name)
        if mr.problem is None and mr.view.pool_key == res.view.key
    ]
    return fc.InferencePool(name=res.view.key.dotted, members=members, models=pool_models, picker=res.picker)


def build_filter_config(
    snap: Snapshot, options: BuildOptions, resolution: Resolution | None = None
) -> fc.FilterConfig:
    """Merge every AIGatewayRoute of the snapshot into one config; ``uuid`` is the hash of the rest.

    Rules keep route order (oldest route first, then ``namespace/name``) and rule order within a route. A
    backendRef that does not resolve is left out of its rule (the route's ``ResolvedRefs`` says why); a rule
    whose
    refs all fail keeps no backends, so the ext_proc answers it with an error instead of routing elsewhere.
    """
    res = resolution if resolution is not None else resolve(snap, options)
    rules: list[fc.RouteRule] = []
    costs: list[fc.LLMRequestCost] = []
    used_backends: dict[ObjKey, None] = {}
    used_pools: dict[ObjKey, None] = {}
    for rr in res.routes:
        route = rr.view
        if rr.accepted:
            continue
        rname = str(route.key)
        for rule in route.rules:
            refs: list[fc.BackendRef] = []
            for ref in rule.backend_refs:
                k = ObjKey(route.key.namespace, ref.name)
                if ref.kind == "AIServiceBackend" and k in rr.usable_backends:
                    refs.append(
                        fc.BackendRef(
                            kind=fc.BackendKind.AI_SERVICE_BACKEND, name=k.dotted, weight=ref.weight
                        )
                    )
                    used_backends[k] = None
                elif ref.kind == "InferencePool" and k in rr.usable_pools:
                    refs.append(
                        fc.BackendRef(kind=fc.BackendKind.INFERENCE_POOL, name=k.dotted, weight=ref.weight)
                    )
                    used_pools[k] = None
            matches = [
                fc.RouteMatch(headers=[fc.HeaderMatch(name=n, value=v) for _t, n, v in m])
                for m in rule.matches
            ]
            rules.append(fc.RouteRule(route=rname, matches=matches, backend_refs=refs))
        for c in route.costs:
            if c.metadata_key in rr.invalid_cost_keys:
                continue  # the route's PartiallyInvalid condition says why
            costs.append(
                fc.LLMRequestCost(
                    route=rname, metadata_key=c.metadata_key, type=fc.CostType(c.type), cel=c.cel
                )
            )
    cfg = fc.FilterConfig(
        gateway=str(snap.gateway),
        rules=rules,
        backends=[_backend(res.backends[k], options) for k in sorted(used_backends)],
        pools=[_pool(res.pools[k], res, snap, options) for k in sorted(used_pools)],
        llm_request_costs=costs,
    )
    cfg.uuid = config_hash(cfg)
    return cfg


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
