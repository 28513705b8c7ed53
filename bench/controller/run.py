"""Benchmark of the AI Gateway controller on the real kube-apiserver, etcd and dnsmasq.

Run it with ``make bench-controller`` (``ARGS="--scale 0.1"`` for a quick run).

Scale (defaults from issue 5; ``--scale 0.1`` for a quick run): 50 Gateways, 1,000 AIGatewayRoutes (20 per
Gateway) of 3 rules, each rule with one AIServiceBackend (3,000 backends, on 300 Envoy Gateway Backends), and
100 InferencePools (2 per Gateway, each reached by one route) of 10 endpoints (a headless Service that dnsmasq
resolves to 10 addresses) with 5 InferenceModels each.

``aigw-controller`` runs as its own process (default mode: ext_proc Deployment + Service per Gateway), started
before the objects are created, as a user would run it. Measured:

1. convergence: from the moment the last object's create returns until every Gateway's ConfigMap holds the
   complete config (62 rules, 2 pools of 10 endpoints and 5 models), observed through a watch;
2. change latency: 100 single changes (a route's header value, one Gateway at a time), from just before the
   PATCH is sent to the watch event of that Gateway's ConfigMap with the new value; p50 / p99 / max;
3. API writes per change: ``aigw_controller_api_writes_total`` before and after each change (after the config
   arrived and 1 s more); and for 50 no-op changes (an annotation on a route): must be 0. Changes start once
   the controller has been quiet (no write) for 3 s after convergence, which also gives the time until the
   last status was written;
4. the controller's RSS (``VmRSS``, ``VmHWM``) after convergence and at the end;
5. the controller's CPU time (user + system, from ``/proc``) from its start to ready, and from then until the
   last status was written; the status writes in that time, by kind; and, in this process, the CPU time to
   read every object of a modelled kind once into its api model (``TopLevelObject.read``, best of 3): the most
   the controller's cache can spend re-reading objects after a round of status writes (each makes a new
   object version).

``--unrelated-secrets N`` (with ``--unrelated-secret-kib K``, default 100) first creates N Secrets of K KiB
that nothing references, shaped like Helm's release Secrets (``type: helm.sh/release.v1``), as a large cluster
has: the controller's RSS then shows what they cost it (the "idle" RSS is taken once its informers synced).

Prints a Markdown table and a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client
from prometheus_client.parser import text_string_to_metric_families

from api import inference, v1alpha1
from api.envoygateway import Backend
from api.filterconfig import CONFIG_KEY
from api.gatewayapi import GATEWAY
from api.objects import TopLevelObject
from controller.gateway import kinds
from controller.runtime import (
    CONFIGMAPS,
    NAMESPACES,
    SECRETS,
    SERVICES,
    KubeClient,
    Resource,
    strip_managed_fields,
)
from controller.translate import extproc_name
from tests.realparts.controlplane import ControlPlane
from tests.realparts.dns import DnsServer
from tests.realparts.ports import free_port

NS = "bench"
AIGW = v1alpha1.API_VERSION
GW_API = GATEWAY.api_version
EG = Backend.KIND_INFO.api_version
INF = inference.API_VERSION
GATEWAYCLASSES = Resource(GATEWAY.group, GATEWAY.version, "gatewayclasses", "GatewayClass", namespaced=False)


def md(name: str, **labels: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "namespace": NS}
    if labels:
        out["labels"] = labels
    return out


class Scale:
    def __init__(self, factor: float) -> None:
        self.gateways = max(2, round(50 * factor))
        self.routes_per_gateway = 20
        self.rules_per_route = 3
        self.eg_backends = max(10, round(300 * factor))
        self.pools_per_gateway = 2
        self.endpoints = 10
        self.models = 5

    @property
    def rules_per_gateway(self) -> int:
        return self.routes_per_gateway * self.rules_per_route + self.pools_per_gateway

    def describe(self) -> str:
        return (
            f"{self.gateways} Gateways, {self.gateways * self.routes_per_gateway} AIGatewayRoutes, "
            f"{self.gateways * self.routes_per_gateway * self.rules_per_route} AIServiceBackends, "
            f"{self.gateways * self.pools_per_gateway} InferencePools x {self.endpoints} endpoints x "
            f"{self.models} InferenceModels"
        )


def objects(s: Scale) -> tuple[list[tuple[Resource, dict[str, Any]]], dict[str, list[str]]]:
    objs: list[tuple[Resource, dict[str, Any]]] = []
    records: dict[str, list[str]] = {}
    for e in range(s.eg_backends):
        objs.append(
            (
                kinds.EG_BACKENDS,
                {
                    "apiVersion": EG,
                    "kind": "Backend",
                    "metadata": md(f"eb-{e}"),
                    "spec": {"endpoints": [{"fqdn": {"hostname": f"provider-{e}.example", "port": 443}}]},
                },
            )
        )
    n = 0
    for g in range(s.gateways):
        objs.append(
            (
                kinds.GATEWAYS,
                {
                    "apiVersion": GW_API,
                    "kind": "Gateway",
                    "metadata": md(f"gw-{g}"),
                    "spec": {
                        "gatewayClassName": "bench",
                        "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
                    },
                },
            )
        )
        for p in range(s.pools_per_gateway):
            pool = f"pool-{g}-{p}"
            svc = f"ps-{g}-{p}"
            records[f"{svc}.{NS}.svc.cluster.local"] = [
                f"10.{100 + g // 200}.{g % 200}.{p * 16 + i + 1}" for i in range(s.endpoints)
            ]
            objs.append(
                (
                    SERVICES,
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": md(svc),
                        "spec": {"clusterIP": "None", "ports": [{"port": 8080}]},
                    },
                )
            )
            objs.append(
                (
                    kinds.AISERVICEBACKENDS,
                    {
                        "apiVersion": AIGW,
                        "kind": "AIServiceBackend",
                        "metadata": md(f"pb-{g}-{p}", pool=pool),
                        "spec": {"schema": {"name": "OpenAI"}, "backendRef": {"name": svc, "port": 8080}},
                    },
                )
            )
            objs.append(
                (
                    kinds.INFERENCEPOOLS,
                    {
                        "apiVersion": INF,
                        "kind": "InferencePool",
                        "metadata": md(pool),
                        "spec": {
                            "selector": {"pool": pool},
                            "targetPortNumber": 8080,
                            "extensionRef": {"name": "envoy-ai-gateway"},
                        },
                    },
                )
            )
            for m in range(s.models):
                objs.append(
                    (
                        kinds.INFERENCEMODELS,
                        {
                            "apiVersion": INF,
                            "kind": "InferenceModel",
                            "metadata": md(f"im-{g}-{p}-{m}"),
                            "spec": {
                                "modelName": f"model-{m}",
                                "criticality": "Standard",
                                "poolRef": {"name": pool},
                            },
                        },
                    )
                )
        for r in range(s.routes_per_gateway):
            rules: list[dict[str, Any]] = []
            for k in range(s.rules_per_route):
                b = f"b-{g}-{r}-{k}"
                objs.append(
                    (
                        kinds.AISERVICEBACKENDS,
                        {
                            "apiVersion": AIGW,
                            "kind": "AIServiceBackend",
                            "metadata": md(b),
                            "spec": {
                                "schema": {"name": "OpenAI"},
                                "backendRef": {
                                    "group": "gateway.envoyproxy.io",
                                    "kind": "Backend",
                                    "name": f"eb-{n % s.eg_backends}",
                                },
                            },
                        },
                    )
                )
                n += 1
                rules.append(
                    {
                        "matches": [
                            {"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": f"m-{r}-{k}"}]}
                        ],
                        "backendRefs": [{"name": b}],
                    }
                )
            if r < s.pools_per_gateway:
                rules.append(
                    {
                        "matches": [{"headers": [{"type": "Exact", "name": "x-pool", "value": "yes"}]}],
                        "backendRefs": [{"kind": "InferencePool", "name": f"pool-{g}-{r}"}],
                    }
                )
            objs.append(
                (
                    kinds.AIGATEWAYROUTES,
                    {
                        "apiVersion": AIGW,
                        "kind": "AIGatewayRoute",
                        "metadata": md(f"r-{g}-{r}"),
                        "spec": {
                            "schema": {"name": "OpenAI"},
                            "rules": rules,
                            "targetRefs": [
                                {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": f"gw-{g}"}
                            ],
                        },
                    },
                )
            )
    return objs, records


class ConfigWatch:
    """Every Gateway ConfigMap's latest config (parsed), kept by a watch; waiters get woken on each event."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.configs: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            lst = await self.kube.list(CONFIGMAPS, namespace=NS)
            for cm in lst.get("items", []):
                await self._store(cm)
            rv = lst["metadata"]["resourceVersion"]
            async for ev in self.kube.watch(
                CONFIGMAPS, namespace=NS, resource_version=rv, timeout_seconds=240, inactivity_timeout=600
            ):
                if ev.get("type") in ("ADDED", "MODIFIED"):
                    await self._store(ev["object"])

    async def _store(self, cm: dict[str, Any]) -> None:
        text = (cm.get("data") or {}).get(CONFIG_KEY)
        if not text:
            return
        self.configs[cm["metadata"]["name"]] = yaml.safe_load(text)
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, pred: Any, *, within: float) -> float:
        """Wait until ``pred(configs)``; the monotonic time it became true."""
        async with asyncio.timeout(within):
            async with self.changed:
                while not pred(self.configs):
                    await self.changed.wait()
        return time.monotonic()


