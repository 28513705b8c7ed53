"""Benchmark of controller.runtime against the real kube-apiserver + etcd: ``make bench-runtime``.

Creates N (default 10,000) Widgets (a test CRD) in one namespace, then measures, in one run:

1. time to cache sync: a fresh informer's list, decode and store, until ``has_synced``;
2. memory of the cache: Python heap held by an informer's store after sync (tracemalloc, second informer),
   and the process RSS growth over the first sync;
3. reconciles per second of a no-op reconciler draining the N initial keys (1 and 4 workers);
4. update-to-reconcile latency: from just before a PATCH is sent to the moment the reconciler reads the new
   spec from the cache; at idle (sequential updates) and under a burst of 1,000 concurrent updates.

Prints a Markdown table (paste it into bench/README.md) and a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from controller.runtime import (
    Controller,
    FuncHandler,
    Informer,
    KubeClient,
    Object,
    Request,
    Resource,
    object_key,
    strip_managed_fields,
)
from tests.realparts.controlplane import ControlPlane

CRD = Path(__file__).resolve().parents[2] / "tests" / "integration" / "runtime" / "widgets-crd.yaml"
WIDGETS = Resource(group="runtime.test.aigw.io", version="v1", plural="widgets", kind="Widget")
NAMESPACE = "bench"


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def create_widgets(kube: KubeClient, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        body = {
            "apiVersion": WIDGETS.api_version,
            "kind": "Widget",
            "metadata": {"name": f"w-{i:05d}", "namespace": NAMESPACE, "labels": {"app": "bench"}},
            "spec": {"size": i, "seq": 0, "owner": "bench", "tags": ["a", "b", "c"]},
        }
        async with sem:
            await kube.create(WIDGETS, body)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started


async def sync_informer(
    kube: KubeClient, *, transform: Callable[[Object], Object] | None = None
) -> tuple[Informer, asyncio.Task[None], float]:
    informer = Informer(client=kube, resource=WIDGETS, namespace=NAMESPACE, transform=transform)
    started = time.perf_counter()
    task = asyncio.create_task(informer.run())
    assert await informer.wait_for_sync(within=300)
    return informer, task, time.perf_counter() - started


async def stop(*tasks: asyncio.Task[Any]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def reconciles_per_second(informer: Informer, n: int, workers: int) -> float:
    done = 0
    finished = asyncio.Event()

    async def noop(req: Request) -> None:
        nonlocal done
        informer.store.get(req.key)
        done += 1
        if done == n:
            finished.set()

    ctrl = Controller(name=f"noop-{workers}", reconcile=noop, max_concurrent_reconciles=workers)
    ctrl.watch(informer)  # a late handler: one synthetic add, hence one key, per cached object
    started = time.perf_counter()
    task = asyncio.create_task(ctrl.start())
    await asyncio.wait_for(finished.wait(), 300)
    elapsed = time.perf_counter() - started
    await stop(task)
    return n / elapsed


class LatencyProbe:
    """A reconciler that notes when it first reads an awaited (key, seq) from the cache."""

    def __init__(self, informer: Informer, initial: int) -> None:
        self.informer = informer
        self.initial = initial
        self.reconciles = 0
        self.initial_done = asyncio.Event()
        self.sent: dict[tuple[str, int], float] = {}
        self.arrived: dict[tuple[str, int], float] = {}
        self.latencies: list[float] = []
        self.in_process: list[float] = []
        self.all_seen = asyncio.Event()
        informer.add_handler(FuncHandler(on_update=self.on_update))

    def on_update(self, old: Object, new: Object) -> None:
        """Runs before the controller's handler: when the watch event reached this process."""
        key = (object_key(new), new["spec"].get("seq", 0))
        if key in self.sent:
            self.arrived[key] = time.perf_counter()

    async def reconcile(self, req: Request) -> None:
        self.reconciles += 1
        if self.reconciles == self.initial:
            self.initial_done.set()
        obj = self.informer.store.get(req.key)
        if obj is None:
            return
        key = (req.key, obj["spec"].get("seq", 0))
        sent = self.sent.pop(key, None)
        if sent is not None:
            now = time.perf_counter()
            self.latencies.append(now - sent)
            self.in_process.append(now - self.arrived.pop(key, now))
            if not self.sent:
                self.all_seen.set()


async def update(kube: KubeClient, probe: LatencyProbe, i: int, seq: int) -> None:
    name = f"w-{i:05d}"
    probe.sent[(f"{NAMESPACE}/{name}", seq)] = time.perf_counter()
    await kube.patch(WIDGETS, name=name, namespace=NAMESPACE, body={"spec": {"seq": seq}})


