"""One simulated replica: an aiohttp app serving the OpenAI-compatible API and /metrics, and the step loop.

The step loop sleeps for each step's modelled duration (timers, not CPU work), so many replicas share a core.
Endpoints: ``POST /v1/chat/completions`` and ``/v1/completions`` (streaming with SSE or not; ``usage`` in the
answer, and in a last chunk when ``stream_options.include_usage`` is true), ``GET /v1/models``, ``/health``,
``/metrics``. Every answer carries ``x-upstream-name: <replica name>`` and ``x-upstream-address:
<host:port>``, and echoes a request's ``x-gateway-destination-endpoint`` (an endpoint picker's choice) as
``x-echo-destination-endpoint``. A request naming neither the base
model nor a configured adapter gets an OpenAI-style 404; malformed JSON, a missing field or a request too
long for the model a 400. A client that goes away frees its place in the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aigw.httpserve import AppServer
from aigw.sim.config import SimConfig
from aigw.sim.engine import Engine, RequestRejectedError, Sequence
from aigw.sim.kvcache import block_hashes
from aigw.sim.metrics import ReplicaMetrics
from aigw.sim.tokenizer import chat_prompt_text, tokenize
from aigw.upstream import UPSTREAM_NAME_HEADER

UPSTREAM_ADDRESS_HEADER = "x-upstream-address"
"""Response header: the replica's own ``host:port``."""
DESTINATION_HEADER = "x-gateway-destination-endpoint"
ECHO_DESTINATION_HEADER = "x-echo-destination-endpoint"
"""Response header: the request's ``x-gateway-destination-endpoint``, when it had one."""

_MAX_BODY = 16 * 1024 * 1024
# Every word has at most 4 characters, so the answer re-tokenizes to exactly the reported completion tokens.
_WORDS = ("the", "sim", "says", "ok", "a", "fast", "gpu", "will", "run", "this", "tok", "and", "more", "data")