def complete(s: Scale, cfg: dict[str, Any] | None) -> bool:
    if cfg is None or len(cfg.get("rules", [])) != s.rules_per_gateway:
        return False
    pools = cfg.get("pools", [])
    return len(pools) == s.pools_per_gateway and all(
        sum(len(m.get("endpoints", [])) for m in p.get("members", [])) == s.endpoints
        and len(p.get("models", [])) == s.models
        for p in pools
    )


def api_writes(metrics: str) -> list[tuple[str, str, float]]:
    """``(kind, verb, count)`` of each ``aigw_controller_api_writes_total`` sample of a metrics page."""
    out = []
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "aigw_controller_api_writes_total":
                out.append((sample.labels["kind"], sample.labels["verb"], sample.value))
    return out


def _metrics(metrics_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def writes(metrics_port: int) -> float:
    """Every API write the controller made so far."""
    return sum(count for _, _, count in api_writes(_metrics(metrics_port)))


def status_writes(metrics_port: int) -> dict[str, float]:
    """The status writes the controller made so far, by kind."""
    out: dict[str, float] = {}
    for kind, verb, count in api_writes(_metrics(metrics_port)):
        if verb == "status":
            out[kind] = out.get(kind, 0.0) + count
    return out


async def quiet(metrics_port: int, *, seconds: float, within: float) -> float:
    """Wait until no API write happened for ``seconds``; the monotonic time of the last write seen."""
    deadline = time.monotonic() + within
    last_value, last_change = await asyncio.to_thread(writes, metrics_port), time.monotonic()
    while time.monotonic() - last_change < seconds:
        if time.monotonic() > deadline:
            raise TimeoutError("the controller kept writing")
        await asyncio.sleep(0.25)
        value = await asyncio.to_thread(writes, metrics_port)
        if value != last_value:
            last_value, last_change = value, time.monotonic()
    return last_change


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return int(r.status) == 200
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MODELLED: tuple[tuple[Resource, type[TopLevelObject]], ...] = (
    (kinds.AIGATEWAYROUTES, v1alpha1.AIGatewayRoute),
    (kinds.AISERVICEBACKENDS, v1alpha1.AIServiceBackend),
    (kinds.INFERENCEPOOLS, inference.InferencePool),
    (kinds.INFERENCEMODELS, inference.InferenceModel),
    (kinds.EG_BACKENDS, Backend),
)


async def model_read_seconds(kube: KubeClient) -> tuple[int, float]:
    """How many objects of the modelled kinds there are, and the CPU time (this process, best of 3) to read
    each once into its api model, as the controller caches it (managedFields stripped)."""
    items: list[tuple[type[TopLevelObject], dict[str, Any]]] = []
    for res, model in MODELLED:
        listed = await kube.list(res, namespace=NS)
        items += [
            (model, strip_managed_fields({**o, "apiVersion": res.api_version, "kind": res.kind}))
            for o in listed.get("items", [])
        ]
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for model, obj in items:
            model.read(obj)
        best = min(best, time.process_time() - start)
    return len(items), best


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    return out


async def create_all(kube: KubeClient, objs: list[tuple[Resource, dict[str, Any]]], concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(res: Resource, obj: dict[str, Any]) -> None:
        async with sem:
            await kube.create(res, obj, namespace=NS)

    await asyncio.gather(*(one(r, o) for r, o in objs))


def unrelated_secrets(n: int, *, kib: int) -> list[tuple[Resource, dict[str, Any]]]:
    """``n`` Secrets of ``kib`` KiB of data that nothing references, like Helm's release Secrets."""
    blob = base64.b64encode(os.urandom(kib * 1024)).decode()
    return [
        (
            SECRETS,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "helm.sh/release.v1",
                "metadata": md(f"sh.helm.release.v1.app-{i}.v1", owner="helm", status="deployed"),
                "data": {"release": blob},
            },
        )
        for i in range(n)
    ]


def pct(values: list[float], p: float) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    s = Scale(args.scale)
    objs, records = objects(s)
    cp = await asyncio.to_thread(ControlPlane().start)
    dns = DnsServer(ttl=args.dns_ttl).start()
    api = client.ApiClient(configuration=cp.client_configuration())
    kube = KubeClient(api)
    health, metrics, ext = free_port(), free_port(), free_port()
    log = Path(tempfile.mkdtemp(prefix="aigw-bench-")) / "controller.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        await kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        await kube.create(
            GATEWAYCLASSES,
            {
                "apiVersion": GW_API,
                "kind": "GatewayClass",
                "metadata": {"name": "bench"},
                "spec": {"controllerName": "example.com/bench"},
            },
        )
        dns.set_records(records)
        unrelated = unrelated_secrets(args.unrelated_secrets, kib=args.unrelated_secret_kib)
        await create_all(kube, unrelated, args.concurrency)
        cmd = [
            sys.executable,
            "-m",
            "controller.main",
            "--kubeconfig",
            str(cp.kubeconfig),
            "--watch-namespace",
            NS,
            "--enable-inference-extension",
            "--dns-server",
            f"{dns.address}:{dns.port}",
            "--extension-server-address",
            f"127.0.0.1:{ext}",
            "--health-probe-bind-address",
            f"127.0.0.1:{health}",
            "--metrics-bind-address",
            f"127.0.0.1:{metrics}",
            "--log-level",
            args.controller_log_level,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.to_thread(
            subprocess.Popen, cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env
        )
        for _ in range(240):
            if await asyncio.to_thread(ready, health):
                break
            await asyncio.sleep(0.25)
        else:
            raise RuntimeError(f"controller not ready; log: {log}")
        rss_idle = rss_kib(proc.pid)
        cpu_idle = cpu_seconds(proc.pid)
        watch = ConfigWatch(kube)
        watch.task = asyncio.create_task(watch.run())

        t0 = time.monotonic()
        await create_all(kube, objs, args.concurrency)
        t_last = time.monotonic()
        names = [extproc_name(f"gw-{g}") for g in range(s.gateways)]
        t_conv = await watch.wait_for(
            lambda c: all(complete(s, c.get(n)) for n in names), within=args.timeout
        )
        t_quiet = await quiet(metrics, seconds=3.0, within=args.timeout)
        rss_converged = rss_kib(proc.pid)
        cpu_converged = cpu_seconds(proc.pid)
        statuses = await asyncio.to_thread(status_writes, metrics)
        modelled, read_seconds = await model_read_seconds(kube)

        latencies: list[float] = []
        change_writes: list[float] = []
        for i in range(args.changes):
            g = i % s.gateways
            name = f"r-{g}-{s.pools_per_gateway}"  # a route without a pool rule
            value = f"changed-{i}"
            route = await kube.get(kinds.AIGATEWAYROUTES, name=name, namespace=NS)
            rules = route["spec"]["rules"]
            rules[0]["matches"][0]["headers"][0]["value"] = value
            before = await asyncio.to_thread(writes, metrics)
            start = time.monotonic()
            await kube.patch(kinds.AIGATEWAYROUTES, name=name, namespace=NS, body={"spec": {"rules": rules}})
            cm = extproc_name(f"gw-{g}")

            def seen(c: dict[str, Any], cm: str = cm, value: str = value) -> bool:
                cfg = c.get(cm) or {}
                return any(
                    h.get("value") == value
                    for r in cfg.get("rules", [])
                    for m in r.get("matches", [])
                    for h in m.get("headers", [])
                )

            done = await watch.wait_for(seen, within=60)
            latencies.append(done - start)
            await asyncio.sleep(1.0)
            change_writes.append(await asyncio.to_thread(writes, metrics) - before)

        noop_before = await asyncio.to_thread(writes, metrics)
        for i in range(args.noops):
            g = i % s.gateways
            await kube.patch(
                kinds.AIGATEWAYROUTES,
                name=f"r-{g}-0",
                namespace=NS,
                body={"metadata": {"annotations": {"bench/touched": str(i)}}},
            )
        await asyncio.sleep(3)
        noop_writes = await asyncio.to_thread(writes, metrics) - noop_before
        rss_end = rss_kib(proc.pid)
        watch.task.cancel()
        return {
            "log": str(log),
            "scale": s.describe(),
            "objects": len(objs),
            "unrelated_secrets": f"{args.unrelated_secrets} x {args.unrelated_secret_kib} KiB",
            "create_seconds": round(t_last - t0, 2),
            "converge_after_last_apply_seconds": round(t_conv - t_last, 2),
            "statuses_settled_after_last_apply_seconds": round(t_quiet - t_last, 2),
            "change_latency_ms": {
                "p50": round(statistics.median(latencies) * 1000, 1),
                "p99": round(pct(latencies, 99) * 1000, 1),
                "max": round(max(latencies) * 1000, 1),
                "n": len(latencies),
            },
            "writes_per_change": {
                "mean": round(statistics.mean(change_writes), 2),
                "max": max(change_writes),
            },
            "writes_for_noop_changes": noop_writes,
            "noop_changes": args.noops,
            "rss_mib": {
                "idle": round(rss_idle["VmRSS"] / 1024, 1),
                "converged": round(rss_converged["VmRSS"] / 1024, 1),
                "end": round(rss_end["VmRSS"] / 1024, 1),
                "peak": round(rss_end["VmHWM"] / 1024, 1),
            },
            "cpu_seconds": {
                "start_to_ready": round(cpu_idle, 2),
                "converge_and_statuses": round(cpu_converged - cpu_idle, 2),
            },
            "status_writes": {k: int(x) for k, x in sorted(statuses.items())},
            "model_reads": {"objects": modelled, "cpu_ms": round(read_seconds * 1000, 1)},
        }
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await api.close()
        dns.close()
        await asyncio.to_thread(cp.stop)


def table(r: dict[str, Any]) -> str:
    lat = r["change_latency_ms"]
    rss = r["rss_mib"]
    rows = [
        ("scale", r["scale"]),
        ("objects created", f"{r['objects']} in {r['create_seconds']} s"),
        ("unrelated Secrets (created before the controller)", r["unrelated_secrets"]),
        ("last apply → every ConfigMap converged", f"{r['converge_after_last_apply_seconds']} s"),
        ("last apply → last status written", f"{r['statuses_settled_after_last_apply_seconds']} s"),
        (
            "single change → ConfigMap updated",
            f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms (n={lat['n']})",
        ),
        (
            "API writes per change",
            f"mean {r['writes_per_change']['mean']}, max {r['writes_per_change']['max']}",
        ),
        ("API writes for no-op changes", f"{r['writes_for_noop_changes']} for {r['noop_changes']} changes"),
        (
            "controller RSS",
            f"idle {rss['idle']} MiB, converged {rss['converged']} MiB, end {rss['end']} MiB, "
            f"peak {rss['peak']} MiB",
        ),
        (
            "controller CPU: start → ready; ready → last status written",
            f"{r['cpu_seconds']['start_to_ready']} s; {r['cpu_seconds']['converge_and_statuses']} s",
        ),
        (
            "status writes until then",
            f"{sum(r['status_writes'].values())} ("
            + ", ".join(f"{k} {x}" for k, x in r["status_writes"].items())
            + ")",
        ),
        (
            "reading every modelled object into its api model once (bench process)",
            f"{r['model_reads']['cpu_ms']} ms CPU for {r['model_reads']['objects']} objects",
        ),
    ]
    return "\n".join(["| measure | result |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the issue's scale (Gateways, backends)"
    )
    p.add_argument("--changes", type=int, default=100)
    p.add_argument("--noops", type=int, default=50)
    p.add_argument("--concurrency", type=int, default=16, help="concurrent creates")
    p.add_argument("--dns-ttl", type=int, default=30)
    p.add_argument("--controller-log-level", default="warning", help="the controller's --log-level")
    p.add_argument("--keep-log", action="store_true", help="print where the controller's log is")
    p.add_argument("--timeout", type=float, default=600, help="seconds allowed for convergence")
    p.add_argument("--unrelated-secrets", type=int, default=0, help="Secrets nothing references (Helm-like)")
    p.add_argument("--unrelated-secret-kib", type=int, default=100, help="KiB of data in each")
    args = p.parse_args()
    result = asyncio.run(bench(args))
    if args.keep_log:
        print(f"controller log: {result.pop('log')}")
    else:
        result.pop("log")
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
