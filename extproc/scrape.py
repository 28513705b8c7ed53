"""Polls every load-aware pool endpoint's Prometheus page, off the request path, and writes what it reads
into the ``SignalStore``.

Cheap by construction: one ticker task for all endpoints; each endpoint keeps one HTTP/1.1 keep-alive
connection (an ``asyncio.Protocol``, no task or future per scrape); the request bytes are built once; the page
is read with ``extproc.promtext``, which looks only for the wanted series. Nothing ever awaits an endpoint:
a tick writes the request and returns, the answer is handled in the protocol's callback, and a scrape still
unanswered after its timeout is abandoned and its connection closed. So a slow or dead endpoint cannot delay
the others or the request path. Connection failures back off (up to one second between attempts).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

from api import picker as pk
from extproc import promtext
from extproc.signals import EndpointSignals, SignalStore
from extproc.snapshot import Pool, Snapshot

log = logging.getLogger(__name__)

MAX_PAGE_BYTES: Final = 4 * 1024 * 1024
"""A metrics page larger than this is refused (and the connection closed)."""
MAX_BACKOFF_S: Final = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetSpec:
    """Where and how to scrape one endpoint."""

    address: str
    """The endpoint's ``ip:port`` (the signals' key)."""
    host: str
    port: int
    authority: str
    settings: pk.ScrapeSettings
    own_port: bool = True
    """The metrics are on the port the endpoint serves: failing to connect there means the server is down.
    On a separate metrics port it only means the metrics are, so the endpoint is not marked unreachable."""


def targets_of(snapshot: Snapshot) -> dict[str, TargetSpec]:
    """The endpoints of every load-aware pool of ``snapshot``, by address (first pool listing one wins)."""
    out: dict[str, TargetSpec] = {}
    for pool in _pools(snapshot):
        picker = pool.picker
        if picker.type == pk.PickerType.LOAD_AWARE:
            for e in pool.endpoints:
                if e.address in out:
                    continue
                host, _, port = e.address.rpartition(":")
                metrics_port = picker.scrape.port or int(port)
                out[e.address] = TargetSpec(
                    address=e.address,
                    host=host.strip("[]"),
                    port=metrics_port,
                    authority=f"{e.hostname or host}:{metrics_port}",
                    settings=picker.scrape,
                    own_port=metrics_port == int(port),
                )
    return out


class _Page:
    """Incremental HTTP/1.1 response reader: status, Content-Length or chunked or until-close bodies."""

    __slots__ = ("buf", "chunked", "close", "header_end", "length", "status")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.header_end = -1
        self.status = 0
        self.length: int | None = None
        self.chunked = False
        self.close = False

    def feed(self, data: bytes) -> bytes | None:
        """Add bytes; the body once complete (``b""`` counts), else None. Raises ValueError if malformed."""
        self.buf += data
        if len(self.buf) > MAX_PAGE_BYTES:
            raise ValueError("metrics page too large")
        if self.header_end < 0:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return None
            self.header_end = i + 4
            lines = bytes(self.buf[:i]).split(b"\r\n")
            parts = lines[0].split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise ValueError("not an HTTP/1.x response")
            self.status = int(parts[1])
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                v = v.strip().lower()
                if k == b"content-length":
                    self.length = int(v)
                elif k == b"transfer-encoding" and b"chunked" in v:
                    self.chunked = True
                elif k == b"connection" and v == b"close":
                    self.close = True
        body = self.buf[self.header_end :]
        if self.chunked:
            return self._dechunk(bytes(body))
        if self.length is not None:
            return bytes(body[: self.length]) if len(body) >= self.length else None
        return None  # read until the server closes

    @staticmethod
    def _dechunk(body: bytes) -> bytes | None:
        out = bytearray()
        pos = 0
        while True:
            eol = body.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(body[pos:eol].split(b";", 1)[0], 16)
            start = eol + 2
            if size == 0:
                return bytes(out) if body.find(b"\r\n", start) >= 0 else None
            if len(body) < start + size + 2:
                return None
            out += body[start : start + size]
            pos = start + size + 2


def implausible(*, waiting: float, running: float, kv_cache: float | None) -> str | None:
    """Why these scraped values can't be trusted (NaN, infinite, negative counts, KV-cache use outside 0-1,
    e.g. a server reporting percent), or None. Such a page counts as a failed scrape: trusting it would
    poison the comparison of every endpoint (a NaN load scores nothing, a KV use of 57 saturates the pool
    and sheds its traffic), while a failed scrape only leaves this endpoint to our in-flight count."""
    for name, v in (("waiting", waiting), ("running", running)):
        if not (v >= 0.0 and math.isfinite(v)):
            return f"implausible {name} value {v!r}"
    if kv_cache is not None and not 0.0 <= kv_cache <= 1.0:
        return f"KV-cache use {kv_cache!r} is not a fraction between 0 and 1"
    return None


class _Target(asyncio.Protocol):
    """One endpoint's scrape connection and schedule."""

    def __init__(self, *, spec: TargetSpec, signals: EndpointSignals, scraper: Scraper) -> None:
        self.spec = spec
        self.signals = signals
        self._scraper = scraper
        s = spec.settings
        self._request = (
            f"GET {s.path} HTTP/1.1\r\nHost: {spec.authority}\r\nAccept: text/plain\r\n"
            "User-Agent: aigw-extproc\r\n\r\n"
        ).encode()
        self._names = (
            s.metric_names.waiting.encode(),
            s.metric_names.running.encode(),
            tuple(n.encode() for n in s.metric_names.kv_cache),
            s.metric_names.lora_info.encode(),
        )
        self._interval = s.interval_ms / 1000
        self._timeout = s.timeout_ms / 1000
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._page: _Page | None = None
        self._sent_at = 0.0
        self._next_at = 0.0
        self._backoff = 0.0
        self.closed = False

    # -- schedule (called by the ticker) ----------------------------------------------------------

    def tick(self, now: float) -> None:
        if self._page is not None:
            if now - self._sent_at > self._timeout:
                # connected but slow to answer: the server is up (requests may well be served), so its
                # scraped values go stale and the picker weighs it by our in-flight count, as it does an
                # endpoint without metrics; only a failed connect marks it unreachable (filtered out)
                self._fail(unreachable=False, why=f"no answer within {self._timeout * 1000:.0f} ms")
            return
        if self._connecting is not None:
            if now - self._sent_at > self._timeout:
                self._connecting.cancel()
                self._connecting = None
                self._fail(unreachable=True, why="connect timed out")
            return
        if now < self._next_at:
            return
        self._next_at = max(self._next_at + self._interval, now + self._interval * 0.5)
        self._sent_at = now
        if self._transport is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect(), name="scrape-connect")
            return
        self._send()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: self, self.spec.host, self.spec.port)
        except OSError as e:
            self._connecting = None
            self._fail(unreachable=True, why=f"cannot connect: {e.strerror or e}")
            return
        self._connecting = None
        if self.closed:
            self._drop_transport()
            return
        self._send()

    def _send(self) -> None:
        if self._transport is None:  # lost between connecting and now: the next tick reconnects
            return
        self._page = _Page()
        self._transport.write(self._request)

    # -- protocol callbacks -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have the same methods
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        page = self._page
        if page is None:
            self._drop_transport()  # unsolicited bytes: the connection is out of step
            return
        try:
            body = page.feed(data)
        except ValueError as e:
            self._fail(unreachable=False, why=str(e))
            return
        if body is not None:
            self._done(page, body)

    def eof_received(self) -> bool | None:
        page = self._page
        if page is not None and page.header_end >= 0 and page.length is None and not page.chunked:
            self._done(page, bytes(page.buf[page.header_end :]))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._page is not None:
            self._page = None
            self._scraper.failed(self, unreachable=True, why="connection lost")

    # -- outcomes ---------------------------------------------------------------------------------

    def _done(self, page: _Page, body: bytes) -> None:
        self._page = None
        if page.close:
            self._drop_transport()
        if page.status != 200:
            self._scraper.failed(self, unreachable=False, why=f"status {page.status}")
            return
        waiting_name, running_name, kv_names, lora_name = self._names
        waiting = promtext.total(body, waiting_name)
        running = promtext.total(body, running_name)
        if waiting is None and running is None:
            self._scraper.failed(self, unreachable=False, why="no waiting/running series on the page")
            return
        kv = None
        for n in kv_names:
            kv = promtext.maximum(body, n)
            if kv is not None:
                break
        bad = implausible(waiting=waiting or 0.0, running=running or 0.0, kv_cache=kv)
        if bad is not None:
            self._scraper.failed(self, unreachable=False, why=bad)
            return
        lora = promtext.lora_info(body, lora_name) if lora_name else None
        self._backoff = 0.0
        self.signals.record_scrape(
            now=self._scraper.clock(), waiting=waiting or 0.0, running=running or 0.0, kv_cache=kv, lora=lora
        )

    def _fail(self, *, unreachable: bool, why: str) -> None:
        self._page = None
        self._drop_transport()
        if unreachable:
            self._backoff = min(MAX_BACKOFF_S, max(self._interval, self._backoff * 2))
            self._next_at = self._scraper.clock() + self._backoff
        self._scraper.failed(self, unreachable=unreachable, why=why)

    def _drop_transport(self) -> None:
        t, self._transport = self._transport, None
        if t is not None:
            t.abort()

    def close(self) -> None:
        self.closed = True
        self._page = None
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        self._drop_transport()


