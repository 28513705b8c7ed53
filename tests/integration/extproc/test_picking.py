"""The load-aware picker through the real Envoy, in front of four simulated vLLM replicas (``aigw.sim``).

Each replica runs at most 2 requests at once and queues the rest; the ext_proc scrapes their /metrics every
50 ms. Load is made by sending long requests straight to a replica (around the gateway), so only the
scraped metrics can tell the ext_proc about it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.integration.extproc.harness import REPO_ROOT, Gateway, gateway_in_front, scraped, until
from tests.realparts.httpclient import Reply, request
from tests.realparts.ports import free_port
from tests.realparts.processes import stop_process
from tests.unit.extproc.configs import pool_config

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(300)]

HOSTS = [f"127.0.0.{41 + i}" for i in range(4)]
SIM = {
    "model": "sim-llm",
    "lora_adapters": ["sql", "chat"],
    "max_num_seqs": 2,
    "max_loras": 1,
    "step_base_ms": 5,
    "decode_ms_per_seq": 1,
    "prefill_ms_per_token": 0.01,
}


@dataclass
class Pool:
    gateway: Gateway
    sim_port: int
    background: ThreadPoolExecutor

    def chat(self, model: str, *, content: str = "hi", max_tokens: int = 2) -> Reply:
        return self.gateway.chat(
            model, messages=[{"role": "user", "content": content}], max_tokens=max_tokens
        )

    def direct(self, replica: int, *, n: int, max_tokens: int, model: str = "sim-llm") -> list[Future[Reply]]:
        """``n`` long requests straight to replica ``replica`` (1-based), in the background."""
        body = orjson.dumps(
            {"model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": max_tokens}
        )
        host = HOSTS[replica - 1]
        return [
            self.background.submit(
                request, self.sim_port, "/v1/chat/completions", body=body, host=host, timeout=120
            )
            for _ in range(n)
        ]

    def replica_gauge(self, replica: int, name: str) -> float:
        page = request(self.sim_port, "/metrics", host=HOSTS[replica - 1]).body.decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith(name + "{"))


def _config(port: int) -> dict[str, Any]:
    return pool_config(
        [(h, port) for h in HOSTS],
        name="sim.default",
        # a loaded test machine can delay a scrape past the default 500 ms, after which it is not trusted
        picker={"scrape": {"stalenessMs": 3000}},
        models=[
            {"modelName": "sim-llm"},
            {"modelName": "sql"},
            {"modelName": "bulk", "criticality": "Sheddable", "targetModels": [{"name": "sim-llm"}]},
            {"modelName": "vip", "criticality": "Critical", "targetModels": [{"name": "sim-llm"}]},
        ],
    )


@contextlib.contextmanager
def _simulators(workdir: Path, port: int) -> Iterator[None]:
    cfg = workdir / "sim.yaml"
    cfg.write_text(yaml.safe_dump(SIM))
    cmd = [sys.executable, "-m", "aigw.sim", "--config", str(cfg), "--name", "sim"]
    cmd += [a for h in HOSTS for a in ("--listen", f"{h}:{port}")]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        ready = 0
        while ready < len(HOSTS):
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"aigw.sim exited before serving (exit {proc.wait()})")
            ready += line.startswith(b"ready ")
        yield
    finally:
        stop_process(proc, grace=5)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    workdir = tmp_path_factory.mktemp("picking")
    sim_port = free_port()
    config_path = workdir / "filter-config.yaml"
    config_path.write_text(yaml.safe_dump(_config(sim_port)))
    with contextlib.ExitStack() as stack:
        stack.enter_context(_simulators(workdir, sim_port))
        gateway = gateway_in_front(stack, config_path=config_path, workdir=workdir, backends={})
        background = stack.enter_context(ThreadPoolExecutor(max_workers=64))
        yield Pool(
            gateway=gateway,
            sim_port=sim_port,
            background=background,
        )


def _drain(futures: list[Future[Reply]]) -> None:
    for f in futures:
        assert f.result(timeout=120).status == 200


def test_requests_avoid_a_replica_with_a_long_queue(pool: Pool) -> None:
    load = pool.direct(1, n=6, max_tokens=400)  # 2 running, 4 waiting on sim-1, for seconds
    until(lambda: pool.replica_gauge(1, "vllm:num_requests_waiting") >= 4, "sim-1 never queued")
    scraped()
    landed: Counter[str] = Counter()
    for _ in range(20):
        r = pool.chat("sim-llm")
        assert r.status == 200, r.body
        landed[r.headers["x-upstream-name"]] += 1
    assert "sim-1" not in landed, landed
    _drain(load)


def test_a_shared_prefix_concentrates_on_one_replica(pool: Pool) -> None:
    system = "You are a careful assistant who answers in French. " * 60
    landed = Counter(
        pool.chat("sim-llm", content=system + f"question {i}").headers["x-upstream-name"] for i in range(16)
    )
    assert landed.most_common(1)[0][1] == 16, landed
    other = "Summarise the following legal text in plain English. " * 60
    second = Counter(
        pool.chat("sim-llm", content=other + f"doc {i}").headers["x-upstream-name"] for i in range(8)
    )
    assert second.most_common(1)[0][1] == 8, second


def test_lora_requests_prefer_the_replica_with_the_adapter(pool: Pool) -> None:
    # Long enough (~1 s) for scrapes to see the replica list "sql" as a running adapter: the picker gives LoRA
    # affinity only to models some replica has listed as an adapter (a base model never is), and remembers
    # them after their requests end.
    first = pool.chat("sql", max_tokens=160)
    assert first.status == 200, first.body
    home = first.headers["x-upstream-name"]
    landed = Counter(pool.chat("sql").headers["x-upstream-name"] for _ in range(12))
    assert landed == {home: 12}, (home, landed)


def test_sheddable_gets_429_only_when_saturated_and_critical_never(pool: Pool) -> None:
    ok = pool.chat("bulk")
    assert ok.status == 200, ok.body  # idle pool: nothing is shed
    load = [f for i in range(1, 5) for f in pool.direct(i, n=9, max_tokens=400)]  # 2 running + 7 waiting each
    until(
        lambda: min(pool.replica_gauge(i, "vllm:num_requests_waiting") for i in range(1, 5)) >= 6,
        "the replicas never all queued",
    )
    scraped()
    shed = pool.chat("bulk")
    assert shed.status == 429, (
        shed.body,
        [pool.replica_gauge(i, "vllm:num_requests_waiting") for i in (1, 2, 3, 4)],
    )
    assert shed.headers["retry-after"] == "1"
    assert shed.json()["error"]["type"] == "rate_limit_exceeded"
    vip = [pool.background.submit(pool.chat, "vip") for _ in range(3)]
    for f in vip:
        r = f.result(timeout=120)
        assert r.status == 200, r.body  # queued behind the load, never refused
    _drain(load)
    until(lambda: pool.chat("bulk").status == 200, "Sheddable still refused after the load drained")
    ext = pool.gateway.extproc
    assert ext.metric("aigw_extproc_shed_requests_total", model="bulk", criticality="Sheddable") >= 1
    assert ext.metric("aigw_extproc_shed_requests_total", criticality="Critical") == 0
