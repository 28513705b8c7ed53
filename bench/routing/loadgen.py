"""Our load generator: replays a fixed trace open-loop (each request at its own time, whatever the answers
do), or keeps a number of requests in flight (closed loop, to measure capacity). Streaming requests: TTFT is
the time to the first SSE chunk that carries content, e2e the time to the end of the stream.

Why ours and not ``inference-perf``: it needs a Hugging Face tokenizer (a download) for its prompts and
reports, and it cannot replay one fixed trace with adapters and headers per request identically for every
picker; this is 150 lines on aiohttp.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import orjson

from bench.routing.workload import TraceItem

REQUEST_TIMEOUT_S = 180.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request's fate. ``status`` 0: no HTTP answer (connection error or timeout)."""

    item: TraceItem
    sent_at: float
    status: int
    ttft: float | None
    e2e: float | None
    done_at: float
    completion_tokens: int
    upstream: str


async def _one(session: aiohttp.ClientSession, base: str, item: TraceItem, t0: float) -> Outcome:
    sent = time.monotonic()
    ttft: float | None = None
    tokens = 0
    upstream = ""
    try:
        async with session.post(base + item.path, data=orjson.dumps(item.body), headers=item.headers) as resp:
            upstream = resp.headers.get("x-upstream-address", "")
            if resp.status != 200:
                await resp.read()
                now = time.monotonic()
                return Outcome(item, sent - t0, resp.status, None, None, now - t0, 0, upstream)
            async for line in resp.content:
                if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                    continue
                chunk = orjson.loads(line[6:])
                if ttft is None and chunk.get("choices"):
                    ttft = time.monotonic() - sent
                usage = chunk.get("usage")
                if usage:
                    tokens = int(usage.get("completion_tokens", 0))
        now = time.monotonic()
        return Outcome(item, sent - t0, 200, ttft, now - sent, now - t0, tokens, upstream)
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        now = time.monotonic()
        return Outcome(item, sent - t0, 0, None, None, now - t0, 0, upstream)


def _session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        headers={"content-type": "application/json"},
    )


async def replay(base: str, trace: Sequence[TraceItem]) -> list[Outcome]:
    """Send every item at its ``at`` (seconds after the start); return when all have answered."""
    async with _session() as session:
        t0 = time.monotonic()
        tasks: list[asyncio.Task[Outcome]] = []
        for item in trace:
            delay = t0 + item.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(session, base, item, t0)))
        return list(await asyncio.gather(*tasks))


async def closed_loop(
    base: str, trace: Sequence[TraceItem], *, concurrency: int, duration: float
) -> list[Outcome]:
    """Keep ``concurrency`` requests in flight, taking trace items in order (cycling), for ``duration`` s;
    return the requests that finished within it."""
    async with _session() as session:
        t0 = time.monotonic()
        end = t0 + duration
        next_index = 0
        done: list[Outcome] = []

        async def worker() -> None:
            nonlocal next_index
            while time.monotonic() < end:
                item = trace[next_index % len(trace)]
                next_index += 1
                out = await _one(session, base, item, t0)
                if out.done_at <= duration:
                    done.append(out)

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(duration)
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return done
