"""metav1 types: object metadata, owner references, timestamps and status conditions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from api.base import KubeModel


def _as_utc(value: datetime) -> datetime:
    # Kubernetes timestamps are UTC; a naive datetime from Python code is taken to be UTC already.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with whole seconds, the form metav1.Time serialises to (``2025-01-02T03:04:05Z``)."""
    return _as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


Time = Annotated[datetime, AfterValidator(_as_utc), PlainSerializer(format_time, return_type=str)]
"""metav1.Time: a timezone-aware UTC datetime, serialised with whole seconds."""


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """An equality selector, like a Service's: every pair of ``selector`` is in ``labels`` (an empty selector
    selects everything)."""
    return all(labels.get(k) == v for k, v in selector.items())


class OwnerReference(KubeModel):
    """Identifies an owning object; the garbage collector deletes the dependent when its owner goes."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(KubeModel):
    """The subset of metav1.ObjectMeta this project reads. Other metadata keys (managedFields, finalizers,
    ...) are kept as they are, not rejected: the API server owns them."""

    model_config = ConfigDict(extra="allow")

    name: str = ""
    namespace: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: Time | None = None
    deletion_timestamp: Time | None = None
    owner_references: list[OwnerReference] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _omit_empty_collections(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An empty labels map in an apply patch would claim ownership of the field: leave empty ones out.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v not in ({}, [], "")}


class ConditionStatus(StrEnum):
    """Status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(KubeModel):
    """metav1.Condition: one aspect of the current state of an object, with the rules of the Kubernetes API
    conventions (CamelCase type and reason, positive polarity, observedGeneration)."""

    type: Annotated[str, Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)]
    """Type of condition in CamelCase, for example Accepted or ResolvedRefs."""
    status: ConditionStatus
    """Status of the condition: True, False or Unknown."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The .metadata.generation the condition was set for."""
    last_transition_time: Time
    """When the condition last changed from one status to another."""
    reason: Annotated[str, Field(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)]
    """A programmatic identifier in CamelCase for the condition's last transition."""
    message: Annotated[str, Field(max_length=32768)]
    """A human-readable message with details about the transition."""


PARTIALLY_INVALID = "PartiallyInvalid"
"""Gateway API's route condition of negative polarity: True means part of the route was dropped."""
NEGATIVE_POLARITY = frozenset({PARTIALLY_INVALID})
"""Condition types whose True status reports a problem."""


@dataclass(frozen=True, slots=True)
class DesiredCondition:
    """A condition as a builder decides it: ``Condition`` without ``lastTransitionTime`` and
    ``observedGeneration``, which the status writer stamps when it merges the condition into the object."""

    type: str
    status: ConditionStatus
    reason: str
    message: str

    @property
    def ok(self) -> bool:
        """No problem reported: True for the positive-polarity types, False for ``NEGATIVE_POLARITY``."""
        good = ConditionStatus.FALSE if self.type in NEGATIVE_POLARITY else ConditionStatus.TRUE
        return self.status == good
