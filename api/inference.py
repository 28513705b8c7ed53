"""``inference.networking.x-k8s.io/v1alpha2``: the Gateway API Inference Extension's InferencePool and
InferenceModel, as of GAIE v0.2.0, with every field, default and limit.

Deviation, on purpose: the default status condition of an InferenceModel has type ``Accepted`` (GAIE's
default says ``Ready`` although the type it documents is ``Accepted``), so that a controller setting
``Accepted`` replaces the placeholder instead of leaving a stale ``Ready=Unknown`` beside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from api.base import KubeModel
from api.cel import CelRule, ListMap
from api.corev1 import ObjectReference
from api.gatewayapi import Group, Kind, ObjectName, PortNumber
from api.meta import Condition, ConditionStatus, selects
from api.objects import KindInfo, PrinterColumn, TopLevelObject
from api.shared import TARGET_MODEL_WEIGHTS_ALL_OR_NONE, Criticality, TargetModel

GROUP = "inference.networking.x-k8s.io"
VERSION = "v1alpha2"
API_VERSION: Literal["inference.networking.x-k8s.io/v1alpha2"] = "inference.networking.x-k8s.io/v1alpha2"
CATEGORIES = ("ai-gateway", "inference")

LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_LABEL_KEY_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_KEY_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _valid_label_key(key: str) -> str:
    # The CRD cannot constrain map keys, so a label key is checked here only (as GAIE documents).
    prefix, _, name = key.rpartition("/")
    if not 0 < len(name) <= 63 or not _LABEL_KEY_NAME.match(name):
        raise ValueError(
            f"invalid label key {key!r}: the name part must be 1-63 alphanumerics, '-', '_' or '.'"
        )
    if prefix and (len(prefix) > 253 or not _LABEL_KEY_PREFIX.match(prefix)):
        raise ValueError(f"invalid label key {key!r}: the prefix must be a DNS subdomain")
    return key


LabelKey = Annotated[str, AfterValidator(_valid_label_key)]
"""A label key: an optional DNS-subdomain prefix and ``/``, then a name of at most 63 characters."""
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]
"""A label value: empty, or up to 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PENDING_REASON = "Pending"
PENDING_MESSAGE = "Waiting for controller"


def pending_condition(condition_type: str = "Accepted") -> Condition:
    """The placeholder condition the API server defaults a status to before any controller has acted."""
    return Condition(
        type=condition_type,
        status=ConditionStatus.UNKNOWN,
        reason=PENDING_REASON,
        message=PENDING_MESSAGE,
        last_transition_time=EPOCH,
    )


def _pending_conditions() -> list[Condition]:
    return [pending_condition()]


_PENDING_DEFAULT: dict[str, Any] = {"default": [pending_condition().to_json_dict()]}

Conditions = Annotated[
    list[Condition], Field(max_length=8, json_schema_extra=_PENDING_DEFAULT), ListMap("type")
]


# --- InferencePool ----------------------------------------------------------------------------------------


class ExtensionFailureMode(StrEnum):
    """What the proxy does when the endpoint picker extension does not answer."""

    FAIL_OPEN = "FailOpen"
    FAIL_CLOSE = "FailClose"


class Extension(KubeModel):
    """The endpoint picker extension that chooses a pod of the pool for each request. With our controller,
    name ``envoy-ai-gateway`` selects the gateway's built-in picker."""

    group: Group = ""
    """Group of the referent; empty (the core API group) by default."""
    kind: Kind = "Service"
    """Kind of the referent; Service by default. ExternalName Services are not supported."""
    name: ObjectName
    """Name of the referent."""
    port_number: PortNumber | None = None
    """Port of the extension's Service; implementations assume 9002 when unset and kind is Service."""
    failure_mode: ExtensionFailureMode = ExtensionFailureMode.FAIL_CLOSE
    """FailOpen: forward to an endpoint the proxy picks itself; FailClose (the default): fail the request."""


class InferencePoolSpec(KubeModel):
    """A pool of model servers that share a base model and a port, served through an endpoint picker."""

    selector: dict[LabelKey, LabelValue]
    """Labels that select the pool's members in the pool's namespace, like a Service selector. (With our
    controller: the AIServiceBackends with these labels.)"""
    target_port_number: Annotated[int, Field(ge=1, le=65535, json_schema_extra={"format": "int32"})]
    """The port the model servers listen on."""
    extension_ref: Extension
    """The endpoint picker extension."""