class Scraper:
    """Scrapes the endpoints of the snapshot ``current()`` returns; follows config changes on each tick."""

    def __init__(
        self, *, store: SignalStore, current: Callable[[], Snapshot], tick_s: float | None = None
    ) -> None:
        self._store = store
        self._current = current
        self._tick_s = tick_s
        self._seen: Snapshot | None = None
        self._targets: dict[str, _Target] = {}
        self.clock = store.clock
        self.scrapes_failed = 0

    @property
    def targets(self) -> list[str]:
        return list(self._targets)

    def failed(self, target: _Target, *, unreachable: bool, why: str) -> None:
        self.scrapes_failed += 1
        if target.closed:
            return
        s = target.signals
        if s.failed_scrapes == 0:  # log the first failure of a run only
            log.info("scraping %s failed: %s", target.spec.address, why)
        s.record_scrape_failure(unreachable=unreachable and target.spec.own_port)

    def _sync(self, snapshot: Snapshot) -> None:
        self._seen = snapshot
        wanted = targets_of(snapshot)
        addresses = [e.address for p in _pools(snapshot) for e in p.endpoints]
        self._store.sync(addresses)
        for a in list(self._targets):
            if a not in wanted or self._targets[a].spec != wanted[a]:
                self._targets.pop(a).close()
        for a, spec in wanted.items():
            if a not in self._targets:
                self._targets[a] = _Target(spec=spec, signals=self._store.get(a), scraper=self)

    def tick(self) -> None:
        """One round: follow the config, then scrape every endpoint that is due."""
        snapshot = self._current()
        if snapshot is not self._seen:
            self._sync(snapshot)
        now = self.clock()
        for t in self._targets.values():
            t.tick(now)

    def _interval(self) -> float:
        if self._tick_s is not None:
            return self._tick_s
        ms = [t.spec.settings.interval_ms for t in self._targets.values()]
        return min(ms) / 1000 / 2 if ms else 0.25

    async def run(self) -> None:
        """Tick until cancelled; then close every connection."""
        try:
            while True:
                self.tick()
                await asyncio.sleep(self._interval())
        finally:
            self.close()

    def close(self) -> None:
        for t in self._targets.values():
            t.close()
        self._targets.clear()
        self._seen = None


def _pools(snapshot: Snapshot) -> list[Pool]:
    """Every pool the snapshot's rules reach, once each, in rule order."""
    seen: dict[str, Pool] = {}
    for rule in snapshot.rules:
        for item in rule.backends.items:
            if isinstance(item, Pool):
                seen.setdefault(item.name, item)
    return list(seen.values())
