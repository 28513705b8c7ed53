"""Bedrock ``converse-stream`` event stream -> OpenAI ``chat.completion.chunk`` server-sent events.

``ConverseStream.feed`` takes the upstream's bytes as Envoy passes them and returns the SSE bytes to send in
their place. The stream ends, after the last chunk, with one chunk carrying ``usage`` and ``data: [DONE]``.
A frame with a bad CRC, a stream that ends inside a frame, or an exception event ends the stream with an
OpenAI error event and ``[DONE]``; bytes after that are dropped, so the client never waits on a broken stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc import errors
from extproc.providers.bedrock import FINISH_REASONS, openai_usage, usage_of
from extproc.providers.eventstream import Frame, FrameDecoder, FrameError
from extproc.usage import Usage

DONE = b"data: [DONE]\n\n"
_EXCEPTION_CODES = {
    "throttlingException": "429",
    "validationException": "400",
    "serviceUnavailableException": "503",
    "internalServerException": "500",
    "modelStreamErrorException": "424",
}
"""The HTTP status Bedrock gives each stream exception when it is not streamed; others are 502."""


def _sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class ConverseStream:
    """The translation state of one streamed response."""

    __slots__ = ("_created", "_decoder", "_done", "_finish", "_id", "_model", "_tools", "chunks", "usage")

    def __init__(self, *, model: str, id_: str, created: int) -> None:
        self._model = model
        self._id = id_
        self._created = created
        self._decoder = FrameDecoder()
        self._tools: dict[int, int] = {}
        """contentBlockIndex -> index in the OpenAI tool_calls list."""
        self._finish: str | None = None
        self._done = False
        self.usage: Usage | None = None
        self.chunks = 0
        """Content chunks emitted (text and tool-call deltas)."""

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse(
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    def _error(self, *, message: str, type_: str, code: str) -> bytes:
        self._done = True
        return b"data: " + errors.error_body(message=message, type_=type_, code=code) + b"\n\n" + DONE

    def feed(self, data: bytes, *, end_of_stream: bool) -> bytes:
        """The SSE bytes to send for ``data``; at ``end_of_stream`` also the usage chunk and ``[DONE]``."""
        if self._done:
            return b""
        out: list[bytes] = []
        try:
            for frame in self._decoder.feed(data):
                out.append(self._event(frame))
                if self._done:
                    return b"".join(out)
            if end_of_stream:
                self._decoder.close()
        except FrameError as e:
            out.append(
                self._error(message=f"the Bedrock stream broke: {e}", type_=errors.UPSTREAM, code="502")
            )
            return b"".join(out)
        if end_of_stream:
            out.append(self._end())
        return b"".join(out)

    def _end(self) -> bytes:
        self._done = True
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [],
        }
        if self.usage is not None:
            chunk["usage"] = openai_usage(self.usage)
        return _sse(chunk) + DONE

    def _event(self, frame: Frame) -> bytes:
        headers = frame.headers
        if headers.get(":message-type") == "exception" or headers.get(":message-type") == "error":
            kind = str(headers.get(":exception-type") or headers.get(":error-code") or "BedrockStreamError")
            try:
                message = str(orjson.loads(frame.payload).get("message", ""))
            except (orjson.JSONDecodeError, AttributeError):
                message = frame.payload.decode("utf-8", "replace")
            return self._error(message=message or kind, type_=kind, code=_EXCEPTION_CODES.get(kind, "502"))
        try:
            doc = orjson.loads(frame.payload) if frame.payload else {}
        except orjson.JSONDecodeError:
            return self._error(
                message="a Bedrock stream event is not JSON", type_=errors.UPSTREAM, code="502"
            )
        if not isinstance(doc, dict):
            return b""
        event = headers.get(":event-type")
        if event == "messageStart":
            return self._chunk({"role": doc.get("role", "assistant"), "content": ""})
        if event == "contentBlockStart":
            use = (doc.get("start") or {}).get("toolUse")
            if not isinstance(use, dict):
                return b""
            index = len(self._tools)
            self._tools[int(doc.get("contentBlockIndex", 0))] = index
            self.chunks += 1
            call = {
                "index": index,
                "id": use.get("toolUseId", ""),
                "type": "function",
                "function": {"name": use.get("name", ""), "arguments": ""},
            }
            return self._chunk({"tool_calls": [call]})
        if event == "contentBlockDelta":
            delta = doc.get("delta") or {}
            if isinstance(delta.get("text"), str):
                self.chunks += 1
                return self._chunk({"content": delta["text"]})
            use = delta.get("toolUse")
            if isinstance(use, dict):
                index = self._tools.get(int(doc.get("contentBlockIndex", 0)), 0)
                self.chunks += 1
                call = {"index": index, "function": {"arguments": str(use.get("input", ""))}}
                return self._chunk({"tool_calls": [call]})
            return b""
        if event == "messageStop":
            self._finish = FINISH_REASONS.get(str(doc.get("stopReason")), "stop")
            return self._chunk({}, self._finish)
        if event == "metadata":
            self.usage = usage_of(doc.get("usage")) or self.usage
        return b""
