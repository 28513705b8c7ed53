"""The few core/v1 types our kinds embed (an object reference, container resource requirements), and the
names of the core kinds the controller reads or writes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, WithJsonSchema

from api.base import KubeModel
from api.objects import KindInfo

SERVICE = KindInfo("", "v1", "Service", "services")
"""The core and apps kinds the controller reads or writes (not modelled: the builders emit them as dicts)."""
SECRET = KindInfo("", "v1", "Secret", "secrets")
CONFIG_MAP = KindInfo("", "v1", "ConfigMap", "configmaps")
DEPLOYMENT = KindInfo("apps", "v1", "Deployment", "deployments")
POD = KindInfo("", "v1", "Pod", "pods")
"""The core kind a v1 InferencePool selects (read as dicts: only phase, readiness and podIP matter)."""

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

Quantity = Annotated[
    int | Annotated[str, Field(pattern=QUANTITY_PATTERN)],
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A resource quantity such as ``500m``, ``1Gi`` or ``2``."""


class ObjectReference(KubeModel):
    """core/v1 ObjectReference: a reference to any object; every field is optional."""

    api_version: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


class ResourceClaim(KubeModel):
    """A reference to one entry of the pod's resourceClaims."""

    name: Annotated[str, Field(min_length=1)]
    """Name of the pod's resourceClaims entry."""
    request: str | None = None
    """Name of one request of that claim; the whole claim when unset."""


class ResourceRequirements(KubeModel):
    """Compute resources of a container: requests are reserved, limits are enforced."""

    limits: dict[str, Quantity] | None = None
    """Maximum amount of each compute resource allowed."""
    requests: dict[str, Quantity] | None = None
    """Minimum amount of each compute resource required."""
    claims: Annotated[list[ResourceClaim], Field(max_length=16)] | None = None
    """Dynamically allocated resources used by the container."""
