"""A fake OpenAI-compatible upstream whose answers the caller controls through request headers.

Used by tests, benchmarks and as the demo upstream of ``aigw run``. Run it with
``python -m aigw.upstream --host 127.0.0.1 --port 8080 --name one`` or in-process (``FakeUpstream``,
``serve_in_thread``). It answers ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/models``, ``/health``, ``/metrics``, and Azure OpenAI's
``/openai/deployments/<deployment>/{chat/completions,completions,embeddings}``, which, as Azure does,
refuse a request without ``api-version`` (404) or without an ``api-key`` or ``Authorization`` header (401).

``GET /metrics`` answers like a vLLM server that never queues (``vllm:num_requests_running`` is the number of
requests being answered right now; waiting and KV-cache use are 0), so a load-aware picker that scrapes its
endpoints sees a model server; scrapes are not requests and are never listed in ``received``.

Every response carries ``x-upstream-name: <name>`` and echoes what arrived, so a test can tell where a request
landed and with which model:

* response headers ``x-echo-path``, ``x-echo-model``, ``x-echo-host``, ``x-echo-content-length``,
  ``x-echo-body-bytes``, ``x-echo-authorization-present`` and ``x-echo-api-key-present`` (``true``/``false``;
  never the key itself), ``x-echo-accept-encoding``;
* in JSON answers, a top-level ``"echo"`` object with the same facts plus ``headers``: the request's
  ``host``, ``content-type``, ``x-ai-eg-*``, ``x-gateway-*`` headers (``authorization``, ``api-key`` and
  ``x-amz-security-token`` replaced by their length).

Request headers that control the answer (all optional):

``x-response-status``        HTTP status (default 200)
``x-response-body``          the literal body to send instead of the default answer
``x-response-content-type``  content type of that body (default ``application/json``)
``x-response-type: sse``     answer as an SSE stream (also chosen by ``"stream": true`` in the JSON body)
``x-response-chunks``        number of content chunks in the SSE stream (default 3)
``x-response-usage``         ``<prompt>,<completion>`` token counts (default: body bytes // 4, then 5)
``x-response-delay-ms``      wait this long before answering (and between SSE chunks)
``x-response-no-usage``      ``true``: leave ``usage`` out (of the JSON and of the stream)
``x-response-pad-bytes``     append this many ``x`` to a non-streamed answer's content (large answers)
``x-response-compress``      ``gzip``: gzip a non-streamed answer (canned or not) when the request's
                             ``Accept-Encoding`` allows it, as hosted APIs do; ``gzip-always``: even when not
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from aigw.httpserve import AppServer

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UPSTREAM_NAME_HEADER = "x-upstream-name"
"""Response header naming the instance that served the request."""

_MAX_BODY = 64 * 1024 * 1024
_ECHOED_HEADER_PREFIXES = ("x-ai-eg-", "x-gateway-")
_ECHOED_HEADERS = ("host", "content-type", "content-length", "user-agent")


@dataclass
class ReceivedRequest:
    """What one request looked like when it reached this upstream."""

    path: str
    method: str
    model: str | None
    headers: dict[str, str]
    body_bytes: int


@dataclass
class _Usage:
    prompt: int
    completion: int

    def as_json(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        }


def _response(request: web.BaseRequest, *, status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    """A complete answer, gzipped when ``x-response-compress`` asks for it (a hosted API compresses whenever
    ``Accept-Encoding`` allows; ``gzip-always`` plays one that ignores it)."""
    accepts = {c.split(";")[0].strip().lower() for c in request.headers.get("accept-encoding", "").split(",")}
    compress = request.headers.get("x-response-compress")
    if compress == "gzip-always" or (compress == "gzip" and "gzip" in accepts):
        body = gzip.compress(body)
        headers = {**headers, "content-encoding": "gzip"}
    return web.Response(status=status, body=body, headers=headers)


def _selected_headers(request: web.BaseRequest) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        low = name.lower()
        if low in _ECHOED_HEADERS or low.startswith(_ECHOED_HEADER_PREFIXES):
            out[low] = value
        elif low in ("authorization", "api-key", "x-amz-security-token"):  # credentials: only their length
            out[low] = f"<{len(value)} chars>"
    return out


def _usage(request: web.BaseRequest, body_len: int) -> _Usage:
    raw = request.headers.get("x-response-usage")
    if raw:
        p, _, c = raw.partition(",")
        return _Usage(int(p), int(c or 0))
    return _Usage(max(1, body_len // 4), 5)


@dataclass(frozen=True)
class _Accepted:
    body: dict[str, Any] | None
    model: str | None
    headers: dict[str, str]
    echo: dict[str, Any]
    usage: _Usage


@dataclass(eq=False)
class FakeUpstream(AppServer):
    """The fake upstream as an aiohttp application; ``start``/``stop`` inside a running event loop
    (``AppServer``).

    ``received`` lists every request served (most recent last), for in-process assertions.
    """

    name: str
    received: list[ReceivedRequest] = field(default_factory=list)
    keep_received: bool = True
    _in_flight: int = 0

    def app(self) -> web.Application:
        """The aiohttp application serving the OpenAI-like endpoints."""
        app = web.Application(client_max_size=_MAX_BODY, middlewares=[self._count_in_flight])
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post(
            "/openai/deployments/{deployment}/chat/completions", self._azure(self._completions)
        )
        app.router.add_post("/openai/deployments/{deployment}/completions", self._azure(self._completions))
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self._azure(self._embeddings))
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    # -- handlers ---------------------------------------------------------------------------------

    def _headers(self, request: web.BaseRequest, model: str | None, body_len: int) -> dict[str, str]:
        return {
            UPSTREAM_NAME_HEADER: self.name,
            "x-echo-path": request.path_qs,
            "x-echo-model": model or "",
            "x-echo-host": request.headers.get("host", ""),
            "x-echo-content-length": request.headers.get("content-length", ""),
            "x-echo-body-bytes": str(body_len),
            "x-echo-authorization-present": "true" if "authorization" in request.headers else "false",
            "x-echo-api-key-present": "true" if "api-key" in request.headers else "false",
            "x-echo-accept-encoding": request.headers.get("accept-encoding", ""),
        }

    def _azure(self, handler: _Handler) -> _Handler:
        """``handler`` behind Azure OpenAI's checks: an ``api-version`` query and a credential header."""

        async def checked(request: web.Request) -> web.StreamResponse:
            if not request.query.get("api-version"):
                status, code, message = 404, "404", "Resource not found"
            elif "api-key" not in request.headers and "authorization" not in request.headers:
                status, code = 401, "401"
                message = "Access denied due to missing subscription key or Authorization header."
            else:
                return await handler(request)
            raw = await request.read()
            err = {"error": {"code": code, "message": message}}
            return web.Response(
                status=status,
                body=orjson.dumps(err),
                content_type="application/json",
                headers=self._headers(request, None, len(raw)),
            )

        return checked

    async def _read(self, request: web.BaseRequest) -> tuple[bytes, dict[str, Any] | None]:
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else None
        return raw, body

    def _record(self, request: web.BaseRequest, model: str | None, body_len: int) -> dict[str, Any]:
        headers = _selected_headers(request)
        if self.keep_received:
            self.received.append(
                ReceivedRequest(
                    path=request.path_qs,
                    method=request.method,
                    model=model,
                    headers=headers,
                    body_bytes=body_len,
                )
            )
        return {
            "upstream": self.name,
            "path": request.path_qs,
            "model": model,
            "headers": headers,
            "bodyBytes": body_len,
        }

    async def _canned(self, request: web.BaseRequest, headers: dict[str, str]) -> web.StreamResponse | None:
        delay = request.headers.get("x-response-delay-ms")
        if delay:
            await asyncio.sleep(int(delay) / 1000)
        body = request.headers.get("x-response-body")
        status = int(request.headers.get("x-response-status", "200"))
        if body is None and status < 400:
            return None
        if body is None:
            body_bytes = orjson.dumps(
                {"error": {"message": "injected failure", "type": "upstream_error", "code": str(status)}}
            )
        else:
            body_bytes = body.encode()
        ctype = request.headers.get("x-response-content-type", "application/json")
        headers = {**headers, "content-type": ctype}
        return _response(request, status=status, body=body_bytes, headers=headers)

    async def _accept(self, request: web.Request) -> _Accepted | web.StreamResponse:
        """Read and record a model request; a canned answer if the headers ask for one."""
        raw, body = await self._read(request)
        model = body.get("model") if body and isinstance(body.get("model"), str) else None
        headers = self._headers(request, model, len(raw))
        echo = self._record(request, model, len(raw))
        canned = await self._canned(request, headers)
        if canned is not None:
            return canned
        return _Accepted(body=body, model=model, headers=headers, echo=echo, usage=_usage(request, len(raw)))

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        accepted = await self._accept(request)
        if not isinstance(accepted, _Accepted):
            return accepted
        body, model, headers, echo, usage = (
            accepted.body,
            accepted.model,
            accepted.headers,
            accepted.echo,
            accepted.usage,
        )
        no_usage = request.headers.get("x-response-no-usage") == "true"
        pad = "x" * int(request.headers.get("x-response-pad-bytes", "0"))
        chat = request.path.endswith("/chat/completions")
        stream = request.headers.get("x-response-type") == "sse" or bool(body and body.get("stream") is True)
        if stream:
            return await self._sse(request, headers, model, usage, chat=chat, no_usage=no_usage)
        answer: dict[str, Any] = {
            "id": "cmpl-fake",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    **(
                        {"message": {"role": "assistant", "content": f"hello from {self.name}{pad}"}}
                        if chat
                        else {"text": f"hello from {self.name}{pad}"}
                    ),
                }
            ],
            "echo": echo,
        }
        if not no_usage:
            answer["usage"] = usage.as_json()
        return _response(
            request,
            status=200,
            body=orjson.dumps(answer),
            headers={**headers, "content-type": "application/json"},
        )

    async def _sse(
        self,
        request: web.Request,
        headers: dict[str, str],
        model: str | None,
        usage: _Usage,
        *,
        chat: bool,
        no_usage: bool,
    ) -> web.StreamResponse:
        chunks = int(request.headers.get("x-response-chunks", "3"))
        delay = int(request.headers.get("x-response-delay-ms", "0")) / 1000
        resp = web.StreamResponse(headers={**headers, "content-type": "text/event-stream"})
        await resp.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"
        for i in range(chunks):
            choice: dict[str, Any] = {"index": 0, "finish_reason": None}
            if chat:
                choice["delta"] = {"content": f"tok{i} "}
            else:
                choice["text"] = f"tok{i} "
            event = {"id": "cmpl-fake", "object": obj, "model": model, "choices": [choice]}
            await resp.write(b"data: " + orjson.dumps(event) + b"\n\n")
            if delay:
                await asyncio.sleep(delay)
        if not no_usage:
            last: dict[str, Any] = {
                "id": "cmpl-fake",
                "object": obj,
                "model": model,
                "choices": [],
                "usage": usage.as_json(),
            }
            await resp.write(b"data: " + orjson.dumps(last) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        accepted = await self._accept(request)
        if not isinstance(accepted, _Accepted):
            return accepted
        model, headers, echo, usage = accepted.model, accepted.headers, accepted.echo, accepted.usage
        answer = {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 0.5, 1.0]}],
            "model": model,
            "usage": {"prompt_tokens": usage.prompt, "total_tokens": usage.prompt},
            "echo": echo,
        }
        return web.Response(body=orjson.dumps(answer), content_type="application/json", headers=headers)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        headers = self._headers(request, None, 0)
        self._record(request, None, 0)
        answer = {
            "object": "list",
            "data": [{"id": f"{self.name}-model", "object": "model", "created": 0, "owned_by": self.name}],
        }
        return web.Response(body=orjson.dumps(answer), content_type="application/json", headers=headers)

    @web.middleware
    async def _count_in_flight(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path == "/metrics":
            return await handler(request)
        self._in_flight += 1
        try:
            return await handler(request)
        finally:
            self._in_flight -= 1

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        running = self._in_flight
        text = (
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running {running}\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            "vllm:num_requests_waiting 0\n"
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            "vllm:kv_cache_usage_perc 0\n"
        )
        return web.Response(text=text, content_type="text/plain", headers={UPSTREAM_NAME_HEADER: self.name})

    async def _health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok", headers={UPSTREAM_NAME_HEADER: self.name})

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = self._headers(request, None, len(raw))
        self._record(request, None, len(raw))
        err = {
            "error": {
                "message": f"no such path {request.path}",
                "type": "invalid_request_error",
                "code": "not_found",
            }
        }
        return web.Response(
            status=404, body=orjson.dumps(err), content_type="application/json", headers=headers
        )


@contextlib.contextmanager
def serve_in_thread(*, name: str, host: str = "127.0.0.1", port: int = 0) -> Iterator[FakeUpstream]:
    """Run a ``FakeUpstream`` on its own event loop in a daemon thread; stop it when the block exits."""
    upstream = FakeUpstream(name=name, host=host, port=port)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(upstream.start())
        except BaseException as e:  # reported to the caller below
            errors.append(e)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(upstream.stop())
        loop.close()

    thread = threading.Thread(target=run, name=f"fake-upstream-{name}", daemon=True)
    thread.start()
    started.wait(10)
    if errors:
        raise errors[0]
    try:
        yield upstream
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def _serve_forever(upstream: FakeUpstream) -> None:
    await upstream.start()
    print(f"fake upstream {upstream.name} listening on {upstream.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await upstream.stop()


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m aigw.upstream --host H --port P --name N``."""
    parser = argparse.ArgumentParser(
        prog="python -m aigw.upstream",
        description="A fake OpenAI-compatible upstream. Every answer carries x-upstream-name and echoes the "
        "request; x-response-* request headers choose status, body, SSE streaming, usage and delay.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (default 8080; 0 = any)")
    parser.add_argument("--name", default="upstream", help="name reported in x-upstream-name")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    upstream = FakeUpstream(name=args.name, host=args.host, port=args.port, keep_received=False)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(upstream))


if __name__ == "__main__":
    main()
