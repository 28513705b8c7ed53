"""The scraper against model-server stand-ins on loopback (aiohttp): it reads the series, follows config
changes, and a slow or dead endpoint neither blocks the others nor keeps a stale value trusted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from aigw.httpserve import AppServer
from extproc.scrape import Scraper, _Page
from extproc.signals import SignalStore
from extproc.snapshot import Snapshot
from tests.realparts.ports import free_port
from tests.unit.extproc.configs import pool_config, snapshot_of


@dataclass(eq=False)
class Server(AppServer):
    page: bytes = (
        b'vllm:num_requests_waiting{m="x"} 3\nvllm:num_requests_running 5\nvllm:kv_cache_usage_perc 0.5\n'
    )
    delay: float = 0.0
    hits: int = 0
    chunked: bool = False

    async def metrics(self, _: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.chunked:
            resp = web.StreamResponse()
            await resp.prepare(_)
            await resp.write(self.page[:10])
            await resp.write(self.page[10:])
            await resp.write_eof()
            return resp
        return web.Response(body=self.page, content_type="text/plain")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        return app


def _snapshot(ports: list[int], picker: dict[str, Any] | None = None) -> Snapshot:
    return snapshot_of(
        pool_config(
            [("127.0.0.1", p) for p in ports],
            picker=picker or {"scrape": {"intervalMs": 20, "timeoutMs": 300}},
        )
    )


@pytest.fixture
async def servers() -> AsyncIterator[list[Server]]:
    out = [Server(), Server()]
    for s in out:
        await s.start()
    yield out
    for s in out:
        await s.stop()


async def _until(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10.0
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _running(scraper: Scraper, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(scraper.run())
    try:
        await body()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_reads_the_series_and_keeps_polling(servers: list[Server]) -> None:
    store = SignalStore()
    holder = {"s": _snapshot([s.port for s in servers])}
    scraper = Scraper(store=store, current=lambda: holder["s"])
    servers[1].chunked = True

    async def body() -> None:
        for s in servers:
            sig = store.get(f"127.0.0.1:{s.port}")
            await _until(lambda sig=sig: sig.kv_cache == 0.5)  # type: ignore[misc]
            assert (sig.waiting, sig.running) == (3.0, 5.0)
        servers[0].page = b"vllm:num_requests_waiting 0\nvllm:num_requests_running 1\n"
        sig0 = store.get(f"127.0.0.1:{servers[0].port}")
        await _until(lambda: sig0.running == 1.0 and sig0.kv_cache is None)
        hits = servers[0].hits
        await _until(lambda: servers[0].hits >= hits + 5)  # 20 ms interval, one keep-alive connection

    await _running(scraper, body)


async def test_a_slow_endpoint_does_not_hold_up_the_others_and_is_stale_not_unreachable(
    servers: list[Server],
) -> None:
    """A server that accepts but answers its metrics late is up: its values go stale (the picker then weighs
    it by our in-flight count), but it is not filtered out as unreachable, which would send all traffic to
    the others."""
    store = SignalStore()
    servers[0].delay = 5.0
    scraper = Scraper(store=store, current=lambda: _snapshot([s.port for s in servers]))

    async def body() -> None:
        fast = store.get(f"127.0.0.1:{servers[1].port}")
        slow = store.get(f"127.0.0.1:{servers[0].port}")
        await _until(lambda: fast.running == 5.0)
        first = fast.scraped_at
        await _until(lambda: fast.scraped_at > first + 0.1)
        await _until(lambda: slow.failed_scrapes >= 2)  # timed out at 300 ms, and asked again
        assert not slow.unreachable
        assert slow.scraped_at == float("-inf")

    await _running(scraper, body)


@pytest.mark.parametrize(
    "page",
    [
        b"vllm:num_requests_waiting NaN\nvllm:num_requests_running 1\n",
        b"vllm:num_requests_waiting 1\nvllm:num_requests_running +Inf\n",
        b"vllm:num_requests_waiting -3\nvllm:num_requests_running 1\n",
        b"vllm:num_requests_waiting 0\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc 57\n",
    ],
)
async def test_implausible_values_are_a_failed_scrape_and_never_trusted(
    servers: list[Server], page: bytes
) -> None:
    store = SignalStore()
    servers[0].page = page
    scraper = Scraper(store=store, current=lambda: _snapshot([servers[0].port]))

    async def body() -> None:
        sig = store.get(f"127.0.0.1:{servers[0].port}")
        await _until(lambda: sig.failed_scrapes >= 2)
        assert not sig.unreachable
        assert sig.scraped_at == float("-inf") and sig.cap_running == 0.0
        servers[0].page = b"vllm:num_requests_waiting 2\nvllm:num_requests_running 1\n"
        await _until(lambda: sig.waiting == 2.0 and sig.failed_scrapes == 0)

    await _running(scraper, body)


async def test_dead_endpoint_is_unreachable_and_recovers(servers: list[Server]) -> None:
    store = SignalStore()
    dead = free_port()
    scraper = Scraper(store=store, current=lambda: _snapshot([dead, servers[0].port]))

    async def body() -> None:
        sig = store.get(f"127.0.0.1:{dead}")
        await _until(lambda: sig.unreachable)
        revived = Server(port=dead)
        await revived.start()
        try:
            await _until(lambda: not sig.unreachable and sig.running == 5.0)
        finally:
            await revived.stop()

    await _running(scraper, body)


async def test_a_dead_separate_metrics_port_is_not_a_dead_endpoint(servers: list[Server]) -> None:
    """Refused on the endpoint's own port, the server is down; refused on a separate metrics port, only its
    metrics are: the endpoint stays a candidate, weighed by our in-flight count."""
    store = SignalStore()
    dead = free_port()
    snapshot = _snapshot(
        [servers[0].port], picker={"scrape": {"intervalMs": 20, "timeoutMs": 300, "port": dead}}
    )
    scraper = Scraper(store=store, current=lambda: snapshot)

    async def body() -> None:
        sig = store.get(f"127.0.0.1:{servers[0].port}")
        await _until(lambda: sig.failed_scrapes >= 2)
        assert not sig.unreachable

    await _running(scraper, body)


async def test_a_page_without_the_series_is_a_failure_but_not_unreachable(servers: list[Server]) -> None:
    store = SignalStore()
    servers[0].page = b"# nothing here\nother_metric 1\n"
    scraper = Scraper(store=store, current=lambda: _snapshot([servers[0].port]))

    async def body() -> None:
        sig = store.get(f"127.0.0.1:{servers[0].port}")
        await _until(lambda: sig.failed_scrapes >= 2)
        assert not sig.unreachable

    await _running(scraper, body)


async def test_config_changes_are_followed_and_random_pools_are_not_scraped(servers: list[Server]) -> None:
    store = SignalStore()
    holder = {"s": _snapshot([servers[0].port])}
    scraper = Scraper(store=store, current=lambda: holder["s"])

    async def body() -> None:
        await _until(lambda: servers[0].hits > 0)
        holder["s"] = _snapshot([servers[1].port], picker={"type": "Random"})
        await _until(lambda: scraper.targets == [])
        assert store.addresses() == [f"127.0.0.1:{servers[1].port}"]  # in-flight still tracked
        hits = servers[1].hits
        await asyncio.sleep(0.2)
        assert servers[1].hits == hits == 0

    await _running(scraper, body)


def test_page_reader_handles_lengths_chunks_and_garbage() -> None:
    p = _Page()
    assert p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab") is None
    assert p.feed(b"cde") == b"abcde"
    c = _Page()
    assert c.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n") is None
    assert c.feed(b"2\r\nde\r\n0\r\n\r\n") == b"abcde"
    with pytest.raises(ValueError):
        _Page().feed(b"SSH-2.0-OpenSSH\r\n\r\n")
