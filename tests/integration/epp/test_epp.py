"""The Inference Extension's EPP v1.5.0 on our real API server, picking among simulators behind real Envoy.

Built from the Go module proxy by hack/setup-epp.sh (cached); a missing Go toolchain or proxy fails the test
with the command that fixes it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.realparts.controlplane import ControlPlane
from tests.realparts.envoy import RunningEnvoy, running_envoy
from tests.realparts.epp import DESTINATION_HEADER, RunningEpp, epp_envoy_bootstrap
from tests.realparts.httpclient import request
from tests.realparts.ports import free_port
from tests.realparts.simulators import SimReplicas

IPS = ["127.0.0.61", "127.0.0.62", "127.0.0.63"]


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[SimReplicas]:
    cfg = tmp_path / "sim.yaml"
    # one request at a time and slow steps: a few long requests make a replica's queue long
    cfg.write_text("max_num_seqs: 1\nstep_base_ms: 20\ndecode_ms_per_seq: 0\nprefill_ms_per_token: 0\n")
    with SimReplicas(ips=IPS, config=cfg, name="epp-sim") as s:
        yield s


@pytest.fixture
def epp_gateway(
    control_plane: ControlPlane, sims: SimReplicas, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[RunningEpp, RunningEnvoy, int]]:
    namespace = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:50].strip("-")
    epp = RunningEpp(
        control_plane=control_plane, namespace=namespace, pool="sim-pool", endpoints=sims.endpoints
    )
    with epp:
        port = free_port()
        with running_envoy(
            epp_envoy_bootstrap(listen_port=port, epp_port=epp.grpc_port), workdir=tmp_path
        ) as env:
            yield epp, env, port


def chat(
    port: int, *, max_tokens: int = 2, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    body = {"model": "sim-llm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}
    reply = request(port, "/v1/chat/completions", body=orjson.dumps(body), headers=headers, timeout=60)
    return reply.status, reply.headers


def test_requests_land_on_the_simulator_the_epp_chose(
    epp_gateway: tuple[RunningEpp, RunningEnvoy, int],
) -> None:
    epp, _, port = epp_gateway
    served: set[str] = set()
    for _ in range(12):
        # a client's own destination header must not decide anything: the EPP overwrites it
        status, headers = chat(port, headers={DESTINATION_HEADER: "127.0.0.99:1"})
        assert status == 200, headers
        chosen = headers["x-echo-destination-endpoint"]
        assert chosen == headers["x-upstream-address"], "Envoy sent the request elsewhere than the EPP chose"
        served.add(chosen)
    assert served <= {f"{ip}:{epp.endpoints[0].port}" for ip in IPS}
    assert len(served) >= 2, f"the EPP sent everything to {served}"


async def _occupy(url: str, n: int) -> list[asyncio.Task[None]]:
    """Start ``n`` long requests straight at one simulator (not through the EPP) and leave them running."""

    async def one() -> None:
        body = {"model": "sim-llm", "prompt": "busy", "max_tokens": 3000}
        async with aiohttp.ClientSession() as s, s.post(url + "/v1/completions", json=body) as resp:
            await resp.read()

    return [asyncio.create_task(one()) for _ in range(n)]


async def test_the_epp_avoids_a_replica_with_a_long_queue(
    epp_gateway: tuple[RunningEpp, RunningEnvoy, int], sims: SimReplicas
) -> None:
    _, _, port = epp_gateway
    busy = sims.endpoints[0]
    tasks = await _occupy(f"http://{busy}", 8)
    try:
        deadline = time.monotonic() + 20
        async with aiohttp.ClientSession() as s:
            while True:
                async with s.get(f"http://{busy}/metrics") as resp:
                    text = await resp.text()
                if 'vllm:num_requests_waiting{model_name="sim-llm"} 7.0' in text:
                    break
                assert time.monotonic() < deadline, "the busy replica's queue did not build"
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the EPP scrapes every 50 ms; give it several rounds on a loaded machine
        landed = [(await asyncio.to_thread(chat, port))[1]["x-upstream-address"] for _ in range(10)]
        assert str(busy) not in landed, f"the EPP sent requests to the replica with 7 waiting: {landed}"
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
