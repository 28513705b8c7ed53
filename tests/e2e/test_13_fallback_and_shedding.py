"""Scenario 13: an InferencePool of two simulated vLLM replicas with a fallback and criticality shedding,
configured as a user would (the YAML below, applied to the API server). While the replicas are idle every
request stays on the pool; once both are queued past the threshold, the Sheddable model of the rule with a
fallback goes to the fallback backend, the Sheddable model of the rule without one gets 429 with retry-after,
and the Critical model is still served by the pool. When the queues drain, traffic returns to the pool."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
import yaml

from tests.e2e import artifacts
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams, metric_sum, metrics_text
from tests.e2e.kube import wait_for
from tests.realparts.dns import DnsServer
from tests.realparts.httpclient import Reply, request
from tests.realparts.ports import common_port
from tests.realparts.simulators import SimReplicas

REPLICA_IPS = ["127.0.0.71", "127.0.0.72"]
OVERFLOW_IP = "127.0.0.75"

MANIFEST = """
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata: {{name: llm, namespace: {ns}}}
spec:
  schema: {{name: OpenAI}}
  targetRefs:
    - {{group: gateway.networking.k8s.io, kind: Gateway, name: {gateway}}}
  rules:
    # interactive traffic: when the pool can't take it, the overflow backend does
    - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: chat}}]}}]
      backendRefs:
        - kind: InferencePool
          name: replicas
          fallback: {{kind: AIServiceBackend, name: overflow, modelNameOverride: overflow-llm}}
    # the rest has no fallback: Sheddable batch work is refused (429) while the pool is saturated
    - backendRefs:
        - {{kind: InferencePool, name: replicas}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata:
  name: replicas
  namespace: {ns}
  annotations:
    # a loaded test machine can delay a scrape past the default 500 ms, after which it is not trusted
    aigateway.envoyproxy.io/endpoint-picker: |
      scrape: {{stalenessMs: 3000}}
      saturation: {{queueDepth: 4, retryAfterSeconds: 2}}
spec:
  targetPortNumber: {port}
  selector: {{app: replicas}}
  extensionRef: {{name: envoy-ai-gateway}}
---
apiVersion: v1
kind: Service
metadata: {{name: replicas, namespace: {ns}}}
spec:
  clusterIP: None
  ports: [{{name: http, port: {port}, targetPort: {port}}}]
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: replicas
  namespace: {ns}
  labels: {{app: replicas}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: replicas, port: {port}}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: overflow, namespace: {ns}}}
spec:
  endpoints: [{{ip: {{address: {overflow_ip}, port: {overflow_port}}}}}]
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata: {{name: overflow, namespace: {ns}}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{group: gateway.envoyproxy.io, kind: Backend, name: overflow}}
"""

MODEL = """
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {{name: {name}, namespace: {ns}}}
spec:
  modelName: {name}
  criticality: {criticality}
  poolRef: {{name: replicas}}
  targetModels: [{{name: sim-llm}}]
"""
MODELS = {"chat": "Sheddable", "batch": "Sheddable", "vip": "Critical"}

SIM = {"model": "sim-llm", "max_num_seqs": 2, "step_base_ms": 5, "decode_ms_per_seq": 1}


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[SimReplicas]:
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(yaml.safe_dump(SIM))
    with SimReplicas(ips=REPLICA_IPS, config=cfg, name="replica", port=common_port(REPLICA_IPS)) as s:
        artifacts.register("replicas", lambda: sorted(s.workdir.glob("*.log")))
        yield s
        artifacts.unregister("replicas")


def _waiting(replicas: SimReplicas, ip: str) -> float:
    page = request(replicas.port, "/metrics", host=ip).body.decode()
    prefix = "vllm:num_requests_waiting{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith(prefix))


def test_fallback_and_shedding_as_a_user_configures_them(
    scn: Scenario, upstreams: Upstreams, dns_server: DnsServer, replicas: SimReplicas
) -> None:
    overflow = upstreams.start("overflow", OVERFLOW_IP)
    dns_server.set_records({f"replicas.{scn.ns}.svc.cluster.local": REPLICA_IPS})
    text = MANIFEST.format(
        ns=scn.ns,
        gateway=scn.gateway,
        port=replicas.port,
        overflow_ip=OVERFLOW_IP,
        overflow_port=overflow.port,
    )
    text += "".join("---" + MODEL.format(name=n, ns=scn.ns, criticality=c) for n, c in MODELS.items())
    scn.apply(*(d for d in yaml.safe_load_all(text) if d))
    on_pool = ("replica-1", "replica-2")
    scn.wait_ok("chat", upstream=lambda name: name in on_pool)
    scn.wait_ok("batch", upstream=lambda name: name in on_pool)

    def fallbacks() -> float:
        return metric_sum(
            metrics_text(scn.extproc_metrics),
            "aigw_extproc_pool_fallbacks_total",
            pool=f"replicas.{scn.ns}",
            reason="saturated",
        )

    # idle: the pool serves everything, the fallback sees nothing
    for model in ("chat", "batch", "vip"):
        for _ in range(4):
            reply = chat(scn.port, model)
            assert reply.status == 200 and reply.upstream in on_pool, (model, reply.status, reply.upstream)
    assert overflow.received == [] and fallbacks() == 0

    body = orjson.dumps(
        {"model": "sim-llm", "messages": [{"role": "user", "content": "x"}], "max_tokens": 400}
    )
    with ThreadPoolExecutor(max_workers=24) as pool:
        load: list[Future[Reply]] = [
            pool.submit(request, replicas.port, "/v1/chat/completions", body=body, host=ip, timeout=120)
            for ip in REPLICA_IPS
            for _ in range(9)  # 2 running + 7 waiting on each replica, for seconds
        ]
        wait_for(
            lambda: min(_waiting(replicas, ip) for ip in REPLICA_IPS) >= 6,
            "the replicas to queue",
            interval=0.05,
        )
        time.sleep(0.5)  # the ext_proc scrapes every 50 ms: let it see the queues (a wait, not an assertion)

        spilled = chat(scn.port, "chat")
        assert (spilled.status, spilled.upstream) == (200, "overflow"), (spilled.status, spilled.body)
        assert overflow.received[-1].model == "overflow-llm"
        shed = chat(scn.port, "batch")
        assert shed.status == 429, shed.body
        assert shed.headers["retry-after"] == "2"
        assert orjson.loads(shed.body)["error"]["type"] == "rate_limit_exceeded"
        vip = chat(scn.port, "vip", timeout=120)  # queued behind the load, never refused nor moved
        assert vip.status == 200 and vip.upstream in on_pool, (vip.status, vip.upstream)
        assert fallbacks() >= 1
        for f in load:
            assert f.result(timeout=120).status == 200

    wait_for(lambda: chat(scn.port, "chat").upstream in on_pool, "chat to return to the pool", interval=0.05)
    spilled_total = len(overflow.received)
    for _ in range(4):
        reply = chat(scn.port, "chat")
        assert reply.status == 200 and reply.upstream in on_pool, (reply.status, reply.upstream)
    assert chat(scn.port, "batch").status == 200
    assert len(overflow.received) == spilled_total
    artifacts.measure("13. requests sent to the fallback while the pool was saturated", spilled_total)
