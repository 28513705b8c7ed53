"""The in-memory store of ``aigw run``: validated objects read from files, in the form the builders read.

The controller's builders read the api models of the kinds ``api/`` models, and JSON documents of the others.
The store gives them both: modelled kinds are validated with their ``api`` models, strictly (errors name the
file and the field path), and the validated model is kept for the builders; a Secret's ``stringData`` is
folded into base64 ``data`` the way the API server does it; and objects without a ``creationTimestamp`` get
one in input order, so that "the oldest wins" rules (duplicate ``modelName`` in a pool) pick the object that
comes first in the files.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from aigw.standalone.inputs import InputError, SourcedObject
from api.corev1 import SECRET
from api.errors import InvalidObjectError
from api.inference_v1 import QUALIFIED_KIND as V1_POOL_KIND
from api.inference_v1 import InferenceObjective
from api.inference_v1 import InferencePool as V1InferencePool
from api.kinds import kind_for
from api.objects import ObjKey, TopLevelObject

M = TypeVar("M", bound=TopLevelObject)

_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, kw_only=True)
class Store:
    """Objects by kind, then by ``namespace/name``; immutable once built."""

    objects: Mapping[str, Mapping[ObjKey, SourcedObject]]

    def of_kind(self, kind: str) -> Mapping[ObjKey, SourcedObject]:
        """All objects of ``kind``, by key."""
        return self.objects.get(kind, {})

    def bodies(self, kind: str) -> dict[ObjKey, dict[str, Any]]:
        """The JSON documents of ``kind``, by key."""
        return {k: o.body for k, o in self.of_kind(kind).items()}

    def models(self, model: type[M], *, kind: str | None = None) -> dict[ObjKey, M]:
        """The validated models of ``model``'s kind (stored under ``kind`` when given), by key."""
        objs = self.of_kind(kind or model.KIND_INFO.kind).items()
        return {k: o.model for k, o in objs if isinstance(o.model, model)}

    def where(self, kind: str, key: ObjKey) -> str:
        """``<path> (document N)`` of an object, or ``"(not in any input file)"``."""
        obj = self.of_kind(kind).get(key)
        return obj.where if obj is not None else "(not in any input file)"

    def secret_data(self) -> dict[ObjKey, dict[str, str]]:
        """Every Secret's ``data`` (base64 strings), ``stringData`` already folded in."""
        return {k: dict(o.body.get("data") or {}) for k, o in self.of_kind(SECRET.kind).items()}


def build_store(objects: Iterable[SourcedObject]) -> tuple[Store, list[InputError]]:
    """Validate and normalise ``objects`` (in input order) into a ``Store``; return it and every problem.

    Objects that fail validation are left out of the store; the caller decides whether to use a store that
    came with errors (``aigw run`` does not: it keeps serving the last good config).
    """
    by_kind: dict[str, dict[ObjKey, SourcedObject]] = {}
    errors: list[InputError] = []
    for i, obj in enumerate(objects):
        try:
            normalised = _normalised(obj, order=i)
        except InputError as e:
            errors.append(e)
            continue
        kind = V1_POOL_KIND if isinstance(normalised.model, V1InferencePool) else obj.kind
        by_kind.setdefault(kind, {})[ObjKey(obj.namespace, obj.name)] = normalised
    return Store(objects=by_kind), errors


def _normalised(obj: SourcedObject, *, order: int) -> SourcedObject:
    """``obj`` with its defaults filled in, and its model when its kind is modelled."""
    body = dict(obj.body)
    meta = dict(body.get("metadata") or {})
    created = _EPOCH + dt.timedelta(seconds=order)
    meta.setdefault("creationTimestamp", created.strftime("%Y-%m-%dT%H:%M:%SZ"))
    meta.setdefault("uid", hashlib.sha256(f"{obj.kind}/{obj.namespace}/{obj.name}".encode()).hexdigest()[:32])
    meta.setdefault("generation", 1)
    body["metadata"] = meta
    model: TopLevelObject | None = None
    api_version = str(body.get("apiVersion"))
    kind = _INFERENCE_V1_KINDS.get((api_version, obj.kind)) or kind_for(api_version, obj.kind)
    if kind is not None:
        try:
            model = kind.parse(body)
        except InvalidObjectError as e:
            raise InputError(path=obj.path, document=obj.document, reason=str(e)) from e
        if isinstance(model, V1InferencePool):
            try:
                pod_ips(model)
            except ValueError as e:
                reason = f"{obj.kind} {obj.name}: {e}"
                raise InputError(path=obj.path, document=obj.document, reason=reason) from e
    elif obj.kind == SECRET.kind:
        body["data"] = _secret_data(obj, body)
        body.pop("stringData", None)
    return replace(obj, body=body, model=model)


POD_IPS_ANNOTATION = "standalone.aigateway.envoyproxy.io/pod-ips"
"""On a v1 InferencePool in ``aigw run``'s files: the comma-separated addresses of its model servers, which
stand in for the Pods a cluster would have (each serves every ``targetPort``)."""

_INFERENCE_V1_KINDS: dict[tuple[str, str], type[TopLevelObject]] = {
    (V1InferencePool.KIND_INFO.api_version, V1InferencePool.KIND_INFO.kind): V1InferencePool,
    (InferenceObjective.KIND_INFO.api_version, InferenceObjective.KIND_INFO.kind): InferenceObjective,
}
"""The Inference Extension's kinds ``aigw run`` reads besides ours (not in ``api.kinds``: not our CRDs)."""


def pod_ips(pool: V1InferencePool) -> list[str]:
    """The pool's ``POD_IPS_ANNOTATION`` addresses, in order without repeats; ValueError names a bad one."""
    raw = pool.metadata.annotations.get(POD_IPS_ANNOTATION, "")
    out: dict[str, None] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            out[str(ipaddress.ip_address(part))] = None
        except ValueError:
            raise ValueError(
                f"annotation {POD_IPS_ANNOTATION}: {part!r} is not an IP address "
                "(expected comma-separated addresses of the pool's model servers)"
            ) from None
    return list(out)


def _secret_data(obj: SourcedObject, body: Mapping[str, Any]) -> dict[str, str]:
    data = body.get("data") or {}
    string_data = body.get("stringData") or {}
    if not isinstance(data, dict) or not isinstance(string_data, dict):
        raise InputError(
            path=obj.path, document=obj.document, reason="Secret: data and stringData must be maps"
        )
    out: dict[str, str] = {}
    for k, v in data.items():
        try:
            base64.b64decode(str(v), validate=True)
        except ValueError as e:
            raise InputError(
                path=obj.path, document=obj.document, reason=f"Secret: data.{k} is not valid base64"
            ) from e
        out[str(k)] = str(v)
    for k, v in string_data.items():
        out[str(k)] = base64.b64encode(str(v).encode()).decode()
    return out
