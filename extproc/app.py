"""The assembled ext_proc: config holder and watcher, endpoint signals and their scraper, picker, metrics
endpoint and gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path

from aiohttp import web

from extproc.loadaware import LoadAwarePicker
from extproc.metrics import Metrics, metrics_app
from extproc.picker import EndpointPicker
from extproc.processor import Dependencies
from extproc.scrape import Scraper
from extproc.server import ExtProcServer
from extproc.signals import SignalStore
from extproc.tls import MutualTLSFiles, server_credentials
from extproc.watch import ConfigHolder, ConfigWatcher

log = logging.getLogger(__name__)


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too; empty host = all interfaces) as a pair. Raises ValueError."""
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class ExtProcApp:
    """Everything one ext_proc process runs. ``start`` loads the config first, so the first request is routed
    by it; a config that fails to load leaves the (empty) default serving and the watcher retrying."""

    def __init__(
        self,
        *,
        config_path: Path,
        listen: str,
        metrics_listen: str | None,
        reload_interval: float = 0.25,
        seed: int | None = None,
        picker: EndpointPicker | None = None,
        reuse_port: bool = False,
        tls: MutualTLSFiles | None = None,
    ) -> None:
        rng = random.Random(seed)
        self.metrics = Metrics()
        self.holder = ConfigHolder()
        self.watcher = ConfigWatcher(
            path=config_path, holder=self.holder, metrics=self.metrics, interval=reload_interval
        )
        self.signals = SignalStore()
        self.scraper = Scraper(store=self.signals, current=lambda: self.holder.current)
        self._deps = deps = Dependencies(
            holder=self.holder,
            picker=picker or LoadAwarePicker(store=self.signals, rng=rng),
            metrics=self.metrics,
            rng=rng,
            signals=self.signals,
        )
        self.server = ExtProcServer(
            deps=deps,
            address=listen,
            reuse_port=reuse_port,
            credentials=server_credentials(tls) if tls is not None else None,
        )
        self._metrics_listen = metrics_listen
        self._runner: web.AppRunner | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._scrape_task: asyncio.Task[None] | None = None
        self.metrics_port: int | None = None

    async def start(self) -> None:
        self.watcher.load_once()
        self._watch_task = asyncio.create_task(self.watcher.run(), name="config-watcher")
        self._scrape_task = asyncio.create_task(self.scraper.run(), name="endpoint-scraper")
        if self._metrics_listen is not None:
            host, port = split_host_port(self._metrics_listen)
            self._runner = web.AppRunner(
                metrics_app(metrics=self.metrics, health=self.health), access_log=None, handle_signals=False
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, host, port)
            await site.start()
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.metrics_port = sockets[0].getsockname()[1] if sockets else port
        await self.server.start()
        log.info(
            "ext_proc listening on %s (port %s), metrics on %s, event loop %s",
            self.server.address,
            self.server.port,
            self.metrics_port,
            type(asyncio.get_running_loop()).__module__,
        )

    def health(self) -> tuple[bool, str]:
        """Liveness: healthy while the config watcher runs, since then the process serves its last good config
        and will load the next good one. A rejected config is reported in the text but stays healthy: a
        restart would serve nothing better (and an empty config until the file is fixed). A dead watcher is
        unhealthy, so the kubelet restarts the process."""
        task = self._watch_task
        if task is None or task.done():
            return False, "unhealthy: the config watcher is not running"
        serving = f"serving hash={self.holder.current.content_hash or '(none)'}"
        if self.watcher.last_error is not None:
            return True, f"ok: {serving}; the last config load failed: {self.watcher.last_error}"
        return True, f"ok: {serving}"

    async def stop(self, *, grace: float = 5.0) -> None:
        await self.server.stop(grace=grace)
        for task in (self._watch_task, self._scrape_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._deps.epp.close()
        if self._runner is not None:
            await self._runner.cleanup()
