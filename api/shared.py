"""Types that the CRDs and the filter config share, so the two can never disagree on a name or a limit."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from api.base import KubeModel
from api.cel import CelRule


class APISchemaName(StrEnum):
    """Wire schema of a client request or of an upstream."""

    OPENAI = "OpenAI"
    AWS_BEDROCK = "AWSBedrock"
    AZURE_OPENAI = "AzureOpenAI"


class VersionedAPISchema(KubeModel):
    """An API schema name with an optional version (for Azure: the ``api-version`` query value)."""

    name: APISchemaName
    """Name of the API schema: OpenAI, AWSBedrock or AzureOpenAI."""
    version: Annotated[str, Field(max_length=64)] | None = None
    """Version of the API schema, if the schema has versions."""


class BackendKind(StrEnum):
    """Kind of object a route rule's backendRef points to."""

    AI_SERVICE_BACKEND = "AIServiceBackend"
    INFERENCE_POOL = "InferencePool"


class Criticality(StrEnum):
    """How important serving a model's requests is. Under load, Sheddable requests are dropped first,
    then Standard; Critical requests last."""

    CRITICAL = "Critical"
    STANDARD = "Standard"
    SHEDDABLE = "Sheddable"


class CostType(StrEnum):
    """How a request cost is computed from the response's token usage."""

    INPUT_TOKEN = "InputToken"
    OUTPUT_TOKEN = "OutputToken"
    TOTAL_TOKEN = "TotalToken"
    CEL = "CEL"


class TargetModel(KubeModel):
    """A model name the server knows (a base model or a LoRA adapter) that requests are sent to."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the adapter or base model, as the model server knows it."""
    weight: Annotated[int, Field(ge=1, le=1_000_000, json_schema_extra={"format": "int32"})] | None = None
    """Relative share of traffic: weight / sum of all weights. Set on all target models or on none."""


TARGET_MODEL_WEIGHTS_ALL_OR_NONE = CelRule(
    rule="self.all(model, has(model.weight)) || self.all(model, !has(model.weight))",
    message="Weights should be set for all models, or none of the models.",
    holds=lambda models: len({m.weight is None for m in models}) <= 1,
)
