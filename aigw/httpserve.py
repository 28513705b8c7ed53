"""Serving an aiohttp application on one address, for the in-process HTTP servers of ``aigw`` (and the
tests' fakes): ``start_app`` binds one application; ``AppServer`` is the base of a server object that builds
its application and is started and stopped as a whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from aiohttp import web


async def start_app(
    app: web.Application, *, host: str, port: int, handler_cancellation: bool = False
) -> tuple[web.AppRunner, int]:
    """Bind ``app`` to ``host:port`` (0: any free port) and serve it; return its runner and the bound port.

    ``handler_cancellation``: cancel a handler when its client disconnects (aiohttp's default: let it run).
    """
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, handler_cancellation=handler_cancellation
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    return runner, (sockets[0].getsockname()[1] if sockets else port)


@dataclass(kw_only=True, eq=False)
class AppServer:
    """A server of the application ``app()`` builds, on ``host:port``; ``start``/``stop`` inside a running
    event loop.

    ``start()`` binds (``port`` 0: any free port; afterwards ``port`` holds the bound one, so a stopped
    server starts again on the same port); ``stop()`` closes it (a no-op when not started). ``host`` and
    ``port`` are keyword-only, so a subclass (a dataclass) may declare fields without defaults. Equality is
    identity unless a subclass declares otherwise.
    """

    host: str = "127.0.0.1"
    port: int = 0
    _runner: web.AppRunner | None = field(default=None, init=False, repr=False, compare=False)

    handler_cancellation: ClassVar[bool] = False
    """Cancel a handler when its client disconnects (see ``start_app``)."""

    def app(self) -> web.Application:
        """The application to serve (a new one per ``start``)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        """``http://host:port`` (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._runner, self.port = await start_app(
            self.app(), host=self.host, port=self.port, handler_cancellation=self.handler_cancellation
        )

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
