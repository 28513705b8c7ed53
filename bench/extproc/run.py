"""Benchmark: Envoy straight to the fake upstream vs Envoy + our ext_proc, in one run on one machine.

For each body size (1 KB and 100 KB) and each path it measures, with ``wrk``:

* **paced, 1 connection**: one request every ``--pace-ms`` (after the previous answer), p50/p99 latency;
* **saturation, 16 connections**: requests per second, p50/p99, and the CPU time each process spent per
  request (from /proc, user + system).

Then it prints a table with the ext_proc path's ratios to Envoy alone, and last the load-aware endpoint
picker's cost (``bench/extproc/picker_cost.py``; ``--picker-only`` runs just that). Run with
``make bench-extproc``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import yaml

from bench.extproc import picker_cost
from tests.integration.extproc.bootstrap import direct_bootstrap, gateway_bootstrap
from tests.integration.extproc.harness import REPO_ROOT, running_extproc
from tests.realparts.envoy import running_envoy
from tests.realparts.ports import free_port

LUA = Path(__file__).with_name("post.lua")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not m:
        raise ValueError(value)
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n


def run_wrk(*, url: str, body_file: Path, connections: int, duration: int, delay_ms: int) -> WrkResult:
    env = {**os.environ, "WRK_BODY_FILE": str(body_file), "WRK_DELAY_MS": str(delay_ms)}
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(LUA), url],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return WrkResult(rps=rps, p50_ms=_ms(pct["50"]), p99_ms=_ms(pct["99"]), requests=total, errors=errors)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


@contextlib.contextmanager
def upstream_process(*, workdir: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    log = (workdir / "upstream.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aigw.upstream", "--port", str(port), "--name", "bench"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1),
            ):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.05)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def bench_config() -> dict[str, object]:
    return {
        "version": "v1",
        "uuid": "bench",
        "rules": [
            {
                "route": "default/bench",
                "matches": [{"headers": [{"name": "x-ai-eg-model", "value": "bench"}]}],
                "backendRefs": [{"name": "bench.default"}],
            }
        ],
        "backends": [{"name": "bench.default", "schema": {"name": "OpenAI"}}],
        "llmRequestCosts": [{"route": "default/bench", "metadataKey": "total", "type": "TotalToken"}],
    }


def body_of(size: int) -> bytes:
    base = {"model": "bench", "messages": [{"role": "user", "content": ""}]}
    filler = size - len(orjson.dumps(base))
    base["messages"][0]["content"] = "x" * max(0, filler)  # type: ignore[index]
    return orjson.dumps(base)


@dataclass
class Path_:
    """One way through: a label, Envoy's port and pid, and the ext_proc pids it uses."""

    label: str
    port: int
    envoy_pid: int
    extproc_pids: tuple[int, ...]


def measure(
    path: Path_, *, body_file: Path, duration: int, pace_ms: int, upstream_pid: int
) -> tuple[WrkResult, WrkResult, dict[str, float]]:
    url = f"http://127.0.0.1:{path.port}/v1/chat/completions"
    run_wrk(url=url, body_file=body_file, connections=4, duration=1, delay_ms=0)  # warm up connections
    paced = run_wrk(url=url, body_file=body_file, connections=1, duration=duration, delay_ms=pace_ms)
    pids = {"envoy": (path.envoy_pid,), "ext_proc": path.extproc_pids, "upstream": (upstream_pid,)}
    before = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
    sat = run_wrk(url=url, body_file=body_file, connections=16, duration=duration, delay_ms=0)
    cpu = {
        k: (sum(cpu_seconds(p) for p in v) - before[k]) / max(sat.requests, 1) * 1e6 for k, v in pids.items()
    }
    return paced, sat, cpu


