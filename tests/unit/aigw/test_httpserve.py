"""AppServer, the base of aigw's in-process servers and the tests' fakes: it binds a free port when asked for
0, keeps that port across a restart, stops idempotently, and lets a dataclass subclass declare fields
without defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from aigw.httpserve import AppServer


@dataclass
class Hello(AppServer):
    greeting: str  # no default, after the base's defaulted host and port: they are keyword-only
    seen: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        async def hello(request: web.Request) -> web.Response:
            self.seen.append(request.path)
            return web.Response(text=self.greeting)

        app = web.Application()
        app.router.add_get("/", hello)
        return app


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        return await resp.text()


async def test_serves_on_a_free_port_and_restarts_on_the_same_one() -> None:
    server = Hello("hi")
    assert server.port == 0 and server.url == "http://127.0.0.1:0"
    await server.start()
    try:
        port = server.port
        assert port != 0
        assert await _get(f"{server.url}/") == "hi"
    finally:
        await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await _get(f"{server.url}/")
    await server.stop()  # a second stop is a no-op
    await server.start()
    try:
        assert server.port == port
        assert await _get(f"{server.url}/") == "hi"
        assert server.seen == ["/", "/"]
    finally:
        await server.stop()


def test_ipv6_url_is_bracketed_and_fields_compare_only_in_subclasses_that_ask() -> None:
    assert Hello("x", host="::1", port=8).url == "http://[::1]:8"
    assert Hello("x") == Hello("x")  # a plain @dataclass subclass compares its fields

    @dataclass(eq=False)
    class Same(AppServer):
        pass

    assert Same() != Same()  # the base compares by identity


def test_the_base_builds_no_application() -> None:
    with pytest.raises(NotImplementedError):
        AppServer().app()
