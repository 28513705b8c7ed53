"""``/healthz``, ``/readyz`` and ``/metrics`` over aiohttp.

A check is a function returning a bool (or an awaitable of one); raising counts as failing. An endpoint
answers 200 ``ok`` when every check passes, else 500 listing the failures. ``?verbose`` lists every check as
the API server does (``[+]name ok`` / ``[-]name failed``). ``/metrics`` serves the manager's own registry.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Check = Callable[[], bool | Awaitable[bool]]


async def _run_check(check: Check) -> bool:
    try:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        return bool(result)
    except Exception:
        log.exception("health check failed")
        return False


class HealthServer:
    """Serves probes and metrics on ``host:port`` (port 0 picks a free one; read ``port`` after ``start``)."""

    def __init__(self, *, registry: CollectorRegistry, host: str = "0.0.0.0", port: int = 8081) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._checks: dict[str, dict[str, Check]] = {"healthz": {"ping": lambda: True}, "readyz": {}}
        self._runner: web.AppRunner | None = None
        self.port = port

    def add_healthz_check(self, name: str, check: Check) -> None:
        """Add a liveness check (a failing one gets the process restarted by the kubelet)."""
        self._checks["healthz"][name] = check

    def add_readyz_check(self, name: str, check: Check) -> None:
        """Add a readiness check (a failing one takes the pod out of its Services)."""
        self._checks["readyz"][name] = check

    async def check(self, endpoint: str) -> dict[str, bool]:
        """Run the checks of ``healthz`` or ``readyz``; name -> passed."""
        return {name: await _run_check(c) for name, c in self._checks[endpoint].items()}

    async def start(self) -> None:
        """Bind and serve."""
        app = web.Application()
        app.router.add_get("/healthz", self._probe("healthz"))
        app.router.add_get("/readyz", self._probe("readyz"))
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("serving /healthz, /readyz and /metrics on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _probe(self, endpoint: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            results = await self.check(endpoint)
            ok = all(results.values())
            if ok and "verbose" not in request.query:
                return web.Response(text="ok")
            lines = [
                f"[{'+' if passed else '-'}]{name} {'ok' if passed else 'failed'}"
                for name, passed in results.items()
            ]
            lines.append(f"{endpoint} check {'passed' if ok else 'failed'}")
            return web.Response(text="\n".join(lines) + "\n", status=200 if ok else 500)

        return handle

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
