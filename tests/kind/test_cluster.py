"""The gateway on a real kind cluster (`make kind-up AIGW_KIND_LOCAL=1`): Envoy Gateway's Envoy Pod, the
ext_proc Deployment our controller writes, and a model server Pod reached through in-cluster DNS. The client
reaches the Envoy Pod through `kubectl port-forward` on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.kind.conftest import CONTEXT, kubectl, kubectl_path
from tests.realparts.extprocclient import chat_for

MANIFESTS = Path(__file__).parent / "manifests"


@pytest.fixture(scope="module")
def extproc_pod(cluster: None) -> dict[str, object]:
    """The ext_proc Pod our controller's Deployment runs for the sample Gateway, once it is Ready."""
    selector = "app.kubernetes.io/name=ai-eg-extproc,aigateway.envoyproxy.io/gateway-name=ai-gateway"
    kubectl("rollout", "status", "deploy", "-l", selector, "--timeout=180s")
    deadline = time.monotonic() + 180  # an earlier rollout's old Pod may still be terminating
    while True:
        pods = json.loads(kubectl("get", "pod", "-l", selector, "-o", "json"))["items"]
        if len(pods) == 1 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    pod: dict[str, object] = pods[0]
    return pod


@pytest.fixture(scope="module")
def gateway_url(cluster: None) -> Iterator[str]:
    """http://127.0.0.1:<port> forwarded to the Envoy Service of the sample Gateway."""
    svc = ""
    deadline = time.monotonic() + 180
    while not svc and time.monotonic() < deadline:
        svc = kubectl(
            "-n", "envoy-gateway-system", "get", "svc", "-o", "name",
            "-l", "gateway.envoyproxy.io/owning-gateway-name=ai-gateway",
        ).strip()  # fmt: skip
        time.sleep(0 if svc else 2)
    assert svc, "Envoy Gateway made no Service for the sample Gateway"
    kubectl("-n", "envoy-gateway-system", "wait", "--for=condition=Available", "deploy",
            "-l", "gateway.envoyproxy.io/owning-gateway-name=ai-gateway", "--timeout=180s")  # fmt: skip
    with port_forward("envoy-gateway-system", svc.splitlines()[0], 80) as port:
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def port_forward(namespace: str, target: str, remote_port: int) -> Iterator[int]:
    """``kubectl port-forward`` of ``target``'s ``remote_port`` to a free port on 127.0.0.1 (yielded)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    forward = subprocess.Popen(
        [kubectl_path(), "--context", CONTEXT, "-n", namespace, "port-forward",
         "--address", "127.0.0.1", target, f"{port}:{remote_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert forward.stdout is not None
        assert "Forwarding from" in forward.stdout.readline()
        yield port
    finally:
        forward.terminate()
        forward.wait(timeout=30)


def chat(url: str, model: str) -> tuple[int, dict[str, object]]:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", data=body.encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except json.JSONDecodeError:  # Envoy's own plain-text answers (e.g. 503 "no healthy upstream")
            return e.code, {"body": raw.decode(errors="replace")}


def served_chat(url: str, model: str) -> dict[str, object]:
    """The first 200 answer for the model, polling up to 3 min: the kubelet refreshes the ext_proc's ConfigMap
    volume (where a route change arrives) within about a minute. Until then any answer, or a dropped
    connection (the route's cluster may still be warming), means "not yet"."""
    deadline = time.monotonic() + 180
    while True:
        try:
            status, answer = chat(url, model)
        except (urllib.error.URLError, OSError) as e:
            status, answer = 0, {"error": repr(e)}
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert status == 200, answer
    return answer


def test_a_route_added_later_serves_chat_through_the_envoy_pod_without_restarting_the_ext_proc(
    extproc_pod: dict[str, object], gateway_url: str
) -> None:
    status, answer = chat(gateway_url, "kind-sim-model")
    assert status == 404, "the route does not exist yet"
    kubectl("apply", "-f", str(MANIFESTS / "direct.yaml"))
    try:
        kubectl("rollout", "status", "deploy/kind-sim", "--timeout=180s")
        answer = served_chat(gateway_url, "kind-sim-model")
        assert answer["model"] == "kind-sim-model"
        assert answer["usage"]["completion_tokens"] == 5  # type: ignore[index]
        # The same ext_proc Pod served it: the config change was followed, not restarted into.
        meta = extproc_pod["metadata"]
        assert isinstance(meta, dict)
        now = json.loads(kubectl("get", "pod", meta["name"], "-o", "json"))
        assert now["metadata"]["uid"] == meta["uid"]
        assert now["status"]["containerStatuses"][0]["restartCount"] == 0
        # kubectl describe shows the conditions our controller wrote.
        described = kubectl("describe", "aigatewayroute", "kind-direct")
        assert "Accepted" in described and "route accepted" in described
    finally:
        kubectl("delete", "--ignore-not-found", "-f", str(MANIFESTS / "direct.yaml"), check=False)


def test_chat_through_an_inference_pool_of_model_server_pods(
    extproc_pod: dict[str, object], gateway_url: str
) -> None:
    kubectl("apply", "-f", str(MANIFESTS / "pool.yaml"))
    try:
        kubectl("rollout", "status", "deploy/kind-pool-sim", "--timeout=180s")
        answer = served_chat(gateway_url, "kind-pool-model")
        assert answer["model"] == "kind-pool-model"
        # Every request the pool route takes is answered by one of the pool's Pods.
        statuses = [chat(gateway_url, "kind-pool-model")[0] for _ in range(10)]
        assert statuses == [200] * 10
        described = kubectl("describe", "inferencepool", "kind-pool")
        assert "served by the built-in endpoint picker" in described
        assert "member backend(s) resolved" in described
    finally:
        kubectl("delete", "--ignore-not-found", "-f", str(MANIFESTS / "pool.yaml"), check=False)


def _ask_extproc(port: int, credentials: grpc.ChannelCredentials | None, sni: str) -> object:
    """One hand-made request to the ext_proc through the port-forward: its answers, or the gRPC error."""

    async def go() -> object:
        target = f"127.0.0.1:{port}"
        channel = (
            grpc.aio.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", sni)])
            if credentials is not None
            else grpc.aio.insecure_channel(target)
        )
        async with channel:
            try:
                return await chat_for(channel, "any-model")
            except grpc.aio.AioRpcError as e:
                return e

    return asyncio.run(go())


def test_the_ext_proc_talks_only_to_a_client_with_the_gateways_certificate(
    extproc_pod: dict[str, object],
) -> None:
    """Mutual TLS is the default: the ext_proc Pod became Ready (its probe is /health, not gRPC), and any
    client of its Service but Envoy gets no stream: plaintext, or TLS without the client certificate; the
    Gateway's client certificate gets one. (That Envoy itself gets through, so Envoy Gateway presented the
    client certificate our extension server supplied, is what the chat tests above show.)"""
    name = "ai-eg-extproc-ai-gateway"
    data = json.loads(kubectl("get", "secret", f"{name}-client", "-o", "json"))["data"]
    ca, cert, key = (base64.b64decode(data[k]) for k in ("ca.crt", "tls.crt", "tls.key"))
    sni = f"{name}.default.svc.cluster.local"
    with port_forward("default", f"svc/{name}", 1063) as port:
        for what, creds in {
            "plaintext": None,
            "TLS without a client certificate": grpc.ssl_channel_credentials(root_certificates=ca),
        }.items():
            answer = _ask_extproc(port, creds, sni)
            assert isinstance(answer, grpc.aio.AioRpcError), (what, answer)
            assert answer.code() == grpc.StatusCode.UNAVAILABLE, (what, answer)
        gateway = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        answer = _ask_extproc(port, gateway, sni)
        assert not isinstance(answer, grpc.aio.AioRpcError), answer
