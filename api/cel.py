"""CEL validation rules that live once and act twice: in the CRD and in Python.

A ``CelRule`` is written into the generated CRD as an ``x-kubernetes-validations`` entry, so the API server
enforces it, and, when it has a Python mirror (``holds``), it is also checked when a model is parsed, with the
same message, so that the controller and the standalone CLI reject what the API server would reject.

Use a rule on a field as ``Annotated[T, Field(...), SOME_RULE]``, or on a whole object by listing it in
``CelValidatedModel.CEL_RULES``. ``ListMap`` does the same for list-map keys (merge by key, no duplicates).

A read (``TopLevelObject.read``: an object the API server has already validated) skips both: the rules
held when the object was admitted, and re-running them on every cached version would only cost time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationInfo, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from api.base import KubeModel, is_read

VALIDATIONS_KEY = "x-kubernetes-validations"


class _AnnotatedValidator:
    """What the ``Annotated`` markers here share: pydantic runs ``enforce`` on a value after the field's own
    validation, and the field's JSON schema gets what ``extend_json_schema`` adds to it."""

    def enforce(self, value: Any) -> Any:
        raise NotImplementedError

    def extend_json_schema(self, json_schema: JsonSchemaValue) -> None:
        raise NotImplementedError

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_info_after_validator_function(self._unless_read, handler(source))

    def _unless_read(self, value: Any, info: ValidationInfo) -> Any:
        return value if is_read(info.context) else self.enforce(value)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        self.extend_json_schema(json_schema)
        return json_schema


@dataclass(frozen=True)
class CelRule(_AnnotatedValidator):
    """One ``x-kubernetes-validations`` entry and, optionally, its Python mirror.

    ``holds(value)`` returns False exactly when the API server would reject ``value`` (the parsed Python
    object at the node the rule is attached to). Rules that compare with ``oldSelf`` (transition rules) have
    no mirror: only the API server can check them.
    """

    rule: str
    message: str
    holds: Callable[[Any], bool] | None = None

    def to_schema(self) -> dict[str, str]:
        """The rule as it appears in a CRD schema."""
        return {"rule": self.rule, "message": self.message}

    def enforce(self, value: Any) -> Any:
        """Return ``value`` unchanged, or raise ``ValueError(message)`` when the mirror says it is broken."""
        if self.holds is not None and not self.holds(value):
            raise ValueError(self.message)
        return value

    def extend_json_schema(self, json_schema: JsonSchemaValue) -> None:
        """Append the rule to the node's ``x-kubernetes-validations``."""
        json_schema.setdefault(VALIDATIONS_KEY, []).append(self.to_schema())


class CelValidatedModel(KubeModel):
    """A model with object-level CEL rules (``CEL_RULES``), enforced on parse and emitted into the schema."""

    CEL_RULES: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="after")
    def _cel_rules_hold(self, info: ValidationInfo) -> Self:
        if not is_read(info.context):
            for rule in type(self).CEL_RULES:
                rule.enforce(self)
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if cls.CEL_RULES:
            target = handler.resolve_ref_schema(json_schema)
            target[VALIDATIONS_KEY] = [rule.to_schema() for rule in cls.CEL_RULES]
        return json_schema


@dataclass(frozen=True)
class ListMap(_AnnotatedValidator):
    """Marks a list as ``x-kubernetes-list-type: map`` keyed by ``keys``: the API server merges it by key
    and rejects two entries with the same key; parsing rejects them too.

    Use as ``Annotated[list[T], ListMap("k")]``.
    """

    keys: tuple[str, ...]

    def __init__(self, *keys: str) -> None:
        object.__setattr__(self, "keys", keys)

    def schema_extra(self) -> dict[str, Any]:
        return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(self.keys)}

    def enforce(self, items: list[Any]) -> list[Any]:
        """Return ``items``, or raise ``ValueError`` naming the first duplicated key."""
        seen: set[tuple[Any, ...]] = set()
        for item in items:
            key = tuple(getattr(item, _attribute(k)) for k in self.keys)
            if key in seen:
                shown = ", ".join(f"{k}={v!s}" for k, v in zip(self.keys, key, strict=True))
                raise ValueError(
                    f"duplicate entry with {shown}: the list is a map keyed by {', '.join(self.keys)}"
                )
            seen.add(key)
        return items

    def extend_json_schema(self, json_schema: JsonSchemaValue) -> None:
        """Mark the node as a list map (``schema_extra``)."""
        json_schema.update(self.schema_extra())


def broken_rules(model: BaseModel) -> list[CelRule]:
    """The object-level rules (``CEL_RULES``) that do not hold anywhere in ``model``, depth first.

    Empty for anything a strict parse or the API server admitted. A reader that skipped the rules
    (``TopLevelObject.read``) asks here instead of restating a rule.
    """
    out: list[CelRule] = []
    if isinstance(model, CelValidatedModel):
        out += [r for r in type(model).CEL_RULES if r.holds is not None and not r.holds(model)]
    for name in type(model).model_fields:
        value = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                out += broken_rules(item)
    return out


def _attribute(json_name: str) -> str:
    # Map keys are JSON (camelCase) names; the Python attributes are their snake_case spelling.
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in json_name)
