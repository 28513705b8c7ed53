"""Descriptors of Kubernetes kinds, so that one informer and one client work for core kinds and CRDs alike.

A ``Resource`` names a kind the way the REST API does (group, version, plural) and says whether it is
namespaced; ``path`` builds its URL. The core group is ``""`` (``/api/v1``); every other group lives under
``/apis/<group>/<version>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Resource:
    """One kind of the Kubernetes API, e.g. ``Resource(group="", version="v1", plural="configmaps", ...)``."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``<group>/<version>`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, *, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The REST path of a collection (all namespaces if ``namespace`` is None), object or subresource."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        elif not self.namespaced and namespace is not None:
            raise ValueError(f"{self.kind} is cluster-scoped; no namespace expected")
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource is not None:
                base += f"/{subresource}"
        elif subresource is not None:
            raise ValueError("a subresource needs an object name")
        return base

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def object_key(obj: dict[str, Any]) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object (client-go's ``MetaNamespaceKeyFunc``)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = meta.get("name", "")
    return f"{namespace}/{name}" if namespace else str(name)


def split_key(key: str) -> tuple[str, str]:
    """``(namespace, name)`` of a key made by ``object_key``; the namespace is ``""`` when cluster-scoped."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else ("", namespace)


CONFIGMAPS = Resource(group="", version="v1", plural="configmaps", kind="ConfigMap")
SECRETS = Resource(group="", version="v1", plural="secrets", kind="Secret")
SERVICES = Resource(group="", version="v1", plural="services", kind="Service")
NAMESPACES = Resource(group="", version="v1", plural="namespaces", kind="Namespace", namespaced=False)
EVENTS = Resource(group="", version="v1", plural="events", kind="Event")
DEPLOYMENTS = Resource(group="apps", version="v1", plural="deployments", kind="Deployment")
LEASES = Resource(group="coordination.k8s.io", version="v1", plural="leases", kind="Lease")
