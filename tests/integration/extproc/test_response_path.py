"""The response path: token usage (JSON and SSE) into metrics and dynamic metadata, upstream error shapes."""

from __future__ import annotations

import http.client
import re
import time

import orjson
import pytest

from tests.integration.extproc.harness import Gateway

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(120)]

TOKEN_USAGE_SUM = "gen_ai_client_token_usage_sum"


def cost_logged_for(gateway: Gateway, *, marker_path: str, timeout: float = 10.0) -> dict[str, int]:
    """The cost metadata Envoy's access log recorded for the request to ``marker_path`` (a unique query)."""
    deadline = time.monotonic() + timeout
    pattern = re.compile(r"\[access\] POST " + re.escape(marker_path) + r" \d+ \S+ \S+ cost=(.*)$", re.M)
    while time.monotonic() < deadline:
        m = pattern.search(gateway.envoy.log_path.read_text(errors="replace"))
        if m:
            raw = m.group(1).strip()
            return {} if raw == "-" else dict(orjson.loads(raw))
        time.sleep(0.1)
    raise AssertionError(f"no access log line for {marker_path}")


def token_sum(gateway: Gateway, model: str, token_type: str) -> float:
    return gateway.extproc.metric(TOKEN_USAGE_SUM, gen_ai_request_model=model, gen_ai_token_type=token_type)


def test_json_usage_becomes_cost_metadata_and_metrics(gateway: Gateway) -> None:
    before = token_sum(gateway, "gpt-a", "output")
    path = "/v1/chat/completions?case=json-usage"
    r = gateway.request(path, json={"model": "gpt-a"}, headers={"x-response-usage": "11,7"})
    assert r.status == 200
    assert r.json()["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert cost_logged_for(gateway, marker_path=path) == {"input": 11, "output": 7, "total": 18}
    gateway.extproc.wait_for_metric(
        TOKEN_USAGE_SUM,
        before + 7,
        within=5,
        what="token usage metric did not grow by 7",
        gen_ai_request_model="gpt-a",
        gen_ai_token_type="output",
    )
    assert (
        gateway.extproc.metric(
            "gen_ai_server_request_duration_count",
            gen_ai_request_model="gpt-a",
            gen_ai_provider_name="openai",
        )
        >= 1
    )


def test_streaming_usage_is_counted_and_the_stream_passes_intact(gateway: Gateway) -> None:
    before = token_sum(gateway, "gpt-a", "input")
    ttft_before = gateway.extproc.metric(
        "gen_ai_server_time_to_first_token_count", gen_ai_request_model="gpt-a"
    )
    path = "/v1/chat/completions?case=sse-usage"
    r = gateway.request(
        path,
        json={"model": "gpt-a", "stream": True},
        headers={"x-response-usage": "21,9", "x-response-chunks": "5", "x-response-delay-ms": "20"},
    )
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line for line in r.body.decode().split("\n") if line.startswith("data: ")]
    assert len(events) == 5 + 2  # content chunks, the usage chunk, [DONE]
    assert events[-1] == "data: [DONE]"
    assert cost_logged_for(gateway, marker_path=path) == {"input": 21, "output": 9, "total": 30}
    gateway.extproc.wait_for_metric(
        TOKEN_USAGE_SUM,
        before + 21,
        within=5,
        what="streamed input tokens were not counted",
        gen_ai_request_model="gpt-a",
        gen_ai_token_type="input",
    )
    assert (
        gateway.extproc.metric("gen_ai_server_time_to_first_token_count", gen_ai_request_model="gpt-a")
        == ttft_before + 1
    )


def test_no_costs_for_a_route_that_declares_none(gateway: Gateway) -> None:
    path = "/v1/chat/completions?case=no-costs"
    r = gateway.request(path, json={"model": "mistral"})
    assert r.status == 200
    assert cost_logged_for(gateway, marker_path=path) == {}


def test_a_non_json_upstream_error_is_normalised_to_the_openai_shape(gateway: Gateway) -> None:
    before = gateway.extproc.metric("aigw_extproc_requests_total", outcome="upstream_error")
    r = gateway.chat(
        "gpt-a",
        headers={
            "x-response-status": "503",
            "x-response-body": "overloaded, try later",
            "x-response-content-type": "text/plain",
        },
    )
    assert r.status == 503
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "error": {"message": "overloaded, try later", "type": "upstream_error", "code": "503"}
    }
    gateway.extproc.wait_for_metric(
        "aigw_extproc_requests_total", before + 1, within=5, outcome="upstream_error"
    )


def test_an_openai_shaped_upstream_error_passes_unchanged(gateway: Gateway) -> None:
    body = '{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limited"}}'
    r = gateway.chat("gpt-a", headers={"x-response-status": "429", "x-response-body": body})
    assert r.status == 429
    assert r.body.decode() == body


