"""Scenario 12: through the real Envoy Gateway, with the policies the controller generates for each Gateway
(ClientTrafficPolicy and BackendTrafficPolicy ``connection.bufferLimit``, the e2e controller runs with
``--max-body-bytes 8Mi``; BackendTrafficPolicy ``responseOverride`` + the EnvoyExtensionPolicy's
``statusOnError``): a 3 MB prompt and a 3 MB non-streamed answer pass (Envoy Gateway's default buffer is
32 KiB), a prompt over the limit gets 413 in OpenAI's shape, and with the ext_proc killed requests fail closed
with 503 in OpenAI's shape, never reach an upstream, and work again once it is back."""

from __future__ import annotations

import json
import os
import signal

from tests.e2e import objects
from tests.e2e.client import chat, request
from tests.e2e.harness import Scenario, Upstreams
from tests.e2e.kube import wait_for
from tests.e2e.processes import LoggedProcess
from tests.realparts.httpclient import request as http_request
from tests.realparts.ports import tcp_open

MB = 1_000_000


def _prompt(model: str, size: int) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "x" * size}]}).encode()


def test_large_bodies_pass_and_bigger_ones_get_413_json(scn: Scenario, upstreams: Upstreams) -> None:
    big = upstreams.start("big", "127.0.0.92")
    scn.apply(
        *objects.direct_backend("big", scn.ns, big.host, big.port),
        objects.route_to_backend("big", scn.ns, scn.gateway, "big-model", "big"),
    )
    scn.wait_ok("big-model", upstream="big")

    prompt = request(scn.port, _prompt("big-model", 3 * MB), timeout=60)
    assert prompt.status == 200, prompt.body[:300]  # was 413 over 32 KiB
    assert big.received[-1].body_bytes > 3 * MB

    answer = request(
        scn.port, _prompt("big-model", 10), headers={"x-response-pad-bytes": str(3 * MB)}, timeout=60
    )
    assert answer.status == 200, answer.body[:300]
    assert len(json.loads(answer.body)["choices"][0]["message"]["content"]) > 3 * MB

    received = len(big.received)
    over = request(scn.port, _prompt("big-model", 9 * MB), timeout=60)
    assert over.status == 413, over.body[:300]
    error = json.loads(over.body)["error"]
    assert error["code"] == "request_too_large" and set(error) == {"message", "type", "code"}
    assert len(big.received) == received  # never forwarded


def test_an_http10_client_is_served(scn: Scenario, upstreams: Upstreams) -> None:
    # the ClientTrafficPolicy's http1.http10: without it an HTTP/1.0 client (ab, ...) got a plain-text 426
    up = upstreams.start("old", "127.0.0.94")
    scn.apply(
        *objects.direct_backend("old", scn.ns, up.host, up.port),
        objects.route_to_backend("old", scn.ns, scn.gateway, "old-model", "old"),
    )
    scn.wait_ok("old-model", upstream="old")
    r = http_request(
        scn.port,
        "/v1/chat/completions",
        body=_prompt("old-model", 10),
        headers={"host": f"127.0.0.1:{scn.port}"},
        http10=True,
    )
    assert r.status == 200, r.body[:300]
    assert r.upstream == "old"


def test_extproc_down_fails_closed_with_503_json_then_recovers(
    scn: Scenario, upstreams: Upstreams, extproc: LoggedProcess
) -> None:
    up = upstreams.start("guarded", "127.0.0.93")
    scn.apply(
        *objects.direct_backend("guarded", scn.ns, up.host, up.port),
        objects.route_to_backend("guarded", scn.ns, scn.gateway, "guarded-model", "guarded"),
    )
    scn.wait_ok("guarded-model", upstream="guarded")
    upstreams.reset()

    assert extproc.proc is not None
    os.kill(extproc.proc.pid, signal.SIGKILL)
    extproc.proc.wait(10)
    try:
        for _ in range(10):
            # the client even names the backend: without the ext_proc nothing may route it
            reply = chat(scn.port, "guarded-model", headers={"x-ai-eg-selected-backend": f"guarded.{scn.ns}"})
            assert reply.status == 503, (reply.status, reply.body)  # was 500 with an empty body
            assert reply.headers.get("content-type") == "application/json"
            error = json.loads(reply.body)["error"]
            assert error["code"] == "extproc_unavailable" and set(error) == {"message", "type", "code"}
        assert upstreams.counts()["guarded"] == 0
    finally:
        host, port = _listen_address(extproc)
        extproc.start()
        wait_for(lambda: tcp_open(host, port) or None, "the ext_proc to listen again", 60)
    wait_for(lambda: chat(scn.port, "guarded-model").status == 200 or None, "recovery after the ext_proc", 60)


def _listen_address(proc: LoggedProcess) -> tuple[str, int]:
    listen = proc.argv[proc.argv.index("--listen") + 1]
    host, _, port = listen.rpartition(":")
    return host, int(port)
