"""OpenAI-style error bodies: ``{"error": {"message", "type", "code"}}``."""

from __future__ import annotations

import zlib
from typing import Final

import orjson

INVALID_REQUEST: Final = "invalid_request_error"
NOT_FOUND: Final = "not_found_error"
UPSTREAM: Final = "upstream_error"
UNAVAILABLE: Final = "service_unavailable"
RATE_LIMITED: Final = "rate_limit_exceeded"

_GZIP_MAGIC: Final = b"\x1f\x8b"
_MAX_ERROR_BYTES: Final = 64 * 1024
_MAX_QUOTED: Final = 256


def quoted(value: str) -> str:
    """``repr(value)`` for an error message, cut to its first 256 characters: a client's string (a model name
    of any length) is not sent back or logged whole."""
    if len(value) <= _MAX_QUOTED:
        return repr(value)
    return f"{value[:_MAX_QUOTED]!r}... ({len(value)} characters)"


def error_body(*, message: str, type_: str, code: str) -> bytes:
    """The serialized OpenAI error object."""
    return orjson.dumps({"error": {"message": message, "type": type_, "code": code}})


def is_openai_error(body: bytes) -> bool:
    """True when ``body`` is already JSON of the form ``{"error": {...}}`` (so it passes through
    unchanged)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)


def normalize_upstream_error(*, status: int, body: bytes) -> bytes | None:
    """The body to send instead of an upstream's non-2xx ``body``, or None when it is already
    OpenAI-shaped."""
    # gzipped although the ext_proc asked for identity: the caller drops the encoding
    plain = _gunzipped(body)
    if plain is not None:
        body = plain
    if is_openai_error(body):
        return plain  # None when it came plain: the upstream's own body passes through
    message = body.decode("utf-8", errors="replace").strip() or f"upstream answered with status {status}"
    return error_body(message=message, type_=UPSTREAM, code=str(status))


def _gunzipped(body: bytes) -> bytes | None:
    """``body`` decompressed when it is gzip (at most ``_MAX_ERROR_BYTES``: an error is short, and a bomb
    stays small), else None."""
    if not body.startswith(_GZIP_MAGIC):
        return None
    try:
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(body, _MAX_ERROR_BYTES)
    except zlib.error:
        return None


def normalize_local_reply(*, status: int, body: bytes) -> bytes | None:
    """The body to send instead of an error Envoy itself produced before any upstream was chosen (e.g. 413
    when the request exceeds its buffer limit), or None when it is already OpenAI-shaped."""
    if is_openai_error(body):
        return None
    message = body.decode("utf-8", errors="replace").strip() or f"the gateway answered with status {status}"
    if status == 413:
        return error_body(
            message=f"{message}: the request body exceeds the gateway's limit",
            type_=INVALID_REQUEST,
            code="request_too_large",
        )
    return error_body(
        message=message, type_=INVALID_REQUEST if status < 500 else UNAVAILABLE, code=str(status)
    )
