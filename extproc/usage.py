"""Token usage from OpenAI responses: a whole JSON body, or an SSE stream fed chunk by chunk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    total_tokens: int


def _from_usage_object(obj: Any) -> Usage | None:
    if not isinstance(obj, dict):
        return None
    values = [obj.get("prompt_tokens"), obj.get("completion_tokens"), obj.get("total_tokens")]
    ints = [v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None for v in values]
    if all(v is None for v in ints):
        return None
    inp, out, total = (v or 0 for v in ints)
    return Usage(input_tokens=inp, output_tokens=out, total_tokens=total or inp + out)


def usage_from_json(body: bytes) -> Usage | None:
    """``usage`` of a JSON response body, or None if there is none (or the body is not JSON)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return _from_usage_object(doc.get("usage")) if isinstance(doc, dict) else None


class SSEUsageParser:
    """Feed SSE bytes as they pass; ``usage`` holds the LAST usage seen, ``events`` counts content events.

    The last, because servers may send usage on many chunks (vLLM's ``continuous_usage_stats`` sends running
    totals on every chunk): the final one is the total. A chunk whose usage is ``null`` or unusable keeps the
    previous one. Lines may be split across chunks; only complete ``data:`` lines that mention ``"usage"`` are
    decoded, so plain content chunks cost a substring search.
    """

    __slots__ = ("_pending", "events", "usage")

    def __init__(self) -> None:
        self._pending = b""
        self.usage: Usage | None = None
        self.events = 0

    def feed(self, chunk: bytes) -> None:
        data = self._pending + chunk if self._pending else chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > 1 << 20:  # a runaway line without newline: stop holding it
            self._pending = b""
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                continue
            self.events += 1
            if b'"usage"' not in payload:
                continue
            try:
                doc = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict):
                self.usage = _from_usage_object(doc.get("usage")) or self.usage