class PoolStatus(KubeModel):
    """The pool's status with respect to one parent (a Gateway)."""

    parent_ref: ObjectReference
    """The parent Gateway."""
    conditions: Conditions = Field(default_factory=_pending_conditions)
    """Accepted and ResolvedRefs of the pool for this parent."""


class InferencePoolStatus(KubeModel):
    """The pool's status, per parent Gateway."""

    parent: Annotated[list[PoolStatus], Field(max_length=32)] = Field(default_factory=list)
    """One entry per Gateway that routes to the pool."""


class InferencePool(TopLevelObject):
    """An InferencePool is a group of model servers (our controller: AIServiceBackends, selected by label)
    that the gateway balances requests across, picking an endpoint per request."""

    KIND_INFO = KindInfo(
        GROUP,
        VERSION,
        "InferencePool",
        "inferencepools",
        short_names=("infpool",),
        categories=CATEGORIES,
        printer_columns=(
            PrinterColumn("Target Port", "integer", ".spec.targetPortNumber", "Port of the model servers"),
            PrinterColumn("Extension", "string", ".spec.extensionRef.name", "The endpoint picker"),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
        ),
    )

    api_version: Literal["inference.networking.x-k8s.io/v1alpha2"] = API_VERSION
    kind: Literal["InferencePool"] = "InferencePool"
    spec: InferencePoolSpec
    status: InferencePoolStatus = Field(default_factory=InferencePoolStatus)

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether an object carrying ``labels`` is a member: ``spec.selector`` as an equality selector."""
        return selects(self.spec.selector, labels)


# --- InferenceModel ---------------------------------------------------------------------------------------

MODEL_NAME_IMMUTABLE = CelRule(rule="self == oldSelf", message="modelName is immutable")


class PoolObjectReference(KubeModel):
    """A reference to an InferencePool in the same namespace."""

    group: Group = GROUP
    """Group of the referent."""
    kind: Kind = "InferencePool"
    """Kind of the referent."""
    name: ObjectName
    """Name of the referent."""


class InferenceModelSpec(KubeModel):
    """A model name clients ask for, the pool that serves it, its criticality and its target models."""

    model_name: Annotated[str, Field(min_length=1, max_length=256), MODEL_NAME_IMMUTABLE]
    """The name clients send as the body's model. Unique within a pool (the oldest InferenceModel wins)."""
    criticality: Criticality | None = None
    """Critical, Standard or Sheddable; unset is treated as Standard."""
    target_models: Annotated[list[TargetModel], Field(max_length=10), TARGET_MODEL_WEIGHTS_ALL_OR_NONE] = (
        Field(default_factory=list)
    )
    """The model names requests are rewritten to, drawn by weight; empty means modelName itself."""
    pool_ref: PoolObjectReference
    """The InferencePool that serves this model."""


class InferenceModelStatus(KubeModel):
    """The model's status."""

    conditions: Conditions = Field(default_factory=_pending_conditions)
    """Accepted (False with reason ModelNameInUse when another model of the pool has the same name)."""


class InferenceModel(TopLevelObject):
    """An InferenceModel is a model name that clients use, served by an InferencePool, with a criticality
    and weighted target models (such as LoRA adapters) the name is rewritten to."""

    KIND_INFO = KindInfo(
        GROUP,
        VERSION,
        "InferenceModel",
        "inferencemodels",
        short_names=("infmodel",),
        categories=CATEGORIES,
        printer_columns=(
            PrinterColumn("Model Name", "string", ".spec.modelName"),
            PrinterColumn("Inference Pool", "string", ".spec.poolRef.name"),
            PrinterColumn("Criticality", "string", ".spec.criticality"),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
        ),
    )

    api_version: Literal["inference.networking.x-k8s.io/v1alpha2"] = API_VERSION
    kind: Literal["InferenceModel"] = "InferenceModel"
    spec: InferenceModelSpec
    status: InferenceModelStatus = Field(default_factory=InferenceModelStatus)
