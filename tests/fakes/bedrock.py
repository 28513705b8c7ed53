"""A fake AWS Bedrock runtime (Converse and ConverseStream) that checks every request's SigV4 signature.

Every request is verified by ``sigv4_verifier`` (403 ``InvalidSignatureException`` on mismatch, as AWS does)
before anything else. The model id chooses the answer:

* ``...tool...``: a ``toolUse`` block (stop reason ``tool_use``);
* ``...throttle...``: 429 ``ThrottlingException`` (JSON error with ``x-amzn-errortype``);
* ``...stream-exception...``: a stream that sends one delta and then a ``throttlingException`` frame;
* ``...bad-crc...``: a stream whose second frame has a wrong message CRC;
* ``...truncated...``: a stream that ends in the middle of a frame;
* anything else: the text ``echo: <last user text>`` (stop reason ``end_turn``).

Usage is ``inputTokens`` = characters of all texts in the request, ``outputTokens`` = 7. ``received`` keeps
each request (path, signed access key or the refusal, Converse body) for assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from aigw.httpserve import AppServer
from extproc.providers.eventstream import event_frame, exception_frame
from tests.fakes.sigv4_verifier import KnownKey, SignatureError, verify

OUTPUT_TOKENS = 7


@dataclass
class Received:
    path: str
    host: str
    signed_by: str | None
    refusal: str | None
    body: Any


@dataclass
class FakeBedrock(AppServer):
    region: str
    keys: Mapping[str, KnownKey]
    received: list[Received] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/model/{model}/converse", self._converse)
        app.router.add_post("/model/{model}/converse-stream", self._converse_stream)
        return app

    async def _accept(self, request: web.Request) -> tuple[str, Any] | web.Response:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            key: str | None = verify(
                method=request.method,
                raw_path=request.raw_path,
                headers=headers,
                body=raw,
                keys=self.keys,
                region=self.region,
            )
            refusal = None
        except SignatureError as e:
            key, refusal = None, str(e)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.received.append(
            Received(
                path=request.raw_path, host=headers.get("host", ""), signed_by=key, refusal=refusal, body=body
            )
        )
        if refusal is not None:
            return _error(403, "InvalidSignatureException", refusal)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "ValidationException", "messages is required")
        return request.match_info["model"], body

    async def _converse(self, request: web.Request) -> web.StreamResponse:
        accepted = await self._accept(request)
        if isinstance(accepted, web.Response):
            return accepted
        model, body = accepted
        if "throttle" in model:
            return _error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
        content: list[dict[str, Any]]
        if "tool" in model:
            use = {"toolUseId": "tooluse_fake", "name": "get_weather", "input": {"city": "Paris"}}
            content, stop = [{"toolUse": use}], "tool_use"
        else:
            content, stop = [{"text": f"echo: {_last_user_text(body)}"}], "end_turn"
        answer = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": _usage(body),
            "metrics": {"latencyMs": 1},
        }
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def _converse_stream(self, request: web.Request) -> web.StreamResponse:
        accepted = await self._accept(request)
        if isinstance(accepted, web.Response):
            return accepted
        model, body = accepted
        text = f"echo: {_last_user_text(body)}"
        frames = [
            event_frame("messageStart", b'{"role":"assistant"}'),
            *(
                event_frame(
                    "contentBlockDelta", orjson.dumps({"contentBlockIndex": 0, "delta": {"text": part}})
                )
                for part in (text[: len(text) // 2], text[len(text) // 2 :])
            ),
            event_frame("contentBlockStop", b'{"contentBlockIndex":0}'),
            event_frame("messageStop", b'{"stopReason":"end_turn"}'),
            event_frame("metadata", orjson.dumps({"usage": _usage(body), "metrics": {"latencyMs": 1}})),
        ]
        if "stream-exception" in model:
            frames[2:] = [exception_frame("throttlingException", b'{"message":"Rate exceeded"}')]
        elif "bad-crc" in model:
            bad = bytearray(frames[1])
            bad[-6] ^= 0xFF
            frames[1] = bytes(bad)
        elif "truncated" in model:
            frames = [*frames[:2], frames[2][:-9]]
        resp = web.StreamResponse(headers={"content-type": "application/vnd.amazon.eventstream"})
        await resp.prepare(request)
        for frame in frames:
            await resp.write(frame)
        await resp.write_eof()
        return resp


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"message": message}),
        content_type="application/json",
        headers={"x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )


def _texts(body: Mapping[str, Any]) -> list[str]:
    out = [b["text"] for b in body.get("system", []) if isinstance(b, dict) and "text" in b]
    for m in body["messages"]:
        out.extend(b["text"] for b in m.get("content", []) if isinstance(b, dict) and "text" in b)
    return out


def _last_user_text(body: Mapping[str, Any]) -> str:
    for m in reversed(body["messages"]):
        if m.get("role") == "user":
            return " ".join(b["text"] for b in m.get("content", []) if isinstance(b, dict) and "text" in b)
    return ""


def _usage(body: Mapping[str, Any]) -> dict[str, int]:
    inp = sum(len(t) for t in _texts(body))
    return {"inputTokens": inp, "outputTokens": OUTPUT_TOKENS, "totalTokens": inp + OUTPUT_TOKENS}


@contextlib.contextmanager
def serve_bedrock_in_thread(
    *, region: str, keys: Mapping[str, KnownKey], host: str = "127.0.0.1"
) -> Iterator[FakeBedrock]:
    """Run a FakeBedrock on its own event loop in a daemon thread, on a free port of ``host``."""
    fake = FakeBedrock(region=region, keys=keys, host=host)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(fake.start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(fake.stop())
        loop.close()

    thread = threading.Thread(target=run, name="fake-bedrock", daemon=True)
    thread.start()
    if not started.wait(10):
        raise AssertionError("the fake Bedrock did not start within 10 s")
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
