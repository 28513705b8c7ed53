"""Body limits and Envoy's own error answers on ``aigw run``, from the policies the controller's builders emit
(ClientTrafficPolicy ``connection.bufferLimit``, BackendTrafficPolicy ``responseOverride``, the
EnvoyExtensionPolicy's ``statusOnError``), translated the way Envoy Gateway does."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import orjson
import pytest

from tests.integration.standalone.harness import Prepared, aigw_run, cmdline
from tests.realparts.httpclient import request

pytestmark = pytest.mark.envoy


def _prompt(size: int) -> dict[str, object]:
    # gpt-4o-mini: the examples' plain fake upstream (aigw.upstream), which has no context limit of its own
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * size}]}


def test_bodies_up_to_the_limit_pass_and_bigger_ones_get_413_json(examples: Prepared, tmp_path: Path) -> None:
    with aigw_run(
        [examples.directory], workdir=tmp_path / "work", extra_args=["--max-body-bytes", "1Mi"]
    ) as run:
        ok = run.request("/v1/chat/completions", body=_prompt(900_000), timeout=30)
        assert ok.status == 200, ok.body[:300]
        big = run.request(
            "/v1/chat/completions", body=_prompt(1_200_000), headers={"x-response-pad-bytes": "0"}, timeout=30
        )
        assert big.status == 413, big.body[:300]
        assert orjson.loads(big.body)["error"]["code"] == "request_too_large"
        # a large non-streamed answer fits the same buffer
        answer = run.request(
            "/v1/chat/completions", body=_prompt(10), headers={"x-response-pad-bytes": "800000"}, timeout=30
        )
        assert answer.status == 200, answer.body[:300]
        assert len(orjson.loads(answer.body)["choices"][0]["message"]["content"]) > 800_000


def test_with_the_extproc_down_requests_fail_closed_with_503_json_and_recover(
    examples: Prepared, tmp_path: Path
) -> None:
    with aigw_run([examples.directory], workdir=tmp_path / "work") as run:
        assert run.chat("demo-llm").status == 200
        extproc = next(p for p in run.descendants() if "extproc.main" in cmdline(p))
        os.kill(run.proc.pid, signal.SIGSTOP)  # aigw would restart the ext_proc at once
        try:
            os.kill(extproc, signal.SIGKILL)
            time.sleep(0.5)
            for _ in range(5):
                reply = run.chat("demo-llm")
                assert reply.status == 503, (reply.status, reply.body)  # was 500 with an empty body
                assert reply.headers["content-type"] == "application/json"
                error = orjson.loads(reply.body)["error"]
                assert error["code"] == "extproc_unavailable" and set(error) == {"message", "type", "code"}
                assert "x-upstream-name" not in reply.headers  # no upstream answered
        finally:
            os.kill(run.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while (reply := run.chat("demo-llm")).status != 200:
            assert time.monotonic() < deadline, f"no recovery: {reply.status} {reply.body[:200]!r}"
            time.sleep(0.2)


def test_an_http10_client_is_served(examples: Prepared, tmp_path: Path) -> None:
    # `ab` and old clients speak HTTP/1.0: Envoy's default refusal (426) went through the ext_proc filter and
    # the connection closed before it was written, so the client got an empty reply and no reason
    with aigw_run([examples.directory], workdir=tmp_path / "work") as run:
        body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        host = {"host": f"127.0.0.1:{run.port}"}  # as ab sends it (HTTP/1.0 does not require one)
        r = request(run.port, "/v1/chat/completions", body=body, headers=host, http10=True)
        assert r.status == 200, r.body
        assert r.json()["usage"]["total_tokens"] > 0
        models = request(run.port, "/v1/models", headers=host, http10=True)
        assert models.status == 200 and {m["id"] for m in models.json()["data"]} == {
            "demo-llm",
            "gpt-4o-mini",
        }
