"""A v1 InferencePool with an external endpoint picker: the Inference Extension's real EPP v1.5.0 (its default
TLS, a self-signed certificate) on the real API server, the controller's config, our ext_proc behind the real
Envoy, and simulated vLLM replicas at the Pods' addresses. Requests land on the replica the EPP chose; with
the EPP killed, FailClose answers 503 in OpenAI's shape and FailOpen is served by our own picker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from api import filterconfig as fc
from controller.gateway import kinds
from tests.integration.controller.conftest import Aigw, eventually, gateway_yaml
from tests.integration.controller.manifests import docs
from tests.integration.controller.test_v1_pool import V1, v1_route
from tests.integration.extproc.harness import gateway_in_front, write_atomically
from tests.realparts.epp import DESTINATION_HEADER, RunningEpp
from tests.realparts.simulators import SimReplicas

IPS = ["127.0.0.71", "127.0.0.72", "127.0.0.73"]
POOL = "sim-pool"
ECHO = "x-echo-destination-endpoint"


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[SimReplicas]:
    with SimReplicas(ips=IPS, name="epp-sim") as s:
        yield s


def _picker(cfg: fc.FilterConfig, ns: str) -> fc.ExternalPicker | None:
    pool = next((p for p in cfg.pools if p.name == f"{POOL}.{ns}@v1"), None)
    return pool.external_picker if pool is not None else None


@pytest.mark.envoy
async def test_requests_follow_the_epp_and_its_failure_mode(
    aigw: Aigw, sims: SimReplicas, tmp_path: Path
) -> None:
    ns = aigw.ns
    # the EPP's default: TLS with a self-signed certificate that names nothing
    epp = RunningEpp(
        control_plane=aigw.cp, namespace=ns, pool=POOL, endpoints=sims.endpoints, secure_serving=True
    )
    with contextlib.ExitStack() as stack:
        stack.enter_context(epp)  # blocks until the EPP sees the three Pods ready (no kubelet: patched)
        aigw.dns.set_records({f"epp.{ns}.svc.cluster.local": ["127.0.0.1"]})
        await aigw.apply(docs(gateway_yaml("gw"), v1_route("r", "gw", POOL, model="sim-llm")))
        epp_address = f"127.0.0.1:{epp.grpc_port}"

        def resolved(c: fc.FilterConfig) -> bool:
            p = _picker(c, ns)
            return p is not None and [e.address for e in p.endpoints] == [epp_address]

        cfg = await aigw.config_when("gw", resolved, within=30)
        picker = _picker(cfg, ns)
        assert picker is not None and picker.failure_mode == fc.ExternalPickerFailureMode.FAIL_CLOSE
        assert picker.tls
        (pool,) = cfg.pools
        # the EPP reads the InferenceObjectives itself; our picker gets them for FailOpen
        assert [(o.name, o.priority) for o in pool.objectives] == [
            ("critical", 1),
            ("sheddable", -1),
            ("standard", 0),
        ]
        config_path = tmp_path / "filter-config.yaml"
        write_atomically(config_path, yaml.safe_dump(cfg.to_json_dict(), sort_keys=False).encode())
        gw = gateway_in_front(stack, config_path=config_path, workdir=tmp_path, backends={})

        sim_addresses = {str(e) for e in sims.endpoints}
        # the EPP chooses: the replica that answered is the one it named, whatever the client sent
        for _ in range(8):
            r = await asyncio.to_thread(gw.chat, "sim-llm", headers={DESTINATION_HEADER: "127.0.0.99:1"})
            assert r.status == 200, (r.status, r.body[:300], epp.log_tail(20))
            assert r.headers[ECHO] == r.headers["x-upstream-address"], r.headers
            assert r.headers[ECHO] in sim_addresses

        # the pool's status says who picks
        async def resolved_refs() -> str:
            obj = await aigw.get(kinds.V1_INFERENCEPOOLS, POOL)
            assert obj is not None
            ours = [
                p for p in (obj.get("status") or {}).get("parents") or [] if p["parentRef"]["name"] == "gw"
            ]
            (c,) = [c for c in ours[0]["conditions"] if c["type"] == "ResolvedRefs"]
            assert c["status"] == "True", c
            return str(c["message"])

        assert "endpoint picker Service epp" in await eventually(resolved_refs, within=10)

        epp.kill()
        r = await asyncio.to_thread(gw.chat, "sim-llm")
        assert r.status == 503, (r.status, r.body[:300])
        assert r.json()["error"]["code"] == "endpoint_picker_unavailable"
        assert r.headers.get("content-type") == "application/json"

        fail_open_patch = {"spec": {"endpointPickerRef": {"failureMode": "FailOpen"}}}
        await aigw.kubectl(
            "-n", ns, "patch", f"inferencepool.{V1}", POOL, "--type=merge", "-p", json.dumps(fail_open_patch)
        )

        def fail_open(c: fc.FilterConfig) -> bool:
            p = _picker(c, ns)
            return p is not None and p.failure_mode == fc.ExternalPickerFailureMode.FAIL_OPEN

        cfg = await aigw.config_when("gw", fail_open, within=30)
        await asyncio.to_thread(gw.apply, cfg.to_json_dict())
        served = set()
        for _ in range(6):
            r = await asyncio.to_thread(gw.chat, "sim-llm")
            assert r.status == 200, (r.status, r.body[:300])
            assert ECHO not in r.headers, "no EPP is running, yet a destination header reached the replica"
            served.add(r.headers["x-upstream-address"])
        assert served <= sim_addresses
