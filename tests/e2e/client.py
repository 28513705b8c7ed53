"""A small synchronous HTTP client for requests through the Envoy that Envoy Gateway started.

Contract: ``chat(port, model)`` POSTs an OpenAI chat completion to ``127.0.0.1:<port>/v1/chat/completions``
and returns a ``Reply`` (status, lower-cased headers, body bytes). ``stream_chat`` does the same with
``"stream": true`` and records when each SSE ``data:`` line arrived. No retries: callers that wait for
configuration to converge use ``tests.e2e.kube.wait_for`` around these.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from typing import Any

from tests.realparts.httpclient import Reply
from tests.realparts.httpclient import request as http_request


@dataclass
class StreamReply:
    status: int
    headers: dict[str, str]
    events: list[tuple[float, str]] = field(default_factory=list)
    """``(seconds since the request was sent, data payload)`` per SSE ``data:`` line."""


def ok(reply: Reply) -> Reply | None:
    """``reply`` when its status is 200, else ``None`` (for ``wait_for``)."""
    return reply if reply.status == 200 else None


def request(
    port: int,
    body: bytes,
    *,
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    timeout: float = 30,
) -> Reply:
    return http_request(port, path, body=body, headers=headers, method="POST", host=host, timeout=timeout)


def chat_body(model: str, **extra: Any) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}).encode()


def chat(port: int, model: str, *, headers: dict[str, str] | None = None, timeout: float = 30) -> Reply:
    return request(port, chat_body(model), headers=headers, timeout=timeout)


def stream_chat(
    port: int, model: str, *, headers: dict[str, str] | None = None, timeout: float = 30
) -> StreamReply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        began = time.monotonic()
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=chat_body(model, stream=True, stream_options={"include_usage": True}),
            headers={"content-type": "application/json", **(headers or {})},
        )
        resp = conn.getresponse()
        out = StreamReply(resp.status, {k.lower(): v for k, v in resp.getheaders()})
        while True:
            line = resp.readline()  # decodes chunked transfer; returns as soon as a line is in
            if not line:
                break
            text = line.decode().strip()
            if text.startswith("data:"):
                out.events.append((time.monotonic() - began, text[5:].strip()))
        return out
    finally:
        conn.close()
