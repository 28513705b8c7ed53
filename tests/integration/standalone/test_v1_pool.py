"""`aigw run` with the Inference Extension's v1 InferencePool: no Pods without a cluster, so the pool's
``standalone.aigateway.envoyproxy.io/pod-ips`` annotation lists its model servers; requests reach them through
the real Envoy, and an InferenceObjective names the request's priority."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import pytest

from aigw.upstream import serve_in_thread
from tests.integration.standalone.harness import aigw_run
from tests.realparts.ports import common_port

pytestmark = pytest.mark.envoy

HOSTS = ("127.0.0.41", "127.0.0.42")

FILES = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: envoy-ai-gateway
  listeners: [{name: http, protocol: HTTP, port: 1975}]
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata: {name: r, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  schema: {name: OpenAI}
  rules:
  - matches: [{headers: [{name: x-ai-eg-model, value: llama}]}]
    backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: vllm}]
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: vllm
  namespace: default
  annotations: {standalone.aigateway.envoyproxy.io/pod-ips: "HOSTS"}
spec:
  selector: {matchLabels: {app: vllm}}
  targetPorts: [{number: PORT}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: batch, namespace: default}
spec: {priority: -1, poolRef: {name: vllm}}
"""


def test_a_v1_pool_is_served_from_its_annotated_addresses(tmp_path: Path) -> None:
    port = common_port(list(HOSTS))
    inputs = tmp_path / "in"
    inputs.mkdir()
    text = FILES.replace("HOSTS", ", ".join(HOSTS)).replace("PORT", str(port))
    (inputs / "v1.yaml").write_text(text)
    with contextlib.ExitStack() as stack:
        for i, host in enumerate(HOSTS, start=1):
            stack.enter_context(serve_in_thread(name=f"pod-{i}", host=host, port=port))
        run = stack.enter_context(
            aigw_run([inputs], workdir=tmp_path / "work", extra_args=["--no-demo-upstreams"])
        )
        served = Counter()
        for _ in range(20):
            r = run.chat("llama", headers={"x-gateway-inference-objective": "batch"})
            assert r.status == 200, r.body
            served[r.headers["x-upstream-name"]] += 1
        assert set(served) == {"pod-1", "pod-2"}, served
        cfg = (tmp_path / "work" / "filter-config.yaml").read_text()
        assert "name: batch" in cfg and "priority: -1" in cfg
