"""The shape every top-level Kubernetes kind shares, its API names, and parsing from API server dicts.

Two ways in: ``parse`` (strict: unknown fields and broken CEL rules are errors, for manifests nobody has
validated yet) and ``read`` (lenient: for objects the API server has already admitted, such as the
controller's cache).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple, Self

from pydantic import ValidationError

from api.base import READ_CONTEXT, KubeModel
from api.errors import InvalidObjectError, field_errors
from api.meta import ObjectMeta

Obj = dict[str, Any]
"""A Kubernetes object as the JSON dict the API server returns (camelCase keys)."""


class ObjKey(NamedTuple):
    """``namespace/name`` of a namespaced object."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def dotted(self) -> str:
        """``name.namespace``: how the filter config names backends and pools."""
        return f"{self.name}.{self.namespace}"

    @classmethod
    def parse(cls, key: str) -> ObjKey:
        """From ``namespace/name``."""
        namespace, _, name = key.partition("/")
        return cls(namespace, name)


@dataclass(frozen=True)
class PrinterColumn:
    """An ``additionalPrinterColumns`` entry: one column of ``kubectl get``."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class KindInfo:
    """Names and presentation of a kind in the API: what its CRD declares."""

    group: str
    version: str
    kind: str
    plural: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = field(default=())

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def matches(self, group: str, kind: str) -> bool:
        """Whether a reference's ``group`` and ``kind`` name this kind (its group read by ``core_group``)."""
        return core_group(group) == self.group and kind == self.kind


def core_group(group: str) -> str:
    """``group`` as the kinds' ``KindInfo`` spell it: a reference may name the core API group ``""`` or, as
    Gateway API implementations also accept, ``"core"``."""
    return "" if group == "core" else group


class TopLevelObject(KubeModel):
    """A namespaced top-level object: ``apiVersion``, ``kind``, ``metadata``; subclasses add spec and status
    and set ``KIND_INFO``."""

    KIND_INFO: ClassVar[KindInfo]

    api_version: str
    kind: str
    metadata: ObjectMeta

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        """Parse an object as a manifest gives it: unknown fields and broken CEL rules are errors.

        Raises ``InvalidObjectError`` naming every broken rule with its field path (``spec.rules[0]...``).
        """
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise cls._invalid(data, e) from e

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Self:
        """Read an object the API server has already admitted: unknown fields (a newer CRD, managedFields)
        are dropped, CEL and list-map rules are not run again, and ``status`` is not read (the model's is the
        default). Types, enums, required fields and defaults apply as in ``parse``.

        Raises ``InvalidObjectError`` when the object does not fit the model even so (a CRD other than ours).
        """
        try:
            body = {k: v for k, v in data.items() if k != "status"}
            return cls.model_validate(body, extra="ignore", context=READ_CONTEXT)
        except ValidationError as e:
            raise cls._invalid(data, e) from e

    @classmethod
    def _invalid(cls, data: Mapping[str, Any], error: ValidationError) -> InvalidObjectError:
        meta = data.get("metadata") or {}
        name = f"{meta.get('namespace') or ''}/{meta.get('name') or '<unnamed>'}".lstrip("/")
        return InvalidObjectError(f"{cls.KIND_INFO.kind} {name}", field_errors(error))

    @property
    def key(self) -> str:
        """``<namespace>/<name>``, the key of the object in caches and work queues."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @property
    def ref(self) -> ObjKey:
        """``(namespace, name)`` as an ``ObjKey``."""
        return ObjKey(self.metadata.namespace, self.metadata.name)


_NO_TIMESTAMP = datetime.min.replace(tzinfo=UTC)


def age_order(obj: TopLevelObject) -> tuple[datetime, str, str]:
    """Sort key of the Gateway API's conflict rule: oldest first (no timestamp: oldest), then by
    ``namespace/name``."""
    return (obj.metadata.creation_timestamp or _NO_TIMESTAMP, obj.metadata.namespace, obj.metadata.name)
