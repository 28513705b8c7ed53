"""Typed, read-only views over the Kubernetes JSON documents the builders read.

The views read the fields the controller uses, apply the CRD defaults (so that a document that skipped
admission,
e.g. a file read by the standalone CLI, means the same thing), and never raise on a missing optional field.
Fields the API server validates (enums, required fields) are taken as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.picker import PICKER_ANNOTATION
from controller.translate.names import AIGW_GROUP, EG_GROUP, GATEWAY_GROUP, INFERENCE_GROUP, ObjKey
from controller.translate.snapshot import Obj


def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def meta(obj: Obj) -> Mapping[str, Any]:
    return _m(obj.get("metadata"))


def key_of(obj: Obj) -> ObjKey:
    md = meta(obj)
    return ObjKey(str(md.get("namespace") or "default"), str(md.get("name", "")))


def generation(obj: Obj) -> int:
    return int(meta(obj).get("generation") or 0)


def uid(obj: Obj) -> str:
    return str(meta(obj).get("uid") or "")


def creation(obj: Obj) -> str:
    """``creationTimestamp`` (RFC 3339, so it sorts as a string); empty when unknown."""
    return str(meta(obj).get("creationTimestamp") or "")


def labels(obj: Obj) -> Mapping[str, str]:
    return _m(meta(obj).get("labels"))


def spec(obj: Obj) -> Mapping[str, Any]:
    return _m(obj.get("spec"))


def age_order(obj: Obj) -> tuple[str, str, str]:
    """Oldest first, then by ``namespace/name``: Gateway API's tie-break order."""
    k = key_of(obj)
    return (creation(obj), k.namespace, k.name)


# --- AIGatewayRoute


@dataclass(frozen=True, slots=True)
class TargetRef:
    group: str
    kind: str
    name: str
    section_name: str | None

    @property
    def is_gateway(self) -> bool:
        return self.group == GATEWAY_GROUP and self.kind == "Gateway"


@dataclass(frozen=True, slots=True)
class RouteBackendRef:
    kind: str
    """``AIServiceBackend`` or ``InferencePool``."""
    name: str
    weight: int


@dataclass(frozen=True, slots=True)
class RouteRuleView:
    matches: tuple[tuple[tuple[str, str, str], ...], ...]
    """Each match: its headers as ``(type, name, value)``."""
    backend_refs: tuple[RouteBackendRef, ...]


@dataclass(frozen=True, slots=True)
class CostView:
    metadata_key: str
    type: str
    cel: str | None


@dataclass(frozen=True, slots=True)
class RouteView:
    key: ObjKey
    generation: int
    target_refs: tuple[TargetRef, ...]
    schema_name: str
    schema_version: str | None
    rules: tuple[RouteRuleView, ...]
    filter_type: str
    replicas: int | None
    resources: Mapping[str, Any] | None
    costs: tuple[CostView, ...]

    @classmethod
    def of(cls, obj: Obj) -> RouteView:
        s = spec(obj)
        targets = tuple(
            TargetRef(
                group=str(t.get("group", GATEWAY_GROUP)),
                kind=str(t.get("kind", "Gateway")),
                name=str(t.get("name", "")),
                section_name=t.get("sectionName"),
            )
            for t in map(_m, _l(s.get("targetRefs")))
        )
        rules = []
        for r in map(_m, _l(s.get("rules"))):
            matches = tuple(
                tuple(
                    (str(h.get("type", "Exact")), str(h.get("name", "")), str(h.get("value", "")))
                    for h in map(_m, _l(m.get("headers")))
                )
                for m in map(_m, _l(r.get("matches")))
            )
            refs = tuple(
                RouteBackendRef(
                    kind=str(b.get("kind") or "AIServiceBackend"),
                    name=str(b.get("name", "")),
                    weight=int(b["weight"]) if b.get("weight") is not None else 1,
                )
                for b in map(_m, _l(r.get("backendRefs")))
            )
            rules.append(RouteRuleView(matches=matches, backend_refs=refs))
        fc = _m(s.get("filterConfig"))
        ep = _m(fc.get("externalProcessor"))
        schema = _m(s.get("schema"))
        return cls(
            key=key_of(obj),
            generation=generation(obj),
            target_refs=targets,
            schema_name=str(schema.get("name", "OpenAI")),
            schema_version=schema.get("version"),
            rules=tuple(rules),
            filter_type=str(fc.get("type") or "ExternalProcessor"),
            replicas=int(ep["replicas"]) if ep.get("replicas") is not None else None,
            resources=_m(ep["resources"]) if ep.get("resources") else None,
            costs=tuple(
                CostView(
                    metadata_key=str(c.get("metadataKey", "")), type=str(c.get("type", "")), cel=c.get("cel")
                )
                for c in map(_m, _l(s.get("llmRequestCosts")))
            ),
        )

    def gateway_keys(self) -> tuple[ObjKey, ...]:
        """The Gateways this route targets (same namespace), in order, without duplicates."""
        out: list[ObjKey] = []
        for t in self.target_refs:
            k = ObjKey(self.key.namespace, t.name)
            if t.is_gateway and k not in out:
                out.append(k)
        return tuple(out)

    def refs_of_kind(self, kind: str) -> tuple[ObjKey, ...]:
        """Distinct backendRefs of ``kind`` across all rules, in first-use order."""
        out: list[ObjKey] = []
        for rule in self.rules:
            for ref in rule.backend_refs:
                k = ObjKey(self.key.namespace, ref.name)
                if ref.kind == kind and k not in out:
                    out.append(k)
        return tuple(out)


