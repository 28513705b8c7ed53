"""Serving a fake's aiohttp application in-process, on a loopback port."""

from __future__ import annotations

from aiohttp import web


async def serve(app: web.Application, *, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port`` (0: any free port); the runner (``cleanup()`` stops it) and the port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    return runner, sockets[0].getsockname()[1]