def _error(status: int, message: str, kind: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


class _BadRequestError(Exception):
    def __init__(self, status: int, message: str, kind: str) -> None:
        super().__init__(message)
        self.response = _error(status, message, kind)


@dataclass(slots=True, kw_only=True)
class _Parsed:
    chat: bool
    model: str
    adapter: str | None
    tokens: list[str]
    max_tokens: int
    explicit_max: bool
    stream: bool
    include_usage: bool


@dataclass(eq=False)
class Replica(AppServer):
    """One model server: ``start()`` binds ``host:port`` and starts the step loop; ``stop()`` ends both."""

    handler_cancellation = True  # a client that gives up frees its sequence's batch slot at once

    name: str
    config: SimConfig
    seed_offset: int = 0
    engine: Engine = field(init=False)
    metrics: ReplicaMetrics = field(init=False)
    _rng: random.Random = field(init=False)
    _wake: asyncio.Event = field(init=False)
    _waiters: dict[int, asyncio.Event] = field(init=False, default_factory=dict)
    _loop_task: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.engine = Engine(self.config)
        self.metrics = ReplicaMetrics(engine=self.engine)
        self._rng = random.Random(self.config.seed + self.seed_offset)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._loop_task = asyncio.create_task(self._step_loop(), name=f"sim-{self.name}-steps")
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None

    # -- the step loop ----------------------------------------------------------------------------------

    async def _step_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            plan = self.engine.begin_step()
            if plan is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            await asyncio.sleep(plan.duration_s)
            for ev in self.engine.finish_step(loop.time()):
                if ev.first:
                    self.metrics.observe_first_token(ev.seq)
                if ev.seq.done:
                    self.metrics.observe_finished(ev.seq)
                waiter = self._waiters.get(ev.seq.rid)
                if waiter is not None:
                    waiter.set()

    # -- handlers ---------------------------------------------------------------------------------------

    def _headers(self, request: web.Request | None = None) -> dict[str, str]:
        out = {UPSTREAM_NAME_HEADER: self.name, UPSTREAM_ADDRESS_HEADER: f"{self.host}:{self.port}"}
        if request is not None and (chosen := request.headers.get(DESTINATION_HEADER)) is not None:
            out[ECHO_DESTINATION_HEADER] = chosen
        return out

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok", headers=self._headers())

    async def _metrics(self, _request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(self.metrics.registry), headers=self._headers())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def _models(self, _request: web.Request) -> web.Response:
        created = 0
        data = [{"id": self.config.model, "object": "model", "created": created, "owned_by": "aigw-sim"}]
        data += [
            {
                "id": a,
                "object": "model",
                "created": created,
                "owned_by": "aigw-sim",
                "parent": self.config.model,
            }
            for a in self.config.lora_adapters
        ]
        return web.json_response({"object": "list", "data": data}, headers=self._headers())

    def _parse(self, path: str, raw: bytes) -> _Parsed:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise _BadRequestError(400, f"request body is not valid JSON: {e}", "BadRequestError") from e
        if not isinstance(body, dict):
            raise _BadRequestError(400, "request body must be a JSON object", "BadRequestError")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequestError(400, "'model' is required and must be a string", "BadRequestError")
        if model in self.config.lora_adapters:
            adapter = model
        elif model == self.config.model or self.config.accept_any_model:
            adapter = None
        else:
            raise _BadRequestError(404, f"The model `{model}` does not exist.", "NotFoundError")
        chat = path.endswith("/chat/completions")
        try:
            if chat:
                messages = body.get("messages")
                if not isinstance(messages, list) or not messages:
                    raise ValueError("'messages' must be a non-empty list")
                text = chat_prompt_text(messages)
            else:
                prompt = body.get("prompt")
                if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
                    prompt = " ".join(prompt)
                if not isinstance(prompt, str):
                    raise ValueError("'prompt' must be a string or a list of strings")
                text = prompt
        except ValueError as e:
            raise _BadRequestError(400, str(e), "BadRequestError") from e
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        explicit = limit is not None
        if limit is None:
            limit = self._rng.randint(self.config.default_max_tokens_min, self.config.default_max_tokens_max)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _BadRequestError(400, "'max_tokens' must be a positive integer", "BadRequestError")
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        tokens = tokenize(text)
        if not tokens:
            tokens = ["<empty>"]
        return _Parsed(
            chat=chat,
            model=model,
            adapter=adapter,
            tokens=tokens,
            max_tokens=limit,
            explicit_max=explicit,
            stream=body.get("stream") is True,
            include_usage=include_usage,
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            p = self._parse(request.path, await request.read())
        except _BadRequestError as e:
            e.response.headers.update(self._headers(request))
            return e.response
        salt = p.adapter or self.config.model
        hashes = block_hashes(p.tokens, block_size=self.config.block_size, salt=salt)
        now = asyncio.get_running_loop().time()
        try:
            seq = self.engine.submit(
                prompt_len=len(p.tokens),
                block_hashes=hashes,
                max_tokens=p.max_tokens,
                adapter=p.adapter,
                now=now,
            )
        except RequestRejectedError as e:
            resp = _error(400, str(e), "BadRequestError")
            resp.headers.update(self._headers(request))
            return resp
        waiter = asyncio.Event()
        self._waiters[seq.rid] = waiter
        self._wake.set()
        word0 = self._rng.randrange(len(_WORDS))
        try:
            if p.stream:
                return await self._stream(request, p, seq, waiter, word0)
            while not seq.done:
                await waiter.wait()
                waiter.clear()
            return web.json_response(
                self._full_answer(p, seq, word0), headers=self._headers(request), dumps=_dumps
            )
        finally:
            self._waiters.pop(seq.rid, None)
            if not seq.done:
                self.engine.abort(seq)

    def _text(self, word0: int, start: int, end: int) -> str:
        return "".join(f"{_WORDS[(word0 + i) % len(_WORDS)]} " for i in range(start, end))

    def _usage(self, seq: Sequence) -> dict[str, Any]:
        return {
            "prompt_tokens": seq.prompt_len,
            "completion_tokens": seq.generated,
            "total_tokens": seq.prompt_len + seq.generated,
            "prompt_tokens_details": {"cached_tokens": seq.prefix_hit_tokens},
        }

    def _finish_reason(self, p: _Parsed) -> str:
        return "length" if p.explicit_max else "stop"

    def _full_answer(self, p: _Parsed, seq: Sequence, word0: int) -> dict[str, Any]:
        text = self._text(word0, 0, seq.generated)
        reason = self._finish_reason(p)
        choice: dict[str, Any]
        if p.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": text, "finish_reason": reason}
        return {
            "id": f"cmpl-{self.name}-{seq.rid}",
            "object": "chat.completion" if p.chat else "text_completion",
            "created": int(time.time()),
            "model": p.model,
            "choices": [choice],
            "usage": self._usage(seq),
        }

    async def _stream(
        self, request: web.Request, p: _Parsed, seq: Sequence, waiter: asyncio.Event, word0: int
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={**self._headers(request), "Content-Type": "text/event-stream"})
        await resp.prepare(request)
        base = {
            "id": f"cmpl-{self.name}-{seq.rid}",
            "object": "chat.completion.chunk" if p.chat else "text_completion",
            "created": int(time.time()),
            "model": p.model,
        }
        sent = 0
        every = self.config.stream_tokens_per_chunk
        while sent < seq.max_tokens:
            await waiter.wait()
            waiter.clear()
            ready = seq.generated - sent
            if ready <= 0 or (sent > 0 and ready < every and not seq.done):
                continue
            text = self._text(word0, sent, seq.generated)
            reason = self._finish_reason(p) if seq.done else None
            if p.chat:
                delta: dict[str, Any] = {"content": text}
                if sent == 0:
                    delta["role"] = "assistant"
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": reason}
            else:
                choice = {"index": 0, "text": text, "finish_reason": reason}
            await resp.write(b"data: " + _dumps({**base, "choices": [choice]}).encode() + b"\n\n")
            sent = seq.generated
        if p.include_usage:
            await resp.write(
                b"data: " + _dumps({**base, "choices": [], "usage": self._usage(seq)}).encode() + b"\n\n"
            )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