# --- AIServiceBackend


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A Gateway API ``BackendObjectReference`` with defaults applied."""

    group: str
    kind: str
    name: str
    namespace: str
    port: int | None

    @property
    def key(self) -> ObjKey:
        return ObjKey(self.namespace, self.name)

    @property
    def is_service(self) -> bool:
        return self.group in ("", "core") and self.kind == "Service"

    @property
    def is_eg_backend(self) -> bool:
        return self.group == EG_GROUP and self.kind == "Backend"

    def to_json(self) -> dict[str, Any]:
        """As an HTTPRoute backendRef."""
        out: dict[str, Any] = {
            "group": self.group,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
        }
        if self.port is not None:
            out["port"] = self.port
        return out


@dataclass(frozen=True, slots=True)
class BackendView:
    key: ObjKey
    generation: int
    labels: Mapping[str, str]
    schema_name: str
    schema_version: str | None
    backend_ref: ObjectRef
    security_policy: tuple[str, str, str] | None
    """``(group, kind, name)`` of ``backendSecurityPolicyRef``."""
    timeouts: Mapping[str, Any] | None

    @classmethod
    def of(cls, obj: Obj) -> BackendView:
        s = spec(obj)
        k = key_of(obj)
        br = _m(s.get("backendRef"))
        bsp = _m(s.get("backendSecurityPolicyRef"))
        schema = _m(s.get("schema"))
        return cls(
            key=k,
            generation=generation(obj),
            labels=labels(obj),
            schema_name=str(schema.get("name", "OpenAI")),
            schema_version=schema.get("version"),
            backend_ref=ObjectRef(
                group=str(br.get("group") or ""),
                kind=str(br.get("kind") or "Service"),
                name=str(br.get("name", "")),
                namespace=str(br.get("namespace") or k.namespace),
                port=int(br["port"]) if br.get("port") is not None else None,
            ),
            security_policy=(
                (
                    str(bsp.get("group") or AIGW_GROUP),
                    str(bsp.get("kind") or "BackendSecurityPolicy"),
                    str(bsp.get("name", "")),
                )
                if bsp.get("name")
                else None
            ),
            timeouts=_m(s["timeouts"]) if s.get("timeouts") else None,
        )


# --- BackendSecurityPolicy


@dataclass(frozen=True, slots=True)
class SecretUse:
    """A Secret key a policy needs, and the file name the ext_proc reads it from."""

    secret: ObjKey
    key: str


@dataclass(frozen=True, slots=True)
class PolicyView:
    key: ObjKey
    generation: int
    type: str
    region: str
    profile: str
    uses: tuple[SecretUse, ...]
    """The Secret keys this policy reads (empty for an unsupported or malformed policy)."""
    unsupported: str | None
    """Why the policy can't be used, or ``None``."""
    unsupported_reason: str = "UnsupportedValue"
    """The ``Accepted=False`` reason: ``Unsupported`` for a valid policy whose method is not implemented."""

    @classmethod
    def of(cls, obj: Obj) -> PolicyView:
        s = spec(obj)
        k = key_of(obj)
        typ = str(s.get("type", ""))
        region, profile, unsupported, reason = "", "default", None, "UnsupportedValue"
        uses: tuple[SecretUse, ...] = ()
        if typ == "APIKey":
            ref = _m(_m(s.get("apiKey")).get("secretRef"))
            uses = (
                SecretUse(
                    ObjKey(str(ref.get("namespace") or k.namespace), str(ref.get("name", ""))), "apiKey"
                ),
            )
        elif typ == "AWSCredentials":
            aws = _m(s.get("awsCredentials"))
            region = str(aws.get("region", ""))
            cf = _m(aws.get("credentialsFile"))
            if cf:
                ref = _m(cf.get("secretRef"))
                profile = str(cf.get("profile") or "default")
                uses = (
                    SecretUse(
                        ObjKey(str(ref.get("namespace") or k.namespace), str(ref.get("name", ""))),
                        "credentials",
                    ),
                )
            elif aws.get("oidcExchangeToken"):
                unsupported, reason = (
                    "awsCredentials.oidcExchangeToken is not supported yet: this controller does not "
                    "exchange OIDC tokens for AWS credentials (STS AssumeRoleWithWebIdentity); use "
                    "credentialsFile",
                    "Unsupported",
                )
            else:
                unsupported = "awsCredentials needs credentialsFile or oidcExchangeToken"
        elif typ == "AzureCredentials":
            unsupported, reason = (
                "AzureCredentials is not supported yet: this controller does not exchange the client secret "
                "for access tokens; for an Azure OpenAI resource key use type APIKey (sent as api-key)",
                "Unsupported",
            )
        else:
            unsupported = f"unsupported type {typ!r}"
        return cls(
            key=k,
            generation=generation(obj),
            type=typ,
            region=region,
            profile=profile,
            uses=uses,
            unsupported=unsupported,
            unsupported_reason=reason,
        )


