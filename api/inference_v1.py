"""The Gateway API Inference Extension's GA API, only as far as our controller reads it:
``InferencePool`` (``inference.networking.k8s.io/v1``: a pool of Pods chosen by label, one endpoint per Pod
and target port, and the endpoint picker that chooses among them) and ``InferenceObjective``
(``inference.networking.x-k8s.io/v1alpha2``: a request's priority, named by the
``x-gateway-inference-objective`` header).

The Inference Extension owns these CRDs (``hack/`` installs them from its v1.5.0 module), so fields we do not
model are ignored, not rejected. (The core Pod kind a v1 pool selects is named in ``api.corev1``.)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from api.base import KubeModel
from api.corev1 import SERVICE
from api.gatewayapi import Group, Kind, ObjectName, PortNumber
from api.headers import DEFAULT_EXTENSION_REF_NAME
from api.inference import API_VERSION as OBJECTIVE_API_VERSION
from api.inference import GROUP as OBJECTIVE_GROUP
from api.inference import VERSION as OBJECTIVE_VERSION
from api.meta import selects
from api.objects import KindInfo, TopLevelObject

GROUP = "inference.networking.k8s.io"
VERSION = "v1"
API_VERSION: Literal["inference.networking.k8s.io/v1"] = "inference.networking.k8s.io/v1"
QUALIFIED_KIND = "InferencePool.inference.networking.k8s.io"
"""How the controller tells the v1 pool from the v1alpha2 one where both are keyed by kind."""
EPP_TLS_ANNOTATION = "aigateway.envoyproxy.io/endpoint-picker-tls"
"""On a v1 InferencePool with an external endpoint picker: ``"false"`` makes the gateway speak plaintext gRPC
to it (an EPP started with ``--secure-serving=false``); ``"true"`` or absent: TLS, as the Inference
Extension requires by default (the EPP's certificate is self-signed and not verified)."""
CONTROLLER_NAME = "aigateway.envoyproxy.io/ai-gateway-controller"
"""``status.parents[].controllerName`` of the entries our controller writes (others' entries are kept)."""


class ExtensionFailureMode(StrEnum):
    """What the proxy does when the endpoint picker does not answer."""

    FAIL_OPEN = "FailOpen"
    FAIL_CLOSE = "FailClose"


class AppProtocol(StrEnum):
    """The protocol the model servers speak on their target ports."""

    HTTP = "http"
    H2C = "kubernetes.io/h2c"


class Port(KubeModel):
    """A port number."""

    model_config = ConfigDict(extra="ignore")

    number: PortNumber


class LabelSelector(KubeModel):
    """Labels a Pod must carry, all of them, to be a member of the pool."""

    model_config = ConfigDict(extra="ignore")

    match_labels: dict[str, str]


class EndpointPickerRef(KubeModel):
    """The endpoint picker (EPP) Service that chooses a Pod for each request. Name ``envoy-ai-gateway``
    selects our built-in picker instead of an external one (the v1.5.0 CRD requires a reference)."""

    model_config = ConfigDict(extra="ignore")

    group: Group = ""
    kind: Kind = "Service"
    name: ObjectName
    port: Port | None = None
    """Required by the CRD when kind is Service."""
    failure_mode: ExtensionFailureMode = ExtensionFailureMode.FAIL_CLOSE

    @property
    def is_builtin(self) -> bool:
        """True when the reference names our own picker rather than an external EPP Service."""
        return SERVICE.matches(self.group, self.kind) and self.name == DEFAULT_EXTENSION_REF_NAME


class InferencePoolSpec(KubeModel):
    """The Pods of a pool, their ports, and who picks among them."""

    model_config = ConfigDict(extra="ignore")

    selector: LabelSelector
    target_ports: Annotated[list[Port], Field(min_length=1, max_length=8)]
    """Every target port of every member Pod is one endpoint."""
    app_protocol: AppProtocol = AppProtocol.HTTP
    endpoint_picker_ref: EndpointPickerRef | None = None
    """Absent (allowed since the Inference Extension v1.6) or ``envoy-ai-gateway``: our built-in picker."""

    @property
    def uses_builtin_picker(self) -> bool:
        """True when our picker chooses the endpoint (no external EPP)."""
        return self.endpoint_picker_ref is None or self.endpoint_picker_ref.is_builtin


class InferencePool(TopLevelObject):
    """A v1 InferencePool: Pods selected by label, each ``podIP:targetPort`` an endpoint."""

    KIND_INFO = KindInfo(GROUP, VERSION, "InferencePool", "inferencepools")

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["inference.networking.k8s.io/v1"] = API_VERSION
    kind: Literal["InferencePool"] = "InferencePool"
    spec: InferencePoolSpec

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether a Pod carrying ``labels`` is a member: ``spec.selector.matchLabels`` as an equality
        selector (the pool's namespace aside)."""
        return selects(self.spec.selector.match_labels, labels)


class PoolRef(KubeModel):
    """The pool an objective applies to, in the objective's namespace."""

    model_config = ConfigDict(extra="ignore")

    group: Group = GROUP
    kind: Kind = "InferencePool"
    name: ObjectName


class InferenceObjectiveSpec(KubeModel):
    """A request's priority within a pool; a negative priority means sheddable."""

    model_config = ConfigDict(extra="ignore")

    priority: int | None = None
    pool_ref: PoolRef


class InferenceObjective(TopLevelObject):
    """An InferenceObjective, named by a request's ``x-gateway-inference-objective`` header."""

    KIND_INFO = KindInfo(OBJECTIVE_GROUP, OBJECTIVE_VERSION, "InferenceObjective", "inferenceobjectives")

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["inference.networking.x-k8s.io/v1alpha2"] = OBJECTIVE_API_VERSION
    kind: Literal["InferenceObjective"] = "InferenceObjective"
    spec: InferenceObjectiveSpec