def test_request_outcomes_are_counted(gateway: Gateway) -> None:
    def outcome(name: str) -> float:
        return gateway.extproc.metric("aigw_extproc_requests_total", outcome=name)

    before = {o: outcome(o) for o in ("ok", "bad_request", "model_not_found")}
    gateway.chat("gpt-a")
    gateway.request("/v1/chat/completions", body=b"{")
    gateway.chat("nobody-serves-this")
    expected = {o: before[o] + 1 for o in before}
    deadline = time.monotonic() + 5
    while {o: outcome(o) for o in before} != expected:
        assert time.monotonic() < deadline, {o: outcome(o) for o in before}
        time.sleep(0.05)


def test_sse_chunks_reach_the_client_as_they_are_produced(gateway: Gateway) -> None:
    """Usage accounting must not buffer the stream: the first event arrives long before the last."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        body = orjson.dumps({"model": "gpt-a", "stream": True})
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=body,
            headers={
                "content-type": "application/json",
                "x-response-chunks": "5",
                "x-response-delay-ms": "250",
            },
        )
        resp = conn.getresponse()
        assert resp.status == 200
        start = time.monotonic()
        first = resp.readline()
        first_at = time.monotonic() - start
        rest = resp.read()
        total = time.monotonic() - start
    finally:
        conn.close()
    assert first.startswith(b"data: ")
    assert rest.rstrip().endswith(b"data: [DONE]")
    assert total - first_at > 0.8, (first_at, total)  # 5 chunks 250 ms apart: ~1 s between first and last


# A hosted API (OpenAI's included) gzips its answer whenever the request's Accept-Encoding allows it, and the
# OpenAI SDKs send `Accept-Encoding: gzip, deflate`. The gateway reads usage and rewrites errors, so it must
# ask the upstream for an uncompressed answer whatever the client accepts.
GZIP_CLIENT = {"accept-encoding": "gzip, deflate", "x-response-compress": "gzip"}


def test_a_client_accepting_gzip_still_gets_its_tokens_counted(gateway: Gateway) -> None:
    before = token_sum(gateway, "gpt-a", "output")
    path = "/v1/chat/completions?case=gzip-usage"
    # an output count no other test's request comes near: the previous test's metrics may still be landing
    r = gateway.request(
        path, json={"model": "gpt-a"}, headers={**GZIP_CLIENT, "x-response-usage": "13,60006"}
    )
    assert r.status == 200
    assert r.headers["x-echo-accept-encoding"] == "identity"
    assert "content-encoding" not in r.headers
    assert r.json()["usage"] == {"prompt_tokens": 13, "completion_tokens": 60006, "total_tokens": 60019}
    assert cost_logged_for(gateway, marker_path=path) == {"input": 13, "output": 60006, "total": 60019}
    deadline = time.monotonic() + 10
    while token_sum(gateway, "gpt-a", "output") < before + 60006:
        assert time.monotonic() < deadline, "token usage of a gzip-accepting client was not counted"
        time.sleep(0.05)


def test_a_normalised_upstream_error_never_keeps_a_stale_content_encoding(gateway: Gateway) -> None:
    # an upstream that compresses although asked for identity: the error we write instead is plain JSON
    r = gateway.chat(
        "gpt-a",
        headers={
            **GZIP_CLIENT,
            "x-response-compress": "gzip-always",
            "x-response-status": "502",
            "x-response-body": "bad gateway upstream",
            "x-response-content-type": "text/plain",
        },
    )
    assert r.status == 502
    assert "content-encoding" not in r.headers
    assert r.json() == {"error": {"message": "bad gateway upstream", "type": "upstream_error", "code": "502"}}


def test_a_client_that_leaves_mid_stream_is_counted_cancelled(gateway: Gateway) -> None:
    def outcome(name: str) -> float:
        return gateway.extproc.metric("aigw_extproc_requests_total", outcome=name)

    cancelled = outcome("cancelled")
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=orjson.dumps({"model": "gpt-a", "stream": True}),
            headers={
                "content-type": "application/json",
                "x-response-chunks": "100",
                "x-response-delay-ms": "100",
            },
        )
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read1(65536).startswith(b"data: ")  # the stream is flowing; now the client goes away
    finally:
        conn.close()
    gateway.extproc.wait_for_metric(
        "aigw_extproc_requests_total",
        cancelled + 1,
        within=15,
        what="a stream the client left was not counted cancelled",
        outcome="cancelled",
    )


def test_a_stream_request_answered_with_plain_json_still_counts_its_usage(gateway: Gateway) -> None:
    # servers that ignore "stream" (or answer from a cache) send one JSON body
    path = "/v1/chat/completions?case=stream-answered-json"
    answer = {
        "id": "x",
        "object": "chat.completion",
        "choices": [],
        "usage": {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12},
    }
    r = gateway.request(
        path,
        json={"model": "gpt-a", "stream": True},
        headers={"x-response-body": orjson.dumps(answer).decode()},
    )
    assert r.status == 200
    assert r.json() == answer
    assert cost_logged_for(gateway, marker_path=path) == {"input": 8, "output": 4, "total": 12}