async def latency(kube: KubeClient, informer: Informer, *, idle_samples: int, burst: int) -> dict[str, Any]:
    probe = LatencyProbe(informer, initial=len(informer.store))
    ctrl = Controller(name="latency", reconcile=probe.reconcile, max_concurrent_reconciles=4)
    ctrl.watch(informer)
    task = asyncio.create_task(ctrl.start())
    await asyncio.wait_for(probe.initial_done.wait(), 300)  # drain the initial adds first

    idle: list[float] = []
    for s in range(idle_samples):
        probe.all_seen.clear()
        await update(kube, probe, s, seq=1)
        await asyncio.wait_for(probe.all_seen.wait(), 30)
        idle.append(probe.latencies.pop())
        await asyncio.sleep(0.05)

    idle_in_process = list(probe.in_process)
    probe.latencies.clear()
    probe.in_process.clear()
    probe.all_seen.clear()
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await update(kube, probe, i, seq=2)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(burst)))
    sent_all = time.perf_counter() - started
    await asyncio.wait_for(probe.all_seen.wait(), 120)
    burst_total = time.perf_counter() - started
    await stop(task)
    ms = 1000.0
    return {
        "idle_p50_ms": statistics.median(idle) * ms,
        "idle_p95_ms": pct(idle, 95) * ms,
        "idle_max_ms": max(idle) * ms,
        "burst_p50_ms": statistics.median(probe.latencies) * ms,
        "burst_p95_ms": pct(probe.latencies, 95) * ms,
        "burst_p99_ms": pct(probe.latencies, 99) * ms,
        "burst_max_ms": max(probe.latencies) * ms,
        "idle_in_process_p50_ms": statistics.median(idle_in_process) * ms,
        "burst_in_process_p50_ms": statistics.median(probe.in_process) * ms,
        "burst_in_process_p99_ms": pct(probe.in_process, 99) * ms,
        "burst_send_s": sent_all,
        "burst_all_reconciled_s": burst_total,
    }


async def bench(cp: ControlPlane, *, n: int, idle_samples: int, burst: int) -> dict[str, Any]:
    cp.apply_crds([CRD])
    cp.kubectl("create", "namespace", NAMESPACE)
    results: dict[str, Any] = {"objects": n, "burst": burst}
    async with client.ApiClient(cp.client_configuration()) as api:
        kube = KubeClient(api)
        results["create_s"] = await create_widgets(kube, n, concurrency=32)

        gc.collect()
        rss0 = rss_bytes()
        informer, task, results["cache_sync_s"] = await sync_informer(kube)
        gc.collect()
        results["rss_growth_mib"] = (rss_bytes() - rss0) / 2**20
        assert len(informer.store) == n

        for label, transform in (("cache_heap_mib", None), ("cache_heap_stripped_mib", strip_managed_fields)):
            gc.collect()
            tracemalloc.start()
            second, second_task, _ = await sync_informer(kube, transform=transform)
            await stop(second_task)
            gc.collect()
            results[label] = tracemalloc.get_traced_memory()[0] / 2**20
            tracemalloc.stop()
            assert len(second.store) == n
            del second, second_task

        results["reconciles_per_s_1_worker"] = await reconciles_per_second(informer, n, workers=1)
        results["reconciles_per_s_4_workers"] = await reconciles_per_second(informer, n, workers=4)
        results |= await latency(kube, informer, idle_samples=idle_samples, burst=burst)
        await stop(task)
    return results


def table(r: dict[str, Any]) -> str:
    n = r["objects"]
    rows = [
        ("objects (Widget CRD, one namespace)", f"{n:,}"),
        ("create them (32 concurrent POSTs)", f"{r['create_s']:.1f} s ({n / r['create_s']:.0f}/s)"),
        ("time to cache sync (list + decode + store)", f"{r['cache_sync_s']:.2f} s"),
        ("cache memory (Python heap of the store, tracemalloc)", f"{r['cache_heap_mib']:.1f} MiB"),
        ("  per object", f"{r['cache_heap_mib'] * 2**20 / n / 1024:.2f} KiB"),
        ("cache memory with `transform=strip_managed_fields`", f"{r['cache_heap_stripped_mib']:.1f} MiB"),
        ("process RSS growth over the first sync", f"{r['rss_growth_mib']:.1f} MiB"),
        ("no-op reconciles/s, 1 worker", f"{r['reconciles_per_s_1_worker']:,.0f}"),
        ("no-op reconciles/s, 4 workers", f"{r['reconciles_per_s_4_workers']:,.0f}"),
        (
            "update→reconcile at idle, p50 / p95 / max",
            f"{r['idle_p50_ms']:.1f} / {r['idle_p95_ms']:.1f} / {r['idle_max_ms']:.1f} ms",
        ),
        (
            f"update→reconcile, burst of {r['burst']:,}, p50 / p95 / p99 / max",
            f"{r['burst_p50_ms']:.0f} / {r['burst_p95_ms']:.0f} / {r['burst_p99_ms']:.0f} / "
            f"{r['burst_max_ms']:.0f} ms",
        ),
        (
            "  of which in this process (watch event read → reconcile), idle p50; burst p50 / p99",
            f"{r['idle_in_process_p50_ms']:.2f} ms; {r['burst_in_process_p50_ms']:.2f} / "
            f"{r['burst_in_process_p99_ms']:.2f} ms",
        ),
        (
            f"burst: all {r['burst']:,} PATCHes sent / all reconciled",
            f"{r['burst_send_s']:.2f} s / {r['burst_all_reconciled_s']:.2f} s",
        ),
    ]
    return "| measure | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--idle-samples", type=int, default=50)
    parser.add_argument("--burst", type=int, default=1_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with ControlPlane(install_crds=False) as cp:
        results = asyncio.run(bench(cp, n=args.objects, idle_samples=args.idle_samples, burst=args.burst))
    print(table(results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
