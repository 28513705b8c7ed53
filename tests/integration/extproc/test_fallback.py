"""A pool's fallback through the real Envoy: two simulated vLLM replicas (``aigw.sim``) serve the primary
pool, one more serves the fallback (an AIServiceBackend with its own Envoy cluster, or a second pool).

The fallback engages only when the primary can't serve a request (saturated past what the request's
criticality tolerates, or without endpoints) and traffic returns to the primary once it recovers. Load is made
by sending long requests straight to the primary's replicas, so only the scraped metrics tell the ext_proc.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import yaml

from tests.integration.extproc.harness import Gateway, gateway_in_front, scraped, until
from tests.realparts.httpclient import Reply, request
from tests.realparts.simulators import SimReplicas

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(300)]

PRIMARY_IPS = ["127.0.0.61", "127.0.0.62"]
SIM = {"model": "sim-llm", "max_num_seqs": 2, "step_base_ms": 5, "decode_ms_per_seq": 1}
ROUTE = "default/r"
POOL = "prim.default"
MODELS = [
    {"modelName": "bulk", "criticality": "Sheddable", "targetModels": [{"name": "sim-llm"}]},
    {"modelName": "vip", "criticality": "Critical", "targetModels": [{"name": "sim-llm"}]},
]


def _pool(name: str, endpoints: list[tuple[str, int]], models: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "members": [
            {
                "name": f"m-{name}",
                "schema": {"name": "OpenAI"},
                "endpoints": [{"ip": ip, "port": port} for ip, port in endpoints],
            }
        ],
        "models": models,
        # a loaded test machine can delay a scrape past the default 500 ms, after which it is not trusted
        "picker": {"scrape": {"stalenessMs": 3000}},
    }


def _config(*, primary: list[tuple[str, int]], spare_port: int, fallback: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "v1",
        "rules": [
            {"route": ROUTE, "backendRefs": [{"kind": "InferencePool", "name": POOL, "fallback": fallback}]}
        ],
        "backends": [{"name": "spare.default", "schema": {"name": "OpenAI"}}],
        "pools": [
            _pool(POOL, primary, MODELS),
            _pool("spare-pool.default", [("127.0.0.1", spare_port)], [{"modelName": "sim-llm"}]),
        ],
    }


TO_BACKEND = {"kind": "AIServiceBackend", "name": "spare.default", "modelNameOverride": "sim-llm"}
TO_POOL = {"kind": "InferencePool", "name": "spare-pool.default", "modelNameOverride": "sim-llm"}


@dataclass
class Setup:
    gateway: Gateway
    primary: SimReplicas
    spare: SimReplicas
    background: ThreadPoolExecutor

    def chat(self, model: str) -> Reply:
        return self.gateway.chat(model, max_tokens=2)

    def landed(self, model: str, n: int) -> Counter[str]:
        """Where ``n`` requests for ``model`` were served (each must succeed)."""
        out: Counter[str] = Counter()
        for _ in range(n):
            r = self.chat(model)
            assert r.status == 200, r.body
            out[r.headers["x-upstream-name"]] += 1
        return out

    def load_primary(self, *, per_replica: int) -> list[Future[Reply]]:
        """Long requests straight to each primary replica (around the gateway), in the background."""
        body = orjson.dumps(
            {"model": "sim-llm", "messages": [{"role": "user", "content": "x"}], "max_tokens": 400}
        )
        return [
            self.background.submit(
                request, self.primary.port, "/v1/chat/completions", body=body, host=ip, timeout=120
            )
            for ip in PRIMARY_IPS
            for _ in range(per_replica)
        ]

    def waiting(self, ip: str) -> float:
        page = request(self.primary.port, "/metrics", host=ip).body.decode()
        prefix = "vllm:num_requests_waiting{"
        return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith(prefix))

    def fallbacks(self, reason: str) -> float:
        return self.gateway.extproc.metric(
            "aigw_extproc_pool_fallbacks_total", route=ROUTE, pool=POOL, reason=reason
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("fallback")
    sim_cfg = workdir / "sim.yaml"
    sim_cfg.write_text(yaml.safe_dump(SIM))
    with contextlib.ExitStack() as stack:
        primary = stack.enter_context(SimReplicas(ips=PRIMARY_IPS, config=sim_cfg, name="prim"))
        spare = stack.enter_context(SimReplicas(ips=["127.0.0.1"], config=sim_cfg, name="spare"))
        config_path = workdir / "filter-config.yaml"
        cfg = _config(
            primary=[(ip, primary.port) for ip in PRIMARY_IPS], spare_port=spare.port, fallback=TO_BACKEND
        )
        config_path.write_text(yaml.safe_dump(cfg))
        gateway = gateway_in_front(
            stack, config_path=config_path, workdir=workdir, backends={"spare.default": spare.port}
        )
        background = stack.enter_context(ThreadPoolExecutor(max_workers=32))
        yield Setup(
            gateway=gateway,
            primary=primary,
            spare=spare,
            background=background,
        )


def test_fallback_engages_only_while_the_primary_is_saturated_and_traffic_returns(setup: Setup) -> None:
    # idle primary: everything stays on it, whatever the criticality
    idle = setup.landed("bulk", 6) + setup.landed("vip", 2)
    assert set(idle) <= {"prim-1", "prim-2"}, idle
    assert setup.fallbacks("saturated") == 0

    load = setup.load_primary(per_replica=9)  # 2 running + 7 waiting on each primary replica
    until(lambda: min(setup.waiting(ip) for ip in PRIMARY_IPS) >= 6, "the primary replicas never queued")
    scraped()
    spilled = setup.chat("bulk")
    assert spilled.status == 200, spilled.body  # not shed: served by the fallback
    assert spilled.headers["x-upstream-name"] == "spare-1"
    assert spilled.json()["model"] == "sim-llm"  # the fallback's model name override
    assert setup.fallbacks("saturated") >= 1
    # Critical is never shed, so the saturated primary still serves it (queued behind the load)
    vip = [setup.background.submit(setup.chat, "vip") for _ in range(2)]
    for f in vip:
        r = f.result(timeout=120)
        assert r.status == 200 and r.headers["x-upstream-name"] in {"prim-1", "prim-2"}, (r.status, r.headers)

    for f in load:
        assert f.result(timeout=120).status == 200
    until(
        lambda: setup.chat("bulk").headers.get("x-upstream-name", "").startswith("prim-"),
        "Sheddable traffic never returned to the primary after the load drained",
    )
    before = setup.fallbacks("saturated")
    back = setup.landed("bulk", 6)
    assert set(back) <= {"prim-1", "prim-2"}, back
    assert setup.fallbacks("saturated") == before


def test_an_empty_primary_sends_every_request_to_a_fallback_pool(setup: Setup) -> None:
    spare_port = setup.spare.port
    setup.gateway.apply(_config(primary=[], spare_port=spare_port, fallback=TO_POOL))
    try:
        landed = setup.landed("vip", 3) + setup.landed("bulk", 3)
        assert landed == {"spare-1": 6}, landed
        assert setup.fallbacks("no_endpoint") >= 6
        # endpoints come back: so does the traffic
        primary = [(ip, setup.primary.port) for ip in PRIMARY_IPS]
        setup.gateway.apply(_config(primary=primary, spare_port=spare_port, fallback=TO_POOL))
        before = setup.fallbacks("no_endpoint")
        back = setup.landed("vip", 4)
        assert set(back) <= {"prim-1", "prim-2"}, back
        assert setup.fallbacks("no_endpoint") == before
    finally:
        primary = [(ip, setup.primary.port) for ip in PRIMARY_IPS]
        setup.gateway.apply(_config(primary=primary, spare_port=spare_port, fallback=TO_BACKEND))
