"""Turn a pydantic JSON schema into a Kubernetes structural OpenAPI v3 schema.

A structural schema (what a CRD must declare) has a ``type`` on every node, no ``$ref``, no nullable unions
and no ``additionalProperties: false``. This module inlines references, collapses ``X | None`` to ``X`` (our
models leave unset optionals out of the JSON, never send null), turns ``const`` into a one-value ``enum`` and
drops what Kubernetes rejects or does not need (titles, ``default: null``). Extensions such as
``x-kubernetes-validations`` pass through; where a field and its type both carry rules, both are kept.
"""

from __future__ import annotations

import copy
from typing import Any

JsonSchema = dict[str, Any]

_DROPPED_KEYS = frozenset({"title", "examples", "propertyNames"})
_INT_OR_STRING = "x-kubernetes-int-or-string"
_VALIDATIONS = "x-kubernetes-validations"


class NonStructuralSchemaError(ValueError):
    """The model uses a construct that has no structural equivalent (e.g. a union of two object types)."""


def to_structural(schema: JsonSchema) -> JsonSchema:
    """The structural equivalent of ``schema`` (a pydantic ``model_json_schema``, with its ``$defs``)."""
    defs: dict[str, JsonSchema] = schema.get("$defs", {})
    root = {k: v for k, v in schema.items() if k != "$defs"}
    return _convert(root, defs, "<root>")


def _convert(node: JsonSchema, defs: dict[str, JsonSchema], path: str) -> JsonSchema:
    node = _resolve(node, defs, path)
    if node.get(_INT_OR_STRING):
        return _canonical_order({k: v for k, v in node.items() if k not in _DROPPED_KEYS})
    out: JsonSchema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and isinstance(value, bool):
            continue  # false is implied by a structural schema; true would need preserve-unknown-fields
        if key == "const":
            out["enum"] = [value]
        elif key == "description":
            out[key] = _plain_text(value)
        elif key == "properties":
            out[key] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "required":
            if value:
                out[key] = list(value)
        else:
            out[key] = copy.deepcopy(value)
    if "type" not in out:
        raise NonStructuralSchemaError(f"{path}: no type in {sorted(out)}")
    return _canonical_order(out)


def _resolve(node: JsonSchema, defs: dict[str, JsonSchema], path: str) -> JsonSchema:
    """Inline ``$ref`` and collapse ``anyOf``/``allOf`` wrappers until the node stands on its own."""
    while True:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            node = _merge(defs[name], {k: v for k, v in node.items() if k != "$ref"})
        elif "allOf" in node and len(node["allOf"]) == 1:
            node = _merge(node["allOf"][0], {k: v for k, v in node.items() if k != "allOf"})
        elif "anyOf" in node and not node.get(_INT_OR_STRING):
            branches = [b for b in node["anyOf"] if b != {"type": "null"}]
            if len(branches) != 1:
                raise NonStructuralSchemaError(f"{path}: a union of {len(branches)} types is not structural")
            node = _merge(branches[0], {k: v for k, v in node.items() if k != "anyOf"})
        else:
            return node


def _merge(base: JsonSchema, override: JsonSchema) -> JsonSchema:
    """``base`` with ``override``'s keys on top; CEL rules of both are kept, the type's first."""
    merged = {**base, **override}
    if _VALIDATIONS in base and _VALIDATIONS in override:
        merged[_VALIDATIONS] = [*base[_VALIDATIONS], *override[_VALIDATIONS]]
    return merged


def _plain_text(description: str) -> str:
    # Docstrings wrap lines and use reStructuredText literals; kubectl explain wants flowing plain text.
    paragraphs = description.replace("``", "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _canonical_order(node: JsonSchema) -> JsonSchema:
    # Description first, then the other keys alphabetically, so that the YAML does not depend on merge order.
    return {k: node[k] for k in sorted(node, key=lambda k: (k != "description", k))}
