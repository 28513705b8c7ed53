"""The request body: parse the OpenAI JSON for ``model`` and ``stream``, and rewrite ``model``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class ParsedBody:
    model: str
    stream: bool
    document: dict[str, Any]


class BadBodyError(Exception):
    """The body is not a JSON object with a non-empty string ``model``; the message is safe to show the
    client."""


def parse_request_body(raw: bytes) -> ParsedBody:
    """Parse ``raw``; raise BadBodyError (never anything else) when it is unusable."""
    if not raw:
        raise BadBodyError("the request body is empty; expected a JSON object with a 'model' field")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadBodyError(f"the request body is not valid JSON: {e.msg} at position {e.pos}") from None
    if not isinstance(doc, dict):
        raise BadBodyError("the request body must be a JSON object")
    model = doc.get("model")
    if not isinstance(model, str):
        raise BadBodyError("the 'model' field is missing or not a string")
    if not model:
        raise BadBodyError("the 'model' field is empty")
    return ParsedBody(model=model, stream=doc.get("stream") is True, document=doc)


def with_model(parsed: ParsedBody, model: str) -> bytes:
    """The body re-serialized with ``model`` replaced (other fields kept, order preserved)."""
    doc = dict(parsed.document)
    doc["model"] = model
    return orjson.dumps(doc)