def _median(results: list[WrkResult]) -> WrkResult:
    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    return WrkResult(
        rps=med([r.rps for r in results]),
        p50_ms=med([r.p50_ms for r in results]),
        p99_ms=med([r.p99_ms for r in results]),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved repetitions; medians are reported (3)")
    p.add_argument("--pace-ms", type=int, default=5, help="pause between paced requests (default 5 ms)")
    p.add_argument("--sizes", default="1024,102400", help="body sizes in bytes (default 1024,102400)")
    p.add_argument(
        "--routing-only",
        action="store_true",
        help="also measure the ext_proc with Envoy's response phases off (no usage accounting)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="also measure this many ext_proc processes, round-robin (default 1 = skip)",
    )
    p.add_argument(
        "--picker-only",
        action="store_true",
        help="only the load-aware picker's cost (bench/extproc/picker_cost.py), which otherwise runs last",
    )
    args = p.parse_args()
    if args.picker_only:
        picker_cost.main([])
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[tuple[str, str, WrkResult, WrkResult, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-extproc-") as tmp:
        work = Path(tmp)
        cfg_path = work / "filter-config.yaml"
        cfg_path.write_text(yaml.safe_dump(bench_config()))
        with contextlib.ExitStack() as stack:
            up_port, up_pid = stack.enter_context(upstream_process(workdir=work))
            n = max(1, args.workers)
            exts = [
                stack.enter_context(
                    running_extproc(
                        config_path=cfg_path, workdir=work / f"x{i}", seed=None, log_level="warning"
                    )
                )
                for i in range(n)
            ]
            paths: list[Path_] = []
            port = free_port()
            env = stack.enter_context(
                running_envoy(
                    direct_bootstrap(listen_port=port, upstream_port=up_port), workdir=work / "direct"
                )
            )
            paths.append(Path_("envoy alone", port, env.pid, ()))
            for count in sorted({1, n}):
                port = free_port()
                boot = gateway_bootstrap(
                    listen_port=port,
                    ext_proc_port=[e.grpc_port for e in exts[:count]],
                    backends={"bench.default": up_port},
                    access_log=False,
                )
                env = stack.enter_context(running_envoy(boot, workdir=work / f"gw{count}"))
                label = "envoy + ext_proc" + ("" if count == 1 else f" x{count} processes")
                paths.append(Path_(label, port, env.pid, tuple(e.proc.pid for e in exts[:count])))
            if args.routing_only:
                port = free_port()
                boot = gateway_bootstrap(
                    listen_port=port,
                    ext_proc_port=exts[0].grpc_port,
                    backends={"bench.default": up_port},
                    access_log=False,
                    process_responses=False,
                )
                env = stack.enter_context(running_envoy(boot, workdir=work / "routing-only"))
                paths.append(Path_("envoy + ext_proc, routing only", port, env.pid, (exts[0].proc.pid,)))
            for size in sizes:
                body_file = work / f"body-{size}.json"
                body_file.write_bytes(body_of(size))
                runs: dict[str, list[tuple[WrkResult, WrkResult, dict[str, float]]]] = {
                    x.label: [] for x in paths
                }
                for rep in range(args.repeat):
                    for path in paths:
                        r = measure(
                            path,
                            body_file=body_file,
                            duration=args.duration,
                            pace_ms=args.pace_ms,
                            upstream_pid=up_pid,
                        )
                        runs[path.label].append(r)
                        print(
                            f"[{rep + 1}/{args.repeat}] {size // 1024} KB {path.label}: paced p50 "
                            f"{r[0].p50_ms:.2f} ms, c16 {r[1].rps:.0f} rps",
                            file=sys.stderr,
                            flush=True,
                        )
                for label, rs in runs.items():
                    cpu = {k: statistics.median([r[2][k] for r in rs]) for k in rs[0][2]}
                    rows.append(
                        (
                            f"{size // 1024} KB",
                            label,
                            _median([r[0] for r in rs]),
                            _median([r[1] for r in rs]),
                            cpu,
                        )
                    )
    print_table(rows, pace_ms=args.pace_ms)
    picker_cost.main([])


def print_table(rows: list[tuple[str, str, WrkResult, WrkResult, dict[str, float]]], *, pace_ms: int) -> None:
    print(
        f"\n| body | path | c=1 paced ({pace_ms} ms) p50 / p99 ms | c=16 rps | c=16 p50 / p99 ms "
        "| CPU µs/req envoy / ext_proc / upstream | errors |"
    )
    print("|---|---|---|---|---|---|---|")
    for size, label, paced, sat, cpu in rows:
        print(
            f"| {size} | {label} | {paced.p50_ms:.2f} / {paced.p99_ms:.2f} | {sat.rps:.0f} | "
            f"{sat.p50_ms:.2f} / {sat.p99_ms:.2f} | {cpu['envoy']:.0f} / {cpu['ext_proc']:.0f} / "
            f"{cpu['upstream']:.0f} | {paced.errors + sat.errors} |"
        )
    print("\n| body | path | added p50 at c=1 (target <= 0.5 ms) | rps ratio at c=16 (target >= 0.35x) |")
    print("|---|---|---|---|")
    base: dict[str, tuple[WrkResult, WrkResult]] = {}
    for size, label, paced, sat, _ in rows:
        if label == "envoy alone":
            base[size] = (paced, sat)
    for size, label, paced, sat, _ in rows:
        if label == "envoy alone":
            continue
        bp, bs = base[size]
        print(f"| {size} | {label} | {paced.p50_ms - bp.p50_ms:+.2f} ms | {sat.rps / bs.rps:.2f}x |")


if __name__ == "__main__":
    main()
