"""What the ext_proc knows about each pool endpoint right now: scraped model-server metrics and passive
observations of its own traffic.

The store is shared by the request path (leases, the picker) and the scraper. Everything runs on the one event
loop thread, so plain attribute updates need no lock. Endpoints are keyed by ``ip:port``: one model server is
one server whichever pool lists it.

Passive signals:
- ``inflight``: requests this ext_proc sent and whose response has not ended. A ``Lease`` is taken when the
  picker chooses the endpoint and released exactly once, whether the response ends, fails, the client goes
  away or the ext_proc stream resets (the stream's ``finally`` ends it), so the count never leaks.
- ``ttft`` and ``latency``: moving averages of successful responses only, so a fast failure never makes an
  endpoint look fast.
- ``penalty``: recent failures (5xx, 429 from the server, connect failures), decaying with a time constant,
  so traffic returns after the endpoint recovers even when nothing probes it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Final

from extproc.promtext import LoraInfo

EWMA_ALPHA: Final = 0.2
"""Weight of a new observation in the moving averages."""
RECENT_MODELS: Final = 8
"""Target models remembered per endpoint (the most recent)."""
LISTED_ADAPTERS: Final = 64
"""LoRA adapter names remembered per endpoint from its metrics (the first listed are dropped first)."""
PENALTY_TAU_S: Final = 2.0
"""Time constant of the failure penalty's decay: 1 failure weighs 0.37 after 2 s, 0.05 after 6 s."""

Clock = Callable[[], float]


class EndpointSignals:
    """Scraped and passive signals of one endpoint. Written by the scraper and by leases; read by pickers."""

    __slots__ = (
        "adapters",
        "address",
        "cap_running",
        "failed_scrapes",
        "inflight",
        "inflight_at_scrape",
        "kv_cache",
        "latency",
        "lora",
        "penalty",
        "penalty_at",
        "recent_models",
        "running",
        "scraped_at",
        "ttft",
        "unreachable",
        "waiting",
    )

    def __init__(self, address: str) -> None:
        self.address = address
        # scraped
        self.scraped_at = -math.inf
        self.waiting = 0.0
        self.running = 0.0
        self.kv_cache: float | None = None
        self.lora: LoraInfo | None = None
        self.adapters: dict[str, None] = {}
        """Every adapter a scrape listed (running or waiting), even once between two picks: a request for
        an adapter may start and end between picks, and the picker must still learn that it is one."""
        self.inflight_at_scrape = 0
        """Our ``inflight`` when the scrape was answered: the fusion adds what changed since."""
        self.cap_running = 0.0
        """Largest running batch ever scraped: the server's batch size, learnt."""
        self.failed_scrapes = 0
        """Consecutive scrapes that failed (any reason); reset by a good one."""
        self.unreachable = False
        """The last scrape could not connect or timed out."""
        # passive
        self.inflight = 0
        self.ttft: float | None = None
        self.latency: float | None = None
        self.penalty = 0.0
        self.penalty_at = 0.0
        self.recent_models: dict[str, float] = {}
        """Target models (adapters) this ext_proc sent here, with when: a server keeps an adapter loaded after
        its last request, which its metrics do not show. At most ``RECENT_MODELS`` kept."""

    def served_model(self, model: str, now: float) -> None:
        """Remember that a request for ``model`` was just sent here."""
        recent = self.recent_models
        recent.pop(model, None)
        recent[model] = now
        if len(recent) > RECENT_MODELS:
            del recent[next(iter(recent))]

    def record_scrape(
        self, *, now: float, waiting: float, running: float, kv_cache: float | None, lora: LoraInfo | None
    ) -> None:
        """A good scrape answered at ``now``."""
        self.scraped_at = now
        self.waiting = waiting
        self.running = running
        self.kv_cache = kv_cache
        self.lora = lora
        if lora is not None and (lora.running or lora.waiting):
            adapters = self.adapters
            for name in (*lora.running, *lora.waiting):
                if name not in adapters:
                    adapters[name] = None
                    if len(adapters) > LISTED_ADAPTERS:
                        del adapters[next(iter(adapters))]
        self.inflight_at_scrape = self.inflight
        if running > self.cap_running:
            self.cap_running = running
        self.failed_scrapes = 0
        self.unreachable = False

    def record_scrape_failure(self, *, unreachable: bool) -> None:
        """A scrape failed; ``unreachable`` when it could not connect or timed out (else: a bad answer)."""
        self.failed_scrapes += 1
        self.unreachable = unreachable

    def penalty_now(self, now: float) -> float:
        """The failure penalty decayed to ``now``."""
        p = self.penalty
        if p == 0.0:
            return 0.0
        return p * math.exp((self.penalty_at - now) / PENALTY_TAU_S)

    def add_failure(self, now: float) -> None:
        self.penalty = self.penalty_now(now) + 1.0
        self.penalty_at = now


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + EWMA_ALPHA * (new - old)


class Lease:
    """One request's claim on an endpoint. ``first_byte`` once the response starts; ``end`` exactly once
    (later calls do nothing)."""

    __slots__ = ("_clock", "_ended", "_first_at", "_started", "signals")

    def __init__(self, signals: EndpointSignals, clock: Clock) -> None:
        self.signals = signals
        self._clock = clock
        self._started = clock()
        self._first_at = 0.0
        self._ended = False
        signals.inflight += 1

    def first_byte(self) -> None:
        """The first response byte (a streamed chunk, or the headers of a buffered answer) arrived."""
        if not self._first_at:
            self._first_at = self._clock()

    def end(self, *, status: int) -> None:
        """The request is over. ``status`` is the response status, 0 when none arrived (reset, disconnect).

        2xx feeds the moving averages; 5xx and 429 add to the failure penalty; anything else (4xx, or no
        response because the client left) only releases the in-flight slot.
        """
        if self._ended:
            return
        self._ended = True
        s = self.signals
        s.inflight -= 1
        now = self._clock()
        if 200 <= status < 300:
            if self._first_at:
                s.ttft = _ewma(s.ttft, self._first_at - self._started)
            s.latency = _ewma(s.latency, now - self._started)
        elif status >= 500 or status == 429:
            s.add_failure(now)


class SignalStore:
    """Signals by endpoint address. ``sync`` keeps exactly the endpoints of the current config (an endpoint
    removed while it has requests in flight is dropped from the store; its leases still end cleanly)."""

    __slots__ = ("_by_address", "clock")

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._by_address: dict[str, EndpointSignals] = {}

    def get(self, address: str) -> EndpointSignals:
        """The endpoint's signals, created empty on first use."""
        s = self._by_address.get(address)
        if s is None:
            s = self._by_address[address] = EndpointSignals(address)
        return s

    def begin(self, address: str) -> Lease:
        """Count a request as in flight on ``address`` until its lease ends."""
        return Lease(self.get(address), self.clock)

    def sync(self, addresses: Iterable[str]) -> None:
        """Keep the endpoints in ``addresses`` (creating missing ones), drop the others."""
        wanted = dict.fromkeys(addresses)
        for a in [a for a in self._by_address if a not in wanted]:
            del self._by_address[a]
        for a in wanted:
            self.get(a)

    def addresses(self) -> list[str]:
        return list(self._by_address)

    def total_inflight(self) -> int:
        return sum(s.inflight for s in self._by_address.values())
