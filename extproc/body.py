"""The request body: parse the OpenAI JSON for ``model`` and ``stream``, and rewrite ``model``.

The rewrite splices the new value into the original bytes instead of re-serializing the document: every other
byte reaches the model server as the client sent it, so integers beyond 64 bits, float spellings (``1.10``,
``1e400``), escapes and key order are kept exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class ParsedBody:
    model: str
    stream: bool
    document: dict[str, Any]
    raw: bytes
    """The body as received; ``with_model`` edits these bytes."""


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
        # orjson refuses some valid JSON (numbers beyond a double, lone surrogate escapes): the standard
        # parser decides, strict about what JSON is not (NaN, Infinity)
        doc = _strict_json(raw, orjson_error=e)
    if not isinstance(doc, dict):
        raise BadBodyError("the request body must be a JSON object")
    model = doc.get("model")
    if not isinstance(model, str):
        raise BadBodyError("the 'model' field is missing or not a string")
    if not model:
        raise BadBodyError("the 'model' field is empty")
    return ParsedBody(model=model, stream=doc.get("stream") is True, document=doc, raw=raw)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strict_json(raw: bytes, *, orjson_error: orjson.JSONDecodeError) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)  # UTF-8 only, no BOM
    except (ValueError, RecursionError):
        # UnicodeDecodeError and JSONDecodeError are ValueErrors
        msg = f"the request body is not valid JSON: {orjson_error.msg} at position {orjson_error.pos}"
        raise BadBodyError(msg) from None


def with_model(parsed: ParsedBody, model: str) -> bytes:
    """``parsed.raw`` with the value of every top-level ``model`` key replaced by ``model``; every other byte
    unchanged. (Every, not the last: with duplicate keys, parsers disagree on which one counts.)"""
    raw = parsed.raw
    new_value = orjson.dumps(model)
    out: list[bytes] = []
    last = 0
    for start, end in _top_level_values(raw, key="model"):
        out.append(raw[last:start])
        out.append(new_value)
        last = end
    out.append(raw[last:])
    return b"".join(out)


_WS = b" \t\n\r"


def _skip_ws(raw: bytes, i: int) -> int:
    while i < len(raw) and raw[i] in _WS:
        i += 1
    return i


def _string_end(raw: bytes, i: int) -> int:
    """``raw[i]`` is an opening quote: the index just past the closing one."""
    i += 1
    while True:
        c = raw[i]
        if c == 0x5C:  # backslash: skip the escaped byte (\uXXXX's hex digits need no care)
            i += 2
        elif c == 0x22:
            return i + 1
        else:
            i += 1


def _value_end(raw: bytes, i: int) -> int:
    """``raw[i]`` starts a JSON value: the index just past it."""
    c = raw[i]
    if c == 0x22:
        return _string_end(raw, i)
    if c in b"{[":
        depth = 0
        while True:
            c = raw[i]
            if c == 0x22:
                i = _string_end(raw, i)
                continue
            if c in b"{[":
                depth += 1
            elif c in b"}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while i < len(raw) and raw[i] not in b",}]" and raw[i] not in _WS:  # number, true, false, null
        i += 1
    return i


def _top_level_values(raw: bytes, *, key: str) -> list[tuple[int, int]]:
    """Byte spans of the values of ``key`` in the top-level object of ``raw`` (already known to be valid JSON
    holding an object)."""
    spans: list[tuple[int, int]] = []
    i = _skip_ws(raw, raw.index(b"{")) + 1
    while True:
        i = _skip_ws(raw, i)
        if raw[i] == 0x7D:  # }
            return spans
        key_end = _string_end(raw, i)
        name = raw[i:key_end]
        is_key = name == b'"' + key.encode() + b'"' or (b"\\" in name and json.loads(name) == key)
        i = _skip_ws(raw, key_end) + 1  # past ':'
        i = _skip_ws(raw, i)
        end = _value_end(raw, i)
        if is_key:
            spans.append((i, end))
        i = _skip_ws(raw, end)
        if raw[i] == 0x2C:  # ,
            i += 1
