"""Every top-level kind the project models, and parsing of an object of any of them by apiVersion and kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.envoygateway import Backend
from api.errors import FieldError, InvalidObjectError
from api.inference import InferenceModel, InferencePool
from api.objects import TopLevelObject
from api.v1alpha1 import AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy

CRD_KINDS: tuple[type[TopLevelObject], ...] = (
    AIGatewayRoute,
    AIServiceBackend,
    BackendSecurityPolicy,
    InferencePool,
    InferenceModel,
)
"""The kinds whose CRDs this project generates and installs."""

ALL_KINDS: tuple[type[TopLevelObject], ...] = (*CRD_KINDS, Backend)

_BY_TYPE: dict[tuple[str, str], type[TopLevelObject]] = {
    (k.KIND_INFO.api_version, k.KIND_INFO.kind): k for k in ALL_KINDS
}


def kind_for(api_version: str, kind: str) -> type[TopLevelObject] | None:
    """The model class of ``apiVersion``/``kind``, or None when the project does not model it."""
    return _BY_TYPE.get((api_version, kind))


def parse_object(data: Mapping[str, Any]) -> TopLevelObject:
    """Parse an object of any modelled kind; raises ``InvalidObjectError`` for unknown kinds or bad fields."""
    api_version, kind = str(data.get("apiVersion", "")), str(data.get("kind", ""))
    model = kind_for(api_version, kind)
    if model is None:
        raise InvalidObjectError(
            f"{kind or '<no kind>'}", [FieldError("kind", f"unknown kind {api_version}/{kind}")]
        )
    return model.parse(data)
