"""The pydantic -> structural schema conversion handles the constructs our models use, and refuses others."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from api.base import KubeModel
from api.cel import CelRule, CelValidatedModel
from api.structural import NonStructuralSchemaError, to_structural

ON_TYPE = CelRule(rule="self.a != 'x'", message="a must not be x", holds=lambda v: v.a != "x")
ON_FIELD = CelRule(rule="self.a != 'y'", message="a must not be y", holds=lambda v: v.a != "y")


class Inner(CelValidatedModel):
    """Inner object.

    Second paragraph, wrapped
    over lines."""

    CEL_RULES = (ON_TYPE,)

    a: str = "a"
    """The ``a`` field."""


class Outer(KubeModel):
    inner: Annotated[Inner, ON_FIELD] | None = None
    """The inner object."""
    items: Annotated[list[int], Field(max_length=3)] = Field(default_factory=list)


class Union(KubeModel):
    either: Inner | Outer


def test_refs_inlined_optional_collapsed_rules_of_type_and_field_kept() -> None:
    schema = to_structural(Outer.model_json_schema(by_alias=True))
    inner = schema["properties"]["inner"]
    assert inner["type"] == "object"
    assert inner["description"] == "The inner object."
    assert [r["message"] for r in inner["x-kubernetes-validations"]] == ["a must not be x", "a must not be y"]
    assert inner["properties"]["a"] == {"description": "The a field.", "default": "a", "type": "string"}
    assert schema["properties"]["items"] == {"items": {"type": "integer"}, "maxItems": 3, "type": "array"}
    assert "additionalProperties" not in schema and "title" not in schema


def test_descriptions_flow_but_keep_paragraphs() -> None:
    schema = to_structural(Inner.model_json_schema())
    assert schema["description"] == "Inner object.\n\nSecond paragraph, wrapped over lines."


def test_rules_are_enforced_in_python_too() -> None:
    with pytest.raises(ValueError, match="a must not be x"):
        Outer.model_validate({"inner": {"a": "x"}})
    with pytest.raises(ValueError, match="a must not be y"):
        Outer.model_validate({"inner": {"a": "y"}})


def test_unions_of_objects_are_refused_with_the_path() -> None:
    with pytest.raises(NonStructuralSchemaError, match=r"<root>\.either"):
        to_structural(Union.model_json_schema())