# --- InferencePool / InferenceModel


@dataclass(frozen=True, slots=True)
class PoolView:
    key: ObjKey
    generation: int
    selector: Mapping[str, str]
    target_port: int
    ext_group: str
    ext_kind: str
    ext_name: str
    picker_annotation: str | None = None
    """The raw endpoint-picker annotation (``api.picker.PICKER_ANNOTATION``), if set."""

    @classmethod
    def of(cls, obj: Obj) -> PoolView:
        s = spec(obj)
        ext = _m(s.get("extensionRef"))
        return cls(
            key=key_of(obj),
            generation=generation(obj),
            selector={str(a): str(b) for a, b in _m(s.get("selector")).items()},
            target_port=int(s.get("targetPortNumber") or 0),
            ext_group=str(ext.get("group") or ""),
            ext_kind=str(ext.get("kind") or "Service"),
            ext_name=str(ext.get("name", "")),
            picker_annotation=_opt_str(_m(meta(obj).get("annotations")).get(PICKER_ANNOTATION)),
        )

    def selects(self, backend_labels: Mapping[str, str]) -> bool:
        """Like a Service selector: every pair must be present (an empty selector selects everything)."""
        return all(backend_labels.get(k) == v for k, v in self.selector.items())


@dataclass(frozen=True, slots=True)
class ModelView:
    key: ObjKey
    generation: int
    order: tuple[str, str, str]
    model_name: str
    criticality: str | None
    targets: tuple[tuple[str, int | None], ...]
    pool_group: str
    pool_kind: str
    pool_name: str

    @classmethod
    def of(cls, obj: Obj) -> ModelView:
        s = spec(obj)
        pr = _m(s.get("poolRef"))
        return cls(
            key=key_of(obj),
            generation=generation(obj),
            order=age_order(obj),
            model_name=str(s.get("modelName", "")),
            criticality=s.get("criticality"),
            targets=tuple(
                (str(t.get("name", "")), int(t["weight"]) if t.get("weight") is not None else None)
                for t in map(_m, _l(s.get("targetModels")))
            ),
            pool_group=str(pr.get("group") or INFERENCE_GROUP),
            pool_kind=str(pr.get("kind") or "InferencePool"),
            pool_name=str(pr.get("name", "")),
        )

    @property
    def pool_key(self) -> ObjKey:
        return ObjKey(self.key.namespace, self.pool_name)


# --- Service / EG Backend


def service_ports(obj: Obj) -> tuple[int, ...]:
    return tuple(int(p.get("port", 0)) for p in map(_m, _l(spec(obj).get("ports"))))


@dataclass(frozen=True, slots=True)
class EgEndpoint:
    kind: str
    """``ip``, ``fqdn`` or ``unix``."""
    address: str
    port: int | None


def eg_backend_endpoints(obj: Obj) -> tuple[EgEndpoint, ...]:
    out: list[EgEndpoint] = []
    for ep in map(_m, _l(spec(obj).get("endpoints"))):
        if ep.get("ip"):
            ip = _m(ep["ip"])
            out.append(EgEndpoint("ip", str(ip.get("address", "")), int(ip.get("port") or 0)))
        elif ep.get("fqdn"):
            f = _m(ep["fqdn"])
            out.append(EgEndpoint("fqdn", str(f.get("hostname", "")), int(f.get("port") or 0)))
        elif ep.get("unix"):
            out.append(EgEndpoint("unix", str(_m(ep["unix"]).get("path", "")), None))
    return tuple(out)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
