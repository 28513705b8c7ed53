"""Serving an aiohttp application on one address, for the in-process HTTP servers of ``aigw``."""

from __future__ import annotations

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
