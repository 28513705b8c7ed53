"""The shape every top-level Kubernetes kind shares, its CRD names, and parsing from API server dicts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from pydantic import ValidationError

from api.base import KubeModel
from api.errors import InvalidObjectError, field_errors
from api.meta import ObjectMeta


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


class TopLevelObject(KubeModel):
    """A namespaced top-level object: ``apiVersion``, ``kind``, ``metadata``; subclasses add spec and status
    and set ``KIND_INFO``."""

    KIND_INFO: ClassVar[KindInfo]

    api_version: str
    kind: str
    metadata: ObjectMeta

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        """Parse an object as the API server or a manifest gives it.

        Raises ``InvalidObjectError`` naming every broken rule with its field path (``spec.rules[0]...``).
        """
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            meta = data.get("metadata") or {}
            name = f"{meta.get('namespace') or ''}/{meta.get('name') or '<unnamed>'}".lstrip("/")
            raise InvalidObjectError(f"{cls.KIND_INFO.kind} {name}", field_errors(e)) from e

    @property
    def key(self) -> str:
        """``<namespace>/<name>``, the key of the object in caches and work queues."""
        return f"{self.metadata.namespace}/{self.metadata.name}"
