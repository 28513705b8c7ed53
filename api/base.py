"""Base model with Kubernetes JSON conventions (camelCase names, unknown fields rejected)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

READ_CONTEXT: Final[Mapping[str, bool]] = {"read": True}
"""Validation context of a read: CEL and list-map rules are skipped (see ``TopLevelObject.read``)."""


def is_read(context: Any) -> bool:
    """Whether a validation runs with ``READ_CONTEXT``."""
    return isinstance(context, Mapping) and context.get("read") is True


class KubeModel(BaseModel):
    """A pydantic model whose JSON names are Kubernetes camelCase.

    Python attributes are snake_case; ``model_validate`` accepts either spelling, and ``to_json_dict`` emits
    camelCase with unset optional fields left out, the way the API server stores objects. Unknown fields are
    an error so that a typo in a manifest names the field path instead of being silently dropped.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
        validate_default=True,
        use_attribute_docstrings=True,
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The object as a camelCase JSON-compatible dict, without fields that are ``None``."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
