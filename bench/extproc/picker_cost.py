"""The load-aware picker's cost, measured in one run against the random picker as the baseline.

* **Per request**: the ext_proc's whole request path in-process (request headers, body, pick, response
  headers, response body, end; no gRPC), for a pool of 16 endpoints with fresh scraped signals, with the
  random picker and with the load-aware one, interleaved. The difference is the CPU the load-aware picker
  adds per request (fusion over 16 endpoints, filters, scorers, prefix hashing and index, lease).
* **Scraping**: 16 simulator replicas (``aigw.sim``, one child process) scraped every 50 ms (20 Hz) for a
  while; this process's CPU time over wall time is the share of a core the scraper costs.

Run with ``make bench-extproc ARGS=--picker-only`` (or as the last part of ``make bench-extproc``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import orjson
import yaml
from envoy.config.core.v3 import base_pb2 as core
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from extproc.loadaware import LoadAwarePicker
from extproc.metrics import Metrics
from extproc.picker import EndpointPicker, RandomPicker
from extproc.processor import Dependencies, RequestProcessor
from extproc.scrape import Scraper
from extproc.signals import SignalStore
from extproc.snapshot import Snapshot, compile_bytes
from extproc.watch import ConfigHolder
from tests.integration.extproc.harness import REPO_ROOT
from tests.realparts.ports import free_port
from tests.unit.extproc.configs import pool_config

ENDPOINTS = 16


def _config(hosts: list[str], port: int, picker_type: str) -> Snapshot:
    cfg = pool_config(
        [(h, port) for h in hosts], models=[{"modelName": "bench"}], picker={"type": picker_type}
    )
    return compile_bytes(yaml.safe_dump(cfg).encode(), base_dir=REPO_ROOT)


def _hosts() -> list[str]:
    return [f"127.0.0.{21 + i}" for i in range(ENDPOINTS)]


def _messages(body_chars: int, i: int) -> list[bytes]:
    """Serialized ProcessingRequests of one request: 8 system prompts shared, then a unique question."""
    system = f"System prompt {i % 8}: you are a helpful assistant. " * (body_chars // 50)
    body = orjson.dumps(
        {
            "model": "bench",
            "messages": [
                {"role": "system", "content": system[:body_chars]},
                {"role": "user", "content": f"question {i}"},
            ],
        }
    )
    hdrs = [(":path", "/v1/chat/completions"), (":method", "POST"), ("content-type", "application/json")]
    return [
        ep.ProcessingRequest(
            request_headers=ep.HttpHeaders(
                headers=core.HeaderMap(
                    headers=[core.HeaderValue(key=k, raw_value=v.encode()) for k, v in hdrs]
                )
            )
        ).SerializeToString(),
        ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True)).SerializeToString(),
        ep.ProcessingRequest(
            response_headers=ep.HttpHeaders(
                headers=core.HeaderMap(headers=[core.HeaderValue(key=":status", raw_value=b"200")])
            )
        ).SerializeToString(),
        ep.ProcessingRequest(
            response_body=ep.HttpBody(
                body=b'{"usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}',
                end_of_stream=True,
            )
        ).SerializeToString(),
    ]


def _cpu_per_request(picker_type: str, *, body_chars: int, n: int) -> float:
    snapshot = _config(_hosts(), 8000, picker_type)
    rng = random.Random(1)
    store = SignalStore()
    picker: EndpointPicker = (
        LoadAwarePicker(store=store, rng=rng) if picker_type == "LoadAware" else RandomPicker(rng=rng)
    )
    deps = Dependencies(
        holder=ConfigHolder(snapshot), picker=picker, metrics=Metrics(), rng=rng, signals=store
    )
    now = store.clock()
    for j, h in enumerate(_hosts()):
        store.get(f"{h}:8000").record_scrape(
            now=now + 3600, waiting=j % 3, running=4, kv_cache=0.3, lora=None
        )
    reqs = [[ep.ProcessingRequest.FromString(m) for m in _messages(body_chars, i)] for i in range(256)]
    for i in range(500):  # warm the prefix index and caches
        proc = RequestProcessor(deps=deps)
        for m in reqs[i % 256]:
            proc.handle(m)
        proc.finish()
    start = time.process_time()
    for i in range(n):
        proc = RequestProcessor(deps=deps)
        for m in reqs[i % 256]:
            proc.handle(m)
        proc.finish()
    return (time.process_time() - start) / n * 1e6


def per_request(*, n: int, repeat: int) -> list[tuple[int, float, float]]:
    """(body chars, random µs/req, load-aware µs/req), medians of interleaved runs."""
    out = []
    for chars in (1024, 8192):
        rnd, la = [], []
        for _ in range(repeat):
            rnd.append(_cpu_per_request("Random", body_chars=chars, n=n))
            la.append(_cpu_per_request("LoadAware", body_chars=chars, n=n))
        out.append((chars, statistics.median(rnd), statistics.median(la)))
    return out


@contextlib.contextmanager
def _sim_replicas(port: int) -> Iterator[None]:
    cmd = [sys.executable, "-m", "aigw.sim", *(a for h in _hosts() for a in ("--listen", f"{h}:{port}"))]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready = 0
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while ready < ENDPOINTS:
            line = proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"aigw.sim did not start: {line!r}")
            ready += line.startswith(b"ready ")
        yield
    finally:
        proc.terminate()
        proc.wait(10)


async def _scrape_for(snapshot: Snapshot, seconds: float) -> tuple[float, int, int]:
    store = SignalStore()
    scraper = Scraper(store=store, current=lambda: snapshot)
    counts = {"n": 0}
    original = store.get

    task = asyncio.create_task(scraper.run())
    await asyncio.sleep(1.0)  # connections up
    seen = {a: original(a).scraped_at for a in store.addresses()}
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.monotonic() - wall0 < seconds:
        await asyncio.sleep(0.01)
        for a in store.addresses():
            t = original(a).scraped_at
            if t != seen[a]:
                seen[a] = t
                counts["n"] += 1
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return cpu / wall, counts["n"], scraper.scrapes_failed


def scraping(*, seconds: float) -> tuple[float, float, int]:
    """(share of a core, scrapes per second, failed scrapes) for 16 replicas at the default 50 ms."""
    import uvloop

    port = free_port()
    with _sim_replicas(port):
        snapshot = _config(_hosts(), port, "LoadAware")
        share, n, failed = uvloop.run(_scrape_for(snapshot, seconds))
    return share, n / seconds, failed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=20000, help="requests per measurement (default 20000)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved repetitions; medians (default 3)")
    p.add_argument("--scrape-seconds", type=float, default=10.0, help="scraping measurement (default 10 s)")
    args = p.parse_args(argv)
    rows = per_request(n=args.requests, repeat=args.repeat)
    share, rate, failed = scraping(seconds=args.scrape_seconds)
    print_table(rows, share=share, rate=rate, failed=failed)


def print_table(rows: list[tuple[int, float, float]], *, share: float, rate: float, failed: int) -> None:
    print(
        "\n| prompt | request path CPU µs/req, random picker | load-aware picker | added (target <= 30 µs) |"
    )
    print("|---|---|---|---|")
    for chars, rnd, la in rows:
        print(f"| {chars // 1024} KB, {ENDPOINTS} endpoints | {rnd:.1f} | {la:.1f} | {la - rnd:+.1f} |")
    print(
        f"\nscraping {ENDPOINTS} simulator replicas every 50 ms: {share * 100:.2f} % of a core "
        f"(target <= 5 %), {rate:.0f} scrapes/s, {failed} failed"
    )


if __name__ == "__main__":
    main()
